// The daemon protocol v1 (docs/protocol.md) as the bridge speaks it: msgpack headers built from a
// small value tree, and typed readers for the replies that reject anything malformed with
// BridgeError(Failure::Malformed) instead of trusting it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <msgpack.hpp>

namespace nightgrade::ofx::protocol {

constexpr int kVersion = 1;

// An encode-only msgpack value: enough to build every request header.
struct Value {
  enum class Kind { Nil, Bool, Int, Double, String, Array, Map };
  Kind kind = Kind::Nil;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0.0;
  std::string text;
  std::vector<Value> items;
  std::vector<std::pair<std::string, Value>> fields;

  static Value of(bool v);
  static Value of(int v) { return of(static_cast<int64_t>(v)); }
  static Value of(int64_t v);
  static Value of(double v);
  static Value of(const std::string& v);
  static Value of(const char* v) { return of(std::string(v)); }
  static Value array(std::vector<Value> items);
  static Value map(std::vector<std::pair<std::string, Value>> fields);
};

// msgpack bytes of `value` (frame 0 of a message).
std::string pack(const Value& value);

// Geometry and settings of one frame request (HAVE or RENDER), in protocol terms.
struct FrameRequest {
  std::string clip;
  int64_t frame = 0;
  std::string model;       // empty: the daemon's default model
  int width = 0, height = 0;
  double scale = 1.0;
  int channels = 4;
  int64_t row_bytes = 0;
  std::string colorspace;  // empty: the daemon config's scene_linear role
  std::string digest;      // of the centre frame
  double mix = 1.0;
  bool temporal = false;
  int radius = 0;
  double max_motion = 256.0;
  int tile = 0, region = 0;  // 0: the model's own sizes
  // feature "controls" (sent only when not the defaults, which give the model's own look)
  double luma_denoise = 1.0, chroma_denoise = 1.0, detail = 0.0;
  double exposure = 0.0;     // feature "exposure", stops; sent only when not 0
  std::vector<std::pair<int64_t, std::string>> neighbours;  // (frame, digest)
  bool interactive = false;
  int64_t deadline_ms = 0;   // 0: none
};

Value hello(const std::string& id);
Value ping(const std::string& id);
Value cancel(const std::string& id, const std::string& target);
// HAVE: asks which of `digests` the daemon lacks enhanced.
Value have(const std::string& id, const FrameRequest& request, const std::vector<std::string>& digests);
// RENDER: window is [x0, y0, x1, y1], top-left origin, exclusive ends; attached are the digests
// of the neighbour buffers that follow the centre buffer.
Value render(const std::string& id, const FrameRequest& request, const std::array<int, 4>& window,
             const std::vector<std::string>& attached);

// A decoded reply header. Owns the decoded msgpack data.
class Header {
 public:
  // Decodes frame 0 of a reply; throws Malformed unless it is exactly one msgpack map with
  // string keys and `v`, `type` fields.
  static Header decode(const void* data, size_t size);

  const std::string& type() const { return type_; }
  // The request id the reply answers; empty when nil or absent.
  const std::string& id() const { return id_; }

  const msgpack::object* find(const char* key) const;
  std::string str(const char* key) const;
  std::string str_or(const char* key, const std::string& fallback) const;
  int64_t integer(const char* key) const;
  int64_t integer_or(const char* key, int64_t fallback) const;
  double number(const char* key) const;
  double number_or(const char* key, double fallback) const;
  bool boolean_or(const char* key, bool fallback) const;
  std::vector<std::string> strings(const char* key) const;
  std::vector<int64_t> integers(const char* key) const;

 private:
  msgpack::object_handle handle_;
  std::string type_, id_;
};

struct ModelInfo {
  std::string name, version, digest, colorspace;
  bool is_default = false;
};

struct Welcome {
  int version = 0;
  std::string server, device, ocio_config;
  std::vector<ModelInfo> models;
  std::vector<std::string> features;  // optional additions to v1 the daemon implements

  bool has(const std::string& feature) const;
};

// The features `request` needs that a daemon must list in WELCOME (empty when none).
std::vector<std::string> features_needed(const FrameRequest& request);

struct Result {
  std::array<int64_t, 4> window{};
  int64_t width = 0, height = 0, channels = 0, row_bytes = 0;
  std::string format, model;
  int64_t generator_passes = 0;
  double frames_averaged = 1.0, seconds = 0.0;
};

struct Pong {
  int64_t queue = 0;
  bool busy = false;
};

Welcome parse_welcome(const Header& header);
Result parse_result(const Header& header);
Pong parse_pong(const Header& header);

// ERROR replies: code, message and the code-specific keys the bridge acts on.
struct Error {
  std::string code, message;
  std::vector<std::string> need;  // NEED_FRAMES
  int64_t retry_after_ms = 0;     // BUSY
};
Error parse_error(const Header& header);

// Throws Malformed when `header` is not of type `expected` (ERROR is handled by the caller).
void expect_type(const Header& header, const char* expected);

}  // namespace nightgrade::ofx::protocol
