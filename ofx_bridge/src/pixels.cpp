#include "pixels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "digest.h"
#include "errors.h"
#include "half_float.h"
#include "ofx/image_effect.h"
#include "props.h"

namespace nightgrade::ofx {

static size_t sample_bytes(Depth depth) {
  switch (depth) {
    case Depth::Byte: return 1;
    case Depth::Short: return 2;
    case Depth::Half: return 2;
    case Depth::Float: return 4;
  }
  return 4;
}

HostImage describe_image(OfxPropertySetHandle image, const char* what) {
  const std::string name(what);
  auto fail = [&](const std::string& why) {
    throw BridgeError(Failure::HostImage, "NightGrade: the host's " + name + " image " + why +
                                              "; NightGrade reads 8/16-bit integer, half or float RGB/RGBA "
                                              "images: convert the clip to one of those");
  };
  HostImage out;
  out.data = static_cast<unsigned char*>(props::get_pointer(image, kOfxImagePropData, 0));
  if (out.data == nullptr) fail("has no pixel data");
  int bounds[4];
  if (!props::get_ints(image, kOfxImagePropBounds, 4, bounds)) fail("has no bounds");
  out.bounds = OfxRectI{bounds[0], bounds[1], bounds[2], bounds[3]};
  if (out.width() <= 0 || out.height() <= 0) fail("is empty");
  out.row_bytes = props::get_int(image, kOfxImagePropRowBytes, 0, 0);
  const std::string depth = props::get_string(image, kOfxImageEffectPropPixelDepth, 0, "");
  if (depth == kOfxBitDepthFloat) out.depth = Depth::Float;
  else if (depth == kOfxBitDepthHalf) out.depth = Depth::Half;
  else if (depth == kOfxBitDepthShort) out.depth = Depth::Short;
  else if (depth == kOfxBitDepthByte) out.depth = Depth::Byte;
  else fail("has pixel depth '" + depth + "'");
  const std::string components = props::get_string(image, kOfxImageEffectPropComponents, 0, "");
  if (components == kOfxImageComponentRGBA) out.channels = 4;
  else if (components == kOfxImageComponentRGB) out.channels = 3;
  else fail("has components '" + components + "'");
  const int64_t tight = static_cast<int64_t>(out.width()) * out.channels * static_cast<int64_t>(sample_bytes(out.depth));
  if (std::llabs(out.row_bytes) < tight) fail("has rows of " + std::to_string(out.row_bytes) + " bytes, fewer than its width needs");
  return out;
}

static void load_row(const unsigned char* src, Depth depth, size_t samples, float* dst) {
  switch (depth) {
    case Depth::Float: std::memcpy(dst, src, samples * sizeof(float)); break;
    case Depth::Half:
      for (size_t i = 0; i < samples; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
      }
      break;
    case Depth::Short:
      for (size_t i = 0; i < samples; ++i) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = static_cast<float>(v) / 65535.0f;
      }
      break;
    case Depth::Byte:
      for (size_t i = 0; i < samples; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
      break;
  }
}

// Integer depths clamp to [0, 1] and round to nearest; NaN becomes 0.
static float quantise(float v, float levels) {
  if (!(v > 0.0f)) return 0.0f;
  if (v >= 1.0f) return levels;
  return std::nearbyint(v * levels);
}

static void store_sample(float v, Depth depth, unsigned char* dst) {
  switch (depth) {
    case Depth::Float: std::memcpy(dst, &v, 4); break;
    case Depth::Half: {
      const uint16_t h = float_to_half(v);
      std::memcpy(dst, &h, 2);
      break;
    }
    case Depth::Short: {
      const uint16_t s = static_cast<uint16_t>(quantise(v, 65535.0f));
      std::memcpy(dst, &s, 2);
      break;
    }
    case Depth::Byte: *dst = static_cast<unsigned char>(quantise(v, 255.0f)); break;
  }
}

std::vector<float> to_top_down(const HostImage& image, Digest* digest) {
  const size_t samples = static_cast<size_t>(image.width()) * static_cast<size_t>(image.channels);
  std::vector<float> out(samples * static_cast<size_t>(image.height()));
  float* dst = out.data();
  for (int y = image.bounds.y2 - 1; y >= image.bounds.y1; --y, dst += samples) {
    load_row(image.row(y), image.depth, samples, dst);
    if (digest != nullptr) digest->update(dst, samples * sizeof(float));
  }
  return out;
}

std::string digest_top_down(const HostImage& image) {
  const size_t samples = static_cast<size_t>(image.width()) * static_cast<size_t>(image.channels);
  std::vector<float> row(samples);
  Digest digest;
  for (int y = image.bounds.y2 - 1; y >= image.bounds.y1; --y) {
    load_row(image.row(y), image.depth, samples, row.data());
    digest.update(row.data(), samples * sizeof(float));
  }
  return digest.finish();
}

void write_top_down(const HostImage& out, int x, int top_y, int width, int rows, const float* pixels,
                    int channels, size_t row_bytes) {
  const int x0 = std::max(x, out.bounds.x1);
  const int x1 = std::min(x + width, out.bounds.x2);
  if (x0 >= x1) return;
  const size_t out_sample = sample_bytes(out.depth);
  for (int r = 0; r < rows; ++r) {
    const int y = top_y - r;
    if (y < out.bounds.y1 || y >= out.bounds.y2) continue;
    const float* src = reinterpret_cast<const float*>(reinterpret_cast<const unsigned char*>(pixels) +
                                                      static_cast<size_t>(r) * row_bytes);
    unsigned char* dst = out.row(y);
    for (int px = x0; px < x1; ++px) {
      const float* in = src + static_cast<size_t>(px - x) * static_cast<size_t>(channels);
      unsigned char* o = dst + static_cast<size_t>(px - out.bounds.x1) * static_cast<size_t>(out.channels) * out_sample;
      for (int c = 0; c < out.channels; ++c) {
        const float v = c < channels ? in[c] : 1.0f;  // only alpha can be missing
        store_sample(v, out.depth, o + static_cast<size_t>(c) * out_sample);
      }
    }
  }
}

void fill_black(const HostImage& out, const OfxRectI& rect) {
  const int x0 = std::max(rect.x1, out.bounds.x1), x1 = std::min(rect.x2, out.bounds.x2);
  const int y0 = std::max(rect.y1, out.bounds.y1), y1 = std::min(rect.y2, out.bounds.y2);
  if (x0 >= x1 || y0 >= y1) return;
  const size_t pixel = static_cast<size_t>(out.channels) * sample_bytes(out.depth);
  for (int y = y0; y < y1; ++y) {
    std::memset(out.row(y) + static_cast<size_t>(x0 - out.bounds.x1) * pixel, 0,
                static_cast<size_t>(x1 - x0) * pixel);
  }
}

}  // namespace nightgrade::ofx
