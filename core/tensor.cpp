#include "core/tensor.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <mutex>
#include <xtensor/xio.hpp>
#include <xtensor/xmath.hpp>

namespace tapegrad {

std::string call_site(const std::source_location& loc) {
    if (loc.line() == 0 || loc.file_name() == nullptr || *loc.file_name() == '\0') return {};
    std::string_view file = loc.file_name();
    if (auto slash = file.rfind('/'); slash != std::string_view::npos)
        file.remove_prefix(slash + 1);
    return fmt::format("{}:{}", file, loc.line());
}

std::string to_string(const Shape& shape) {
    return fmt::format("[{}]", fmt::join(shape.begin(), shape.end(), ","));
}

std::size_t numel(const Shape& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

void detail::not_floating(std::string_view what) {
    throw DTypeError(fmt::format(
        "{} works in float32 or float64, and got an int64 tensor (int64 tensors hold ids, "
        "labels, lengths and indices; .to(float32) converts one to values)",
        what));
}

void Tensor::undefined(const char* what) {
    throw ValueError(std::string("Tensor::") + what + ": the tensor is undefined");
}

void Tensor::wrong_dtype(const char* what, DType asked) const {
    throw DTypeError(fmt::format("Tensor::{}: tensor {} holds {}, asked for {}", what,
                                 to_string(shape()), name(dtype()), name(asked)));
}

Tensor::Layout Tensor::layout() const {
    return view_ ? view_->layout : Layout{0, 1, numel(), numel()};
}

const Tensor::Storage& Tensor::resolved() const {
    if (!view_) {
        require_defined("xt");
        return *storage_;
    }
    View& v = *view_;
    std::call_once(v.copied, [&] {
        v.copy = std::make_unique<Storage>(std::visit(
            [&](const auto& a) -> Storage {
                using A = std::decay_t<decltype(a)>;
                auto out = A::from_shape(v.shape);
                if (out.size() == 0) return out;  // an empty base may have no data at all
                const auto* src = a.data() + v.layout.offset;
                for (std::size_t r = 0; r < v.layout.rows; ++r)
                    std::copy_n(src + r * v.layout.stride, v.layout.cols,
                                out.data() + r * v.layout.cols);
                return out;
            },
            *v.base));
    });
    return *v.copy;
}

Tensor Tensor::view(const Tensor& base, const Shape& shape, std::size_t offset, std::size_t rows,
                    std::size_t cols, std::size_t stride) {
    base.require_defined("view");
    const std::size_t n = base.numel();
    if (rows * cols != tapegrad::numel(shape) ||
        (rows > 0 && cols > 0 &&
         (offset + (rows - 1) * stride + cols > n || (rows > 1 && stride < cols))))
        throw ShapeError(
            fmt::format("Tensor::view: {} rows of {} elements {} apart from offset {} "
                        "do not fit shape {} inside a tensor of {} elements",
                        rows, cols, stride, offset, to_string(shape), n));
    Tensor t;
    t.view_ = make_cached<View>();
    if (base.view_) {
        // A view of a view reads the same base when the outer view is one contiguous run;
        // otherwise it reads the outer view's own copy.
        const Layout& outer = base.view_->layout;
        if (outer.rows <= 1 || outer.stride == outer.cols) {
            t.view_->base = base.view_->base;
            offset += outer.offset;
        } else {
            base.resolved();
            t.view_->base = std::shared_ptr<Storage>(base.view_, base.view_->copy.get());
        }
    } else {
        t.view_->base = base.storage_;
    }
    t.view_->shape = shape;
    t.view_->layout = {offset, rows, cols, rows > 1 ? stride : cols};
    return t;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
    Tensor t;  // the array made in place: xtensor's move of an array copies its shape and strides
    dispatch_any(dtype, [&]<class T>() {
        t.storage_ = make_cached<Storage>(std::in_place_type<Array<T>>, shape);
    });
    return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
    return dispatch_any(dtype, [&]<class T>() {
        auto a = Array<T>::from_shape(shape);
        a.fill(static_cast<T>(value));
        return Tensor(std::move(a));
    });
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor Tensor::scalar(double value, DType dtype) { return full(Shape{}, value, dtype); }

namespace {
template <class U>
Tensor from_values(std::span<const U> values, const Shape& shape, DType dtype) {
    if (values.size() != numel(shape))
        throw ShapeError(fmt::format("Tensor::from: {} values do not fill shape {} ({} elements)",
                                     values.size(), to_string(shape), numel(shape)));
    return dispatch_any(dtype, [&]<class T>() {
        auto a = Array<T>::from_shape(shape);
        std::transform(values.begin(), values.end(), a.begin(),
                       [](U v) { return static_cast<T>(v); });
        return Tensor(std::move(a));
    });
}
}  // namespace

Tensor Tensor::from(std::span<const double> values, const Shape& shape, DType dtype) {
    if (dtype == DType::int64)
        throw DTypeError("Tensor::from: int64 tensors are made from std::int64_t values");
    return from_values(values, shape, dtype);
}

Tensor Tensor::from(std::initializer_list<double> values, const Shape& shape, DType dtype) {
    return from(std::span<const double>(values.begin(), values.size()), shape, dtype);
}

Tensor Tensor::from(std::span<const float> values, const Shape& shape, DType dtype) {
    if (dtype == DType::int64)
        throw DTypeError("Tensor::from: int64 tensors are made from std::int64_t values");
    return from_values(values, shape, dtype);
}

Tensor Tensor::from(std::span<const std::int64_t> values, const Shape& shape) {
    return from_values(values, shape, DType::int64);
}

Tensor Tensor::arange(std::int64_t stop) { return arange(0, stop); }

Tensor Tensor::arange(std::int64_t start, std::int64_t stop, std::int64_t step, DType dtype) {
    if (step == 0) throw ValueError("Tensor::arange: step must not be 0");
    const std::int64_t span = stop - start;
    const std::int64_t n =
        (step > 0) == (span > 0) && span != 0 ? (span + step - (step > 0 ? 1 : -1)) / step : 0;
    std::vector<std::int64_t> values(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = start + i * step;
    return from_values(std::span<const std::int64_t>(values), Shape{values.size()}, dtype);
}

double Tensor::flat(std::size_t i) const {
    if (i >= numel())
        throw ValueError(
            fmt::format("Tensor::flat: index {} out of range for shape {}", i, to_string(shape())));
    const Layout l = layout();
    return std::visit(
        [&](const auto& a) {
            return static_cast<double>(a.data()[l.offset + i / l.cols * l.stride + i % l.cols]);
        },
        base());
}

void Tensor::set_flat(std::size_t i, double value) {
    if (i >= numel())
        throw ValueError(fmt::format("Tensor::set_flat: index {} out of range for shape {}", i,
                                     to_string(shape())));
    dispatch_any(dtype(), [&]<class T>() { mutable_xt<T>().data()[i] = static_cast<T>(value); });
}

double Tensor::item() const {
    if (numel() != 1)
        throw ShapeError(fmt::format("Tensor::item: tensor {} has {} elements, not 1",
                                     to_string(shape()), numel()));
    return flat(0);
}

std::vector<double> Tensor::to_vector() const {
    return std::visit([](const auto& a) { return std::vector<double>(a.begin(), a.end()); },
                      resolved());
}

Tensor Tensor::to(DType target) const {
    if (dtype() == target) return *this;
    if (target == DType::int64) {
        // static_cast of NaN, Inf or an out-of-range float to an integer is undefined: refuse.
        constexpr double limit = 9223372036854775808.0;  // 2^63
        for (std::size_t i = 0, n = numel(); i < n; ++i)
            if (const double v = flat(i); !(v >= -limit && v < limit))  // NaN fails too
                throw ValueError(
                    fmt::format("Tensor::to(int64): element {} of {} {} is {}, "
                                "which no int64 holds",
                                i, to_string(shape()), name(dtype()), v));
    }
    return std::visit(
        [&](const auto& a) {
            return dispatch_any(target,
                                [&]<class T>() { return Tensor(Array<T>(xt::cast<T>(a))); });
        },
        resolved());
}

Tensor Tensor::clone() const {
    require_defined("clone");
    Tensor copy;
    copy.storage_ = make_cached<Storage>(resolved());
    return copy;
}

std::string Tensor::str() const {
    if (!defined()) return "tensor(undefined)";
    std::string body = std::visit(
        [](const auto& a) {
            std::ostringstream os;
            os << a;
            return os.str();
        },
        resolved());
    return fmt::format("tensor({}, {}, {})", body, to_string(shape()), name(dtype()));
}

bool all_finite(const Tensor& t) {
    if (t.dtype() == DType::int64) return true;
    return dispatch(t.dtype(), [&]<class T>() {
        for (T v : t.xt<T>())
            if (!std::isfinite(v)) return false;
        return true;
    });
}

double norm_of(const Tensor& t) {
    return dispatch(t.dtype(), [&]<class T>() {
        double s = 0;
        for (const T v : t.xt<T>()) s += static_cast<double>(v) * static_cast<double>(v);
        return std::sqrt(s);
    });
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape())
        throw ShapeError("max_abs_diff: shapes " + to_string(a.shape()) + " and " +
                         to_string(b.shape()) + " differ");
    double worst = 0;
    for (std::size_t i = 0, n = a.numel(); i < n; ++i)
        worst = std::max(worst, std::abs(a.flat(i) - b.flat(i)));
    return worst;
}

}  // namespace tapegrad
