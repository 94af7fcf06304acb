#include "ops/elementwise.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <type_traits>

#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>
#include <xtensor/xvectorize.hpp>

#include "core/tape.hpp"
#include "ops/support.hpp"
#include "ops/unary.hpp"

namespace tapegrad {

using kernels::map;
using ops::broadcast_shapes;
using ops::check_binary;
using ops::describe;
using ops::require_defined;

namespace {
// f(a, b) with broadcasting, where f also receives the element type: f.template
// operator()<T>(u, v). See kernels::zip_rows for the fast paths (a scalar operand, outer-axis
// broadcasting), which keep x ^ 2.0 or maximum(x, 0) one vectorised pass.
template <class F>
Tensor zip_typed(const Tensor& a, const Tensor& b, F&& f) {
    return dispatch(a.dtype(), [&]<class T>() {
        return Tensor(kernels::zip_rows(a.xt<T>(), b.xt<T>(), [&](const auto& u, const auto& v) {
            return f.template operator()<T>(u, v);
        }));
    });
}

bool any_zero(const Tensor& t) {
    return dispatch(t.dtype(), [&]<class T>() {
        const T* p = t.xt<T>().data();
        return std::find(p, p + t.numel(), T(0)) != p + t.numel();
    });
}

// x ^ p; common constant exponents take exact cheaper paths (xsimd's pow is ~20x a multiply).
Tensor pow_kernel(const Tensor& x, const Tensor& p) {
    // xsimd 8's vectorised pow returns NaN for a negative base even with an integer exponent,
    // so the general cases go through std::pow element by element.
    if (p.numel() != 1 || p.dim() > x.dim())
        return zip_typed(x, p, []<class T>(const auto& u, const auto& v) {
            return xt::vectorize([](T a, T b) { return std::pow(a, b); })(u, v);
        });
    const double e = p.flat(0);
    if (e == 1) return x;  // tensors are immutable: the result may share x's storage
    if (e == 0) return Tensor::ones(x.shape(), x.dtype());
    return map(x, [e]<class T>(const Array<T>& v) -> Array<T> {
        if (e == 2) return v * v;
        if (e == 3) return v * v * v;
        if (e == 0.5) return xt::sqrt(v);
        if (e == -1) return T(1) / v;
        Array<T> out = Array<T>::from_shape(v.shape());
        std::transform(v.begin(), v.end(), out.begin(), [e](T a) { return std::pow(a, T(e)); });
        return out;
    });
}

// Gradient share of x in maximum (Greater) or minimum of (x, y): 1 where x wins, 1/2 on a tie.
template <bool Greater>
Tensor win_share(const Tensor& x, const Tensor& y) {
    return zip_typed(x, y, []<class T>(const auto& u, const auto& v) {
        auto wins = [&] {
            if constexpr (Greater) return u > v;
            else return u < v;
        };
        return xt::where(wins(), T(1), xt::where(xt::equal(u, v), T(0.5), T(0)));
    });
}

// maximum (Greater) or minimum; NaN propagates, as PyTorch.
template <bool Greater>
Variable pick(const char* op, const Variable& a, const Variable& b, const Loc& loc) {
    check_binary(op, a, b, loc);
    broadcast_shapes(op, a.shape(), b.shape(), loc);
    // u wins where it is better or NaN; u is the array operand when one side is a scalar
    auto better = [](const auto& u, const auto& v) {
        if constexpr (Greater) return xt::where(u > v || xt::isnan(u), u, v);
        else return xt::where(u < v || xt::isnan(u), u, v);
    };
    Tensor out = zip_typed(a.value(), b.value(), [&]<class T>(const auto& u, const auto& v) {
        if constexpr (std::is_arithmetic_v<std::decay_t<decltype(u)>>) return better(v, u);
        else return better(u, v);
    });
    return record(
        op, std::move(out), {a, b},
        [](Backward& bw) {
            // each input gets the gradient where it wins, half of it on a tie
            const Tensor& x = bw.input(0).value();
            const Tensor& y = bw.input(1).value();
            if (bw.needs(0)) bw.add(0, bw.grad_out() * constant(win_share<Greater>(x, y)));
            if (bw.needs(1)) bw.add(1, bw.grad_out() * constant(win_share<Greater>(y, x)));
        },
        loc);
}
}  // namespace

Variable pow(const Variable& x, const Variable& exponent, const Loc& loc) {
    check_binary("pow", x, exponent, loc);
    broadcast_shapes("pow", x.shape(), exponent.shape(), loc);
    Tensor out = pow_kernel(x.value(), exponent.value());
    return record(
        "pow", std::move(out), {x, exponent},
        [](Backward& bw) {
            const Variable& x = bw.input(0);
            const Variable& p = bw.input(1);
            const Variable zero = constant(0.0, x.dtype());
            if (bw.needs(0)) {
                // d x^p / dx = p x^(p-1), taken as 0 where p = 0
                Variable d = p * pow(x, p - 1.0);
                if (any_zero(p.value())) d = where(p.value(), d, zero);
                bw.add(0, bw.grad_out() * d);
            }
            if (bw.needs(1)) {
                // d x^p / dp = x^p log x, taken as 0 where x = 0
                const Variable one = constant(1.0, x.dtype());
                Variable logx = any_zero(x.value()) ? log(where(x.value(), x, one)) : log(x);
                bw.add(1, bw.grad_out() * (bw.result() * logx));
            }
        },
        loc);
}

Variable pow(const Variable& x, double exponent, const Loc& loc) {
    require_defined("pow", x, loc);
    return pow(x, constant(exponent, x.dtype()), loc);
}

Variable leaky_relu(const Variable& x, double negative_slope, const Loc& loc) {
    require_defined("leaky_relu", x, loc);
    if (!std::isfinite(negative_slope))
        fail<ValueError>("leaky_relu",
                         fmt::format("negative_slope must be finite, got {} (input {})",
                                     negative_slope, describe(x.value())),
                         loc);
    const double slope = negative_slope;
    Tensor out = map(x.value(), [slope]<class T>(const Array<T>& v) {
        return xt::where(v > T(0), v, v * T(slope));
    });
    return record(
        "leaky_relu", std::move(out), {x},
        [slope](Backward& bw) {
            // d leaky_relu(x) = x > 0 ? 1 : slope  (slope at the kink)
            Tensor d = map(bw.input(0).value(), [slope]<class T>(const Array<T>& v) {
                return xt::where(v > T(0), T(1), T(slope));
            });
            bw.add(0, bw.grad_out() * constant(d));
        },
        loc);
}

Variable softplus(const Variable& x, double beta, double threshold, const Loc& loc) {
    require_defined("softplus", x, loc);
    if (!(beta > 0) || !std::isfinite(beta) || std::isnan(threshold))
        fail<ValueError>("softplus",
                         fmt::format("needs a finite beta > 0 and a threshold that is "
                                     "not NaN, got beta {} and threshold {} (input {})",
                                     beta, threshold, describe(x.value())),
                         loc);
    Tensor out = map(x.value(), [&]<class T>(const Array<T>& v) -> Array<T> {
        // log(1 + e^z) = max(z, 0) + log1p(e^-|z|) with z = beta x: no overflow
        Array<T> r = xt::exp(-xt::abs(v * T(beta)));
        r = xt::log1p(r);
        return xt::where(v * T(beta) > T(threshold), v,
                         (r + xt::maximum(v * T(beta), T(0))) / T(beta));
    });
    return record(
        "softplus", std::move(out), {x},
        [beta, threshold](Backward& bw) {
            // d softplus(x) = sigmoid(beta x), 1 in the linear part
            const Variable& x = bw.input(0);
            Tensor linear = map(x.value(), [&]<class T>(const Array<T>& v) {
                return xt::where(v * T(beta) > T(threshold), T(1), T(0));
            });
            Variable s = sigmoid(beta == 1 ? x : x * beta);
            bw.add(0, bw.grad_out() * where(linear, constant(1.0, x.dtype()), s));
        },
        loc);
}

namespace {
// An activation's derivative d(x), which tends to 1 as x -> +Inf and to 0 as x -> -Inf, with
// those limits taken where |x| > bound or x is ±Inf (d evaluated there would give Inf * 0 =
// NaN); d itself sees 0 there, so no NaN reaches a gradient of the gradient. NaN propagates.
template <class F>
Variable saturating_derivative(const Variable& x, double bound, F&& d) {
    const bool tails = dispatch(x.dtype(), [&]<class T>() {
        const T* p = x.value().xt<T>().data();
        return std::any_of(p, p + x.numel(),
                           [bound](T v) { return std::isinf(v) || std::abs(v) > bound; });
    });
    if (!tails) return d(x);
    Tensor inside = map(x.value(), [bound]<class T>(const Array<T>& v) {
        return xt::where(xt::isinf(v) || xt::abs(v) > T(bound), T(0), T(1));
    });
    Tensor limit =
        map(x.value(), []<class T>(const Array<T>& v) { return xt::where(v > T(0), T(1), T(0)); });
    const Variable xs = where(inside, x, constant(0.0, x.dtype()));
    return where(inside, d(xs), constant(limit));
}

constexpr double inv_sqrt2 = 1 / std::numbers::sqrt2;
constexpr double inv_sqrt_2pi = std::numbers::inv_sqrtpi * inv_sqrt2;
constexpr double gelu_k = std::numbers::sqrt2 * std::numbers::inv_sqrtpi;  // √(2/π)
constexpr double gelu_a = 0.044715;

// Φ(x) = erfc(-x / √2) / 2, the standard normal CDF (gelu's rule). Gradient φ(x) =
// exp(-x² / 2) / √(2π).
Variable normal_cdf(const Variable& x, const Loc& loc) {
    Tensor out = map(
        x.value(), []<class T>(const Array<T>& v) { return T(0.5) * xt::erfc(v * T(-inv_sqrt2)); });
    return record(
        "normal_cdf", std::move(out), {x},
        [](Backward& bw) {
            const Variable& x = bw.input(0);
            bw.add(0, bw.grad_out() * (exp(x * x * -0.5) * inv_sqrt_2pi));
        },
        loc);
}
}  // namespace

Variable silu(const Variable& x, const Loc& loc) {
    require_defined("silu", x, loc);
    // x / (1 + e^-x): -0 for x -> -Inf, where it would be -Inf / Inf
    Tensor out = map(x.value(), []<class T>(const Array<T>& v) {
        return xt::where(xt::isinf(v) && v < T(0), T(0), v / (T(1) + xt::exp(-v)));
    });
    return record(
        "silu", std::move(out), {x},
        [](Backward& bw) {
            // d silu(x) = s (1 + x (1 - s)), s = sigmoid(x); 1 at +Inf, 0 at -Inf
            const Variable d = saturating_derivative(
                bw.input(0), std::numeric_limits<double>::infinity(), [](const Variable& x) {
                    const Variable s = sigmoid(x);
                    return s * (1.0 + x * (1.0 - s));
                });
            bw.add(0, bw.grad_out() * d);
        },
        loc);
}

Variable gelu(const Variable& x, bool tanh_approximation, const Loc& loc) {
    require_defined("gelu", x, loc);
    if (tanh_approximation) {
        // x (1 + tanh(u)) / 2 = x sigmoid(2u), u = √(2/π) (x + a x³): no cancellation for x < 0
        Tensor out = map(x.value(), []<class T>(const Array<T>& v) -> Array<T> {
            const Array<T> w = T(2 * gelu_k) * (v + T(gelu_a) * v * v * v);
            return xt::where(xt::isinf(v) && v < T(0), T(0), v / (T(1) + xt::exp(-w)));
        });
        return record(
            "gelu", std::move(out), {x},
            [](Backward& bw) {
                // d = s + x s (1 - s) 2√(2/π) (1 + 3a x²), s = sigmoid(2u). Past |x| = 30 it is
                // 1 or 0 to double precision, and x³ or x² could overflow: limits taken there.
                const Variable d = saturating_derivative(bw.input(0), 30.0, [](const Variable& x) {
                    const Variable x2 = x * x;
                    const Variable s = sigmoid(x * ((x2 * gelu_a + 1.0) * (2 * gelu_k)));
                    return s + x * (s * (1.0 - s)) * ((x2 * (3 * gelu_a) + 1.0) * (2 * gelu_k));
                });
                bw.add(0, bw.grad_out() * d);
            },
            loc);
    }
    // x Φ(x), Φ(x) = erfc(-x / √2) / 2: accurate far into x < 0; 0 at -Inf
    Tensor out = map(x.value(), []<class T>(const Array<T>& v) {
        return xt::where(xt::isinf(v) && v < T(0), T(0),
                         v * (T(0.5) * xt::erfc(v * T(-inv_sqrt2))));
    });
    return record(
        "gelu", std::move(out), {x},
        [loc](Backward& bw) {
            // d gelu(x) = Φ(x) + x φ(x), φ(x) = exp(-x² / 2) / √(2π); 1 at +Inf, 0 at -Inf
            const Variable d = saturating_derivative(
                bw.input(0), std::numeric_limits<double>::infinity(), [&](const Variable& x) {
                    return normal_cdf(x, loc) + x * (exp(x * x * -0.5) * inv_sqrt_2pi);
                });
            bw.add(0, bw.grad_out() * d);
        },
        loc);
}

Variable clamp(const Variable& x, std::optional<double> min, std::optional<double> max,
               const Loc& loc) {
    require_defined("clamp", x, loc);
    if (!min && !max)
        fail<ValueError>("clamp",
                         fmt::format("needs a min or a max bound (input {})", describe(x.value())),
                         loc);
    auto bound = [](std::optional<double> b) { return b ? fmt::format("{}", *b) : "none"; };
    if ((min && std::isnan(*min)) || (max && std::isnan(*max)) || (min && max && *min > *max))
        fail<ValueError>("clamp",
                         fmt::format("bounds must satisfy min <= max, got min {} and "
                                     "max {} (input {})",
                                     bound(min), bound(max), describe(x.value())),
                         loc);
    const double lo = min.value_or(-std::numeric_limits<double>::infinity());
    const double hi = max.value_or(std::numeric_limits<double>::infinity());
    // NaN compares false both ways, so it passes through, as in PyTorch
    Tensor out = map(x.value(), [lo, hi]<class T>(const Array<T>& v) {
        return xt::where(v < T(lo), T(lo), xt::where(v > T(hi), T(hi), v));
    });
    return record(
        "clamp", std::move(out), {x},
        [lo, hi](Backward& bw) {
            // d clamp(x) = [lo <= x <= hi]  (1 on the bounds)
            Tensor inside = map(bw.input(0).value(), [lo, hi]<class T>(const Array<T>& v) {
                return xt::where(v >= T(lo) && v <= T(hi), T(1), T(0));
            });
            bw.add(0, bw.grad_out() * constant(inside));
        },
        loc);
}

Variable maximum(const Variable& a, const Variable& b, const Loc& loc) {
    return pick<true>("maximum", a, b, loc);
}

Variable minimum(const Variable& a, const Variable& b, const Loc& loc) {
    return pick<false>("minimum", a, b, loc);
}

namespace {
// where() for a mask with one value per row, [..., 1] against a and b of the result's shape
// [..., n] or of one element (the recurrent driver's padding masks and their gradients):
// rows are copied or filled whole, instead of xtensor's broadcasting select per element.
std::optional<Tensor> where_rows(const Tensor& mask, const Tensor& a, const Tensor& b) {
    if (a.numel() == 1 && b.numel() == 1) return std::nullopt;
    const Shape& shape = a.numel() == 1 ? b.shape() : a.shape();
    if (shape.empty() || mask.dim() != shape.size() || mask.shape().back() != 1 ||
        !std::equal(shape.begin(), shape.end() - 1, mask.shape().begin()))
        return std::nullopt;
    for (const Tensor* t : {&a, &b})
        if (t->numel() != 1 && t->shape() != shape) return std::nullopt;
    const std::size_t n = shape.back(), rows = n ? numel(shape) / n : 0;
    return dispatch(a.dtype(), [&]<class T>() {
        auto out = Array<T>::from_shape(shape);
        const T* pa = a.xt<T>().data();
        const T* pb = b.xt<T>().data();
        dispatch(mask.dtype(), [&]<class M>() {
            const M* pm = mask.xt<M>().data();
            for (std::size_t r = 0; r < rows; ++r) {
                const bool set = pm[r] != M(0);
                const Tensor& from = set ? a : b;
                const T* src = set ? pa : pb;
                T* dst = out.data() + r * n;
                if (from.numel() == 1) std::fill(dst, dst + n, src[0]);
                else std::copy(src + r * n, src + (r + 1) * n, dst);
            }
        });
        return Tensor(std::move(out));
    });
}
}  // namespace

Variable where(const Tensor& mask, const Variable& a, const Variable& b, const Loc& loc) {
    if (!mask.defined()) fail<ValueError>("where", "the mask is undefined", loc);
    check_binary("where", a, b, loc);
    try {
        broadcast_shapes("where", broadcast_shapes("where", mask.shape(), a.shape(), loc),
                         b.shape(), loc);
    } catch (const ShapeError&) {
        fail<ShapeError>(
            "where",
            fmt::format("mask {}, a {} and b {} cannot be broadcast together",
                        to_string(mask.shape()), to_string(a.shape()), to_string(b.shape())),
            loc);
    }
    // a one-element a or b enters as a scalar: where(mask, g, 0) stays one vectorised pass
    std::optional<Tensor> rows = where_rows(mask, a.value(), b.value());
    Tensor out = rows ? std::move(*rows) : dispatch(a.dtype(), [&]<class T>() {
        return dispatch(mask.dtype(), [&]<class M>() {
            const auto set = xt::not_equal(mask.xt<M>(), M(0));
            const auto& u = a.value().xt<T>();
            const auto& v = b.value().xt<T>();
            if (b.numel() == 1 && b.dim() <= a.dim())
                return Tensor(Array<T>(xt::where(set, u, v.data()[0])));
            if (a.numel() == 1 && a.dim() <= b.dim())
                return Tensor(Array<T>(xt::where(set, u.data()[0], v)));
            return Tensor(Array<T>(xt::where(set, u, v)));
        });
    });
    return record(
        "where", std::move(out), {a, b},
        [mask](Backward& bw) {
            // the gradient flows to a where the mask is set, to b elsewhere
            const Variable zero = constant(0.0, bw.grad_out().dtype());
            if (bw.needs(0)) bw.add(0, where(mask, bw.grad_out(), zero));
            if (bw.needs(1)) bw.add(1, where(mask, zero, bw.grad_out()));
        },
        loc);
}

namespace {
// lerp's value, s + w (e - s), with broadcasting; operands of one shape are read in place.
Tensor lerp_kernel(const Tensor& s, const Tensor& e, const Tensor& w) {
    return dispatch(s.dtype(), [&]<class T>() {
        if (s.shape() == e.shape() && s.shape() == w.shape())
            if (const auto runs = kernels::shared_runs<T, 3>({&s, &e, &w})) {
                const auto& [rs, re, rw] = *runs;
                auto out = Array<T>::from_shape(s.shape());
                T* o = out.data();
                for (std::size_t r = 0; r < rs.rows; ++r, o += rs.cols) {
                    const T *ps = rs.row(r), *pe = re.row(r), *pw = rw.row(r);
                    for (std::size_t j = 0; j < rs.cols; ++j)
                        o[j] = ps[j] + pw[j] * (pe[j] - ps[j]);
                }
                return Tensor(std::move(out));
            }
        const auto &u = s.xt<T>(), &v = e.xt<T>(), &x = w.xt<T>();
        return Tensor(Array<T>(u + x * (v - u)));
    });
}

// lerp's gradients in one pass, for g, start, end and weight of one shape: g (1 - w) to
// start, g w to end, g (e - s) to weight, each only where `needs` says. Empty when the
// operands' runs do not line up (shared_runs).
std::optional<std::array<Tensor, 3>> lerp_grads(const Tensor& g, const Tensor& s, const Tensor& e,
                                                const Tensor& w, std::array<bool, 3> needs) {
    return dispatch(g.dtype(), [&]<class T>() -> std::optional<std::array<Tensor, 3>> {
        const auto runs = kernels::shared_runs<T, 4>({&g, &s, &e, &w});
        if (!runs) return std::nullopt;
        const auto& [rg, rs, re, rw] = *runs;
        std::array<Array<T>, 3> out;
        for (std::size_t i = 0; i < 3; ++i)
            if (needs[i]) out[i] = Array<T>::from_shape(g.shape());
        // a loop per gradient, each over one run (in L1 for the next): a store under `if`
        // in one shared loop kept GCC from vectorizing it
        for (std::size_t r = 0, at = 0; r < rg.rows; ++r, at += rg.cols) {
            const T* __restrict pg = rg.row(r), * __restrict ps = rs.row(r), * __restrict pe = re.row(r), * __restrict pw = rw.row(r);
            const std::size_t n = rg.cols;
            if (T* __restrict os = needs[0] ? out[0].data() + at : nullptr)
                for (std::size_t j = 0; j < n; ++j) os[j] = pg[j] - pg[j] * pw[j];
            if (T* __restrict oe = needs[1] ? out[1].data() + at : nullptr)
                for (std::size_t j = 0; j < n; ++j) oe[j] = pg[j] * pw[j];
            if (T* __restrict ow = needs[2] ? out[2].data() + at : nullptr)
                for (std::size_t j = 0; j < n; ++j) ow[j] = pg[j] * (pe[j] - ps[j]);
        }
        std::array<Tensor, 3> grads;
        for (std::size_t i = 0; i < 3; ++i)
            if (needs[i]) grads[i] = Tensor(std::move(out[i]));
        return grads;
    });
}
}  // namespace

Variable lerp(const Variable& start, const Variable& end, const Variable& weight, const Loc& loc) {
    const char* op = "lerp";
    check_binary(op, start, end, loc);
    check_binary(op, start, weight, loc);
    try {
        broadcast_shapes(op, broadcast_shapes(op, start.shape(), end.shape(), loc), weight.shape(),
                         loc);
    } catch (const ShapeError&) {
        fail<ShapeError>(op,
                         fmt::format("start {}, end {} and weight {} cannot be broadcast together",
                                     to_string(start.shape()), to_string(end.shape()),
                                     to_string(weight.shape())),
                         loc);
    }
    // the rule reads start and end only for weight's gradient
    const Reads reads{.inputs = weight.requires_grad() ? all_inputs : input_mask(2),
                      .result = false};
    return record(
        op, lerp_kernel(start.value(), end.value(), weight.value()), {start, end, weight}, reads,
        [](Backward& bw) {
            const Variable &g = bw.grad_out(), &s = bw.input(0), &e = bw.input(1), &w = bw.input(2);
            // a plain backward on operands of one shape: one pass
            if (!grad_enabled() && g.shape() == s.shape() && g.shape() == e.shape() &&
                g.shape() == w.shape())
                if (const auto grads = lerp_grads(g.value(), s.value(), e.value(), w.value(),
                                                  {bw.needs(0), bw.needs(1), bw.needs(2)})) {
                    for (std::size_t i = 0; i < 3; ++i)
                        if ((*grads)[i].defined()) bw.add(i, Variable((*grads)[i]));
                    return;
                }
            const Variable g_end = g * w;
            if (bw.needs(0)) bw.add(0, g - g_end);
            if (bw.needs(1)) bw.add(1, g_end);
            if (bw.needs(2)) bw.add(2, g * (e - s));
        },
        loc);
}

}  // namespace tapegrad
