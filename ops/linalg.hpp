// Matrix products through OpenBLAS gemm, batched over leading axes.
#pragma once

#include "ops/arith.hpp"

namespace tapegrad {

// [..., M, K] x [..., K, N] -> [..., M, N]. Operands have rank >= 2; the leading (batch) axes
// broadcast as NumPy's: [B,M,K] x [B,K,N], [M,K] x [B,K,N], [1,M,K] x [B,K,N], [B,M,K] x [K,N].
// One gemm per batch; a batched a times an unbatched b is a single gemm over all rows.
Variable matmul(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
// op(a) x op(b) where op transposes the last two axes when the flag is set; no transposed copy
// is made. matmul's backward is written with it: dA = G Bᵀ, dB = Aᵀ G.
Variable matmul(const Variable& a, const Variable& b, bool transpose_a, bool transpose_b,
                const Loc& loc = Loc::current());

// c + op(a) op(b) for matrices a and b, with c broadcast to the product's [M, N] (a bias [N],
// or [M, N]): one gemm accumulating onto c, no separate add. dc = G (summed over what c was
// broadcast over), da and db as matmul's.
Variable addmm(const Variable& c, const Variable& a, const Variable& b, bool transpose_a = false,
               bool transpose_b = false, const Loc& loc = Loc::current());

}  // namespace tapegrad
