// Elementwise math functions.
#pragma once

#include "ops/arith.hpp"

namespace tapegrad {

Variable exp(const Variable& x, const Loc& loc = Loc::current());
Variable log(const Variable& x, const Loc& loc = Loc::current());
Variable tanh(const Variable& x, const Loc& loc = Loc::current());
Variable sigmoid(const Variable& x, const Loc& loc = Loc::current());
// Subgradient at 0 is 0 (as PyTorch).
Variable relu(const Variable& x, const Loc& loc = Loc::current());

}  // namespace tapegrad
