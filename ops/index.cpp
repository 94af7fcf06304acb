#include "ops/index.hpp"

#include <algorithm>
#include <functional>
#include <memory>
#include <utility>

#include "core/counters.hpp"
#include "core/tape.hpp"
#include "ops/shape.hpp"
#include "ops/support.hpp"

namespace tapegrad {

using ops::describe;

namespace {

// ---- kernels: a tensor seen as [outer, size, inner] around one axis, moved in rows of
// `inner` contiguous elements (a slice along the last axis of [B, 4H] is B block copies).

struct Blocks {
    std::size_t outer = 1, size = 1, inner = 1;
};

Blocks blocks(const Shape& shape, std::size_t axis) {
    Blocks b;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (d < axis) b.outer *= shape[d];
        else if (d == axis) b.size = shape[d];
        else b.inner *= shape[d];
    }
    return b;
}

// Entries start, start + step, ... (len of them) of an axis.
struct Range {
    std::size_t axis, start, step, len;
};

// n contiguous elements (a single one without the memmove call std::copy_n makes).
template <class T>
void copy_row(const T* src, std::size_t n, T* dst) {
    if (n == 1) *dst = *src;
    else std::copy_n(src, n, dst);
}

// small[o, j, :] = big[o, start + j*step, :]; b describes big.
template <class T>
void take(const T* big, const Blocks& b, const Range& r, T* small) {
    const std::size_t row = b.inner;
    for (std::size_t o = 0; o < b.outer; ++o, big += b.size * row, small += r.len * row) {
        if (r.step == 1) {
            std::copy_n(big + r.start * row, r.len * row, small);
        } else {
            for (std::size_t j = 0; j < r.len; ++j)
                copy_row(big + (r.start + j * r.step) * row, row, small + j * row);
        }
    }
}

// big[o, start + j*step, :] = small[o, j, :]; b describes big.
template <class T>
void put(const T* small, const Blocks& b, const Range& r, T* big) {
    const std::size_t row = b.inner;
    for (std::size_t o = 0; o < b.outer; ++o, big += b.size * row, small += r.len * row) {
        if (r.step == 1) {
            std::copy_n(small, r.len * row, big + r.start * row);
        } else {
            for (std::size_t j = 0; j < r.len; ++j)
                copy_row(small + j * row, row, big + (r.start + j * r.step) * row);
        }
    }
}

template <class T>
Array<T> zeros(const Shape& shape) {
    auto a = Array<T>::from_shape(shape);
    a.fill(T(0));
    return a;
}

// shape with axis `axis` resized to n, or removed when `squeeze`.
Shape piece_shape(Shape shape, std::size_t axis, std::size_t n, bool squeeze) {
    if (squeeze) shape.erase(shape.begin() + static_cast<long>(axis));
    else shape[axis] = n;
    return shape;
}

// shape with a new axis of size n inserted at `axis` (svector::insert trips a GCC 12
// -Warray-bounds false positive).
Shape with_axis(const Shape& shape, std::size_t axis, std::size_t n) {
    Shape out;
    for (std::size_t d = 0; d <= shape.size(); ++d) {
        if (d == axis) out.push_back(n);
        if (d < shape.size()) out.push_back(shape[d]);
    }
    return out;
}

// ---- slices

Variable slice_range(const char* op, const Variable& x, const Range& r, const Loc& loc);

// slice's backward: zeros of `shape` with g placed at the range.
Variable slice_scatter(const Variable& g, const Shape& shape, const Range& r, const Loc& loc) {
    Tensor out = dispatch(g.dtype(), [&]<class T>() {
        auto a = zeros<T>(shape);
        put(g.value().xt<T>().data(), blocks(shape, r.axis), r, a.data());
        return Tensor(std::move(a));
    });
    return record(
        "slice_scatter", std::move(out), {g},
        [r](Backward& bw) { bw.add(0, slice_range("slice", bw.grad_out(), r, Loc::current())); },
        loc);
}

Variable slice_range(const char* op, const Variable& x, const Range& r, const Loc& loc) {
    if (r.start == 0 && r.step == 1 && r.len == x.shape()[r.axis]) return x;
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        auto a = Array<T>::from_shape(piece_shape(x.shape(), r.axis, r.len, false));
        take(x.value().xt<T>().data(), blocks(x.shape(), r.axis), r, a.data());
        return Tensor(std::move(a));
    });
    return record(
        op, std::move(out), {x}, {.inputs = no_inputs, .result = false},
        [r](Backward& bw) {
            bw.add(0, slice_scatter(bw.grad_out(), bw.input(0).shape(), r, Loc::current()));
        },
        loc);
}

