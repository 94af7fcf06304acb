// Neural-network functions: normalised exponentials, layer normalisation, dropout.
#pragma once

#include <cstdint>
#include <optional>

#include "core/random.hpp"
#include "ops/arith.hpp"

namespace tapegrad {

// exp(x) / sum(exp(x)) along `axis`, computed stably (max subtracted).
Variable softmax(const Variable& x, long axis = -1, const Loc& loc = Loc::current());
// x - logsumexp(x) along `axis`, computed stably.
Variable log_softmax(const Variable& x, long axis = -1, const Loc& loc = Loc::current());

// Normalises over the last `normalized_dims` axes: (x - mean) / sqrt(var + eps) * weight + bias,
// with the biased variance (as PyTorch). weight and bias (shape of those axes) are optional.
Variable layer_norm(const Variable& x, std::size_t normalized_dims, const Variable& weight = {},
                    const Variable& bias = {}, double eps = 1e-5, const Loc& loc = Loc::current());

// Training: zeroes each element with probability p and scales the rest by 1/(1-p), drawing the
// mask from `gen`. Evaluation (training = false): the identity.
Variable dropout(const Variable& x, double p, bool training, Generator& gen,
                 const Loc& loc = Loc::current());

}  // namespace tapegrad
