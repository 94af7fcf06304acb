// Shape ops: reshape and its squeeze/unsqueeze forms, permute and transpose, and the
// broadcasting pair sum_to / broadcast_to that every binary op's backward relies on (through
// Backward::add). Negative axes count from the end.
#pragma once

#include <vector>

#include "ops/arith.hpp"

namespace tapegrad {

// One size may be -1 (inferred).
Variable reshape(const Variable& x, const std::vector<long>& shape,
                 const Loc& loc = Loc::current());
Variable reshape(const Variable& x, const Shape& shape, const Loc& loc = Loc::current());
// Drops every axis of size 1.
Variable squeeze(const Variable& x, const Loc& loc = Loc::current());
// Drops `axis`, which must have size 1 (ShapeError otherwise, unlike PyTorch's silent no-op).
Variable squeeze(const Variable& x, long axis, const Loc& loc = Loc::current());
// Inserts an axis of size 1 so that it becomes axis `axis` of the result (-1: appended).
Variable unsqueeze(const Variable& x, long axis, const Loc& loc = Loc::current());
// Reorders the axes: result axis i is x's axis dims[i]. dims is a permutation of x's axes.
Variable permute(const Variable& x, const std::vector<long>& dims, const Loc& loc = Loc::current());
// Swaps two axes (the last two by default: the matrix transpose); a permute.
Variable transpose(const Variable& x, long axis0 = -2, long axis1 = -1,
                   const Loc& loc = Loc::current());
// Repeats x along broadcast axes to `shape` (NumPy rules).
Variable broadcast_to(const Variable& x, const Shape& shape, const Loc& loc = Loc::current());
// Sums x down to `shape`: the inverse of broadcast_to, used to undo broadcasting in backward.
Variable sum_to(const Variable& x, const Shape& shape, const Loc& loc = Loc::current());

}  // namespace tapegrad