// x[..., i, ...] without `axis`, one entry "select": its backward puts the gradient at entry
// i of zeros of x's shape (slice_scatter, so the gradient of that is select's slice again).
Variable select_entry(const Variable& x, std::size_t axis, std::size_t i, const Loc& loc) {
    const Range r{axis, i, 1, 1};
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        // the slice [outer, 1, inner] and the result [outer, inner] share one layout
        auto a = Array<T>::from_shape(piece_shape(x.shape(), axis, 1, true));
        take(x.value().xt<T>().data(), blocks(x.shape(), axis), r, a.data());
        return Tensor(std::move(a));
    });
    return record(
        "select", std::move(out), {x}, {.inputs = no_inputs, .result = false},
        [r](Backward& bw) {
            const Shape& shape = bw.input(0).shape();
            const Variable g = reshape(bw.grad_out(), piece_shape(shape, r.axis, 1, false));
            bw.add(0, slice_scatter(g, shape, r, Loc::current()));
        },
        loc);
}

// ---- ops over many inputs: one entry; its backward `grads` returns every input's gradient at
// once (the values of the inputs are not read, only their shapes).

Variable record_many(const char* op, Tensor value, const std::vector<Variable>& xs,
                     std::function<std::vector<Variable>(Backward&)> grads, const Loc& loc) {
    return record(
        op, std::move(value), std::span<const Variable>(xs), {.inputs = no_inputs, .result = false},
        [grads = std::move(grads)](Backward& bw) {
            std::vector<Variable> g = grads(bw);
            for (std::size_t i = 0; i < g.size(); ++i)
                if (bw.needs(i)) bw.add(i, g[i]);
        },
        loc);
}

Variable join(const char* op, const std::vector<Variable>& xs, std::size_t axis, bool stacked,
              const Loc& loc);

thread_local std::size_t joined_in_place_count = 0;

// Is `t` one run of elements in row-major order (a tensor, or a view of consecutive elements)?
bool single_run(const Tensor& t) {
    return dispatch(t.dtype(), [&]<class T>() { return t.rows<T>().contiguous(); });
}

// The joined gradient of a split, chosen on the first piece's request in a sweep: the split
// input's own destination when it has one laid out as one run, else a fresh array. Each
// piece is handed its part once: a range (b.outer == 1) or b.outer runs of columns (a chunk
// along axis 1, say).
struct JoinTarget {
    Shape shape;
    DType dtype;
    Blocks b;
    std::weak_ptr<detail::VarImpl> split;  // a piece, to find the split's entry (not held:
                                           // the tape sees no outside reference to its graph)
    GradientDestination whole;
    std::uint64_t sweep = 0;
    std::vector<bool> handed;

    GradientDestination piece(Backward& asking, std::size_t k, const Shape& piece_shape,
                              std::size_t at, std::size_t size) {
        if (sweep != sweep_number(asking) || !whole.defined()) {
            std::shared_ptr<detail::VarImpl> s = split.lock();
            whole =
                s ? destination_of_input(asking, Variable(std::move(s)), 0) : GradientDestination{};
            if (!whole.defined() || !single_run(whole.view)) {
                // (a destination taken but not used is then seen as not written in place by
                // whoever handed it out, which joins into other memory)
                Tensor t = Tensor::empty(shape, dtype);
                void* data =
                    dispatch(dtype, [&]<class T>() -> void* { return t.mutable_xt<T>().data(); });
                whole = {std::move(t), data};
            }
            sweep = sweep_number(asking);
            handed.assign(handed.size(), false);
            // the pieces' ranges, read in place by deferred products as soon as written
            if (b.outer == 1) writes_into(asking, whole.view);
        }
        if (handed[k]) return {};
        handed[k] = true;
        const std::size_t offset = at * b.inner;
        return {Tensor::view(whole.view, piece_shape, offset, b.outer, size * b.inner,
                             b.size * b.inner),
                static_cast<char*>(whole.data) + offset * itemsize(dtype)};
    }
};

