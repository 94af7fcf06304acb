// Losses. Integer class targets are an int64 tensor or a std::vector<std::int64_t>.
#pragma once

#include <concepts>
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

Variable nll_loss(const Variable& log_probs, const Tensor& targets,  // int64 [N]
                  std::int64_t ignore_index = -100, Reduction reduction = Reduction::mean,
                  const Loc& loc = Loc::current());
// nll_loss(log_softmax(logits, 1), targets): logits [N, C].
Variable cross_entropy(const Variable& logits, const std::vector<std::int64_t>& targets,
                       std::int64_t ignore_index = -100, Reduction reduction = Reduction::mean,
                       const Loc& loc = Loc::current());

Variable cross_entropy(const Variable& logits, const Tensor& targets,  // int64 [N]
                       std::int64_t ignore_index = -100, Reduction reduction = Reduction::mean,
                       const Loc& loc = Loc::current());
// -[y log σ(x) + (1-y) log(1-σ(x))], computed stably as max(x,0) - x y + log(1 + exp(-|x|)).
Variable binary_cross_entropy_with_logits(const Variable& logits, const Variable& target,
                                          Reduction reduction = Reduction::mean,
                                          const Loc& loc = Loc::current());

// Metric: the fraction of rows of `logits` [..., C] whose argmax over the last axis (the first
// index on ties, as argmax) equals the row's label, as a 0-d constant of logits' dtype (no
// gradient). Labels in [0, C), one per row, in row-major order, as nll_loss's targets. At least
// one row.
Variable accuracy(const Variable& logits, const std::vector<std::int64_t>& labels,
                  const Loc& loc = Loc::current());
// The same with labels as an int64 tensor of logits' shape without its last axis.
Variable accuracy(const Variable& logits, const Tensor& labels, const Loc& loc = Loc::current());

namespace detail {
// The integer values of a label tensor of logits' shape without its last axis (ValueError on
// one that is not an integer).
std::vector<std::int64_t> label_values(const Variable& logits, const Variable& labels,
                                       const Loc& loc);
}  // namespace detail

// The same with labels as a tensor of logits' shape without its last axis, holding integer
// values (argmax's result: accuracy(logits, argmax(targets, -1))), of either float dtype. (A
// template only so that a braced list, accuracy(logits, {0}), takes the overload above.)
template <std::same_as<Variable> Labels>
Variable accuracy(const Variable& logits, const Labels& labels, const Loc& loc = Loc::current()) {
    return accuracy(logits, detail::label_values(logits, labels, loc), loc);
}

}  // namespace tapegrad
