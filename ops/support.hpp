// What the ops share: argument checks that throw tapegrad errors naming the op, and the
// elementwise gradient helpers. Internal to ops/; users write ops with record() and Variable ops.
#pragma once

#include <source_location>
#include <string>

#include <fmt/format.h>

#include "core/tape.hpp"
#include "core/variable.hpp"
#include "kernels/pointwise.hpp"

namespace tapegrad::ops {

// "[1,0]": row-major position p of `shape` as coordinates, for messages.
inline std::string coords(std::size_t p, const Shape& shape) {
    Shape c(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        c[d] = p % shape[d];
        p /= shape[d];
    }
    return to_string(c);
}

inline std::string describe(const Tensor& t) {
    return fmt::format("{} {}", to_string(t.shape()), name(t.dtype()));
}

inline void require_defined(const char* op, const Variable& v, const std::source_location& loc) {
    if (!v.defined()) fail<ValueError>(op, "an input variable is undefined", loc);
}

// Both inputs defined and of one dtype.
inline void check_binary(const char* op, const Variable& a, const Variable& b,
                         const std::source_location& loc) {
    require_defined(op, a, loc);
    require_defined(op, b, loc);
    if (a.dtype() != b.dtype())
        fail<DTypeError>(
            op, fmt::format("dtypes differ: {} and {}", describe(a.value()), describe(b.value())),
            loc);
}

// The values of an int64 tensor passed where `op` takes integers (`what`: "targets", "ids",
// ...), of exactly `rank` dimensions when rank >= 0. DTypeError or ShapeError naming the
// op otherwise.
std::vector<std::int64_t> int64_values(const char* op, const char* what, const Tensor& t, int rank,
                                       const std::source_location& loc);

// NumPy broadcasting: shapes align at the right; each pair of sizes is equal or one is 1.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b,
                       const std::source_location& loc);

// Normalises a possibly negative axis for a tensor of rank `dim`.
std::size_t normalize_axis(const char* op, long axis, std::size_t dim,
                           const std::source_location& loc);

// A backward rule's elementwise formula f(g, y, one) — g the incoming gradient, y a saved
// tensor of the same shape (the op's input or result), `one` the constant 1, which f must take
// by reference (const auto&) and which must also accept plain scalars — written once
// and evaluated two ways. In a plain backward it runs as one fused pass over the arrays (no
// temporaries: g * (1 - y*y) is one loop); under create_graph it runs on Variables, so the
// gradient is itself recorded and differentiable.
template <class F>
Variable pointwise_grad(const Variable& g, const Variable& y, F&& f) {
    if (grad_enabled()) return f(g, y, 1.0);
    return Variable(dispatch(g.dtype(), [&]<class T>() {
        return kernels::zip_tensors<T>(g.value(), y.value(), [&](const auto& a, const auto& b) {
            return f(a, b, kernels::one_v<T>);
        });
    }));
}

// pointwise_grad for input `input` of the running rule (of g's shape), written straight into
// that input's gradient destination (Backward::destination: its columns of a joined gate
// gradient, say) when the backward is plain and one is offered; the gradient is then a view
// of that memory, and the split that offered it copies nothing for it.
template <class F>
Variable pointwise_grad_into(Backward& bw, std::size_t input, const Variable& y, F&& f) {
    const Variable& g = bw.grad_out();
    if (!grad_enabled() && g.shape() == y.shape() && g.dtype() == y.dtype() &&
        bw.input(input).shape() == g.shape()) {
        if (const GradientDestination d = destination(bw, input); d.defined()) {
            const bool written = dispatch(g.dtype(), [&]<class T>() {
                return kernels::zip_runs_into<T>(
                    g.value(), y.value(), d.view.template rows<T>(), static_cast<T*>(d.data),
                    [&](const auto& a, const auto& b) { return f(a, b, kernels::one_v<T>); });
            });
            // (not written: whoever handed d out finds it not in place and joins elsewhere)
            if (written) return Variable(d.view);
        }
    }
    return pointwise_grad(g, y, f);
}

}  // namespace tapegrad::ops
