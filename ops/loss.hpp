// Losses. Integer class targets are given as std::vector<std::int64_t>.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/arith.hpp"

namespace tapegrad {

enum class Reduction { mean, sum, none };

// Mean (or sum) of squared differences.
Variable mse_loss(const Variable& input, const Variable& target,
                  Reduction reduction = Reduction::mean, const Loc& loc = Loc::current());

// Negative log-likelihood of log-probabilities [N, C] at integer targets [N]. Targets equal to
// ignore_index contribute nothing; the mean is over the other targets.
Variable nll_loss(const Variable& log_probs, const std::vector<std::int64_t>& targets,
                  std::int64_t ignore_index = -100, Reduction reduction = Reduction::mean,
                  const Loc& loc = Loc::current());

// nll_loss(log_softmax(logits, 1), targets): logits [N, C].
Variable cross_entropy(const Variable& logits, const std::vector<std::int64_t>& targets,
                       std::int64_t ignore_index = -100, Reduction reduction = Reduction::mean,
                       const Loc& loc = Loc::current());

// -[y log σ(x) + (1-y) log(1-σ(x))], computed stably as max(x,0) - x y + log(1 + exp(-|x|)).
Variable binary_cross_entropy_with_logits(const Variable& logits, const Variable& target,
                                          Reduction reduction = Reduction::mean,
                                          const Loc& loc = Loc::current());

}  // namespace tapegrad
