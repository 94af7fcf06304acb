// Matrix products through OpenBLAS gemm, batched over leading axes, or through the packed
// SIMD kernel (kernels/packed_gemm.hpp): for a weight reused inside a WeightPackScope, and,
// scope or not, for a float32 product of more than packed_gemm::max_rows rows whose depth is
// at most packed_gemm::one_pass_depth (a sequence's input projection), packed for itself.
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

// x Wᵀ + b, as torch.nn.functional.linear: x [..., in], weight [out, in], bias [out] (or any
// shape that broadcasts to [N, out]; undefined for none) -> [..., out]. A composition of addmm
// (matmul without a bias), so a cell's step reads as its equation: linear(h, W_hh, x_t) is
// W_hh h + x_t.
Variable linear(const Variable& x, const Variable& weight, const Variable& bias = {},
                const Loc& loc = Loc::current());

// c + op(a) op(b) for matrices a and b, with c broadcast to the product's [M, N] (a bias [N],
// or [M, N]): one gemm accumulating onto c, no separate add. dc = G (summed over what c was
// broadcast over), da and db as matmul's.
Variable addmm(const Variable& c, const Variable& a, const Variable& b, bool transpose_a = false,
               bool transpose_b = false, const Loc& loc = Loc::current());

// While one is alive on this thread, a float32 matrix b multiplied from the left by at most
// packed_gemm::max_rows rows (matmul's b, addmm's b, not transposed a) is packed the first time
// it is seen and the packing is reused by every later product with the same tensor, in the
// forward and in those products' backward (dA = G op(b)ᵀ). The recurrent driver opens one
// around each sequence, so a cell's recurrent weight is packed once per sequence rather than
// by BLAS at every step; a user's cell gets this without doing anything. The scope holds a
// reference to each packed tensor, so writing to one (mutable_xt copies a shared storage)
// leaves the packing with the old values and the new values are packed anew. Scopes nest;
// the packings are forgotten when the outermost ends (backward rules keep what they use).
// Does nothing where packed_gemm::available() is false, and for float64. (Products of more
// rows and a shallow depth pack b for themselves, scope or not: see the top of this file.)
class WeightPackScope {
public:
    WeightPackScope();
    ~WeightPackScope();
    WeightPackScope(const WeightPackScope&) = delete;
    WeightPackScope& operator=(const WeightPackScope&) = delete;
};

}  // namespace tapegrad
