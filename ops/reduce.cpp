#include "ops/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <xtensor/xmath.hpp>

#include "core/tape.hpp"
#include "ops/elementwise.hpp"
#include "ops/shape.hpp"
#include "ops/support.hpp"
#include "ops/unary.hpp"

namespace tapegrad {

namespace {
// Sorted, distinct, non-negative axes; all axes when `axes` is empty.
std::vector<std::size_t> reduction_axes(const char* op, const Variable& x,
                                        const std::vector<long>& axes, const Loc& loc) {
    std::vector<std::size_t> out;
    for (long a : axes) out.push_back(ops::normalize_axis(op, a, x.dim(), loc));
    if (axes.empty())
        for (std::size_t i = 0; i < x.dim(); ++i) out.push_back(i);
    std::sort(out.begin(), out.end());
    if (std::adjacent_find(out.begin(), out.end()) != out.end())
        fail<ShapeError>(
            op, fmt::format("an axis is repeated in the list for {}", to_string(x.shape())), loc);
    return out;
}

// What reducing x over some axes does to its shape.
struct Plan {
    std::vector<long> axes;    // normalised
    std::vector<bool> reduce;  // per axis of x
    Shape kept;                // reduced axes kept as size 1
    Shape dropped;             // reduced axes removed
    std::size_t count = 1;     // elements per reduced group
};

Plan plan(const char* op, const Variable& x, const std::vector<long>& axes, const Loc& loc) {
    Plan p;
    p.reduce.assign(x.dim(), false);
    for (auto a : reduction_axes(op, x, axes, loc)) {
        p.axes.push_back(static_cast<long>(a));
        p.reduce[a] = true;
        p.count *= x.shape()[a];
    }
    p.kept = x.shape();
    for (std::size_t d = 0; d < x.dim(); ++d) {
        if (p.reduce[d]) p.kept[d] = 1;
        else p.dropped.push_back(x.shape()[d]);
    }
    return p;
}

template <class T>
Tensor shaped(Array<T> r, const Plan& p, bool keepdims) {
    if (!keepdims) r.reshape(p.dropped);
    return Tensor(std::move(r));
}

// max (Max) or min over the planned axes.
template <bool Max>
Variable extreme(const char* op, const Variable& x, const std::vector<long>& axes, bool keepdims,
                 const Loc& loc) {
    ops::require_defined(op, x, loc);
    const Plan p = plan(op, x, axes, loc);
    if (p.count == 0)
        fail<ShapeError>(op, fmt::format("reduces {} over an empty axis", to_string(x.shape())),
                         loc);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        const auto& v = x.value().xt<T>();
        return shaped(Max ? kernels::max_axes(v, p.reduce) : kernels::min_axes(v, p.reduce), p,
                      keepdims);
    });
    return record(
        op, std::move(out), {x},
        [p](Backward& bw) {
            // d max = 1/k on each of the k elements equal to the max, 0 elsewhere
            const Variable r = bw.result();
            Tensor w = dispatch(r.dtype(), [&]<class T>() {
                return Tensor(kernels::tie_weights(bw.input(0).value().xt<T>(), p.reduce,
                                                   r.value().xt<T>().data()));
            });
            bw.add(0, reshape(bw.grad_out(), p.kept) * constant(w));
        },
        loc);
}

// The index of the largest (Max) or smallest element along one axis of x, as a value of x's
// dtype. Ties keep the first index; the first NaN wins over any number (PyTorch's GreaterOrNan
// and LessOrNan).
template <bool Max>
Variable arg_extreme(const char* op, const Variable& x, long axis, bool keepdims, const Loc& loc) {
    ops::require_defined(op, x, loc);
    const std::size_t a = ops::normalize_axis(op, axis, x.dim(), loc);
    const Shape& shape = x.shape();
    const std::size_t n = shape[a];
    if (n == 0)
        fail<ShapeError>(op,
                         fmt::format("axis {} of {} is empty: there is no index to return", axis,
                                     to_string(shape)),
                         loc);
    std::size_t outer = 1, inner = 1;
    Shape kept = shape, dropped;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (d < a) outer *= shape[d];
        if (d > a) inner *= shape[d];
        if (d != a) dropped.push_back(shape[d]);
    }
    kept[a] = 1;
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        auto r = Array<T>::from_shape(keepdims ? kept : dropped);
        const T* src = x.value().xt<T>().data();
        T* dst = r.data();
        for (std::size_t o = 0; o < outer; ++o)
            for (std::size_t i = 0; i < inner; ++i) {
                const T* p = src + o * n * inner + i;
                std::size_t best = 0;
                T v = p[0];
                for (std::size_t j = 1; j < n && !std::isnan(v); ++j) {
                    const T e = p[j * inner];
                    if (std::isnan(e) || (Max ? e > v : e < v)) {
                        best = j;
                        v = e;
                    }
                }
                dst[o * inner + i] = static_cast<T>(best);
            }
        return Tensor(std::move(r));
    });
    return constant(out);  // not recorded: indices have no gradient
}

