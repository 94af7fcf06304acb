#include "ops/arith.hpp"

#include "core/tape.hpp"
#include "ops/support.hpp"

namespace tapegrad {

using kernels::zip;
using ops::broadcast_shapes;
using ops::check_binary;

Variable add(const Variable& a, const Variable& b, const Loc& loc) {
    check_binary("add", a, b, loc);
    broadcast_shapes("add", a.shape(), b.shape(), loc);
    Tensor out = zip(a.value(), b.value(), [](const auto& x, const auto& y) { return x + y; });
    return record(
        "add", std::move(out), {a, b}, {.inputs = no_inputs, .result = false},
        [](Backward& bw) {
            bw.add(0, bw.grad_out());
            bw.add(1, bw.grad_out());
        },
        loc);
}

Variable sub(const Variable& a, const Variable& b, const Loc& loc) {
    check_binary("sub", a, b, loc);
    broadcast_shapes("sub", a.shape(), b.shape(), loc);
    Tensor out = zip(a.value(), b.value(), [](const auto& x, const auto& y) { return x - y; });
    return record(
        "sub", std::move(out), {a, b}, {.inputs = no_inputs, .result = false},
        [](Backward& bw) {
            bw.add(0, bw.grad_out());
            if (bw.needs(1)) bw.add(1, neg(bw.grad_out()));
        },
        loc);
}

Variable mul(const Variable& a, const Variable& b, const Loc& loc) {
    check_binary("mul", a, b, loc);
    broadcast_shapes("mul", a.shape(), b.shape(), loc);
    Tensor out = zip(a.value(), b.value(), [](const auto& x, const auto& y) { return x * y; });
    return record(
        "mul", std::move(out), {a, b}, {.inputs = input_mask(0, 1), .result = false},
        [](Backward& bw) {
            // d(ab) = b da + a db
            if (bw.needs(0)) bw.add(0, mul(bw.grad_out(), bw.input(1)));
            if (bw.needs(1)) bw.add(1, mul(bw.grad_out(), bw.input(0)));
        },
        loc);
}

Variable div(const Variable& a, const Variable& b, const Loc& loc) {
    check_binary("div", a, b, loc);
    broadcast_shapes("div", a.shape(), b.shape(), loc);
    Tensor out = zip(a.value(), b.value(), [](const auto& x, const auto& y) { return x / y; });
    return record(
        "div", std::move(out), {a, b},
        [](Backward& bw) {
            // d(a/b) = da / b - (a/b) db / b
            if (bw.needs(0)) bw.add(0, div(bw.grad_out(), bw.input(1)));
            if (bw.needs(1)) bw.add(1, neg(div(mul(bw.grad_out(), bw.result()), bw.input(1))));
        },
        loc);
}

Variable neg(const Variable& x, const Loc& loc) {
    ops::require_defined("neg", x, loc);
    Tensor out = kernels::map(x.value(), [](const auto& v) { return -v; });
    return record(
        "neg", std::move(out), {x}, [](Backward& bw) { bw.add(0, neg(bw.grad_out())); }, loc);
}

Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
Variable operator-(const Variable& x) { return neg(x); }
Variable operator+(const Variable& a, double b) { return add(a, constant(b, a.dtype())); }
Variable operator+(double a, const Variable& b) { return add(constant(a, b.dtype()), b); }
Variable operator-(const Variable& a, double b) { return sub(a, constant(b, a.dtype())); }
Variable operator-(double a, const Variable& b) { return sub(constant(a, b.dtype()), b); }
Variable operator*(const Variable& a, double b) { return mul(a, constant(b, a.dtype())); }
Variable operator*(double a, const Variable& b) { return mul(constant(a, b.dtype()), b); }
Variable operator/(const Variable& a, double b) { return div(a, constant(b, a.dtype())); }
Variable operator/(double a, const Variable& b) { return div(constant(a, b.dtype()), b); }

}  // namespace tapegrad
