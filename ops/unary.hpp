// Elementwise functions of one variable.
#pragma once

#include "ops/arith.hpp"

namespace tapegrad {

Variable exp(const Variable& x, const Loc& loc = Loc::current());
Variable log(const Variable& x, const Loc& loc = Loc::current());
// log(1 + x), accurate for small x. d/dx = 1 / (1 + x).
Variable log1p(const Variable& x, const Loc& loc = Loc::current());
// d/dx = 1 / (2 sqrt x): Inf at 0, NaN below.
Variable sqrt(const Variable& x, const Loc& loc = Loc::current());
// d/dx = sign(x), with abs'(0) = 0.
Variable abs(const Variable& x, const Loc& loc = Loc::current());
Variable tanh(const Variable& x, const Loc& loc = Loc::current());
Variable sigmoid(const Variable& x, const Loc& loc = Loc::current());
// Subgradient at 0 is 0 (as PyTorch).
Variable relu(const Variable& x, const Loc& loc = Loc::current());

}  // namespace tapegrad
