#include "ops/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <xtensor/xmath.hpp>

#include "core/tape.hpp"
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
