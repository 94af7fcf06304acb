// kernels/packed_gemm_kernels.hpp for AVX2 + FMA, compiled with -mavx2 -mfma (CMakeLists.txt):
// only kernels/packed_gemm.cpp calls these, for matrices packed while isa() was avx2.
#include "kernels/packed_gemm_kernels.hpp"

namespace tapegrad::packed_gemm::detail {

const Kernels& kernels_avx2() {
    static constexpr Kernels k =
        packed_gemm_kernels::make_kernels<xsimd::fma3<xsimd::avx2>, 2, 6>();
    return k;
}

}  // namespace tapegrad::packed_gemm::detail
