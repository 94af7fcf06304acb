#include "ops/shape.hpp"

#include <algorithm>

#include "core/tape.hpp"
#include "ops/support.hpp"

namespace tapegrad {

using ops::describe;

namespace {
// Row-major strides of `shape`, in elements.
std::vector<std::size_t> strides_of(const Shape& shape) {
    std::vector<std::size_t> stride(shape.size());
    for (std::size_t d = shape.size(), s = 1; d-- > 0;) {
        stride[d] = s;
        s *= shape[d];
    }
    return stride;
}

// Calls f(k, offset) for k = 0, 1, ... over the row-major positions of shape[0 : n], with
// offset = sum_d index_d stride[d].
template <class F>
void for_each_offset(const Shape& shape, std::size_t n, const std::vector<std::size_t>& stride,
                     F&& f) {
    std::vector<std::size_t> idx(n, 0);
    std::size_t count = 1;
    for (std::size_t d = 0; d < n; ++d) count *= shape[d];
    for (std::size_t k = 0; k < count; ++k) {
        std::size_t offset = 0;
        for (std::size_t d = 0; d < n; ++d) offset += idx[d] * stride[d];
        f(k, offset);
        for (std::size_t d = n; d-- > 0;) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

// out[i] = in[sum_d i_d stride[d]] over the row-major positions i of `shape`: a permutation
// (permuted strides) or a broadcast (stride 0 along repeated axes). Rows of the last axis are
// filled or copied; when they are strided (a transpose), 32x32 tiles of the last two axes are,
// so that the reads stay in cache.
Tensor strided_copy(const Tensor& in, const Shape& shape, const std::vector<std::size_t>& stride) {
    return dispatch(in.dtype(), [&]<class T>() {
        auto out = Array<T>::from_shape(shape);
        const T* src = in.xt<T>().data();
        T* dst = out.data();
        const std::size_t dim = shape.size();
        if (dim == 0 || out.size() == 0) {
            if (out.size() == 1) dst[0] = src[0];
            return Tensor(std::move(out));
        }
        const std::size_t inner = shape[dim - 1], step = stride[dim - 1];
        if (step <= 1 || dim == 1) {
            for_each_offset(shape, dim - 1, stride, [&](std::size_t k, std::size_t o) {
                if (step == 0) std::fill_n(dst + k * inner, inner, src[o]);
                else std::copy_n(src + o, inner, dst + k * inner);
            });
            return Tensor(std::move(out));
        }
        constexpr std::size_t tile = 32;
        const std::size_t rows = shape[dim - 2], row_step = stride[dim - 2];
        for_each_offset(shape, dim - 2, stride, [&](std::size_t k, std::size_t o) {
            T* block = dst + k * rows * inner;
            for (std::size_t i0 = 0; i0 < rows; i0 += tile)
                for (std::size_t j0 = 0; j0 < inner; j0 += tile)
                    for (std::size_t j = j0; j < std::min(j0 + tile, inner); ++j)
                        for (std::size_t i = i0; i < std::min(i0 + tile, rows); ++i)
                            block[i * inner + j] = src[o + i * row_step + j * step];
        });
        return Tensor(std::move(out));
    });
}
}  // namespace

Variable reshape(const Variable& x, const Shape& shape, const Loc& loc) {
    ops::require_defined("reshape", x, loc);
    if (numel(shape) != x.numel())
        fail<ShapeError>("reshape",
                         fmt::format("cannot reshape {} ({} elements) to {}", to_string(x.shape()),
                                     x.numel(), to_string(shape)),
                         loc);
    if (shape == x.shape()) return x;
    // elements that lie in one run are not moved: the result is a view of them, as in PyTorch
    const Tensor& v = x.value();
    const bool one_run = dispatch(v.dtype(), [&]<class T>() { return v.rows<T>().contiguous(); });
    Tensor out = one_run ? Tensor::view(v, shape, 0, 1, v.numel(), v.numel())
                         : dispatch(x.dtype(), [&]<class T>() {
                               Array<T> a = v.xt<T>();
                               a.reshape(shape);
                               return Tensor(std::move(a));
                           });
    return record(
        "reshape", std::move(out), {x}, {.inputs = no_inputs, .result = false},
        [](Backward& bw) { bw.add(0, reshape(bw.grad_out(), bw.input(0).shape())); }, loc);
}

Variable reshape(const Variable& x, const std::vector<long>& shape, const Loc& loc) {
    ops::require_defined("reshape", x, loc);
    Shape target(shape.size());
    std::size_t known = 1;
    long infer = -1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1 && infer < 0) {
            infer = static_cast<long>(i);
        } else if (shape[i] < 0) {
            fail<ShapeError>("reshape",
                             fmt::format("invalid size {} at axis {} (only one -1 is "
                                         "allowed)",
                                         shape[i], i),
                             loc);
        } else {
            target[i] = static_cast<std::size_t>(shape[i]);
            known *= target[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || x.numel() % known != 0)
            fail<ShapeError>("reshape",
                             fmt::format("cannot infer the -1 size: {} elements into "
                                         "parts of {}",
                                         x.numel(), known),
                             loc);
        target[static_cast<std::size_t>(infer)] = x.numel() / known;
    }
    return reshape(x, target, loc);
}

namespace {
// The one permutation kernel behind permute and transpose; `op` names the caller.
Variable permute_as(const char* op, const Variable& x, const std::vector<std::size_t>& perm,
                    const Loc& loc) {
    std::vector<long> inverse(perm.size());
    bool identity = true;
    for (std::size_t i = 0; i < perm.size(); ++i) {
        inverse[perm[i]] = static_cast<long>(i);
        identity = identity && perm[i] == i;
    }
    if (identity) return x;
    const auto in_stride = strides_of(x.shape());
    Shape shape(perm.size());
    std::vector<std::size_t> stride(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) {
        shape[i] = x.shape()[perm[i]];
        stride[i] = in_stride[perm[i]];
    }
    Tensor out = strided_copy(x.value(), shape, stride);
    return record(
        op, std::move(out), {x},
        [inverse](Backward& bw) {
            // result axis i is x's axis perm[i], so x = result permuted by perm⁻¹
            bw.add(0, permute(bw.grad_out(), inverse));
        },
        loc);
}
}  // namespace

Variable permute(const Variable& x, const std::vector<long>& dims, const Loc& loc) {
    ops::require_defined("permute", x, loc);
    if (dims.size() != x.dim())
        fail<ShapeError>("permute",
                         fmt::format("dims [{}] name {} axes for {}", fmt::join(dims, ","),
                                     dims.size(), describe(x.value())),
                         loc);
    std::vector<std::size_t> perm(dims.size());
    std::vector<bool> seen(dims.size(), false);
    for (std::size_t i = 0; i < dims.size(); ++i) {
        perm[i] = ops::normalize_axis("permute", dims[i], x.dim(), loc);
        if (seen[perm[i]])
            fail<ShapeError>("permute",
                             fmt::format("dims [{}] repeat axis {} of {}", fmt::join(dims, ","),
                                         perm[i], to_string(x.shape())),
                             loc);
        seen[perm[i]] = true;
    }
    return permute_as("permute", x, perm, loc);
}

Variable transpose(const Variable& x, long axis0, long axis1, const Loc& loc) {
    ops::require_defined("transpose", x, loc);
    if (x.dim() < 2)
        fail<ShapeError>("transpose",
                         fmt::format("needs a tensor of rank >= 2, got {}", describe(x.value())),
                         loc);
    const auto a0 = ops::normalize_axis("transpose", axis0, x.dim(), loc);
    const auto a1 = ops::normalize_axis("transpose", axis1, x.dim(), loc);
    std::vector<std::size_t> perm(x.dim());
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
    std::swap(perm[a0], perm[a1]);
    return permute_as("transpose", x, perm, loc);
}

Variable squeeze(const Variable& x, const Loc& loc) {
    ops::require_defined("squeeze", x, loc);
    Shape kept;
    for (auto n : x.shape())
        if (n != 1) kept.push_back(n);
    return reshape(x, kept, loc);
}

Variable squeeze(const Variable& x, long axis, const Loc& loc) {
    ops::require_defined("squeeze", x, loc);
    const auto a = ops::normalize_axis("squeeze", axis, x.dim(), loc);
    if (x.shape()[a] != 1)
        fail<ShapeError>("squeeze",
                         fmt::format("axis {} of {} has size {}, not 1", axis, to_string(x.shape()),
                                     x.shape()[a]),
                         loc);
    Shape kept = x.shape();
    kept.erase(kept.begin() + static_cast<long>(a));
    return reshape(x, kept, loc);
}

Variable unsqueeze(const Variable& x, long axis, const Loc& loc) {
    ops::require_defined("unsqueeze", x, loc);
    const auto a = ops::normalize_axis("unsqueeze", axis, x.dim() + 1, loc);
    Shape grown;  // (svector::insert trips a GCC 12 -Warray-bounds false positive)
    for (std::size_t d = 0; d <= x.dim(); ++d) {
        if (d == a) grown.push_back(1);
        if (d < x.dim()) grown.push_back(x.shape()[d]);
    }
    return reshape(x, grown, loc);
}

Variable broadcast_to(const Variable& x, const Shape& shape, const Loc& loc) {
    ops::require_defined("broadcast_to", x, loc);
    if (ops::broadcast_shapes("broadcast_to", x.shape(), shape, loc) != shape)
        fail<ShapeError>(
            "broadcast_to",
            fmt::format("{} cannot be broadcast to {}", to_string(x.shape()), to_string(shape)),
            loc);
    if (x.shape() == shape) return x;
    // x's strides aligned at the right of `shape`, 0 along the axes it repeats
    const auto in_stride = strides_of(x.shape());
    const std::size_t lead = shape.size() - x.dim();
    std::vector<std::size_t> stride(shape.size(), 0);
    for (std::size_t d = lead; d < shape.size(); ++d)
        if (x.shape()[d - lead] != 1) stride[d] = in_stride[d - lead];
    Tensor out = strided_copy(x.value(), shape, stride);
    return record(
        "broadcast_to", std::move(out), {x},
        [](Backward& bw) { bw.add(0, sum_to(bw.grad_out(), bw.input(0).shape())); }, loc);
}

Variable sum_to(const Variable& x, const Shape& shape, const Loc& loc) {
    ops::require_defined("sum_to", x, loc);
    if (x.shape() == shape) return x;
    if (shape.size() > x.dim() ||
        ops::broadcast_shapes("sum_to", x.shape(), shape, loc) != x.shape())
        fail<ShapeError>(
            "sum_to",
            fmt::format("{} cannot be summed to {}", to_string(x.shape()), to_string(shape)), loc);
    // Axes to reduce: the leading ones x has in excess, and those where shape has size 1.
    std::vector<bool> reduce(x.dim(), false);
    const std::size_t lead = x.dim() - shape.size();
    for (std::size_t i = 0; i < x.dim(); ++i)
        reduce[i] = i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1);
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        Array<T> r = kernels::sum_axes(x.value().xt<T>(), reduce);
        r.reshape(shape);
        return Tensor(std::move(r));
    });
    return record(
        "sum_to", std::move(out), {x},
        [](Backward& bw) { bw.add(0, broadcast_to(bw.grad_out(), bw.input(0).shape())); }, loc);
}

}  // namespace tapegrad
