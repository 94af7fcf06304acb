// Reductions over all elements or over given axes (negative axes count from the end; an
// empty list means all axes, as PyTorch). keepdims keeps reduced axes as size 1.
#pragma once

#include <vector>

#include "ops/arith.hpp"

namespace tapegrad {

Variable sum(const Variable& x, const Loc& loc = Loc::current());  // 0-d result
Variable sum(const Variable& x, const std::vector<long>& axes, bool keepdims = false,
             const Loc& loc = Loc::current());
Variable mean(const Variable& x, const Loc& loc = Loc::current());
Variable mean(const Variable& x, const std::vector<long>& axes, bool keepdims = false,
              const Loc& loc = Loc::current());

// Largest / smallest element; NaN propagates. The gradient goes to the element attaining it;
// k tied elements share it evenly (1/k each), as PyTorch's x.max() and amax/amin — for full
// and axis reductions alike. An empty reduction is an error.
Variable max(const Variable& x, const Loc& loc = Loc::current());
Variable max(const Variable& x, const std::vector<long>& axes, bool keepdims = false,
             const Loc& loc = Loc::current());
Variable min(const Variable& x, const Loc& loc = Loc::current());
Variable min(const Variable& x, const std::vector<long>& axes, bool keepdims = false,
             const Loc& loc = Loc::current());

// The index of the largest / smallest element along `axis` (negative: from the end), as
// PyTorch's argmax / argmin. tapegrad has no integer dtype yet (an int64 dtype is future work):
// the indices come as a tensor of x's dtype holding integer values (exact up to 2^24 in float32),
// without `axis`, or with it kept as size 1 when keepdims. Ties give the first index. NaN
// counts as the extreme for both (as it propagates through max and min): the first NaN's index.
// Not differentiable: the result is a constant (no gradient flows through it, even when x
// requires one). An empty axis is an error.
Variable argmax(const Variable& x, long axis, bool keepdims = false,
                const Loc& loc = Loc::current());
Variable argmin(const Variable& x, long axis, bool keepdims = false,
                const Loc& loc = Loc::current());

// PyTorch's torch.max(x, dim) / torch.min(x, dim) (named apart from max(x, {axis}), which a
// braced axis would otherwise turn into this): the extreme along one axis and where it is,
// as an int64 tensor (argmax's index). The values are max(x, {axis}) / min(x, {axis}), with
// their gradient: k tied elements share it evenly, where PyTorch gives it all to the index.
struct ValuesIndices {
    Variable values;
    Tensor indices;  // int64
};
ValuesIndices max_with_indices(const Variable& x, long axis, bool keepdims = false,
                               const Loc& loc = Loc::current());
ValuesIndices min_with_indices(const Variable& x, long axis, bool keepdims = false,
                               const Loc& loc = Loc::current());

// log Σ exp(x), computed as m + log Σ exp(x - m) with m the max (no overflow). Its gradient
// is the softmax of x over the reduced axes. An empty reduction gives -Inf.
Variable logsumexp(const Variable& x, const Loc& loc = Loc::current());
Variable logsumexp(const Variable& x, const std::vector<long>& axes, bool keepdims = false,
                   const Loc& loc = Loc::current());

// Running sums along `axis` (negative: from the end), of x's shape, as torch.cumsum:
// y_t = Σ_{s<=t} x_s. reverse sums from the end instead (y_t = Σ_{s>=t} x_s, as
// torch.flip(torch.cumsum(torch.flip(x)))). The gradient is the cumsum of the incoming gradient
// in the opposite direction. An empty axis gives an empty result.
Variable cumsum(const Variable& x, long axis, bool reverse = false,
                const Loc& loc = Loc::current());

// Running logsumexp along `axis` (negative: from the end), as torch.logcumsumexp:
// y_t = log Σ_{s<=t} exp(x_s), accumulated as a running max plus log1p (no overflow: x = 1000
// gives 1000; -Inf inputs give -Inf prefixes, not NaN). The gradient
// Σ_{t>=s} g_t exp(x_s - y_t) is computed without overflow too: in one backward pass in a plain
// backward, with ops (in log space) under create_graph. An empty axis gives an empty result.
Variable logcumsumexp(const Variable& x, long axis, const Loc& loc = Loc::current());

// Variance Σ (x - mean)^2 / (N - correction) over N reduced elements: unbiased by default, as
// torch.var; correction = 0 gives the population variance. N - correction must be > 0.
Variable var(const Variable& x, const Loc& loc = Loc::current());
Variable var(const Variable& x, const std::vector<long>& axes, double correction = 1,
             bool keepdims = false, const Loc& loc = Loc::current());

}  // namespace tapegrad