// split's backward: the join of the pieces' gradients (zeros for pieces that got none) added
// to x, written into the memory x's own gradient may go to (a destination: one step's gate
// gradients straight into the joined gradient of the sequence's projection). Pieces whose
// gradients were already written at their place there (their destinations) are not copied.
void join_pieces(Backward& bw, JoinTarget* target, const std::vector<std::size_t>& sizes,
                 std::size_t axis, bool squeeze, const Blocks& b) {
    const Variable& in = bw.input(0);
    std::vector<Variable> grads(sizes.size());
    for (std::size_t k = 0; k < sizes.size(); ++k) grads[k] = bw.grad_out(k);
    // Is piece k's gradient already at its place in d (x's shape, one run)?
    auto in_place = [&](std::size_t k, std::size_t at, const GradientDestination& d) {
        if (!grads[k].defined() || !d.defined()) return false;
        return dispatch(in.dtype(), [&]<class T>() {
            const auto r = grads[k].value().template rows<T>();
            if (r.data != static_cast<const T*>(d.data) + at * b.inner) return false;
            if (b.outer == 1) return r.contiguous();
            return r.rows == b.outer && r.cols == sizes[k] * b.inner &&
                   r.stride == b.size * b.inner;
        });
    };
    auto zeros_of = [&](std::size_t k) {
        return Variable(
            Tensor::zeros(piece_shape(in.shape(), axis, sizes[k], squeeze), in.dtype()));
    };
    GradientDestination out;
    if (target && target->sweep == sweep_number(bw) && target->whole.defined()) {
        // Some pieces were given their ranges. One that holds another gradient now (a second
        // use added to it) must not overwrite its range: the view handed out may still be read
        // (a deferred product holds it). Then join into other memory.
        GradientDestination own = std::exchange(target->whole, {});
        bool clash = false;
        for (std::size_t k = 0, at = 0; k < sizes.size(); at += sizes[k], ++k)
            clash = clash || (target->handed[k] && !in_place(k, at, own));
        if (!clash) out = std::move(own);
    }
    if (!out.defined()) {
        out = destination(bw, 0);
        // the join below writes x's layout: a destination of columns is left unused
        if (out.defined() && !single_run(out.view)) out = {};
    }
    Variable joined;
    if (out.defined()) {
        bool all_in_place = true;
        for (std::size_t k = 0, at = 0; k < sizes.size(); at += sizes[k], ++k) {
            if (in_place(k, at, out)) continue;
            all_in_place = false;
            if (!grads[k].defined()) grads[k] = zeros_of(k);
            dispatch(in.dtype(), [&]<class T>() {
                put(grads[k].value().template data<T>(), b, Range{axis, at, 1, sizes[k]},
                    static_cast<T*>(out.data));
            });
        }
        joined_in_place_count += all_in_place;
        joined = Variable(out.view);
    } else {
        for (std::size_t k = 0; k < sizes.size(); ++k)
            if (!grads[k].defined()) grads[k] = zeros_of(k);
        joined = join(squeeze ? "stack" : "concat", grads, axis, squeeze, Loc::current());
    }
    if (b.outer == 1) {  // the pieces are consecutive ranges of the joined gradient
        copied_into(bw, joined.value(), joined.value(), 0);  // pieces written in place
        for (std::size_t k = 0, at = 0; k < sizes.size(); at += sizes[k], ++k)
            copied_into(bw, grads[k].value(), joined.value(), at * b.inner);
    }
    bw.add(0, joined);
}

