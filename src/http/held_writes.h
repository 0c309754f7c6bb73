// Small writes to a cpp-httplib stream, held and sent in one piece.
//
// cpp-httplib writes a message's head and body with separate calls. Sent as they come (the
// sockets have TCP_NODELAY), they leave as two segments: the peer wakes for the head and must wait
// again for the body, a second wakeup on every call of the control plane. A stream that holds its
// writes until it reads (or until the message is done) sends each message whole.
//
// Also ForwardingStream, the base of our stream wrappers.
#pragma once

#include <cstddef>
#include <string>

#include "http/httplib_config.h"

namespace mooncake::http {

// A stream that passes every call to `inner`; a wrapper overrides what it changes.
class ForwardingStream : public httplib::Stream {
 public:
  explicit ForwardingStream(httplib::Stream& inner) : inner_(inner) {}

  bool is_readable() const override { return inner_.is_readable(); }
  bool is_writable() const override { return inner_.is_writable(); }
  ssize_t read(char* ptr, size_t size) override { return inner_.read(ptr, size); }
  ssize_t write(const char* ptr, size_t size) override { return inner_.write(ptr, size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    inner_.get_remote_ip_and_port(ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    inner_.get_local_ip_and_port(ip, port);
  }
  socket_t socket() const override { return inner_.socket(); }

 protected:
  httplib::Stream& inner_;
};

class HeldWrites {
 public:
  // Writes beyond this many bytes in all go out at once (after what is held).
  static constexpr size_t kMaxHeld = 64u << 10;

  // Holds `size` bytes, or sends them after what is held; what cpp-httplib's write returns.
  ssize_t Write(httplib::Stream& inner, const char* ptr, size_t size) {
    if (held_.size() + size <= kMaxHeld) {
      held_.append(ptr, size);
      return static_cast<ssize_t>(size);
    }
    if (!Flush(inner)) return -1;
    return inner.write(ptr, size);
  }

  // Sends what is held; false if the connection failed.
  bool Flush(httplib::Stream& inner) {
    if (held_.empty()) return true;
    const bool sent = httplib::detail::write_data(inner, held_.data(), held_.size());
    held_.clear();
    return sent;
  }

 private:
  std::string held_;
};

}  // namespace mooncake::http
