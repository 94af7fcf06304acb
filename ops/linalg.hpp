// Matrix products through xtensor-blas (OpenBLAS gemm).
#pragma once

#include "ops/arith.hpp"

namespace tapegrad {

// [M,K] x [K,N] -> [M,N]
Variable matmul(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
// op(a) x op(b) where op transposes when the flag is set; no transposed copy is made.
// matmul's backward is written with it: dA = G Bᵀ, dB = Aᵀ G.
Variable matmul(const Variable& a, const Variable& b, bool transpose_a, bool transpose_b,
                const Loc& loc = Loc::current());

}  // namespace tapegrad
