// More elementwise ops: powers, piecewise-linear functions, selection, interpolation. Binary ops
// broadcast (NumPy rules) and need one dtype. At a kink the gradient is PyTorch's choice,
// stated on each op.
#pragma once

#include <optional>

#include "ops/arith.hpp"

namespace tapegrad {

// x ^ p. d/dx = p x^(p-1), taken as 0 where p = 0 (as PyTorch). d/dp = x^p log x, defined
// for x > 0: taken as 0 at x = 0 (as PyTorch for p >= 0), NaN for x < 0.
Variable pow(const Variable& x, const Variable& exponent, const Loc& loc = Loc::current());
// The same rule with p a constant of x's dtype.
Variable pow(const Variable& x, double exponent, const Loc& loc = Loc::current());
// x > 0 ? x : negative_slope x. Gradient 1 for x > 0, negative_slope for x <= 0 (at 0 too).
Variable leaky_relu(const Variable& x, double negative_slope = 0.01,
                    const Loc& loc = Loc::current());
// log(1 + exp(beta x)) / beta, computed stably; x itself where beta x > threshold (as
// PyTorch). Gradient sigmoid(beta x), and 1 in the linear part. beta must be > 0.
Variable softplus(const Variable& x, double beta = 1, double threshold = 20,
                  const Loc& loc = Loc::current());
// x sigmoid(x) (F.silu). Gradient sigmoid(x) (1 + x (1 - sigmoid(x))); silu(-Inf) = 0.
Variable silu(const Variable& x, const Loc& loc = Loc::current());
// x Φ(x) = x (1 + erf(x / √2)) / 2 (F.gelu); with tanh_approximation, approximate='tanh':
// x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2. Gradient Φ(x) + x φ(x), resp. its tanh form.
Variable gelu(const Variable& x, bool tanh_approximation = false, const Loc& loc = Loc::current());
// x limited to [min, max]; either bound may be absent, not both; min <= max. Gradient 1
// where min <= x <= max (bounds included, as PyTorch), else 0.
Variable clamp(const Variable& x, std::optional<double> min, std::optional<double> max,
               const Loc& loc = Loc::current());
// Elementwise larger / smaller of a and b. On a tie each input gets half the gradient.
Variable maximum(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
Variable minimum(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
// start + weight * (end - start), the three broadcast together (torch.lerp), as one op: one
// pass and one recorded entry where sub, mul and add would take three, and no saved temporary.
// Gradients: start (1 - weight), end weight, weight (end - start). A GRU's
// h_t = (1 - z) h_{t-1} + z h̃ is lerp(h_{t-1}, h̃, z).
Variable lerp(const Variable& start, const Variable& end, const Variable& weight,
              const Loc& loc = Loc::current());
// mask != 0 ? a : b, with mask, a and b broadcast together. `mask` may be of either dtype;
// it gets no gradient. The gradient goes to a where the mask is set, to b elsewhere.
Variable where(const Tensor& mask, const Variable& a, const Variable& b,
               const Loc& loc = Loc::current());

}  // namespace tapegrad
