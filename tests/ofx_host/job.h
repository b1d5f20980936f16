// The job file the Python test writes: one directive per line, executed in order.
//
//   plugin PATH                      the .ofx binary
//   context filter|general           context to describe and instantiate (default filter)
//   depth float|half|short|byte      pixel depth of the host's images (default float)
//   layout tight|padded|negative     row layout of the host's images (default tight)
//   channels 4|3                     RGBA or RGB (default 4)
//   frame_range FIRST LAST           the source clip's frame range
//   quirk NAME                       host misbehaviour: no_persistent_message, omit_render_scale,
//                                    same_neighbours, null_source, abort, no_parameter_suite,
//                                    half_size_image
//   clip_colourspace NAME            the source clip's OpenFX 1.5 colourspace property
//   source SCALE FRAME X1 Y1 X2 Y2 PATH   a raw float32 frame (top-down rows) at a render scale
//   set NAME VALUE...                a user edit of a parameter (instance changed actions)
//   press NAME                       a push button
//   identity FRAME                   the is-identity action
//   wait_for PATH                    pause until PATH exists (at most 60 s): lets a test change
//                                    the world, e.g. start a daemon, between two steps
//   render SCALE FRAME TILES PATH [interactive]   RoD, frames needed, RoI, then TILES renders
//                                    of horizontal bands; the whole output goes to PATH
#pragma once

#include <set>
#include <string>
#include <vector>

namespace testhost {

struct Step {
  std::string verb;                // set, press, identity, render
  std::vector<std::string> words;  // the rest of the line, split on spaces
  std::string rest;                // the rest of the line as written
};

struct SourceSpec {
  double scale;
  long frame;
  int x1, y1, x2, y2;
  std::string path;
};

struct Job {
  std::string plugin;
  std::string context = "filter";
  std::string depth = "float", layout = "tight";
  int channels = 4;
  double first = 0, last = 0;
  std::set<std::string> quirks;
  std::string clip_colourspace;
  std::vector<SourceSpec> sources;
  std::vector<Step> steps;
};

// Parses the job file; on an error, returns false with `error` saying which line.
bool read_job(const std::string& path, Job& job, std::string& error);

}  // namespace testhost
