// Shape ops: reshape, transpose, and the broadcasting pair sum_to / broadcast_to that every
// binary op's backward relies on (through Backward::add).
#pragma once

#include <vector>

#include "ops/arith.hpp"

namespace tapegrad {

// One size may be -1 (inferred).
Variable reshape(const Variable& x, const std::vector<long>& shape, const Loc& loc = Loc::current());
Variable reshape(const Variable& x, const Shape& shape, const Loc& loc = Loc::current());
// Swaps two axes (the last two by default: the matrix transpose).
Variable transpose(const Variable& x, long axis0 = -2, long axis1 = -1,
                   const Loc& loc = Loc::current());
// Repeats x along broadcast axes to `shape` (NumPy rules).
Variable broadcast_to(const Variable& x, const Shape& shape, const Loc& loc = Loc::current());
// Sums x down to `shape`: the inverse of broadcast_to, used to undo broadcasting in backward.
Variable sum_to(const Variable& x, const Shape& shape, const Loc& loc = Loc::current());

}  // namespace tapegrad
