// kernels/vector_math_kernels.hpp for AVX-512, compiled with -mavx512f (CMakeLists.txt): only
// kernels/vector_math.cpp calls these, when isa() is avx512. Nothing else goes in this file; see
// the header for why (weak symbols built for AVX-512 would be shared with the rest).
#include "kernels/vector_math_kernels.hpp"

namespace tapegrad::vector_math::detail {

namespace k = vector_math_kernels;
using arch = xsimd::avx512f;

void exp_avx512(const float* x, float* y, std::size_t n) { k::apply<arch, k::exp<arch>>(x, y, n); }
void sigmoid_avx512(const float* x, float* y, std::size_t n) {
    k::apply<arch, k::sigmoid<arch>>(x, y, n);
}
void tanh_avx512(const float* x, float* y, std::size_t n) {
    k::apply<arch, k::tanh<arch>>(x, y, n);
}

}  // namespace tapegrad::vector_math::detail
