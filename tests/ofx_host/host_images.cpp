#include "host_images.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>

#include "half_float.h"
#include "ofx/image_effect.h"

namespace testhost {

Depth parse_depth(const std::string& text) {
  if (text == "byte") return Depth::Byte;
  if (text == "short") return Depth::Short;
  if (text == "half") return Depth::Half;
  return Depth::Float;
}

Layout parse_layout(const std::string& text) {
  if (text == "padded") return Layout::Padded;
  if (text == "negative") return Layout::Negative;
  return Layout::Tight;
}

const char* depth_name(Depth depth) {
  switch (depth) {
    case Depth::Byte: return kOfxBitDepthByte;
    case Depth::Short: return kOfxBitDepthShort;
    case Depth::Half: return kOfxBitDepthHalf;
    case Depth::Float: return kOfxBitDepthFloat;
  }
  return kOfxBitDepthNone;
}

static size_t sample_bytes(Depth depth) {
  return depth == Depth::Float ? 4 : depth == Depth::Byte ? 1 : 2;
}

Frame read_frame(const std::string& path, const OfxRectI& bounds, int channels) {
  Frame f;
  f.bounds = bounds;
  f.channels = channels;
  const size_t count = static_cast<size_t>(f.width()) * static_cast<size_t>(f.height()) * static_cast<size_t>(channels);
  std::ifstream in(path, std::ios::binary);
  std::vector<float> pixels(count);
  in.read(reinterpret_cast<char*>(pixels.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (in.gcount() == static_cast<std::streamsize>(count * sizeof(float)) && in.peek() == EOF) f.pixels = std::move(pixels);
  return f;
}

bool write_raw(const std::string& path, const std::vector<float>& pixels) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size() * sizeof(float)));
  return static_cast<bool>(out);
}

static float quantised(float v, float levels) {
  if (!(v > 0.0f)) return 0.0f;
  if (v >= 1.0f) return levels;
  return std::nearbyint(v * levels);
}

static void store(float v, Depth depth, unsigned char* dst) {
  switch (depth) {
    case Depth::Float: std::memcpy(dst, &v, 4); break;
    case Depth::Half: {
      const uint16_t h = nightgrade::ofx::float_to_half(v);
      std::memcpy(dst, &h, 2);
      break;
    }
    case Depth::Short: {
      const uint16_t s = static_cast<uint16_t>(quantised(v, 65535.0f));
      std::memcpy(dst, &s, 2);
      break;
    }
    case Depth::Byte: *dst = static_cast<unsigned char>(quantised(v, 255.0f)); break;
  }
}

static float load(const unsigned char* src, Depth depth) {
  switch (depth) {
    case Depth::Float: {
      float v;
      std::memcpy(&v, src, 4);
      return v;
    }
    case Depth::Half: {
      uint16_t h;
      std::memcpy(&h, src, 2);
      return nightgrade::ofx::half_to_float(h);
    }
    case Depth::Short: {
      uint16_t s;
      std::memcpy(&s, src, 2);
      return static_cast<float>(s) / 65535.0f;
    }
    case Depth::Byte: return static_cast<float>(*src) / 255.0f;
  }
  return 0.0f;
}

std::unique_ptr<Image> make_image(const OfxRectI& bounds, int channels, Depth depth, Layout layout, double scale,
                                  const std::string& unique_id) {
  auto image = std::make_unique<Image>();
  image->bounds = bounds;
  image->channels = channels;
  image->depth = depth;
  const long width = bounds.x2 - bounds.x1, height = bounds.y2 - bounds.y1;
  const long tight = width * channels * static_cast<long>(sample_bytes(depth));
  const long stride = layout == Layout::Padded ? tight + 52 : tight;  // odd padding on purpose
  image->memory.assign(static_cast<size_t>(stride * height), 0);
  if (layout == Layout::Negative) {
    // Rows stored top-down in memory: the bottom row is the last, and the stride runs backwards.
    image->row_bytes = -stride;
    image->data = image->memory.data() + (height - 1) * stride;
  } else {
    image->row_bytes = stride;
    image->data = image->memory.data();
  }
  const float sentinel = std::numeric_limits<float>::quiet_NaN();
  for (int y = bounds.y1; y < bounds.y2; ++y) {
    unsigned char* row = image->row(y);
    for (long i = 0; i < width * channels; ++i) store(depth == Depth::Float || depth == Depth::Half ? sentinel : 0.5f, depth, row + i * static_cast<long>(sample_bytes(depth)));
  }
  PropertySet& p = image->props;
  p.set_string(kOfxPropType, {kOfxTypeImage});
  p.set_pointer(kOfxImagePropData, {image->data});
  p.set_int(kOfxImagePropBounds, {bounds.x1, bounds.y1, bounds.x2, bounds.y2});
  p.set_int(kOfxImagePropRegionOfDefinition, {bounds.x1, bounds.y1, bounds.x2, bounds.y2});
  p.set_int(kOfxImagePropRowBytes, {static_cast<int>(image->row_bytes)});
  p.set_string(kOfxImageEffectPropPixelDepth, {depth_name(depth)});
  p.set_string(kOfxImageEffectPropComponents, {channels == 4 ? kOfxImageComponentRGBA : kOfxImageComponentRGB});
  p.set_string(kOfxImageEffectPropPreMultiplication, {channels == 4 ? kOfxImageUnPreMultiplied : kOfxImageOpaque});
  p.set_double(kOfxImagePropPixelAspectRatio, {1.0});
  p.set_string(kOfxImagePropField, {kOfxImageFieldNone});
  p.set_string(kOfxImagePropUniqueIdentifier, {unique_id});
  if (scale > 0) p.set_double(kOfxImageEffectPropRenderScale, {scale, scale});
  return image;
}

void fill_image(Image& image, const Frame& frame) {
  const int width = image.bounds.x2 - image.bounds.x1;
  const size_t sample = sample_bytes(image.depth);
  for (int y = image.bounds.y1; y < image.bounds.y2; ++y) {
    const int frame_row = frame.bounds.y2 - 1 - y;  // the frame is stored top-down
    const float* src = frame.pixels.data() + static_cast<size_t>(frame_row) * static_cast<size_t>(frame.width() * frame.channels) +
                       static_cast<size_t>((image.bounds.x1 - frame.bounds.x1) * frame.channels);
    unsigned char* dst = image.row(y);
    for (int i = 0; i < width * image.channels; ++i) store(src[i], image.depth, dst + static_cast<size_t>(i) * sample);
  }
}

void read_back(Image& image, const OfxRectI& rect, std::vector<float>& out, const OfxRectI& out_bounds) {
  const size_t sample = sample_bytes(image.depth);
  const int out_width = out_bounds.x2 - out_bounds.x1;
  for (int y = rect.y1; y < rect.y2; ++y) {
    const unsigned char* src = image.row(y);
    float* dst = out.data() + static_cast<size_t>(out_bounds.y2 - 1 - y) * static_cast<size_t>(out_width * image.channels);
    for (int x = rect.x1; x < rect.x2; ++x) {
      for (int c = 0; c < image.channels; ++c) {
        const size_t in = static_cast<size_t>((x - image.bounds.x1) * image.channels + c) * sample;
        dst[(x - out_bounds.x1) * image.channels + c] = load(src + in, image.depth);
      }
    }
  }
}

}  // namespace testhost
