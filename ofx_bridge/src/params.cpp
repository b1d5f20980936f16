#include "params.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "props.h"
#include "suites.h"

namespace nightgrade::ofx {

namespace {

struct Spec {
  const char* type;
  const char* name;
  const char* label;
  const char* hint;
  const char* parent;  // group name or nullptr
};

OfxPropertySetHandle define(OfxParamSetHandle set, const Spec& spec) {
  OfxPropertySetHandle p = nullptr;
  const OfxParameterSuiteV1* suite = suites().param;
  if (suite == nullptr || suite->paramDefine(set, spec.type, spec.name, &p) != kOfxStatOK || p == nullptr) {
    return nullptr;
  }
  props::set_string(p, kOfxPropLabel, 0, spec.label);
  props::set_string(p, kOfxParamPropHint, 0, spec.hint);
  props::set_string(p, kOfxParamPropScriptName, 0, spec.name);
  if (spec.parent != nullptr) props::set_string(p, kOfxParamPropParent, 0, spec.parent);
  return p;
}

// Resolve clamps int/double params without both ranges to (0,0) and (-1,1): always set all four.
void int_range(OfxPropertySetHandle p, int value, int min, int max, int display_min, int display_max) {
  props::set_int(p, kOfxParamPropDefault, 0, value);
  props::set_int(p, kOfxParamPropMin, 0, min);
  props::set_int(p, kOfxParamPropMax, 0, max);
  props::set_int(p, kOfxParamPropDisplayMin, 0, display_min);
  props::set_int(p, kOfxParamPropDisplayMax, 0, display_max);
}

void double_range(OfxPropertySetHandle p, double value, double min, double max, double display_min,
                  double display_max, double increment, int digits) {
  props::set_string(p, kOfxParamPropDoubleType, 0, kOfxParamDoubleTypePlain);
  props::set_double(p, kOfxParamPropDefault, 0, value);
  props::set_double(p, kOfxParamPropMin, 0, min);
  props::set_double(p, kOfxParamPropMax, 0, max);
  props::set_double(p, kOfxParamPropDisplayMin, 0, display_min);
  props::set_double(p, kOfxParamPropDisplayMax, 0, display_max);
  props::set_double(p, kOfxParamPropIncrement, 0, increment);
  props::set_int(p, kOfxParamPropDigits, 0, digits);
}

// A plain double with its default and ranges; nullptr when the host refused it.
OfxPropertySetHandle define_double(OfxParamSetHandle set, const Spec& spec, double value, double min, double max,
                                   double display_min, double display_max, double increment, int digits) {
  OfxPropertySetHandle p = define(set, spec);
  if (p != nullptr) double_range(p, value, min, max, display_min, display_max, increment, digits);
  return p;
}

// A 0..1 amount (mix, denoise, detail, split position) shown with two digits.
OfxPropertySetHandle define_fraction(OfxParamSetHandle set, const Spec& spec, double value) {
  return define_double(set, spec, value, 0.0, 1.0, 0.0, 1.0, 0.01, 2);
}

void still(OfxPropertySetHandle p) { props::set_int(p, kOfxParamPropAnimates, 0, 0); }

// Values that only steer the connection need no re-render when they change.
void no_render(OfxPropertySetHandle p) { props::set_int(p, kOfxParamPropEvaluateOnChange, 0, 0); }

}  // namespace

bool define_params(OfxParamSetHandle set) {
  using namespace param;
  const char* adv = kAdvancedGroup;
  OfxPropertySetHandle p;

  p = define(set, {kOfxParamTypeChoice, kModel, "Model",
                   "Which of the daemon's models enhances the clip. The list fills from the daemon after the first "
                   "render or when you press Reconnect; 'Default' uses the model the daemon marks as default.",
                   nullptr});
  if (p == nullptr) return false;
  props::set_strings(p, kOfxParamPropChoiceOption, {kDefaultModelLabel});
  props::set_int(p, kOfxParamPropDefault, 0, 0);
  still(p);

  p = define(set, {kOfxParamTypeString, kModelName, "Model name",
                   "Name of the chosen model, kept with the project so the choice survives a reload.", nullptr});
  if (p == nullptr) return false;
  props::set_string(p, kOfxParamPropDefault, 0, "");
  props::set_int(p, kOfxParamPropSecret, 0, 1);
  still(p);

  p = define_fraction(set, {kOfxParamTypeDouble, kMix, "Mix",
                            "Blend of the enhanced frame with the original: 0 = original, 1 = fully "
                            "enhanced.", nullptr}, 1.0);
  if (p == nullptr) return false;

  p = define(set, {kOfxParamTypeBoolean, kTemporal, "Temporal smoothing",
                   "Average motion-compensated neighbouring frames against flicker. Slower: the host must supply "
                   "Temporal radius frames on each side.",
                   nullptr});
  if (p == nullptr) return false;
  props::set_int(p, kOfxParamPropDefault, 0, 0);
  still(p);

  p = define(set, {kOfxParamTypeInteger, kRadius, "Temporal radius",
                   "Neighbouring frames on each side that temporal smoothing averages (0-6).", nullptr});
  if (p == nullptr) return false;
  int_range(p, kMaxRadius, 0, kMaxRadius, 0, kMaxRadius);
  still(p);

  p = define_double(set, {kOfxParamTypeDouble, kMaxMotion, "Max motion (px)",
                          "Largest motion between neighbouring frames, in full-resolution pixels, that temporal "
                          "smoothing "
                          "follows; it is scaled with proxy renders.",
                          nullptr}, 256.0, 1.0, 4096.0, 1.0, 512.0, 1.0, 0);
  if (p == nullptr) return false;
  still(p);

  p = define(set, {kOfxParamTypeString, kColorspace, "Input colourspace",
                   "OCIO name of the clip's colourspace in the daemon's config (list them with `nightgrade "
                   "colorspaces`). Empty = automatic: the colourspace the host reports for the clip (OpenFX 1.5 "
                   "colour management) when it reports one, else Linear Rec.709, the default `nightgrade "
                   "enhance` gives float frames such as EXR, so node and farm render a plate alike.",
                   nullptr});
  if (p == nullptr) return false;
  props::set_string(p, kOfxParamPropDefault, 0, "");
  props::set_string(p, kOfxParamPropStringMode, 0, kOfxParamStringIsSingleLine);
  still(p);

  p = define_double(set, {kOfxParamTypeDouble, kExposure, "Exposure (stops)",
                          "Brighter or darker than the model's own exposure, in stops, applied before the network so "
                          "noise and colour are handled at the new level: 0 = the model's choice.",
                          nullptr}, 0.0, -kMaxExposure, kMaxExposure, -kMaxExposure, kMaxExposure, 0.1, 2);
  if (p == nullptr) return false;

  p = define(set, {kOfxParamTypeGroup, kLookGroup, "Look", "Denoise strength and detail of the enhanced frame.",
                   nullptr});
  if (p != nullptr) props::set_int(p, kOfxParamPropGroupOpen, 0, 1);

  p = define_fraction(set, {kOfxParamTypeDouble, kLumaDenoise, "Luma denoise",
                            "How much of the model's brightness-noise removal to keep: 1 = all of it, 0 = the "
                            "input's grain "
                            "at the enhanced brightness.",
                            kLookGroup}, 1.0);
  if (p == nullptr) return false;

  p = define_fraction(set, {kOfxParamTypeDouble, kChromaDenoise, "Chroma denoise",
                            "How much of the model's colour-noise removal to keep: 1 = all of it, 0 = the input's "
                            "colour "
                            "noise.",
                            kLookGroup}, 1.0);
  if (p == nullptr) return false;

  p = define_fraction(set, {kOfxParamTypeDouble, kDetail, "Detail",
                            "The input's finest luma detail put back on the enhanced frame: 0 = none (the model's "
                            "look), "
                            "1 = all of it (with its noise).",
                            kLookGroup}, 0.0);
  if (p == nullptr) return false;

  p = define(set, {kOfxParamTypeChoice, kView, "View",
                   "Enhanced: the node's result. Original: the input, untouched (a quick before). Split: the "
                   "original left of Split position, enhanced right of it with a white line between, to compare on "
                   "one frame. Set it back to Enhanced for finals.",
                   nullptr});
  if (p == nullptr) return false;
  props::set_strings(p, kOfxParamPropChoiceOption, {"Enhanced", "Original", "Split"});
  props::set_int(p, kOfxParamPropDefault, 0, 0);
  still(p);

  p = define_fraction(set, {kOfxParamTypeDouble, kSplit, "Split position",
                            "Split view: the fraction of the frame's width, from the left, that shows the "
                            "original.", nullptr}, 0.5);
  if (p == nullptr) return false;
  still(p);

  p = define(set, {kOfxParamTypeString, kStatus, "Status",
                   "What the daemon last said: connection, model and timing, or the last error.", nullptr});
  if (p == nullptr) return false;
  props::set_string(p, kOfxParamPropDefault, 0, "Not connected yet: the first render connects to the daemon");
  props::set_string(p, kOfxParamPropStringMode, 0, kOfxParamStringIsLabel);
  props::set_int(p, kOfxParamPropEnabled, 0, 0);
  props::set_int(p, kOfxParamPropPersistant, 0, 0);
  props::set_int(p, kOfxParamPropCanUndo, 0, 0);
  no_render(p);
  still(p);

  p = define(set, {kOfxParamTypePushButton, kReconnect, "Reconnect",
                   "Drop the connection to the daemon, connect again and refresh the Model list.", nullptr});
  if (p == nullptr) return false;

  p = define(set, {kOfxParamTypeGroup, adv, "Advanced", "Tile geometry and the connection to the daemon.", nullptr});
  if (p != nullptr) props::set_int(p, kOfxParamPropGroupOpen, 0, 0);

  p = define(set, {kOfxParamTypeInteger, kTile, "Tile size (px)",
                   "Local tile size Nl in full-resolution pixels; 0 = the model's own. Scaled with proxy renders.",
                   adv});
  if (p == nullptr) return false;
  int_range(p, 0, 0, 8192, 0, 1024);
  still(p);

  p = define(set, {kOfxParamTypeInteger, kRegion, "Region size (px)",
                   "Size Nr of the context region around each tile, in full-resolution pixels; 0 = the model's own.",
                   adv});
  if (p == nullptr) return false;
  int_range(p, 0, 0, 16384, 0, 2048);
  still(p);

  p = define(set, {kOfxParamTypeString, kAddress, "Daemon address",
                   "ZeroMQ address of `nightgrade serve`: tcp://HOST:PORT or ipc://PATH. The default, "
                   "tcp://127.0.0.1:5557, is the daemon's own default.",
                   adv});
  if (p == nullptr) return false;
  props::set_string(p, kOfxParamPropDefault, 0, kDefaultAddress);
  still(p);

  p = define_double(set, {kOfxParamTypeDouble, kTimeout, "Timeout (s)",
                          "Longest a render waits for the daemon. A daemon that stops answering fails sooner "
                          "(Heartbeat).",
                          adv}, 120.0, 1.0, 3600.0, 1.0, 600.0, 1.0, 1);
  if (p == nullptr) return false;
  no_render(p);
  still(p);

  p = define_double(set, {kOfxParamTypeDouble, kHeartbeat, "Heartbeat (s)",
                          "Seconds without any answer from the daemon (it answers PING while busy) after which it "
                          "counts "
                          "as dead and the render fails.",
                          adv}, 10.0, 0.5, 600.0, 1.0, 60.0, 0.5, 1);
  if (p == nullptr) return false;
  no_render(p);
  still(p);

  const std::pair<const char*, const char*> keys[] = {
      {kCurveServerKey, "Daemon public key (Curve)"}, {kCurveClientKey, "Client key pair (Curve)"}};
  for (const auto& [name, label] : keys) {
    const bool server = name == kCurveServerKey;
    p = define(set, {kOfxParamTypeString, name, label,
                     server ? "For a daemon on another machine: its public key file (NAME.key from `nightgrade "
                              "keygen` on the daemon's machine). Leave both key files empty for a local daemon."
                            : "For a daemon on another machine: this machine's key pair (NAME.key_secret from "
                              "`nightgrade keygen`), whose NAME.key the daemon's authorised keys folder holds.",
                     adv});
    if (p == nullptr) return false;
    props::set_string(p, kOfxParamPropDefault, 0, "");
    props::set_string(p, kOfxParamPropStringMode, 0, kOfxParamStringIsFilePath);
    props::set_int(p, kOfxParamPropStringFilePathExists, 0, 1);
    still(p);
  }

  p = define(set, {kOfxParamTypePage, kMainPage, "NightGrade", "", nullptr});
  if (p != nullptr) {
    props::set_strings(p, kOfxParamPropPageChild,
                       {kModel, kMix, kExposure, kLumaDenoise, kChromaDenoise, kDetail, kTemporal, kRadius,
                        kMaxMotion, kColorspace, kView, kSplit, kStatus, kReconnect});
  }
  p = define(set, {kOfxParamTypePage, kAdvancedPage, "Advanced", "", nullptr});
  if (p != nullptr) props::set_strings(p, kOfxParamPropPageChild,
                                       {kTile, kRegion, kAddress, kTimeout, kHeartbeat, kCurveServerKey, kCurveClientKey});
  return true;
}

ParamHandles fetch_param_handles(OfxImageEffectHandle instance) {
  ParamHandles h;
  const HostSuites& s = suites();
  OfxParamSetHandle set = nullptr;
  if (s.effect->getParamSet(instance, &set) != kOfxStatOK || set == nullptr) return h;
  auto get = [&](const char* name) {
    OfxParamHandle handle = nullptr;
    if (s.param->paramGetHandle(set, name, &handle, nullptr) != kOfxStatOK) return static_cast<OfxParamHandle>(nullptr);
    return handle;
  };
  h.model = get(param::kModel);
  h.model_name = get(param::kModelName);
  h.mix = get(param::kMix);
  h.temporal = get(param::kTemporal);
  h.radius = get(param::kRadius);
  h.max_motion = get(param::kMaxMotion);
  h.colorspace = get(param::kColorspace);
  h.status = get(param::kStatus);
  h.tile = get(param::kTile);
  h.region = get(param::kRegion);
  h.address = get(param::kAddress);
  h.timeout = get(param::kTimeout);
  h.heartbeat = get(param::kHeartbeat);
  h.curve_server_key = get(param::kCurveServerKey);
  h.curve_client_key = get(param::kCurveClientKey);
  h.exposure = get(param::kExposure);
  h.luma_denoise = get(param::kLumaDenoise);
  h.chroma_denoise = get(param::kChromaDenoise);
  h.detail = get(param::kDetail);
  h.view = get(param::kView);
  h.split = get(param::kSplit);
  return h;
}

std::string get_string_value(OfxParamHandle handle) {
  char* value = nullptr;
  if (handle == nullptr || suites().param->paramGetValue(handle, &value) != kOfxStatOK || value == nullptr) return {};
  return value;
}

int get_int_value(OfxParamHandle handle, OfxTime time, int fallback) {
  int value = fallback;
  if (handle == nullptr || suites().param->paramGetValueAtTime(handle, time, &value) != kOfxStatOK) return fallback;
  return value;
}

static double get_double_value(OfxParamHandle handle, OfxTime time, double fallback) {
  double value = fallback;
  if (handle == nullptr || suites().param->paramGetValueAtTime(handle, time, &value) != kOfxStatOK) return fallback;
  return std::isfinite(value) ? value : fallback;  // a host's NaN must not reach the daemon or a clamp
}

void set_string_value(OfxParamHandle handle, const std::string& value) {
  if (handle != nullptr) suites().param->paramSetValue(handle, value.c_str());
}

void set_int_value(OfxParamHandle handle, int value) {
  if (handle != nullptr) suites().param->paramSetValue(handle, value);
}

static std::string trimmed(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

Settings read_settings(const ParamHandles& h, OfxTime time) {
  Settings s;
  s.model = trimmed(get_string_value(h.model_name));
  s.mix = std::clamp(get_double_value(h.mix, time, s.mix), 0.0, 1.0);
  s.temporal = get_int_value(h.temporal, time, 0) != 0;
  s.radius = std::clamp(get_int_value(h.radius, time, s.radius), 0, param::kMaxRadius);
  s.max_motion = std::max(1.0, get_double_value(h.max_motion, time, s.max_motion));
  s.colorspace = trimmed(get_string_value(h.colorspace));
  s.exposure = std::clamp(get_double_value(h.exposure, time, 0.0), -param::kMaxExposure, param::kMaxExposure);
  s.luma_denoise = std::clamp(get_double_value(h.luma_denoise, time, 1.0), 0.0, 1.0);
  s.chroma_denoise = std::clamp(get_double_value(h.chroma_denoise, time, 1.0), 0.0, 1.0);
  s.detail = std::clamp(get_double_value(h.detail, time, 0.0), 0.0, 1.0);
  const int view = get_int_value(h.view, time, 0);
  s.view = view == 1 ? param::View::Original : view == 2 ? param::View::Split : param::View::Enhanced;
  s.split = std::clamp(get_double_value(h.split, time, 0.5), 0.0, 1.0);
  s.tile = std::max(0, get_int_value(h.tile, time, 0));
  s.region = std::max(0, get_int_value(h.region, time, 0));
  const std::string address = trimmed(get_string_value(h.address));
  if (!address.empty()) s.address = address;
  s.timeout_s = std::clamp(get_double_value(h.timeout, time, s.timeout_s), 0.1, 3600.0);
  s.heartbeat_s = std::clamp(get_double_value(h.heartbeat, time, s.heartbeat_s), 0.1, 600.0);
  s.curve_server_key = trimmed(get_string_value(h.curve_server_key));
  s.curve_client_key = trimmed(get_string_value(h.curve_client_key));
  return s;
}

}  // namespace nightgrade::ofx