// Pieces of x along `axis` of the given sizes (without the axis when `squeeze`: unbind), each
// a view of x (no copy), recorded as one entry with a result per piece. When the pieces are
// consecutive ranges (b.outer == 1), or columns, each piece offers its part of the joined
// gradient as its own destination (JoinTarget).
std::vector<Variable> split_pieces(const char* op, const Variable& x, std::size_t axis,
                                   const std::vector<std::size_t>& sizes, bool squeeze,
                                   const Loc& loc) {
    const Blocks b = blocks(x.shape(), axis);
    std::vector<Tensor> views;
    for (std::size_t k = 0, at = 0; k < sizes.size(); at += sizes[k], ++k)
        views.push_back(Tensor::view(x.value(), piece_shape(x.shape(), axis, sizes[k], squeeze),
                                     at * b.inner, b.outer, sizes[k] * b.inner, b.size * b.inner));
    std::shared_ptr<JoinTarget> target;
    if (grad_enabled() && x.requires_grad() && x.numel() > 0)
        target = std::make_shared<JoinTarget>(
            JoinTarget{x.shape(), x.dtype(), b, {}, {}, 0, std::vector<bool>(sizes.size())});
    std::vector<Variable> pieces = record(
        op, std::move(views), std::span<const Variable>(&x, 1),
        {.inputs = no_inputs, .result = false},
        [target, sizes, axis, squeeze, b](Backward& bw) {
            join_pieces(bw, target.get(), sizes, axis, squeeze, b);
        },
        loc);
    if (!target || pieces.empty() || !pieces[0].impl()->tape) return pieces;
    target->split = pieces[0].impl_ptr();
    for (std::size_t k = 0, at = 0; k < sizes.size(); at += sizes[k], ++k)
        set_gradient_destination(
            pieces[k], [target, k, shape = pieces[k].shape(), at, size = sizes[k]](
                           Backward& asking) { return target->piece(asking, k, shape, at, size); });
    return pieces;
}

// concat (or stack, when `stacked`: each input is one entry of the new axis) of checked inputs.
Variable join(const char* op, const std::vector<Variable>& xs, std::size_t axis, bool stacked,
              const Loc& loc) {
    if (xs.size() == 1) return stacked ? unsqueeze(xs[0], static_cast<long>(axis), loc) : xs[0];
    Shape shape = xs[0].shape();
    std::vector<std::size_t> sizes(xs.size(), 1);
    if (stacked) {
        shape = with_axis(xs[0].shape(), axis, xs.size());
    } else {
        for (std::size_t i = 0; i < xs.size(); ++i) sizes[i] = xs[i].shape()[axis];
        shape[axis] = 0;
        for (auto n : sizes) shape[axis] += n;
    }
    Tensor out = dispatch(xs[0].dtype(), [&]<class T>() {
        auto a = Array<T>::from_shape(shape);
        const Blocks b = blocks(shape, axis);
        for (std::size_t i = 0, at = 0; i < xs.size(); at += sizes[i], ++i)
            put(xs[i].value().xt<T>().data(), b, Range{axis, at, 1, sizes[i]}, a.data());
        return Tensor(std::move(a));
    });
    return record_many(
        op, std::move(out), xs,
        [axis, sizes, stacked](Backward& bw) {
            // each input's gradient is its own part of grad_out
            return split_pieces(stacked ? "unbind" : "split", bw.grad_out(), axis, sizes, stacked,
                                Loc::current());
        },
        loc);
}

// concat/stack inputs: at least one, all defined, one dtype; the same shape (stack) or the
// same shape off `axis` (concat; axis < 0 skips that check until the axis is known).
void check_joinable(const char* op, const std::vector<Variable>& xs, const Loc& loc) {
    if (xs.empty()) fail<ValueError>(op, "needs at least one tensor", loc);
    for (const auto& x : xs) ops::require_defined(op, x, loc);
    const Variable& x0 = xs[0];
    for (std::size_t i = 1; i < xs.size(); ++i) {
        if (xs[i].dtype() != x0.dtype())
            fail<DTypeError>(op,
                             fmt::format("dtypes differ: input 0 is {}, input {} is {}",
                                         describe(x0.value()), i, describe(xs[i].value())),
                             loc);
        if (xs[i].dim() != x0.dim())
            fail<ShapeError>(op,
                             fmt::format("ranks differ: input 0 is {}, input {} is {}",
                                         to_string(x0.shape()), i, to_string(xs[i].shape())),
                             loc);
    }
}

// ---- integer indexing

using Indices = std::shared_ptr<const std::vector<std::int64_t>>;

Variable select_rows(const Variable& x, std::size_t axis, const Indices& idx, const Loc& loc);

