// kernels/packed_gemm_kernels.hpp for AVX-512, compiled with -mavx512f (CMakeLists.txt): only
// kernels/packed_gemm.cpp calls these, for matrices packed while isa() was avx512.
#include "kernels/packed_gemm_kernels.hpp"

namespace tapegrad::packed_gemm::detail {

const Kernels& kernels_avx512() {
    static constexpr Kernels k = packed_gemm_kernels::make_kernels<xsimd::avx512f, 3, 8>();
    return k;
}

}  // namespace tapegrad::packed_gemm::detail
