// Host images <-> the protocol's pixel buffers. OpenFX rows run bottom-up from the image's data
// pointer (the pixel at bounds.x1, bounds.y1) with a row stride that may be padded or negative;
// the daemon wants tight float32 rows, top row first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ofx/core.h"

namespace nightgrade::ofx {

class Digest;

enum class Depth { Byte, Short, Half, Float };

// An image the host handed, described from its property set.
struct HostImage {
  unsigned char* data = nullptr;
  OfxRectI bounds{0, 0, 0, 0};
  int64_t row_bytes = 0;
  Depth depth = Depth::Float;
  int channels = 4;  // 3 (RGB) or 4 (RGBA)

  int width() const { return bounds.x2 - bounds.x1; }
  int height() const { return bounds.y2 - bounds.y1; }
  // Start of the row at pixel-coordinate y (bounds.y1 <= y < bounds.y2).
  unsigned char* row(int y) const { return data + static_cast<int64_t>(y - bounds.y1) * row_bytes; }
};

// Reads an image's properties; throws BridgeError(HostImage) for what the bridge cannot read
// (no data, empty or inverted bounds, unknown depth or components, a stride shorter than a row).
HostImage describe_image(OfxPropertySetHandle image, const char* what);

// Tight top-down float32 copy of the whole image; `digest`, when given, receives its bytes.
std::vector<float> to_top_down(const HostImage& image, Digest* digest);

// Digest of to_top_down(image) without keeping the pixels.
std::string digest_top_down(const HostImage& image);

// Writes `rows` rows of `width` pixels from a top-down float32 buffer (`channels` per pixel,
// `row_bytes` apart) into `out`, the first row landing at pixel-coordinate row `top_y` (so later
// rows go down, to smaller y) starting at column `x`. Rows and columns outside out's bounds are
// skipped. RGB into RGBA sets alpha to 1; RGBA into RGB drops alpha.
void write_top_down(const HostImage& out, int x, int top_y, int width, int rows, const float* pixels,
                    int channels, size_t row_bytes);

// Sets `rect` (clipped to out's bounds) to transparent black.
void fill_black(const HostImage& out, const OfxRectI& rect);

}  // namespace nightgrade::ofx
