// Indexing ops: slices, joining and splitting along an axis, and integer-indexed selection.
// Negative axes count from the end. Every backward scatters the gradient back into zeros of
// the input's shape (index_select and gather accumulate, so repeated indices add up: the
// embedding lookup).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/arith.hpp"

namespace tapegrad {

// x[start:stop:step] along `axis`, with Python's rules: negative start/stop count from the
// end, both are clamped to the axis, stop <= start gives an empty axis. step must be > 0.
Variable slice(const Variable& x, long axis, long start, long stop, long step = 1,
               const Loc& loc = Loc::current());
// `length` consecutive entries of `axis` from `start` (negative: from the end); the range
// must lie inside the axis (ValueError otherwise).
Variable narrow(const Variable& x, long axis, long start, long length,
                const Loc& loc = Loc::current());

// Entry `index` of `axis`, with that axis removed (PyTorch's select): x[:, -1] is
// select(x, 1, -1). A negative index counts from the end; it must lie in [-size, size)
// (ValueError otherwise). The gradient goes back to that entry (zeros elsewhere).
Variable select(const Variable& x, long axis, long index, const Loc& loc = Loc::current());

// Joins tensors of one dtype along an existing axis; all other sizes must agree.
Variable concat(const std::vector<Variable>& xs, long axis = 0, const Loc& loc = Loc::current());
// Joins tensors of one shape and dtype along a new axis, at position `axis` of the result.
Variable stack(const std::vector<Variable>& xs, long axis = 0, const Loc& loc = Loc::current());

// Cuts x along `axis` into pieces of the given sizes, which must add up to the axis size.
// The pieces share one gradient: backward costs one concat of their gradients, whatever
// their number (unused pieces count as zeros).
std::vector<Variable> split(const Variable& x, const std::vector<long>& sizes, long axis,
                            const Loc& loc = Loc::current());
// n equal pieces; the axis size must be a multiple of n (ShapeError otherwise, where
// torch.chunk would return uneven or fewer pieces). The LSTM gates: chunk(gates, 4, 1).
std::vector<Variable> chunk(const Variable& x, long n, long axis, const Loc& loc = Loc::current());
// The slices x[i] along `axis`, each without that axis (the inverse of stack).
std::vector<Variable> unbind(const Variable& x, long axis = 0, const Loc& loc = Loc::current());
// The entries indices[j] of `axis`: result axis `axis` has indices.size() entries and
// result[..., j, ...] = x[..., indices[j], ...]. Indices lie in [0, size) (ValueError).
Variable index_select(const Variable& x, long axis, const std::vector<std::int64_t>& indices,
                      const Loc& loc = Loc::current());
Variable index_select(const Variable& x, long axis, const Tensor& indices,  // int64, 1-d
                      const Loc& loc = Loc::current());
// PyTorch's gather. The index is a row-major array of `index_shape` (the same rank as x,
// index_shape[d] <= x.shape()[d] for d != axis); the result has index_shape and
//   result[p] = x[p with coordinate `axis` replaced by index[p]]
// e.g. for axis 1: result[i][j] = x[i][index[i][j]] (picking each row's target logit).
Variable gather(const Variable& x, long axis, const std::vector<std::int64_t>& index,
                const Shape& index_shape, const Loc& loc = Loc::current());
// The same with the index as an int64 tensor (of index_shape).
Variable gather(const Variable& x, long axis, const Tensor& index, const Loc& loc = Loc::current());

}  // namespace tapegrad