// x's shape around one axis: `outer` lanes before it, `n` elements along it, `inner` after it.
// Element (o, j, i) of a contiguous array is at (o * n + j) * inner + i.
struct Lanes {
    std::size_t outer = 1, n = 0, inner = 1;
};

Lanes lanes(const Shape& shape, std::size_t axis) {
    Lanes l;
    l.n = shape[axis];
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (d < axis) l.outer *= shape[d];
        if (d > axis) l.inner *= shape[d];
    }
    return l;
}

// Runs step(k, prev, cur) over every lane of l in scan order: k counts steps from the lane's
// start (the front, or the back when `reverse`), prev and cur are the offsets of the previous
// step's and this step's element (prev is meaningless at k = 0). Lanes run side by side, the
// inner axis innermost, so a scan along a leading axis reads memory in order.
template <class F>
void scan(const Lanes& l, bool reverse, F&& step) {
    for (std::size_t o = 0; o < l.outer; ++o)
        for (std::size_t k = 0; k < l.n; ++k) {
            const std::size_t j = reverse ? l.n - 1 - k : k;
            const std::size_t jp = reverse ? j + 1 : j - 1;
            const std::size_t cur = (o * l.n + j) * l.inner, prev = (o * l.n + jp) * l.inner;
            for (std::size_t i = 0; i < l.inner; ++i) step(k, prev + i, cur + i);
        }
}

// log(exp(a) + exp(b)) without overflow: -Inf and -Inf give -Inf, +Inf wins, NaN propagates.
template <class T>
T log_add_exp(T a, T b) {
    if (std::isnan(a) || std::isnan(b)) return a + b;
    const T hi = std::max(a, b), lo = std::min(a, b);
    if (lo == -std::numeric_limits<T>::infinity() || hi == std::numeric_limits<T>::infinity())
        return hi;
    return hi + std::log1p(std::exp(lo - hi));
}