// index_select's backward: zeros of `shape`, g's rows added at their indices (repeats add up).
Variable index_add(const Variable& g, const Shape& shape, std::size_t axis, const Indices& idx,
                   const Loc& loc) {
    Tensor out = dispatch(g.dtype(), [&]<class T>() {
        auto a = zeros<T>(shape);
        const Blocks b = blocks(shape, axis);
        const std::size_t row = b.inner, n = idx->size();
        const T* src = g.value().xt<T>().data();
        for (std::size_t o = 0; o < b.outer; ++o)
            for (std::size_t j = 0; j < n; ++j) {
                T* dst = a.data() + (o * b.size + static_cast<std::size_t>((*idx)[j])) * row;
                const T* s = src + (o * n + j) * row;
                for (std::size_t e = 0; e < row; ++e) dst[e] += s[e];
            }
        return Tensor(std::move(a));
    });
    return record(
        "index_add", std::move(out), {g},
        [axis, idx](Backward& bw) {
            bw.add(0, select_rows(bw.grad_out(), axis, idx, Loc::current()));
        },
        loc);
}

Variable select_rows(const Variable& x, std::size_t axis, const Indices& idx, const Loc& loc) {
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        auto a = Array<T>::from_shape(piece_shape(x.shape(), axis, idx->size(), false));
        const Blocks b = blocks(x.shape(), axis);
        const std::size_t row = b.inner, n = idx->size();
        const T* src = x.value().xt<T>().data();
        for (std::size_t o = 0; o < b.outer; ++o)
            for (std::size_t j = 0; j < n; ++j)
                copy_row(src + (o * b.size + static_cast<std::size_t>((*idx)[j])) * row, row,
                         a.data() + (o * n + j) * row);
        return Tensor(std::move(a));
    });
    return record(
        "index_select", std::move(out), {x},
        [axis, idx](Backward& bw) {
            bw.add(0, index_add(bw.grad_out(), bw.input(0).shape(), axis, idx, Loc::current()));
        },
        loc);
}

// Calls f(p, offset) for every row-major position p of `index_shape`, where offset is the
// position in a row-major tensor of `shape` of p with coordinate `axis` replaced by index[p].
template <class F>
void for_each_gathered(const Shape& shape, const Shape& index_shape, std::size_t axis,
                       const std::vector<std::int64_t>& index, F&& f) {
    const std::size_t rank = shape.size();
    std::vector<std::size_t> stride(rank), coord(rank, 0);
    for (std::size_t d = rank, s = 1; d-- > 0;) {
        stride[d] = s;
        s *= shape[d];
    }
    for (std::size_t p = 0; p < index.size(); ++p) {
        std::size_t offset = 0;
        for (std::size_t d = 0; d < rank; ++d)
            offset += (d == axis ? static_cast<std::size_t>(index[p]) : coord[d]) * stride[d];
        f(p, offset);
        for (std::size_t d = rank; d-- > 0;) {
            if (++coord[d] < index_shape[d]) break;
            coord[d] = 0;
        }
    }
}

struct GatherIndex {
    std::vector<std::int64_t> index;
    Shape shape;
};

Variable gather_at(const Variable& x, std::size_t axis,
                   const std::shared_ptr<const GatherIndex>& gi, const Loc& loc);

// gather's backward: zeros of `shape`, g added at the gathered positions (repeats add up).
Variable scatter_add(const Variable& g, const Shape& shape, std::size_t axis,
                     const std::shared_ptr<const GatherIndex>& gi, const Loc& loc) {
    Tensor out = dispatch(g.dtype(), [&]<class T>() {
        auto a = zeros<T>(shape);
        const T* src = g.value().xt<T>().data();
        for_each_gathered(shape, gi->shape, axis, gi->index,
                          [&](std::size_t p, std::size_t off) { a.data()[off] += src[p]; });
        return Tensor(std::move(a));
    });
    return record(
        "scatter_add", std::move(out), {g},
        [axis, gi](Backward& bw) { bw.add(0, gather_at(bw.grad_out(), axis, gi, Loc::current())); },
        loc);
}

Variable gather_at(const Variable& x, std::size_t axis,
                   const std::shared_ptr<const GatherIndex>& gi, const Loc& loc) {
    Tensor out = dispatch(x.dtype(), [&]<class T>() {
        auto a = Array<T>::from_shape(gi->shape);
        const T* src = x.value().xt<T>().data();
        for_each_gathered(x.shape(), gi->shape, axis, gi->index,
                          [&](std::size_t p, std::size_t off) { a.data()[p] = src[off]; });
        return Tensor(std::move(a));
    });
    return record(
        "gather", std::move(out), {x},
        [axis, gi](Backward& bw) {
            bw.add(0, scatter_add(bw.grad_out(), bw.input(0).shape(), axis, gi, Loc::current()));
        },
        loc);
}

}  // namespace

