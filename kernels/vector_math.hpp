// exp, sigmoid and tanh over float32 arrays, for the forward of the exp, sigmoid and tanh ops,
// written once with xsimd (kernels/vector_math_kernels.hpp) and compiled for AVX-512, AVX2 + FMA
// and NEON; isa() (kernels/isa.hpp) picks one at each call. With AVX-512 they take 35-60% of the
// time of xtensor's versions; with AVX2, tanh takes 65%, sigmoid the same and exp 10-15% more,
// the price of underflowing exactly (docs/performance.md). Errors stay within a few float32 ulps
// of the exact values (tests/test_vector_math.cpp measures them); NaN, ±inf, overflow and
// underflow give what std::exp / std::tanh give.
#pragma once

#include <cstddef>

#include "kernels/isa.hpp"

namespace tapegrad::vector_math {

// True when isa() is not generic, TAPEGRAD_VECTOR_MATH is not "0" (read once) and
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
