// How the benchmarks report: a JSON summary, to a file of the caller's choosing (--json FILE,
// leaving stdout to the table) or as the last line of stdout.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace mooncake::bench {

// Writes `summary` to `path`, or prints it on stdout when `path` is empty. False, with a message
// on stderr naming `bench`, when the file cannot be written.
bool EmitJson(const char* bench, const nlohmann::json& summary, const std::string& path);

// Makes stdout line-buffered, so that a table printed row by row reaches a pipe or a CI log as
// it is made, not when the process exits.
void ReportAsYouGo();

}  // namespace mooncake::bench
