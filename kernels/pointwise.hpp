// Array-level kernels shared by the ops: elementwise maps, row-wise reductions vectorised with
// xsimd, and zips over broadcast operands. They know tensors, not variables or the tape.
#pragma once

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <vector>
#include <xsimd/xsimd.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

#include "core/tensor.hpp"

namespace tapegrad::kernels {

// result = f(x) elementwise; f receives the xtensor array and returns an expression.
template <class F>
Tensor map(const Tensor& x, F&& f) {
    return dispatch(x.dtype(), [&]<class T>() { return Tensor(f(x.xt<T>())); });
}

// ---- Row-wise reductions (max, min, logsumexp, var), vectorised with xsimd ----

// Visits the innermost rows of a row-major array of `shape`: f(row, o), where the row's
// elements start at row * shape.back(), and o is the flat offset of its first element in
// the array reduced over the axes flagged in `reduce` (kept as size 1). A 0-d array is one
// row of one element.
template <class F>
void for_each_row(const Shape& shape, const std::vector<bool>& reduce, F&& f) {
    const std::size_t dim = shape.size();
    if (dim == 0) {
        f(std::size_t(0), std::size_t(0));
        return;
    }
    if (numel(shape) == 0) return;
    std::vector<std::size_t> ostride(dim, 0);  // 0 along reduced axes
    for (std::size_t d = dim, s = 1; d-- > 0;) {
        if (!reduce[d]) ostride[d] = s;
        s *= reduce[d] ? 1 : shape[d];
    }
    std::vector<std::size_t> idx(dim, 0);
    for (std::size_t row = 0, rows = numel(shape) / shape[dim - 1]; row < rows; ++row) {
        std::size_t o = 0;
        for (std::size_t d = 0; d + 1 < dim; ++d) o += idx[d] * ostride[d];
        f(row, o);
        for (std::size_t d = dim - 1; d-- > 0;) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

// The innermost rows of an array of `shape` reduced over the flagged axes: each has `inner`
// elements, and `inner_reduced` says whether a row folds into one element of the result or
// maps onto `inner` consecutive ones.
struct RowLayout {
    std::size_t inner;
    bool inner_reduced;
};
inline RowLayout row_layout(const Shape& shape, const std::vector<bool>& reduce) {
    return {shape.empty() ? 1 : shape.back(), shape.empty() || reduce.back()};
}

// for_each_row over the rows of `in`: f(row's first element, o).
template <class T, class F>
void for_each_row(const Array<T>& in, const std::vector<bool>& reduce, F&& f) {
    const std::size_t inner = row_layout(in.shape(), reduce).inner;
    for_each_row(in.shape(), reduce,
                 [&](std::size_t row, std::size_t o) { f(in.data() + row * inner, o); });
}

// The result of reducing `in` over the flagged axes (kept as size 1), filled with `init`.
template <class T>
Array<T> reduced_array(const Array<T>& in, const std::vector<bool>& reduce, T init) {
    Shape out_shape = in.shape();
    for (std::size_t d = 0; d < out_shape.size(); ++d)
        if (reduce[d]) out_shape[d] = 1;
    auto out = Array<T>::from_shape(out_shape);
    out.fill(init);
    return out;
}

// Folds `in` over the flagged axes (kept as size 1), starting from `init`: an element v
// replaces the running value a where pick(v, a) holds. pick must accept both T and
// xsimd::batch<T> (see max_axes).
template <class T, class Pick>
Array<T> fold_axes(const Array<T>& in, const std::vector<bool>& reduce, T init, Pick pick) {
    using B = xsimd::batch<T>;
    auto out = reduced_array(in, reduce, init);
    const auto [inner, inner_reduced] = row_layout(in.shape(), reduce);
    T* dst = out.data();
    for_each_row(in, reduce, [&](const T* src, std::size_t o) {
        std::size_t j = 0;
        if (inner_reduced) {  // the row folds into dst[o]
            T acc = dst[o];
            if (inner >= B::size) {
                B vacc(acc);
                for (; j + B::size <= inner; j += B::size) {
                    B v = B::load_unaligned(src + j);
                    vacc = xsimd::select(pick(v, vacc), v, vacc);
                }
                T lanes[B::size];
                vacc.store_unaligned(lanes);
                for (T v : lanes) acc = pick(v, acc) ? v : acc;
            }
            for (; j < inner; ++j) acc = pick(src[j], acc) ? src[j] : acc;
            dst[o] = acc;
        } else {  // the row folds elementwise into dst[o .. o + inner)
            for (; j + B::size <= inner; j += B::size) {
                B v = B::load_unaligned(src + j), a = B::load_unaligned(dst + o + j);
                xsimd::select(pick(v, a), v, a).store_unaligned(dst + o + j);
            }
            for (; j < inner; ++j) dst[o + j] = pick(src[j], dst[o + j]) ? src[j] : dst[o + j];
        }
    });
    return out;
}

// Largest / smallest element over the flagged axes (kept as size 1); NaN propagates. (NaN is
// tested with isnan: xsimd 8.1's batch != is an ordered compare, false for NaN != NaN.)
template <class T>
Array<T> max_axes(const Array<T>& in, const std::vector<bool>& reduce) {
    return fold_axes(in, reduce, -std::numeric_limits<T>::infinity(),
                     [](const auto& v, const auto& a) { return (v > a) | xsimd::isnan(v); });
}
template <class T>
Array<T> min_axes(const Array<T>& in, const std::vector<bool>& reduce) {
    return fold_axes(in, reduce, std::numeric_limits<T>::infinity(),
                     [](const auto& v, const auto& a) { return (v < a) | xsimd::isnan(v); });
}

// Σ f(x, k) over the flagged axes (kept as size 1), where k is the element of `kept` (an
// array of the reduced shape, flat) for x's group. f must accept both T and xsimd::batch<T>.
template <class T, class F>
Array<T> sum_map_axes(const Array<T>& in, const std::vector<bool>& reduce, const T* kept, F f) {
    using B = xsimd::batch<T>;
    auto out = reduced_array(in, reduce, T(0));
    const auto [inner, inner_reduced] = row_layout(in.shape(), reduce);
    T* dst = out.data();
    for_each_row(in, reduce, [&](const T* src, std::size_t o) {
        std::size_t j = 0;
        if (inner_reduced) {
            const T k = kept[o];
            T acc = T(0);
            if (inner >= B::size) {
                B vacc(T(0)), vk(k);
                for (; j + B::size <= inner; j += B::size)
                    vacc += f(B::load_unaligned(src + j), vk);
                acc = xsimd::hadd(vacc);
            }
            for (; j < inner; ++j) acc += f(src[j], k);
            dst[o] += acc;
        } else {
            for (; j + B::size <= inner; j += B::size) {
                B a = B::load_unaligned(dst + o + j);
                (a + f(B::load_unaligned(src + j), B::load_unaligned(kept + o + j)))
                    .store_unaligned(dst + o + j);
            }
            for (; j < inner; ++j) dst[o + j] += f(src[j], kept[o + j]);
        }
    });
    return out;
}

// Sums a row-major array over the axes flagged in `reduce`, keeping them as size 1.
template <class T>
Array<T> sum_axes(const Array<T>& in, const std::vector<bool>& reduce) {
    const auto unused = reduced_array(in, reduce, T(0));  // sum_map_axes' `kept`, ignored here
    return sum_map_axes(in, reduce, unused.data(), [](const auto& x, const auto&) { return x; });
}

// Gradient weights of a max or min reduction: 1/k on each of the k elements of a group equal
// to the group's extreme value (`extreme`, flat, of the reduced shape), 0 elsewhere.
template <class T>
Array<T> tie_weights(const Array<T>& in, const std::vector<bool>& reduce, const T* extreme) {
    const auto [inner, inner_reduced] = row_layout(in.shape(), reduce);
    Shape kept_shape = in.shape();
    for (std::size_t d = 0; d < kept_shape.size(); ++d)
        if (reduce[d]) kept_shape[d] = 1;
    std::vector<std::size_t> count(numel(kept_shape), 0);
    for_each_row(in, reduce, [&](const T* src, std::size_t o) {
        if (inner_reduced) {
            std::size_t c = 0;
            for (std::size_t j = 0; j < inner; ++j) c += src[j] == extreme[o];
            count[o] += c;
        } else {
            for (std::size_t j = 0; j < inner; ++j) count[o + j] += src[j] == extreme[o + j];
        }
    });
    std::vector<T> share(count.size());
    for (std::size_t k = 0; k < count.size(); ++k) share[k] = count[k] ? T(1) / T(count[k]) : T(0);
    auto out = Array<T>::from_shape(in.shape());
    for_each_row(in.shape(), reduce, [&](std::size_t row, std::size_t o) {
        const T* src = in.data() + row * inner;
        T* dst = out.data() + row * inner;
        if (inner_reduced) {
            for (std::size_t j = 0; j < inner; ++j) dst[j] = src[j] == extreme[o] ? share[o] : T(0);
        } else {
            for (std::size_t j = 0; j < inner; ++j)
                dst[j] = src[j] == extreme[o + j] ? share[o + j] : T(0);
        }
    });
    return out;
}

// f(x, y) with NumPy broadcasting (shapes already validated), for f written on xtensor
// expressions as in zip. Equal shapes go straight through; an operand of one element whose
// rank does not exceed the other's enters as a scalar; operands broadcast along outer axes
// (a reduction's kept shape against the full one, a bias row) are computed row by row on
// contiguous rows. Each of these is a linear, SIMD assignment, where xtensor's own broadcast
// walks a stepper (~50x slower on a [64,1024] by [64,1] product). Other cases (short rows)
// use xtensor's broadcasting.
// Scalar: f also takes two scalars (plain arithmetic); equal shapes then run as a plain loop,
// which GCC vectorises, instead of an xtensor assignment (~0.25 us less per [32,128] call).
template <bool Scalar = false, class T, class F>
Array<T> zip_rows(const Array<T>& x, const Array<T>& y, F&& f) {
    if (x.shape() == y.shape()) {
        if constexpr (Scalar) {
            auto r = Array<T>::from_shape(x.shape());
            const T* px = x.data();
            const T* py = y.data();
            T* pr = r.data();
            for (std::size_t i = 0, n = r.size(); i < n; ++i) pr[i] = f(px[i], py[i]);
            return r;
        } else {
            return f(x, y);
        }
    }
    if (y.size() == 1 && y.dimension() <= x.dimension()) return f(x, y.data()[0]);
    if (x.size() == 1 && x.dimension() <= y.dimension()) return f(x.data()[0], y);
    const std::size_t dim = std::max(x.dimension(), y.dimension());
    Shape out(dim), sx(dim, 1), sy(dim, 1);
    std::copy(x.shape().begin(), x.shape().end(), sx.begin() + (dim - x.dimension()));
    std::copy(y.shape().begin(), y.shape().end(), sy.begin() + (dim - y.dimension()));
    for (std::size_t d = 0; d < dim; ++d) out[d] = std::max(sx[d], sy[d]);
    const std::size_t n = out[dim - 1];
    if (n < 16 || numel(out) == 0) return f(x, y);
    // element strides of x and y over the padded shapes, 0 along broadcast axes
    std::vector<std::size_t> tx(dim, 0), ty(dim, 0);
    for (std::size_t d = dim, px = 1, py = 1; d-- > 0;) {
        if (sx[d] != 1) tx[d] = px;
        if (sy[d] != 1) ty[d] = py;
        px *= sx[d];
        py *= sy[d];
    }
    auto r = Array<T>::from_shape(out);
    const std::array<std::size_t, 1> row_shape{n};
    auto row = [&](const T* p) { return xt::adapt(p, n, xt::no_ownership(), row_shape); };
    std::vector<std::size_t> idx(dim, 0);
    for (std::size_t i = 0, rows = numel(out) / n; i < rows; ++i) {
        std::size_t ox = 0, oy = 0;
        for (std::size_t d = 0; d + 1 < dim; ++d) {
            ox += idx[d] * tx[d];
            oy += idx[d] * ty[d];
        }
        auto dst = xt::adapt(r.data() + i * n, n, xt::no_ownership(), row_shape);
        const T* px = x.data() + ox;
        const T* py = y.data() + oy;
        if (sx[dim - 1] == n && sy[dim - 1] == n) xt::noalias(dst) = f(row(px), row(py));
        else if (sx[dim - 1] == n) xt::noalias(dst) = f(row(px), *py);
        else xt::noalias(dst) = f(*px, row(py));
        for (std::size_t d = dim - 1; d-- > 0;) {  // advance the outer index
            if (++idx[d] < out[d]) break;
            idx[d] = 0;
        }
    }
    return r;
}

// Tensors of one shape as runs of contiguous elements, read in place (Tensor::rows), all cut
// alike: the runs of the views pace them, a contiguous tensor is cut to match. Every result
// has the same rows and cols; row r of each holds the same flat elements. Empty when two
// views' runs differ in length.
template <class T, std::size_t K>
std::optional<std::array<Tensor::Rows<T>, K>> shared_runs(std::array<Tensor::Rows<T>, K> rs) {
    const std::size_t n = rs[0].rows * rs[0].cols;
    std::size_t cols = n;
    for (const auto& r : rs) {
        if (r.contiguous()) continue;
        if (cols != n && cols != r.cols) return std::nullopt;
        cols = r.cols;
    }
    for (auto& r : rs)
        if (r.contiguous()) r = {r.data, cols == 0 ? 0 : n / cols, cols, cols};
    return rs;
}
template <class T, std::size_t K>
std::optional<std::array<Tensor::Rows<T>, K>> shared_runs(const std::array<const Tensor*, K>& ts) {
    std::array<Tensor::Rows<T>, K> rs;
    for (std::size_t k = 0; k < K; ++k) rs[k] = ts[k]->template rows<T>();
    return shared_runs<T, K>(rs);
}

// f(a, b) on scalars for two tensors of one shape, read in place (shared_runs), written to
// `out` laid out as `out_rows` (which `out` is the writable start of). False when the runs
// of two views differ in length.
template <class T, class F>
bool zip_runs_into(const Tensor& a, const Tensor& b, Tensor::Rows<T> out_rows, T* out, F&& f) {
    const auto runs = shared_runs<T, 3>({a.rows<T>(), b.rows<T>(), out_rows});
    if (!runs) return false;
    const auto& [ra, rb, ro] = *runs;
    for (std::size_t r = 0; r < ro.rows; ++r) {
        const T* pa = ra.row(r);
        const T* pb = rb.row(r);
        T* o = out + (ro.row(r) - ro.data);
        for (std::size_t j = 0; j < ro.cols; ++j) o[j] = f(pa[j], pb[j]);
    }
    return true;
}

// zip_runs_into a new tensor (written in place: no array moved into it).
template <class T, class F>
std::optional<Tensor> zip_runs(const Tensor& a, const Tensor& b, F&& f) {
    Tensor out = Tensor::empty(a.shape(), dtype_of<T>());
    T* o = out.mutable_xt<T>().data();
    const std::size_t n = a.numel();
    if (!zip_runs_into<T>(a, b, {o, 1, n, n}, o, f)) return std::nullopt;
    return out;
}

// zip_rows<true> over tensors; operands of one shape go through zip_runs, so views are not
// copied first.
template <class T, class F>
Tensor zip_tensors(const Tensor& a, const Tensor& b, F&& f) {
    if (a.shape() == b.shape())
        if (auto r = zip_runs<T>(a, b, f)) return std::move(*r);
    return Tensor(zip_rows<true>(a.xt<T>(), b.xt<T>(), f));
}

// result = f(a, b) with broadcasting (shapes validated by the caller), through zip_rows:
// same shapes, a scalar operand and outer-axis broadcasting run as contiguous rows. f is plain
// arithmetic (add, sub, mul, div), valid on scalars too.
template <class F>
Tensor zip(const Tensor& a, const Tensor& b, F&& f) {
    return dispatch(a.dtype(), [&]<class T>() { return zip_tensors<T>(a, b, f); });
}

// xtensor keeps a named scalar in an expression by reference, and the expression f returns is
// evaluated after f has returned: the `one` pointwise_grad passes must outlive it (a
// parameter taken by value would not — its stack slot is dead by then), hence static storage.
template <class T>
inline constexpr T one_v = T(1);

}  // namespace tapegrad::kernels
