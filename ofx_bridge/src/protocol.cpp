#include "protocol.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "errors.h"

namespace nightgrade::ofx::protocol {

Value Value::of(bool v) {
  Value out;
  out.kind = Kind::Bool;
  out.boolean = v;
  return out;
}

Value Value::of(int64_t v) {
  Value out;
  out.kind = Kind::Int;
  out.integer = v;
  return out;
}

Value Value::of(double v) {
  Value out;
  out.kind = Kind::Double;
  out.number = v;
  return out;
}

Value Value::of(const std::string& v) {
  Value out;
  out.kind = Kind::String;
  out.text = v;
  return out;
}

Value Value::array(std::vector<Value> items) {
  Value out;
  out.kind = Kind::Array;
  out.items = std::move(items);
  return out;
}

Value Value::map(std::vector<std::pair<std::string, Value>> fields) {
  Value out;
  out.kind = Kind::Map;
  out.fields = std::move(fields);
  return out;
}

// msgpack-cxx 4 packs integral doubles as integers; the protocol's float fields (scale, mix,
// max_motion) must stay floats, so float64 is written by hand: 0xcb + big-endian IEEE bits.
static void pack_float64(msgpack::sbuffer& buffer, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  char bytes[9];
  bytes[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xffu);
  buffer.write(bytes, sizeof bytes);
}

static void pack_into(msgpack::sbuffer& buffer, msgpack::packer<msgpack::sbuffer>& pk, const Value& v) {
  switch (v.kind) {
    case Value::Kind::Nil: pk.pack_nil(); break;
    case Value::Kind::Bool: v.boolean ? pk.pack_true() : pk.pack_false(); break;
    case Value::Kind::Int: pk.pack_int64(v.integer); break;
    case Value::Kind::Double: pack_float64(buffer, v.number); break;
    case Value::Kind::String: pk.pack(v.text); break;
    case Value::Kind::Array:
      pk.pack_array(static_cast<uint32_t>(v.items.size()));
      for (const Value& item : v.items) pack_into(buffer, pk, item);
      break;
    case Value::Kind::Map:
      pk.pack_map(static_cast<uint32_t>(v.fields.size()));
      for (const auto& [key, value] : v.fields) {
        pk.pack(key);
        pack_into(buffer, pk, value);
      }
      break;
  }
}

std::string pack(const Value& value) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(&buffer);
  pack_into(buffer, pk, value);
  return std::string(buffer.data(), buffer.size());
}

using Fields = std::vector<std::pair<std::string, Value>>;

static Fields common(const char* type, const std::string& id) {
  return {{"v", Value::of(kVersion)}, {"type", Value::of(type)}, {"id", Value::of(id)}};
}

Value hello(const std::string& id) {
  Fields f = common("HELLO", id);
  f.emplace_back("versions", Value::array({Value::of(kVersion)}));
  f.emplace_back("client", Value::of("nightgrade-ofx " NIGHTGRADE_OFX_VERSION));
  return Value::map(std::move(f));
}

Value ping(const std::string& id) { return Value::map(common("PING", id)); }

Value cancel(const std::string& id, const std::string& target) {
  Fields f = common("CANCEL", id);
  f.emplace_back("target", Value::of(target));
  return Value::map(std::move(f));
}

// True when the look controls differ from their defaults (the model's own look): only then are they
// sent, and only then does the request need the daemon's "controls" feature.
static bool sets_look(const FrameRequest& r) {
  return r.luma_denoise != 1.0 || r.chroma_denoise != 1.0 || r.detail != 0.0;
}

// The keys HAVE and RENDER share: they decide the daemon's cache key.
static Fields frame_fields(const char* type, const std::string& id, const FrameRequest& r) {
  Fields f = common(type, id);
  f.emplace_back("clip", Value::of(r.clip));
  f.emplace_back("frame", Value::of(r.frame));
  if (!r.model.empty()) f.emplace_back("model", Value::of(r.model));
  f.emplace_back("width", Value::of(r.width));
  f.emplace_back("height", Value::of(r.height));
  f.emplace_back("scale", Value::of(r.scale));
  f.emplace_back("format", Value::of("float32"));
  f.emplace_back("channels", Value::of(r.channels));
  f.emplace_back("row_bytes", Value::of(r.row_bytes));
  if (!r.colorspace.empty()) f.emplace_back("colorspace", Value::of(r.colorspace));
  f.emplace_back("digest", Value::of(r.digest));
  Fields params = {{"mix", Value::of(r.mix)},
                   {"temporal", Value::of(r.temporal)},
                   {"radius", Value::of(r.radius)},
                   {"max_motion", Value::of(r.max_motion)}};
  if (r.tile > 0) params.emplace_back("tile", Value::of(r.tile));
  if (r.region > 0) params.emplace_back("region", Value::of(r.region));
  // Look controls act after the temporal window (not in the cache key); exposure acts before the
  // generator (in the key). Defaults are left out, so a daemon without the features sees v1 as before.
  if (sets_look(r)) {
    params.emplace_back("luma_denoise", Value::of(r.luma_denoise));
    params.emplace_back("chroma_denoise", Value::of(r.chroma_denoise));
    params.emplace_back("detail", Value::of(r.detail));
  }
  if (r.exposure != 0.0) params.emplace_back("exposure", Value::of(r.exposure));
  f.emplace_back("params", Value::map(std::move(params)));
  if (r.temporal) {
    std::vector<Value> neighbours;
    for (const auto& [frame, digest] : r.neighbours) {
      neighbours.push_back(Value::map({{"frame", Value::of(frame)}, {"digest", Value::of(digest)}}));
    }
    f.emplace_back("neighbours", Value::array(std::move(neighbours)));
  }
  f.emplace_back("priority", Value::of(r.interactive ? "interactive" : "batch"));
  if (r.deadline_ms > 0) f.emplace_back("deadline_ms", Value::of(r.deadline_ms));
  return f;
}