// logcumsumexp along `axis`, front to back or (reverse) back to front. The public op is the
// forward one; the reverse one is its gradient's building block under create_graph.
Variable log_cum_sum_exp(const Variable& x, std::size_t axis, bool reverse, const Loc& loc) {
    const Lanes l = lanes(x.shape(), axis);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        auto r = Array<T>::from_shape(x.shape());
        const T* src = x.value().xt<T>().data();
        T* dst = r.data();
        scan(l, reverse, [&](std::size_t k, std::size_t prev, std::size_t cur) {
            dst[cur] = k == 0 ? src[cur] : log_add_exp(dst[prev], src[cur]);
        });
        return Tensor(std::move(r));
    });
    return record(
        "logcumsumexp", std::move(out), {x},
        [axis, reverse, l, loc](Backward& bw) {
            // dL/dx_s = Σ_{t after s} g_t exp(x_s - y_t) ("after": in scan order, s included)
            const Variable& g = bw.grad_out();
            const Variable& x = bw.input(0);
            const Variable y = bw.result();
            if (!grad_enabled()) {
                // one pass back against the scan, with every factor <= 1 (y is monotone and
                // y_t >= x_t): Q_s = g_s + exp(y_s - y_next) Q_next, dL/dx_s = exp(x_s - y_s) Q_s
                // (a factor of two equal values is 1: -Inf prefixes pass their gradient on
                // to the element that starts them, as y_0 = x_0 does)
                bw.add(
                    0, Variable(dispatch(g.dtype(), [&]<class T>() {
                        auto q = Array<T>::from_shape(g.shape());
                        const T* gv = g.value().xt<T>().data();
                        const T* xv = x.value().xt<T>().data();
                        const T* yv = y.value().xt<T>().data();
                        T* dst = q.data();
                        const auto ratio = [](T a, T b) { return a == b ? T(1) : std::exp(a - b); };
                        scan(l, !reverse, [&](std::size_t k, std::size_t next, std::size_t cur) {
                            dst[cur] =
                                k == 0 ? gv[cur] : gv[cur] + ratio(yv[cur], yv[next]) * dst[next];
                        });
                        for (std::size_t e = 0; e < q.size(); ++e) dst[e] *= ratio(xv[e], yv[e]);
                        return Tensor(std::move(q));
                    })));
                return;
            }
            // under create_graph, with ops, in log space with g split by sign:
            // exp(x_s + logcumsumexp_back(log g±_t - y_t)_s)
            const DType dt = g.dtype();
            const auto mask = [&](bool positive) {
                return dispatch(dt, [&]<class T>() {
                    auto m = Array<T>::from_shape(g.shape());
                    const T* gv = g.value().xt<T>().data();
                    for (std::size_t e = 0; e < m.size(); ++e)
                        m.data()[e] = (positive ? gv[e] > T(0) : gv[e] < T(0)) ? T(1) : T(0);
                    return Tensor(std::move(m));
                });
            };
            const auto part = [&](bool positive) {
                const Tensor m = mask(positive);
                const Variable sg = positive ? g : -g;
                const Variable lg = where(m, log(where(m, sg, constant(1.0, dt))),
                                          constant(-std::numeric_limits<double>::infinity(), dt));
                return exp(log_cum_sum_exp(lg - y, axis, !reverse, loc) + x);
            };
            bw.add(0, part(true) - part(false));
        },
        loc);
}
}  // namespace

Variable sum(const Variable& x, const std::vector<long>& axes, bool keepdims, const Loc& loc) {
    ops::require_defined("sum", x, loc);
    const Plan p = plan("sum", x, axes, loc);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        return shaped(kernels::sum_axes(x.value().xt<T>(), p.reduce), p, keepdims);
    });
    return record(
        "sum", std::move(out), {x},
        [kept = p.kept](Backward& bw) {
            // every element of a summed group gets the group's gradient
            bw.add(0, broadcast_to(reshape(bw.grad_out(), kept), bw.input(0).shape()));
        },
        loc);
}

Variable sum(const Variable& x, const Loc& loc) { return sum(x, {}, false, loc); }

Variable mean(const Variable& x, const std::vector<long>& axes, bool keepdims, const Loc& loc) {
    ops::require_defined("mean", x, loc);
    const Plan p = plan("mean", x, axes, loc);
    if (p.count == 0) fail<ShapeError>("mean", "reduces over an empty axis", loc);
    return sum(x, axes, keepdims, loc) * (1.0 / static_cast<double>(p.count));
}

Variable mean(const Variable& x, const Loc& loc) { return mean(x, {}, false, loc); }

Variable max(const Variable& x, const std::vector<long>& axes, bool keepdims, const Loc& loc) {
    return extreme<true>("max", x, axes, keepdims, loc);
}
Variable max(const Variable& x, const Loc& loc) { return max(x, {}, false, loc); }

Variable min(const Variable& x, const std::vector<long>& axes, bool keepdims, const Loc& loc) {
    return extreme<false>("min", x, axes, keepdims, loc);
}
Variable min(const Variable& x, const Loc& loc) { return min(x, {}, false, loc); }

Variable argmax(const Variable& x, long axis, bool keepdims, const Loc& loc) {
    return arg_extreme<true>("argmax", x, axis, keepdims, loc);
}
Variable argmin(const Variable& x, long axis, bool keepdims, const Loc& loc) {
    return arg_extreme<false>("argmin", x, axis, keepdims, loc);
}

ValuesIndices max_with_indices(const Variable& x, long axis, bool keepdims, const Loc& loc) {
    return {max(x, std::vector<long>{axis}, keepdims, loc),
            argmax(x, axis, keepdims, loc).value().to(int64)};
}

