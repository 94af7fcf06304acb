#include "ops/shape.hpp"

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xmath.hpp>

#include "core/tape.hpp"
#include "ops/kernels.hpp"

namespace tapegrad {

using kernels::describe;

Variable reshape(const Variable& x, const Shape& shape, const Loc& loc) {
    kernels::require_defined("reshape", x, loc);
    if (numel(shape) != x.numel())
        fail<ShapeError>("reshape", fmt::format("cannot reshape {} ({} elements) to {}",
                                                to_string(x.shape()), x.numel(), to_string(shape)),
                         loc);
    if (shape == x.shape()) return x;
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        xt::xarray<T> a = x.value().xt<T>();
        a.reshape(shape);
        return Tensor(std::move(a));
    });
    return record("reshape", std::move(out), {x}, [](Backward& bw) {
        bw.add(0, reshape(bw.grad_out(), bw.input(0).shape()));
    }, loc);
}

Variable reshape(const Variable& x, const std::vector<long>& shape, const Loc& loc) {
    kernels::require_defined("reshape", x, loc);
    Shape target(shape.size());
    std::size_t known = 1;
    long infer = -1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1 && infer < 0) {
            infer = static_cast<long>(i);
        } else if (shape[i] < 0) {
            fail<ShapeError>("reshape", fmt::format("invalid size {} at axis {} (only one -1 is "
                                                    "allowed)", shape[i], i), loc);
        } else {
            target[i] = static_cast<std::size_t>(shape[i]);
            known *= target[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || x.numel() % known != 0)
            fail<ShapeError>("reshape", fmt::format("cannot infer the -1 size: {} elements into "
                                                    "parts of {}", x.numel(), known), loc);
        target[static_cast<std::size_t>(infer)] = x.numel() / known;
    }
    return reshape(x, target, loc);
}

Variable transpose(const Variable& x, long axis0, long axis1, const Loc& loc) {
    kernels::require_defined("transpose", x, loc);
    if (x.dim() < 2)
        fail<ShapeError>("transpose", fmt::format("needs a tensor of rank >= 2, got {}",
                                                  describe(x.value())), loc);
    const auto a0 = kernels::normalize_axis("transpose", axis0, x.dim(), loc);
    const auto a1 = kernels::normalize_axis("transpose", axis1, x.dim(), loc);
    std::vector<std::size_t> perm(x.dim());
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
    std::swap(perm[a0], perm[a1]);
    Tensor out = kernels::map(x.value(), [&](const auto& v) { return xt::transpose(v, perm); });
    return record("transpose", std::move(out), {x}, [a0, a1](Backward& bw) {
        bw.add(0, transpose(bw.grad_out(), static_cast<long>(a0), static_cast<long>(a1)));
    }, loc);
}

Variable broadcast_to(const Variable& x, const Shape& shape, const Loc& loc) {
    kernels::require_defined("broadcast_to", x, loc);
    if (kernels::broadcast_shapes("broadcast_to", x.shape(), shape, loc) != shape)
        fail<ShapeError>("broadcast_to", fmt::format("{} cannot be broadcast to {}",
                                                     to_string(x.shape()), to_string(shape)), loc);
    if (x.shape() == shape) return x;
    Tensor out = kernels::map(x.value(), [&](const auto& v) { return xt::broadcast(v, shape); });
    return record("broadcast_to", std::move(out), {x}, [](Backward& bw) {
        bw.add(0, sum_to(bw.grad_out(), bw.input(0).shape()));
    }, loc);
}

Variable sum_to(const Variable& x, const Shape& shape, const Loc& loc) {
    kernels::require_defined("sum_to", x, loc);
    if (x.shape() == shape) return x;
    if (shape.size() > x.dim() ||
        kernels::broadcast_shapes("sum_to", x.shape(), shape, loc) != x.shape())
        fail<ShapeError>("sum_to", fmt::format("{} cannot be summed to {}", to_string(x.shape()),
                                               to_string(shape)), loc);
    // Axes to reduce: the leading ones x has in excess, and those where shape has size 1.
    std::vector<bool> reduce(x.dim(), false);
    const std::size_t lead = x.dim() - shape.size();
    for (std::size_t i = 0; i < x.dim(); ++i)
        reduce[i] = i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        xt::xarray<T> r = kernels::sum_axes(x.value().xt<T>(), reduce);
        r.reshape(shape);
        return Tensor(std::move(r));
    });
    return record("sum_to", std::move(out), {x}, [](Backward& bw) {
        bw.add(0, broadcast_to(bw.grad_out(), bw.input(0).shape()));
    }, loc);
}

}  // namespace tapegrad