static Value string_array(const std::vector<std::string>& values) {
  std::vector<Value> items;
  for (const std::string& v : values) items.push_back(Value::of(v));
  return Value::array(std::move(items));
}

Value have(const std::string& id, const FrameRequest& request, const std::vector<std::string>& digests) {
  Fields f = frame_fields("HAVE", id, request);
  f.emplace_back("digests", string_array(digests));
  return Value::map(std::move(f));
}

Value render(const std::string& id, const FrameRequest& request, const std::array<int, 4>& window,
             const std::vector<std::string>& attached) {
  Fields f = frame_fields("RENDER", id, request);
  f.emplace_back("window", Value::array({Value::of(window[0]), Value::of(window[1]), Value::of(window[2]),
                                         Value::of(window[3])}));
  if (!attached.empty()) f.emplace_back("attached", string_array(attached));
  return Value::map(std::move(f));
}

// ---- reading replies ----

[[noreturn]] static void malformed(const std::string& what) {
  throw BridgeError(Failure::Malformed,
                    "NightGrade daemon sent a malformed reply (" + what +
                        "): the daemon and this plug-in disagree on protocol v1; update both to the same "
                        "NightGrade release and restart `nightgrade serve`");
}

static std::string as_string(const msgpack::object& o, const char* key) {
  if (o.type != msgpack::type::STR) malformed(std::string("field '") + key + "' is not a string");
  return std::string(o.via.str.ptr, o.via.str.size);
}

static int64_t as_integer(const msgpack::object& o, const char* key) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(INT64_MAX)) malformed(std::string("field '") + key + "' is too large");
    return static_cast<int64_t>(o.via.u64);
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  malformed(std::string("field '") + key + "' is not an integer");
}

static double as_number(const msgpack::object& o, const char* key) {
  if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) {
    if (!std::isfinite(o.via.f64)) malformed(std::string("field '") + key + "' is not finite");
    return o.via.f64;
  }
  return static_cast<double>(as_integer(o, key));
}

Header Header::decode(const void* data, size_t size) {
  Header h;
  try {
    size_t offset = 0;
    h.handle_ = msgpack::unpack(static_cast<const char*>(data), size, offset);
    if (offset != size) malformed("trailing bytes after the header");
  } catch (const BridgeError&) {
    throw;
  } catch (const std::exception&) {
    malformed("frame 0 is not msgpack");
  }
  const msgpack::object& root = h.handle_.get();
  if (root.type != msgpack::type::MAP) malformed("the header is not a map");
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    if (root.via.map.ptr[i].key.type != msgpack::type::STR) malformed("a header key is not a string");
  }
  const msgpack::object* type = h.find("type");
  if (type == nullptr) malformed("no 'type'");
  h.type_ = as_string(*type, "type");
  if (h.find("v") == nullptr) malformed("no 'v'");
  if (h.integer("v") != kVersion) malformed("version " + std::to_string(h.integer("v")) + " instead of 1");
  const msgpack::object* id = h.find("id");
  if (id != nullptr && id->type != msgpack::type::NIL) h.id_ = as_string(*id, "id");
  return h;
}

const msgpack::object* Header::find(const char* key) const {
  const msgpack::object& root = handle_.get();
  const std::string_view wanted(key);
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const msgpack::object& k = root.via.map.ptr[i].key;
    if (std::string_view(k.via.str.ptr, k.via.str.size) == wanted) return &root.via.map.ptr[i].val;
  }
  return nullptr;
}

static const msgpack::object& required(const Header& h, const char* key) {
  const msgpack::object* o = h.find(key);
  if (o == nullptr) malformed(std::string("no '") + key + "' in " + h.type());
  return *o;
}

std::string Header::str(const char* key) const { return as_string(required(*this, key), key); }

std::string Header::str_or(const char* key, const std::string& fallback) const {
  const msgpack::object* o = find(key);
  return o == nullptr || o->type == msgpack::type::NIL ? fallback : as_string(*o, key);
}

int64_t Header::integer(const char* key) const { return as_integer(required(*this, key), key); }