Variable slice(const Variable& x, long axis, long start, long stop, long step, const Loc& loc) {
    ops::require_defined("slice", x, loc);
    const auto a = ops::normalize_axis("slice", axis, x.dim(), loc);
    if (step <= 0)
        fail<ValueError>("slice", fmt::format("step must be positive, got {}", step), loc);
    const long n = static_cast<long>(x.shape()[a]);
    auto clamp = [n](long i) { return std::clamp(i < 0 ? i + n : i, 0L, n); };
    const long b = clamp(start), e = clamp(stop);
    const std::size_t len = e > b ? static_cast<std::size_t>((e - b + step - 1) / step) : 0;
    return slice_range("slice", x,
                       Range{a, static_cast<std::size_t>(b), static_cast<std::size_t>(step), len},
                       loc);
}

Variable narrow(const Variable& x, long axis, long start, long length, const Loc& loc) {
    ops::require_defined("narrow", x, loc);
    const auto a = ops::normalize_axis("narrow", axis, x.dim(), loc);
    const long n = static_cast<long>(x.shape()[a]);
    const long b = start < 0 ? start + n : start;
    if (length < 0 || b < 0 || b + length > n)
        fail<ValueError>("narrow",
                         fmt::format("start {} and length {} do not fit in axis {} of "
                                     "size {} of {}",
                                     start, length, axis, n, to_string(x.shape())),
                         loc);
    return slice_range("narrow", x,
                       Range{a, static_cast<std::size_t>(b), 1, static_cast<std::size_t>(length)},
                       loc);
}

Variable select(const Variable& x, long axis, long index, const Loc& loc) {
    ops::require_defined("select", x, loc);
    const auto a = ops::normalize_axis("select", axis, x.dim(), loc);
    const long n = static_cast<long>(x.shape()[a]);
    const long i = index < 0 ? index + n : index;
    if (i < 0 || i >= n)
        fail<ValueError>("select",
                         fmt::format("index {} is out of range for axis {} of size {} of {}", index,
                                     axis, n, to_string(x.shape())),
                         loc);
    return select_entry(x, a, static_cast<std::size_t>(i), loc);
}

Variable concat(const std::vector<Variable>& xs, long axis, const Loc& loc) {
    check_joinable("concat", xs, loc);
    const auto a = ops::normalize_axis("concat", axis, xs[0].dim(), loc);
    for (std::size_t i = 1; i < xs.size(); ++i)
        for (std::size_t d = 0; d < xs[0].dim(); ++d)
            if (d != a && xs[i].shape()[d] != xs[0].shape()[d])
                fail<ShapeError>(
                    "concat",
                    fmt::format("input 0 is {}, input {} is {}: sizes "
                                "differ at axis {} (joining along axis {})",
                                to_string(xs[0].shape()), i, to_string(xs[i].shape()), d, a),
                    loc);
    return join("concat", xs, a, false, loc);
}

Variable stack(const std::vector<Variable>& xs, long axis, const Loc& loc) {
    check_joinable("stack", xs, loc);
    const auto a = ops::normalize_axis("stack", axis, xs[0].dim() + 1, loc);
    for (std::size_t i = 1; i < xs.size(); ++i)
        if (xs[i].shape() != xs[0].shape())
            fail<ShapeError>("stack",
                             fmt::format("shapes differ: input 0 is {}, input {} is {}",
                                         to_string(xs[0].shape()), i, to_string(xs[i].shape())),
                             loc);
    return join("stack", xs, a, true, loc);
}

std::vector<Variable> split(const Variable& x, const std::vector<long>& sizes, long axis,
                            const Loc& loc) {
    ops::require_defined("split", x, loc);
    const auto a = ops::normalize_axis("split", axis, x.dim(), loc);
    std::vector<std::size_t> parts;
    long total = 0;
    for (long s : sizes) {
        if (s < 0)
            fail<ValueError>(
                "split", fmt::format("negative size {} in [{}]", s, fmt::join(sizes, ",")), loc);
        parts.push_back(static_cast<std::size_t>(s));
        total += s;
    }
    if (sizes.empty() || static_cast<std::size_t>(total) != x.shape()[a])
        fail<ShapeError>(
            "split",
            fmt::format("sizes [{}] add up to {}, but axis {} of {} has "
                        "size {}",
                        fmt::join(sizes, ","), total, axis, to_string(x.shape()), x.shape()[a]),
            loc);
    if (parts.size() == 1) return {x};
    return split_pieces("split", x, a, parts, false, loc);
}

