#include "compare_view.h"

#include <algorithm>

namespace nightgrade::ofx {

std::vector<float> original_window(const std::vector<float>& centre, int width, int channels,
                                   const std::array<int, 4>& window) {
  const size_t cols = static_cast<size_t>(window[2] - window[0]) * channels;
  std::vector<float> out(cols * static_cast<size_t>(window[3] - window[1]));
  for (int y = window[1]; y < window[3]; ++y) {
    const float* from = centre.data() + (static_cast<size_t>(y) * width + window[0]) * channels;
    std::copy(from, from + cols, out.begin() + static_cast<size_t>(y - window[1]) * cols);
  }
  return out;
}

std::vector<float> split_view(const std::vector<float>& centre, int width, int channels, const std::array<int, 4>& window,
                              const float* enhanced, size_t enhanced_row_bytes, int split_col) {
  std::vector<float> out = original_window(centre, width, channels, window);
  const int cols = window[2] - window[0];
  const int first = std::clamp(split_col - window[0], 0, cols);  // first enhanced column in the window
  for (int r = 0; r < window[3] - window[1]; ++r) {
    const float* row = reinterpret_cast<const float*>(reinterpret_cast<const char*>(enhanced) + r * enhanced_row_bytes);
    std::copy(row + static_cast<size_t>(first) * channels, row + static_cast<size_t>(cols) * channels,
              out.begin() + (static_cast<size_t>(r) * cols + first) * channels);
  }
  // The wipe line: the seam's first enhanced column in white (1.0 is white in every encoding the
  // node meets), alpha kept, so the split shows where it is on any picture.
  if (split_col >= window[0] && split_col < window[2]) {
    for (int r = 0; r < window[3] - window[1]; ++r) {
      float* pixel = out.data() + (static_cast<size_t>(r) * cols + (split_col - window[0])) * channels;
      std::fill(pixel, pixel + 3, 1.0f);
    }
  }
  return out;
}

}  // namespace nightgrade::ofx
