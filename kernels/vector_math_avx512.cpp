// kernels/vector_math_kernels.hpp for AVX-512, compiled with -mavx512f (CMakeLists.txt): only
// kernels/vector_math.cpp calls these, when isa() is avx512. Nothing else goes in this file; see
// the header for why (weak symbols built for AVX-512 would be shared with the rest).
#include "kernels/vector_math_kernels.hpp"

namespace tapegrad::vector_math::detail {

const Functions& functions_avx512() {
    static constexpr Functions f = vector_math_kernels::make_functions<xsimd::avx512f>();
    return f;
}

}  // namespace tapegrad::vector_math::detail