std::vector<Variable> chunk(const Variable& x, long n, long axis, const Loc& loc) {
    ops::require_defined("chunk", x, loc);
    const auto a = ops::normalize_axis("chunk", axis, x.dim(), loc);
    if (n <= 0) fail<ValueError>("chunk", fmt::format("needs n >= 1 chunks, got {}", n), loc);
    const std::size_t size = x.shape()[a], parts = static_cast<std::size_t>(n);
    if (size % parts != 0)
        fail<ShapeError>("chunk",
                         fmt::format("axis {} of {} has size {}, not a multiple of {}", axis,
                                     to_string(x.shape()), size, n),
                         loc);
    if (parts == 1) return {x};
    return split_pieces("chunk", x, a, std::vector<std::size_t>(parts, size / parts), false, loc);
}

std::vector<Variable> unbind(const Variable& x, long axis, const Loc& loc) {
    ops::require_defined("unbind", x, loc);
    const auto a = ops::normalize_axis("unbind", axis, x.dim(), loc);
    return split_pieces("unbind", x, a, std::vector<std::size_t>(x.shape()[a], 1), true, loc);
}

Variable index_select(const Variable& x, long axis, const std::vector<std::int64_t>& indices,
                      const Loc& loc) {
    ops::require_defined("index_select", x, loc);
    const auto a = ops::normalize_axis("index_select", axis, x.dim(), loc);
    const auto size = static_cast<std::int64_t>(x.shape()[a]);
    for (std::size_t j = 0; j < indices.size(); ++j)
        if (indices[j] < 0 || indices[j] >= size)
            fail<ValueError>("index_select",
                             fmt::format("index {} (entry {} of the list) is out "
                                         "of range for axis {} of size {} of {}",
                                         indices[j], j, axis, size, to_string(x.shape())),
                             loc);
    return select_rows(x, a, std::make_shared<const std::vector<std::int64_t>>(indices), loc);
}

Variable index_select(const Variable& x, long axis, const Tensor& indices, const Loc& loc) {
    return index_select(x, axis, ops::int64_values("index_select", "indices", indices, 1, loc),
                        loc);
}

Variable gather(const Variable& x, long axis, const Tensor& index, const Loc& loc) {
    return gather(x, axis, ops::int64_values("gather", "index", index, -1, loc), index.shape(),
                  loc);
}

Variable gather(const Variable& x, long axis, const std::vector<std::int64_t>& index,
                const Shape& index_shape, const Loc& loc) {
    ops::require_defined("gather", x, loc);
    const auto a = ops::normalize_axis("gather", axis, x.dim(), loc);
    if (index.size() != numel(index_shape))
        fail<ShapeError>("gather",
                         fmt::format("{} index values for index_shape {} ({} values)", index.size(),
                                     to_string(index_shape), numel(index_shape)),
                         loc);
    if (index_shape.size() != x.dim())
        fail<ShapeError>("gather",
                         fmt::format("index_shape {} and x {} differ in rank",
                                     to_string(index_shape), describe(x.value())),
                         loc);
    for (std::size_t d = 0; d < x.dim(); ++d)
        if (d != a && index_shape[d] > x.shape()[d])
            fail<ShapeError>("gather",
                             fmt::format("index_shape {} exceeds x {} at axis {}",
                                         to_string(index_shape), to_string(x.shape()), d),
                             loc);
    const auto size = static_cast<std::int64_t>(x.shape()[a]);
    for (std::size_t p = 0; p < index.size(); ++p)
        if (index[p] < 0 || index[p] >= size)
            fail<ValueError>("gather",
                             fmt::format("index {} at {} is out of range for axis {} "
                                         "of size {} of {}",
                                         index[p], ops::coords(p, index_shape), axis, size,
                                         to_string(x.shape())),
                             loc);
    return gather_at(x, a, std::make_shared<const GatherIndex>(GatherIndex{index, index_shape}),
                     loc);
}

std::size_t detail::splits_joined_in_place() { return joined_in_place_count; }

}  // namespace tapegrad
