// NightGrade's parameters: names, their definition (describe in context), and reading their
// values into an immutable Settings for one render.
#pragma once

#include <string>

#include "ofx/image_effect.h"

namespace nightgrade::ofx {

namespace param {
constexpr const char* kModel = "model";
constexpr const char* kModelName = "modelName";  // secret: the chosen model's name, which survives reloads
constexpr const char* kMix = "mix";
constexpr const char* kTemporal = "temporal";
constexpr const char* kRadius = "radius";
constexpr const char* kMaxMotion = "maxMotion";
constexpr const char* kColorspace = "inputColorspace";
constexpr const char* kExposure = "exposure";
constexpr const char* kLumaDenoise = "lumaDenoise";
constexpr const char* kChromaDenoise = "chromaDenoise";
constexpr const char* kDetail = "detail";
constexpr const char* kView = "view";
constexpr const char* kSplit = "splitPosition";
constexpr const char* kLookGroup = "look";
constexpr const char* kStatus = "status";
constexpr const char* kReconnect = "reconnect";
constexpr const char* kTile = "tileSize";
constexpr const char* kRegion = "regionSize";
constexpr const char* kAddress = "daemonAddress";
constexpr const char* kTimeout = "timeout";
constexpr const char* kHeartbeat = "heartbeat";
constexpr const char* kCurveServerKey = "curveServerKey";
constexpr const char* kCurveClientKey = "curveClientKey";
constexpr const char* kAdvancedGroup = "advanced";
constexpr const char* kMainPage = "nightgradePage";
constexpr const char* kAdvancedPage = "advancedPage";

constexpr const char* kDefaultAddress = "tcp://127.0.0.1:5557";
constexpr const char* kDefaultModelLabel = "Default (daemon's choice)";
constexpr int kMaxRadius = 6;
constexpr double kMaxExposure = 4.0;  // stops either way: the daemon's range (colorpipeline/controls.py)
// The View choice, in option order.
enum class View { Enhanced = 0, Original = 1, Split = 2 };
}  // namespace param

// Everything a render needs from the parameters, read once at the render's time.
struct Settings {
  std::string model;       // empty: the daemon's default model
  double mix = 1.0;
  bool temporal = false;
  int radius = 6;
  double max_motion = 256.0;
  std::string colorspace;  // empty: automatic (see the parameter's hint)
  double exposure = 0.0;   // stops on top of the model's own exposure
  double luma_denoise = 1.0, chroma_denoise = 1.0, detail = 0.0;  // the model's own look
  param::View view = param::View::Enhanced;
  double split = 0.5;      // Split view: the fraction of the width, from the left, that shows the original
  int tile = 0, region = 0;
  std::string address = param::kDefaultAddress;
  double timeout_s = 120.0;
  double heartbeat_s = 10.0;
  std::string curve_server_key, curve_client_key;  // key file paths; empty: no Curve
};

// Handles of one instance's parameters; any may be NULL when the host failed to hand it.
struct ParamHandles {
  OfxParamHandle model = nullptr, model_name = nullptr, mix = nullptr, temporal = nullptr, radius = nullptr,
                 max_motion = nullptr, colorspace = nullptr, status = nullptr, tile = nullptr, region = nullptr,
                 address = nullptr, timeout = nullptr, heartbeat = nullptr, curve_server_key = nullptr,
                 curve_client_key = nullptr, exposure = nullptr, luma_denoise = nullptr, chroma_denoise = nullptr,
                 detail = nullptr, view = nullptr, split = nullptr;
};

// Defines every parameter and page on a descriptor's parameter set (describe in context).
// Never throws; returns false when the host refused a parameter the bridge needs.
bool define_params(OfxParamSetHandle set);

ParamHandles fetch_param_handles(OfxImageEffectHandle instance);

// Reads the values at `time`; missing handles keep Settings' defaults.
Settings read_settings(const ParamHandles& handles, OfxTime time);

// String and int value helpers for the few parameters actions change.
std::string get_string_value(OfxParamHandle handle);
int get_int_value(OfxParamHandle handle, OfxTime time, int fallback);
void set_string_value(OfxParamHandle handle, const std::string& value);
void set_int_value(OfxParamHandle handle, int value);

}  // namespace nightgrade::ofx
