// The node's compare views (View: Original, Split): the input's pixels for a render window, and
// the wipe of original and enhanced on one frame. Buffers are the protocol's tight top-down float32.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

namespace nightgrade::ofx {

// The pixels of `window` ([x0, y0, x1, y1], top-left origin) cut from the top-down source buffer
// `centre` of `width` pixels a row, as tight rows.
std::vector<float> original_window(const std::vector<float>& centre, int width, int channels,
                                   const std::array<int, 4>& window);

// Split view: the original left of column `split_col` (buffer coordinates), the enhanced result
// (rows `enhanced_row_bytes` apart) right of it, and a white one-pixel line on column `split_col`.
std::vector<float> split_view(const std::vector<float>& centre, int width, int channels, const std::array<int, 4>& window,
                              const float* enhanced, size_t enhanced_row_bytes, int split_col);

}  // namespace nightgrade::ofx
