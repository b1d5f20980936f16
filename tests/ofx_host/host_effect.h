// Effects (descriptors and instances), their clips, and the image effect suite, including the
// images clipGetImage hands out for the frames the job supplied.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "host_images.h"
#include "host_params.h"
#include "ofx/image_effect.h"

namespace testhost {

struct Clip {
  std::string name;
  PropertySet props;
  explicit Clip(std::string n) : name(std::move(n)), props("clip " + name) {}
  OfxImageClipHandle handle() { return reinterpret_cast<OfxImageClipHandle>(this); }
};

struct Effect {
  PropertySet props{"effect"};
  ParamSet params;
  std::vector<std::unique_ptr<Clip>> clips;
  Clip* find_clip(const std::string& name);
  OfxImageEffectHandle handle() { return reinterpret_cast<OfxImageEffectHandle>(this); }
  static Effect* from(OfxImageEffectHandle h) { return reinterpret_cast<Effect*>(h); }
};

// What the driver tells the suite: the frames, how to lay out images, and the render in progress.
struct HostState {
  std::map<std::pair<long, long>, Frame> sources;  // (scale in 1/1000, frame) -> pixels
  Depth depth = Depth::Float;
  Layout layout = Layout::Tight;
  int channels = 4;
  std::set<std::string> quirks;
  double scale = 1.0;                  // render scale of the action in progress
  OfxTime render_time = 0;
  std::unique_ptr<Image> output;       // the output image of the render in progress
  std::map<PropertySet*, std::unique_ptr<Image>> source_images;  // fetched, not yet released
  std::multiset<PropertySet*> fetched;
  bool quirk(const std::string& name) const { return quirks.count(name) != 0; }
  const Frame* source(double scale, OfxTime time) const;
};

HostState& state();

// Logs a VIOLATION for every image fetched and not released, then forgets them.
void check_released(const std::string& action);

const OfxImageEffectSuiteV1* image_effect_suite();

}  // namespace testhost
