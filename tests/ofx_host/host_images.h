// Frames from the Python test (raw float32, top-down, tight) and the host images made from them:
// bottom-up rows, in the depth and memory layout the job asks for (tight, padded or with a
// negative row stride), plus the conversion back to raw float32 for the outputs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ofx/core.h"
#include "property_set.h"

namespace testhost {

enum class Depth { Byte, Short, Half, Float };
enum class Layout { Tight, Padded, Negative };

Depth parse_depth(const std::string& text);     // byte, short, half, float
Layout parse_layout(const std::string& text);   // tight, padded, negative
const char* depth_name(Depth depth);            // the OpenFX bit depth string

// A whole frame as the test wrote it: rows top to bottom, `channels` floats per pixel.
struct Frame {
  OfxRectI bounds{0, 0, 0, 0};  // pixel coordinates at the frame's render scale
  int channels = 4;
  std::vector<float> pixels;
  int width() const { return bounds.x2 - bounds.x1; }
  int height() const { return bounds.y2 - bounds.y1; }
};

// Reads a raw float32 file; empty pixels when the file is missing or of the wrong size.
Frame read_frame(const std::string& path, const OfxRectI& bounds, int channels);
bool write_raw(const std::string& path, const std::vector<float>& pixels);

struct Image {
  PropertySet props{"image"};
  std::vector<unsigned char> memory;
  OfxRectI bounds{0, 0, 0, 0};
  int channels = 4;
  Depth depth = Depth::Float;
  long row_bytes = 0;
  unsigned char* data = nullptr;  // the pixel at (bounds.x1, bounds.y1)
  unsigned char* row(int y) { return data + static_cast<long>(y - bounds.y1) * row_bytes; }
};

// An image over `bounds`, filled with a sentinel (NaN where the depth has one) so pixels a
// plug-in forgets to write show up. `scale` < 0 leaves out the render-scale property.
std::unique_ptr<Image> make_image(const OfxRectI& bounds, int channels, Depth depth, Layout layout, double scale,
                                  const std::string& unique_id);
// Converts `frame` (covering the image's bounds) into the image's depth.
void fill_image(Image& image, const Frame& frame);
// Reads `rect` of the image back as float32, rows top-down, writing into `out` (of `out_bounds`).
void read_back(Image& image, const OfxRectI& rect, std::vector<float>& out, const OfxRectI& out_bounds);

}  // namespace testhost
