#include "ops/reduce.hpp"

#include <algorithm>
#include <xtensor/xreducer.hpp>
#include <xtensor/xmath.hpp>

#include "core/tape.hpp"
#include "ops/kernels.hpp"
#include "ops/shape.hpp"

namespace tapegrad {

namespace {
// Sorted, distinct, non-negative axes; all axes when `axes` is empty.
std::vector<std::size_t> reduction_axes(const char* op, const Variable& x,
                                        const std::vector<long>& axes, const Loc& loc) {
    std::vector<std::size_t> out;
    for (long a : axes) out.push_back(kernels::normalize_axis(op, a, x.dim(), loc));
    if (axes.empty())
        for (std::size_t i = 0; i < x.dim(); ++i) out.push_back(i);
    std::sort(out.begin(), out.end());
    if (std::adjacent_find(out.begin(), out.end()) != out.end())
        fail<ShapeError>(op, fmt::format("an axis is repeated in the list for {}",
                                         to_string(x.shape())), loc);
    return out;
}

Shape kept_shape(const Shape& in, const std::vector<std::size_t>& axes) {
    Shape out = in;
    for (auto a : axes) out[a] = 1;
    return out;
}
}  // namespace

Variable sum(const Variable& x, const std::vector<long>& axes_in, bool keepdims, const Loc& loc) {
    kernels::require_defined("sum", x, loc);
    const auto axes = reduction_axes("sum", x, axes_in, loc);
    const Shape kept = kept_shape(x.shape(), axes);
    std::vector<bool> reduce(x.dim(), false);
    Shape dropped;
    for (auto a : axes) reduce[a] = true;
    for (std::size_t d = 0; d < x.dim(); ++d)
        if (!reduce[d]) dropped.push_back(x.shape()[d]);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        xt::xarray<T> r = kernels::sum_axes(x.value().xt<T>(), reduce);
        if (!keepdims) r.reshape(dropped);
        return Tensor(std::move(r));
    });
    return record("sum", std::move(out), {x}, [kept](Backward& bw) {
        // every element of a summed group gets the group's gradient
        bw.add(0, broadcast_to(reshape(bw.grad_out(), kept), bw.input(0).shape()));
    }, loc);
}

Variable sum(const Variable& x, const Loc& loc) { return sum(x, {}, false, loc); }

Variable mean(const Variable& x, const std::vector<long>& axes, bool keepdims, const Loc& loc) {
    kernels::require_defined("mean", x, loc);
    std::size_t count = 1;
    for (auto a : reduction_axes("mean", x, axes, loc)) count *= x.shape()[a];
    if (count == 0) fail<ShapeError>("mean", "reduces over an empty axis", loc);
    return sum(x, axes, keepdims, loc) * (1.0 / static_cast<double>(count));
}

Variable mean(const Variable& x, const Loc& loc) { return mean(x, {}, false, loc); }

}  // namespace tapegrad
