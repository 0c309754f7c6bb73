// The control plane's hot bodies (a batch call's keys, its per-key answers), read with simdjson.
//
// nlohmann's DOM costs ~45 us to read the 128 SGLang page keys (9 KiB) of one batch call, and ~40
// us for the 128 answers of a BatchExistKey: more than the whole round trip should take. simdjson
// reads either in ~3-5 us (docs/performance.md). Everything else of the control plane keeps
// nlohmann.
//
// A FastJsonDocument applies the limits of ParseJsonBody (json_body.h) with the same messages:
// malformed text, trailing garbage, bytes that are not UTF-8 and nesting deeper than kMaxJsonDepth
// are INVALID_PARAMS "malformed JSON body: ...". Unlike nlohmann, an integer beyond 64 bits is
// malformed too (no field of ours can hold one).
//
// Thread safety: a document is used by one thread at a time. Parsers are recycled per thread, so
// a small document costs no allocation once its thread has parsed one of the same size.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "simdjson.h"

namespace mooncake::http {

class FastJsonDocument {
 public:
  FastJsonDocument() = default;
  ~FastJsonDocument();  // hands a small parser back to this thread's spares

  FastJsonDocument(const FastJsonDocument&) = delete;
  FastJsonDocument& operator=(const FastJsonDocument&) = delete;

  // Parses `body` (not kept: the document holds its own copy). A blank body is JSON null, as for
  // ParseJsonRequestBody. Replaces what an earlier Parse() read.
  absl::Status Parse(std::string_view body);

  // The parsed value. REQUIRES: the last Parse() succeeded. Valid until the next Parse() or the
  // document's end.
  simdjson::dom::element root() const { return root_; }

 private:
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
};

// Appends `value` to `out` as a JSON string (quoted, escaped as nlohmann's dump escapes it) and
// returns true; returns false, appending nothing, if `value` is not UTF-8 (JSON cannot carry it).
// Keys are written this way into the bodies of batch calls: most need no escape at all.
bool AppendJsonString(std::string& out, std::string_view value);

}  // namespace mooncake::http