int64_t Header::integer_or(const char* key, int64_t fallback) const {
  const msgpack::object* o = find(key);
  return o == nullptr || o->type == msgpack::type::NIL ? fallback : as_integer(*o, key);
}

double Header::number(const char* key) const { return as_number(required(*this, key), key); }

double Header::number_or(const char* key, double fallback) const {
  const msgpack::object* o = find(key);
  return o == nullptr || o->type == msgpack::type::NIL ? fallback : as_number(*o, key);
}

bool Header::boolean_or(const char* key, bool fallback) const {
  const msgpack::object* o = find(key);
  if (o == nullptr || o->type == msgpack::type::NIL) return fallback;
  if (o->type != msgpack::type::BOOLEAN) malformed(std::string("field '") + key + "' is not a boolean");
  return o->via.boolean;
}

std::vector<std::string> Header::strings(const char* key) const {
  const msgpack::object& o = required(*this, key);
  if (o.type != msgpack::type::ARRAY) malformed(std::string("field '") + key + "' is not a list");
  std::vector<std::string> out;
  for (uint32_t i = 0; i < o.via.array.size; ++i) out.push_back(as_string(o.via.array.ptr[i], key));
  return out;
}

std::vector<int64_t> Header::integers(const char* key) const {
  const msgpack::object& o = required(*this, key);
  if (o.type != msgpack::type::ARRAY) malformed(std::string("field '") + key + "' is not a list");
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < o.via.array.size; ++i) out.push_back(as_integer(o.via.array.ptr[i], key));
  return out;
}

void expect_type(const Header& header, const char* expected) {
  if (header.type() != expected) malformed(std::string("expected ") + expected + ", got " + header.type());
}

static std::string map_string(const msgpack::object& map, const char* key, const std::string& fallback) {
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      const msgpack::object& v = map.via.map.ptr[i].val;
      return v.type == msgpack::type::NIL ? fallback : as_string(v, key);
    }
  }
  return fallback;
}

static bool map_bool(const msgpack::object& map, const char* key) {
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      return map.via.map.ptr[i].val.type == msgpack::type::BOOLEAN && map.via.map.ptr[i].val.via.boolean;
    }
  }
  return false;
}

Welcome parse_welcome(const Header& h) {
  expect_type(h, "WELCOME");
  Welcome w;
  w.version = static_cast<int>(h.integer("version"));
  if (w.version != kVersion) malformed("WELCOME chose version " + std::to_string(w.version));
  w.server = h.str_or("server", "nightgrade");
  w.device = h.str_or("device", "");
  w.ocio_config = h.str_or("ocio_config", "");
  const msgpack::object& models = required(h, "models");
  if (models.type != msgpack::type::ARRAY) malformed("'models' is not a list");
  for (uint32_t i = 0; i < models.via.array.size; ++i) {
    const msgpack::object& m = models.via.array.ptr[i];
    if (m.type != msgpack::type::MAP) malformed("a model entry is not a map");
    ModelInfo info;
    info.name = map_string(m, "name", "");
    if (info.name.empty()) malformed("a model has no name");
    info.version = map_string(m, "version", "");
    info.digest = map_string(m, "digest", "");
    info.colorspace = map_string(m, "colorspace", "");
    info.is_default = map_bool(m, "default");
    w.models.push_back(std::move(info));
  }
  if (h.find("features") != nullptr) w.features = h.strings("features");
  return w;
}

bool Welcome::has(const std::string& feature) const {
  return std::find(features.begin(), features.end(), feature) != features.end();
}

std::vector<std::string> features_needed(const FrameRequest& r) {
  std::vector<std::string> out;
  if (sets_look(r)) out.emplace_back("controls");
  if (r.exposure != 0.0) out.emplace_back("exposure");
  return out;
}

Result parse_result(const Header& h) {
  expect_type(h, "RESULT");
  Result r;
  const std::vector<int64_t> window = h.integers("window");
  if (window.size() != 4) malformed("'window' does not have 4 values");
  for (size_t i = 0; i < 4; ++i) r.window[i] = window[i];
  r.width = h.integer("width");
  r.height = h.integer("height");
  r.channels = h.integer("channels");
  r.row_bytes = h.integer("row_bytes");
  r.format = h.str("format");
  r.model = h.str_or("model", "");
  r.generator_passes = h.integer_or("generator_passes", 0);
  r.frames_averaged = h.number_or("frames_averaged", 1.0);
  r.seconds = h.number_or("seconds", 0.0);
  return r;
}

Pong parse_pong(const Header& h) {
  expect_type(h, "PONG");
  return Pong{h.integer_or("queue", 0), h.boolean_or("busy", false)};
}

Error parse_error(const Header& h) {
  expect_type(h, "ERROR");
  Error e;
  e.code = h.str("code");
  e.message = h.str_or("message", "");
  if (e.code == "NEED_FRAMES") e.need = h.strings("need");
  if (e.code == "BUSY") e.retry_after_ms = h.integer_or("retry_after_ms", 500);
  return e;
}

}  // namespace nightgrade::ofx::protocol
