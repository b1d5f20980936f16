// The test host's output: one line per event, "KEY rest", on stdout, flushed at once so a
// crash or a timeout still leaves everything before it for the Python test to read.
#pragma once

#include <string>

namespace testhost {

void log_line(const std::string& key, const std::string& rest);
// A plug-in misuse of the API (wrong property type, image not released, value set in render).
void log_violation(const std::string& what);
int violation_count();

}  // namespace testhost
