// Elementwise arithmetic with NumPy broadcasting. Scalar operands (x * 2.0, 1.0 - z) become
// constants of x's dtype and go through the same ops, so each gradient rule exists once.
#pragma once

#include <source_location>

#include "core/variable.hpp"

namespace tapegrad {

using Loc = std::source_location;

Variable add(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
Variable sub(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
Variable mul(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
Variable div(const Variable& a, const Variable& b, const Loc& loc = Loc::current());
Variable neg(const Variable& x, const Loc& loc = Loc::current());

Variable operator+(const Variable& a, const Variable& b);
Variable operator-(const Variable& a, const Variable& b);
Variable operator*(const Variable& a, const Variable& b);
Variable operator/(const Variable& a, const Variable& b);
Variable operator-(const Variable& x);
Variable operator+(const Variable& a, double b);
Variable operator+(double a, const Variable& b);
Variable operator-(const Variable& a, double b);
Variable operator-(double a, const Variable& b);
Variable operator*(const Variable& a, double b);
Variable operator*(double a, const Variable& b);
Variable operator/(const Variable& a, double b);
Variable operator/(double a, const Variable& b);

}  // namespace tapegrad
