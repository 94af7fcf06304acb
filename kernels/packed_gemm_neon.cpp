// kernels/packed_gemm_kernels.hpp for aarch64's Advanced SIMD (NEON): built on aarch64 only
// (CMakeLists.txt), where kernels/packed_gemm.cpp packs and multiplies with these.
#include "kernels/packed_gemm_kernels.hpp"

namespace tapegrad::packed_gemm::detail {

const Kernels& kernels_neon() {
    static constexpr Kernels k = packed_gemm_kernels::make_kernels<xsimd::neon64, 3, 8>();
    return k;
}

}  // namespace tapegrad::packed_gemm::detail
