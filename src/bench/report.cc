#include "bench/report.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace mooncake::bench {

bool EmitJson(const char* bench, const nlohmann::json& summary, const std::string& path) {
  if (path.empty()) {
    std::printf("%s\n", summary.dump().c_str());
    std::fflush(stdout);
    return true;
  }
  std::ofstream out(path, std::ios::trunc);
  out << summary.dump() << "\n";
  out.close();
  if (!out) {
    std::fprintf(stderr, "bench %s: cannot write --json %s: %s\n", bench, path.c_str(),
                 std::strerror(errno));
    return false;
  }
  return true;
}

void ReportAsYouGo() { std::setvbuf(stdout, nullptr, _IOLBF, 0); }

}  // namespace mooncake::bench
