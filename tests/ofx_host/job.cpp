#include "job.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace testhost {

bool read_job(const std::string& path, Job& job, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot open job file " + path;
    return false;
  }
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream words(line);
    std::string verb;
    if (!(words >> verb) || verb[0] == '#') continue;
    std::string rest;
    std::getline(words >> std::ws, rest);
    std::vector<std::string> parts;
    std::istringstream split(rest);
    for (std::string w; split >> w;) parts.push_back(w);
    auto need = [&](size_t n) {
      if (parts.size() >= n) return true;
      error = "line " + std::to_string(number) + ": '" + verb + "' needs " + std::to_string(n) + " values";
      return false;
    };
    if (verb == "plugin") job.plugin = rest;
    else if (verb == "context") job.context = rest;
    else if (verb == "depth") job.depth = rest;
    else if (verb == "layout") job.layout = rest;
    else if (verb == "channels") job.channels = std::atoi(rest.c_str());
    else if (verb == "quirk") job.quirks.insert(rest);
    else if (verb == "clip_colourspace") job.clip_colourspace = rest;
    else if (verb == "frame_range") {
      if (!need(2)) return false;
      job.first = std::atof(parts[0].c_str());
      job.last = std::atof(parts[1].c_str());
    } else if (verb == "source") {
      if (!need(7)) return false;
      // The path is the rest of the line after six numbers, so it may hold spaces.
      std::istringstream numbers(rest);
      SourceSpec spec{};
      numbers >> spec.scale >> spec.frame >> spec.x1 >> spec.y1 >> spec.x2 >> spec.y2;
      std::getline(numbers >> std::ws, spec.path);
      job.sources.push_back(spec);
    } else if (verb == "set" || verb == "press" || verb == "identity" || verb == "render" ||
               verb == "wait_for") {
      job.steps.push_back({verb, parts, rest});
    } else {
      error = "line " + std::to_string(number) + ": unknown directive '" + verb + "'";
      return false;
    }
  }
  if (job.plugin.empty()) {
    error = "the job names no plugin";
    return false;
  }
  return true;
}

}  // namespace testhost
