// Shared helpers for writing ops: input validation with tapegrad errors, and dtype-dispatched
// xtensor kernels. Internal to ops/; users write ops with record() and Variable ops.
#pragma once

#include <source_location>
#include <string>

#include <fmt/format.h>
#include <xtensor/xarray.hpp>

#include "core/variable.hpp"

namespace tapegrad::kernels {

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
        fail<DTypeError>(op, fmt::format("dtypes differ: {} and {}", describe(a.value()),
                                         describe(b.value())), loc);
}

// NumPy broadcasting: shapes align at the right; each pair of sizes is equal or one is 1.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b,
                       const std::source_location& loc);

// Normalises a possibly negative axis for a tensor of rank `dim`.
std::size_t normalize_axis(const char* op, long axis, std::size_t dim,
                           const std::source_location& loc);

// result = f(x) elementwise; f receives the xtensor array and returns an expression.
template <class F>
Tensor map(const Tensor& x, F&& f) {
    return dispatch(x.dtype(), [&]<class T>() { return Tensor(xt::xarray<T>(f(x.xt<T>()))); });
}

// result = f(a, b) with broadcasting (shapes validated by the caller).
template <class F>
Tensor zip(const Tensor& a, const Tensor& b, F&& f) {
    return dispatch(a.dtype(), [&]<class T>() {
        return Tensor(xt::xarray<T>(f(a.xt<T>(), b.xt<T>())));
    });
}

// Sums a row-major array over the axes flagged in `reduce`, keeping them as size 1.
template <class T>
xt::xarray<T> sum_axes(const xt::xarray<T>& in, const std::vector<bool>& reduce) {
    const auto& shape = in.shape();
    const std::size_t dim = shape.size();
    Shape out_shape = shape;
    for (std::size_t d = 0; d < dim; ++d)
        if (reduce[d]) out_shape[d] = 1;
    auto out = xt::xarray<T>::from_shape(out_shape);
    out.fill(T(0));
    if (in.size() == 0) return out;
    if (dim == 0) {
        out.data()[0] = in.data()[0];
        return out;
    }
    // Output strides, 0 along reduced axes: input element i adds into out[sum idx_d * ostride_d].
    std::vector<std::size_t> ostride(dim, 0);
    for (std::size_t d = dim, s = 1; d-- > 0;) {
        if (!reduce[d]) ostride[d] = s;
        s *= out_shape[d];
    }
    const std::size_t inner = shape[dim - 1];
    const bool inner_reduced = reduce[dim - 1];
    std::vector<std::size_t> idx(dim, 0);
    const T* src = in.data();
    T* dst = out.data();
    for (std::size_t row = 0, rows = in.size() / inner; row < rows; ++row) {
        std::size_t o = 0;
        for (std::size_t d = 0; d + 1 < dim; ++d) o += idx[d] * ostride[d];
        if (inner_reduced) {
            T acc = T(0);
            for (std::size_t j = 0; j < inner; ++j) acc += src[j];
            dst[o] += acc;
        } else {
            for (std::size_t j = 0; j < inner; ++j) dst[o + j] += src[j];
        }
        src += inner;
        for (std::size_t d = dim - 1; d-- > 0;) {  // advance the outer index
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    return out;
}

}  // namespace tapegrad::kernels
