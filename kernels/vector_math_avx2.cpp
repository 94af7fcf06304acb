// kernels/vector_math_kernels.hpp for AVX2 + FMA, compiled with -mavx2 -mfma (CMakeLists.txt):
// only kernels/vector_math.cpp calls these, when isa() is avx2. Nothing else goes in this file; see
// the header for why (weak symbols built for AVX2 would be shared with the rest).
#include "kernels/vector_math_kernels.hpp"

namespace tapegrad::vector_math::detail {

const Functions& functions_avx2() {
    static constexpr Functions f = vector_math_kernels::make_functions<xsimd::fma3<xsimd::avx2>>();
    return f;
}

}  // namespace tapegrad::vector_math::detail
