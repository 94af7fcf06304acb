#include "layers/cell.hpp"

#include "ops/arith.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/scan.hpp"

namespace tapegrad {

Cell::SequenceResult Cell::sequence(const Variable&, const State&, const Steps&) {
    throw ValueError(type_name() + ": sequence(): this cell runs step by step only");
}

Variable scan(const Variable& a, const Variable& b, const Variable& h0, const Cell::Steps& steps) {
    if (!steps.keep.defined()) return linear_scan(a, b, h0, steps.reverse);
    const Variable one = constant(1.0, a.dtype()), zero = constant(0.0, a.dtype());
    return linear_scan(where(steps.keep, a, one), where(steps.keep, b, zero), h0, steps.reverse);
}

Variable last_state(const Variable& h, const Cell::Steps& steps) {
    return select(h, 0, steps.reverse ? 0 : -1);
}

}  // namespace tapegrad
