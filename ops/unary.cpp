#include "ops/unary.hpp"

#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "core/tape.hpp"
#include "kernels/vector_math.hpp"
#include "ops/support.hpp"

namespace tapegrad {

using kernels::map;
using ops::require_defined;

namespace {
// f elementwise: float32 through kernels/vector_math's `fast` where isa() allows it, otherwise,
// and for float64, through xtensor's `f`.
template <class F>
Tensor map_fast(const Tensor& x, void (*fast)(const float*, float*, std::size_t), F&& f) {
    if (x.dtype() == float32 && vector_math::available()) {
        Tensor y = Tensor::empty(x.shape(), float32);
        float* out = y.mutable_xt<float>().data();
        const auto in = x.rows<float>();  // a view is read in place, run by run
        for (std::size_t r = 0; r < in.rows; ++r) fast(in.row(r), out + r * in.cols, in.cols);
        return y;
    }
    return kernels::map(x, f);
}
}  // namespace

Variable exp(const Variable& x, const Loc& loc) {
    require_defined("exp", x, loc);
    Tensor out = map_fast(x.value(), vector_math::exp, [](const auto& v) { return xt::exp(v); });
    return record(
        "exp", std::move(out), {x}, {.inputs = no_inputs, .result = true},
        [](Backward& bw) {
            // d exp(x) = exp(x)
            bw.add(0, bw.grad_out() * bw.result());
        },
        loc);
}

Variable log(const Variable& x, const Loc& loc) {
    require_defined("log", x, loc);
    Tensor out = map(x.value(), [](const auto& v) { return xt::log(v); });
    return record(
        "log", std::move(out), {x},
        [](Backward& bw) {
            // d log(x) = 1 / x
            bw.add(0, bw.grad_out() / bw.input(0));
        },
        loc);
}

Variable log1p(const Variable& x, const Loc& loc) {
    require_defined("log1p", x, loc);
    Tensor out = map(x.value(), [](const auto& v) { return xt::log1p(v); });
    return record(
        "log1p", std::move(out), {x},
        [](Backward& bw) {
            // d log(1 + x) = 1 / (1 + x)
            bw.add(0, bw.grad_out() / (bw.input(0) + 1.0));
        },
        loc);
}

Variable sqrt(const Variable& x, const Loc& loc) {
    require_defined("sqrt", x, loc);
    Tensor out = map(x.value(), [](const auto& v) { return xt::sqrt(v); });
    return record(
        "sqrt", std::move(out), {x},
        [](Backward& bw) {
            // d sqrt(x) = 1 / (2 sqrt(x))
            bw.add(0, bw.grad_out() / (2.0 * bw.result()));
        },
        loc);
}

Variable abs(const Variable& x, const Loc& loc) {
    require_defined("abs", x, loc);
    Tensor out = map(x.value(), [](const auto& v) { return xt::abs(v); });
    return record(
        "abs", std::move(out), {x},
        [](Backward& bw) {
            // d|x| = sign(x), 0 at 0
            Tensor sign = map(bw.input(0).value(), [](const auto& v) { return xt::sign(v); });
            bw.add(0, bw.grad_out() * constant(sign));
        },
        loc);
}

Variable tanh(const Variable& x, const Loc& loc) {
    require_defined("tanh", x, loc);
    Tensor out = map_fast(x.value(), vector_math::tanh, [](const auto& v) { return xt::tanh(v); });
    return record(
        "tanh", std::move(out), {x}, {.inputs = no_inputs, .result = true},
        [](Backward& bw) {
            // d tanh(x) = 1 - tanh(x)^2
            bw.add(0, ops::pointwise_grad_into(bw, 0, bw.result(),
                                               [](const auto& g, const auto& r, const auto& one) {
                                                   return g * (one - r * r);
                                               }));
        },
        loc);
}

Variable sigmoid(const Variable& x, const Loc& loc) {
    require_defined("sigmoid", x, loc);
    // e^x / (1 + e^x) for x < 0: 1 / (1 + e^-x) would give 0 where e^-x overflows and the
    // true value is subnormal
    Tensor out = map_fast(x.value(), vector_math::sigmoid, [](const auto& v) {
        using T = typename std::decay_t<decltype(v)>::value_type;
        const Array<T> e = xt::exp(-xt::abs(v));  // evaluated: one exp per element
        return Array<T>(xt::where(v < T(0), e, T(1)) / (T(1) + e));
    });
    return record(
        "sigmoid", std::move(out), {x}, {.inputs = no_inputs, .result = true},
        [](Backward& bw) {
            // d sigmoid(x) = s (1 - s)
            bw.add(0, ops::pointwise_grad_into(bw, 0, bw.result(),
                                               [](const auto& g, const auto& s, const auto& one) {
                                                   return g * (s * (one - s));
                                               }));
        },
        loc);
}

Variable relu(const Variable& x, const Loc& loc) {
    require_defined("relu", x, loc);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        return Tensor(Array<T>(xt::maximum(x.value().xt<T>(), T(0))));
    });
    return record(
        "relu", std::move(out), {x},
        [](Backward& bw) {
            // d relu(x) = [x > 0]  (0 at the kink)
            const Variable& x = bw.input(0);
            if (!grad_enabled()) {  // one pass: g where x > 0, else 0
                bw.add(0, Variable(dispatch(x.dtype(), [&]<class T>() {
                           return Tensor(kernels::zip_rows(bw.grad_out().value().xt<T>(),
                                                           x.value().xt<T>(),
                                                           [](const auto& g, const auto& v) {
                                                               return xt::where(v > T(0), g, T(0));
                                                           }));
                       })));
                return;
            }
            Tensor mask = dispatch(x.dtype(), [&]<class T>() {
                return Tensor(Array<T>(xt::cast<T>(x.value().xt<T>() > T(0))));
            });
            bw.add(0, bw.grad_out() * constant(mask));
        },
        loc);
}

}  // namespace tapegrad