ValuesIndices min_with_indices(const Variable& x, long axis, bool keepdims, const Loc& loc) {
    return {min(x, std::vector<long>{axis}, keepdims, loc),
            argmin(x, axis, keepdims, loc).value().to(int64)};
}

Variable logsumexp(const Variable& x, const std::vector<long>& axes, bool keepdims,
                   const Loc& loc) {
    ops::require_defined("logsumexp", x, loc);
    const Plan p = plan("logsumexp", x, axes, loc);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        const auto& v = x.value().xt<T>();
        // m + log Σ exp(x - m), m the max (0 where infinite: all -Inf gives -Inf, +Inf gives +Inf)
        Array<T> m = kernels::max_axes(v, p.reduce);
        for (T& e : m)
            if (std::isinf(e)) e = T(0);
        Array<T> s = kernels::sum_map_axes(
            v, p.reduce, m.data(), [](const auto& e, const auto& k) { return xsimd::exp(e - k); });
        return shaped(Array<T>(xt::log(s) + m), p, keepdims);
    });
    return record(
        "logsumexp", std::move(out), {x},
        [kept = p.kept](Backward& bw) {
            // d lse / dx = exp(x - lse): the softmax over the reduced axes
            bw.add(0, reshape(bw.grad_out(), kept) * exp(bw.input(0) - reshape(bw.result(), kept)));
        },
        loc);
}

Variable logsumexp(const Variable& x, const Loc& loc) { return logsumexp(x, {}, false, loc); }

Variable cumsum(const Variable& x, long axis, bool reverse, const Loc& loc) {
    ops::require_defined("cumsum", x, loc);
    const std::size_t a = ops::normalize_axis("cumsum", axis, x.dim(), loc);
    const Lanes l = lanes(x.shape(), a);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        auto r = Array<T>::from_shape(x.shape());
        const T* src = x.value().xt<T>().data();
        T* dst = r.data();
        scan(l, reverse, [&](std::size_t k, std::size_t prev, std::size_t cur) {
            dst[cur] = k == 0 ? src[cur] : dst[prev] + src[cur];
        });
        return Tensor(std::move(r));
    });
    return record(
        "cumsum", std::move(out), {x}, Reads{no_inputs, false},
        [axis = static_cast<long>(a), reverse](Backward& bw) {
            // x_s enters every y_t after it: its gradient sums g_t the other way
            bw.add(0, cumsum(bw.grad_out(), axis, !reverse));
        },
        loc);
}

Variable logcumsumexp(const Variable& x, long axis, const Loc& loc) {
    ops::require_defined("logcumsumexp", x, loc);
    return log_cum_sum_exp(x, ops::normalize_axis("logcumsumexp", axis, x.dim(), loc), false, loc);
}

Variable var(const Variable& x, const std::vector<long>& axes, double correction, bool keepdims,
             const Loc& loc) {
    ops::require_defined("var", x, loc);
    const Plan p = plan("var", x, axes, loc);
    const double dof = static_cast<double>(p.count) - correction;
    if (!(dof > 0))
        fail<ValueError>("var",
                         fmt::format("{} elements per group with correction {} leave no "
                                     "degrees of freedom (input {})",
                                     p.count, correction, ops::describe(x.value())),
                         loc);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        const auto& v = x.value().xt<T>();
        // two passes: the mean, then Σ (x - mean)^2
        Array<T> m = xt::zeros<T>(p.kept);
        m = kernels::sum_map_axes(v, p.reduce, m.data(),
                                  [](const auto& e, const auto&) { return e; });
        m /= static_cast<T>(p.count);
        Array<T> ss = kernels::sum_map_axes(
            v, p.reduce, m.data(), [](const auto& e, const auto& k) { return (e - k) * (e - k); });
        ss /= static_cast<T>(dof);
        return shaped(std::move(ss), p, keepdims);
    });
    return record(
        "var", std::move(out), {x},
        [p, scale = 2 / dof](Backward& bw) {
            // d var / dx = 2 (x - mean) / (N - correction)
            const Variable& x = bw.input(0);
            bw.add(0, (x - mean(x, p.axes, true)) * (reshape(bw.grad_out(), p.kept) * scale));
        },
        loc);
}

Variable var(const Variable& x, const Loc& loc) { return var(x, {}, 1, false, loc); }

}  // namespace tapegrad
