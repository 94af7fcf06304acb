// The three differentiable ops the engine itself uses, declared here so that core/ needs no
// public op header: add (summing gradients under create_graph), sum_to (undoing broadcasting
// in Backward::add) and matmul (a product that cannot be deferred). They are defined, and
// documented, with the other ops: ops/arith.hpp, ops/shape.hpp, ops/linalg.hpp. Internal.
#pragma once

#include <source_location>

#include "core/variable.hpp"

namespace tapegrad {

Variable add(const Variable& a, const Variable& b, const std::source_location& loc);
Variable sum_to(const Variable& x, const Shape& shape, const std::source_location& loc);
Variable matmul(const Variable& a, const Variable& b, bool transpose_a, bool transpose_b,
                const std::source_location& loc);

}  // namespace tapegrad
