// kernels/vector_math_kernels.hpp for aarch64's Advanced SIMD (NEON), part of every AArch64 CPU:
// built on aarch64 only (CMakeLists.txt), where kernels/vector_math.cpp calls these.
#include "kernels/vector_math_kernels.hpp"

namespace tapegrad::vector_math::detail {

namespace k = vector_math_kernels;
using arch = xsimd::neon64;

void exp_neon(const float* x, float* y, std::size_t n) { k::apply<arch, k::exp<arch>>(x, y, n); }
void sigmoid_neon(const float* x, float* y, std::size_t n) {
    k::apply<arch, k::sigmoid<arch>>(x, y, n);
}
void tanh_neon(const float* x, float* y, std::size_t n) { k::apply<arch, k::tanh<arch>>(x, y, n); }

}  // namespace tapegrad::vector_math::detail
