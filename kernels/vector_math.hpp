// exp, sigmoid and tanh over float32 arrays with AVX-512, for the forward of the exp, sigmoid
// and tanh ops. The library is compiled for AVX2 (see TAPEGRAD_ARCH in CMakeLists.txt), where
// xsimd's versions take 0.47 ns per tanh; these take about half that on an AVX-512 CPU. Errors
// stay within a few float32 ulps of the exact values (tests/test_vector_math.cpp measures
// them); NaN, ±inf, overflow and underflow give what std::exp / std::tanh give.
#pragma once

#include <cstddef>

namespace tapegrad::vector_math {

// True when the CPU runs AVX-512F, TAPEGRAD_VECTOR_MATH is not "0" (read once) and
// set_enabled(false) is not in force.
bool available();
// Turns these routines off (the ops use xtensor's) or back on, for the whole process; for
// comparing the two in one run.
void set_enabled(bool on);

// y[i] = f(x[i]) for i < n; x and y may be the same array. Require available().
void exp(const float* x, float* y, std::size_t n);
void sigmoid(const float* x, float* y, std::size_t n);  // 1 / (1 + exp(-x))
void tanh(const float* x, float* y, std::size_t n);

}  // namespace tapegrad::vector_math
