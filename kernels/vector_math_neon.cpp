// kernels/vector_math_kernels.hpp for aarch64's Advanced SIMD (NEON), part of every AArch64 CPU:
// built on aarch64 only (CMakeLists.txt), where kernels/vector_math.cpp calls these.
#include "kernels/vector_math_kernels.hpp"

namespace tapegrad::vector_math::detail {

const Functions& functions_neon() {
    static constexpr Functions f = vector_math_kernels::make_functions<xsimd::neon64>();
    return f;
}

}  // namespace tapegrad::vector_math::detail
