// Reductions over all elements or over given axes (negative axes count from the end; an
// empty list means all axes, as PyTorch).
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

}  // namespace tapegrad
