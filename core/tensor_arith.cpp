// Tensor arithmetic outside the tape: the free operators and the in-place methods of
// core/tensor.hpp. Nothing here is recorded; ops/arith.hpp is the differentiable arithmetic.
#include <fmt/format.h>

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmath.hpp>

#include "core/tensor.hpp"

namespace tapegrad {
namespace {

// Both operands defined, floating and of one dtype; their NumPy broadcast shape.
Shape check_operands(const char* op, const Tensor& a, const Tensor& b) {
    if (!a.defined() || !b.defined())
        throw ValueError(fmt::format("{}: an operand is undefined", op));
    if (!is_floating(a.dtype()) || !is_floating(b.dtype()) || a.dtype() != b.dtype())
        throw DTypeError(fmt::format(
            "{}: {} {} and {} {}: arithmetic takes two float32 "
            "or two float64 tensors",
            op, to_string(a.shape()), name(a.dtype()), to_string(b.shape()), name(b.dtype())));
    const Shape& x = a.shape();
    const Shape& y = b.shape();
    Shape out(std::max(x.size(), y.size()));
    for (std::size_t i = 0; i < out.size(); ++i) {
        const std::size_t dx = i < x.size() ? x[x.size() - 1 - i] : 1;
        const std::size_t dy = i < y.size() ? y[y.size() - 1 - i] : 1;
        if (dx != dy && dx != 1 && dy != 1)
            throw ShapeError(fmt::format("{}: shapes {} and {} do not broadcast", op, to_string(x),
                                         to_string(y)));
        out[out.size() - 1 - i] = dx == 1 ? dy : dx;
    }
    return out;
}

template <class F>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f) {
    check_operands(op, a, b);
    return dispatch(a.dtype(), [&]<class T>() { return Tensor(f(a.xt<T>(), b.xt<T>())); });
}

Tensor scalar_like(const Tensor& t, double value) {
    if (!t.defined()) return Tensor::scalar(value, float64);  // check_operands reports it
    return Tensor::scalar(value, is_floating(t.dtype()) ? t.dtype() : float64);
}

}  // namespace

Tensor operator+(const Tensor& a, const Tensor& b) {
    return binary("Tensor +", a, b, [](const auto& x, const auto& y) { return x + y; });
}
Tensor operator-(const Tensor& a, const Tensor& b) {
    return binary("Tensor -", a, b, [](const auto& x, const auto& y) { return x - y; });
}
Tensor operator*(const Tensor& a, const Tensor& b) {
    return binary("Tensor *", a, b, [](const auto& x, const auto& y) { return x * y; });
}
Tensor operator/(const Tensor& a, const Tensor& b) {
    return binary("Tensor /", a, b, [](const auto& x, const auto& y) { return x / y; });
}
Tensor operator+(const Tensor& a, double b) { return a + scalar_like(a, b); }
Tensor operator-(const Tensor& a, double b) { return a - scalar_like(a, b); }
Tensor operator*(const Tensor& a, double b) { return a * scalar_like(a, b); }
Tensor operator/(const Tensor& a, double b) { return a / scalar_like(a, b); }
Tensor operator+(double a, const Tensor& b) { return scalar_like(b, a) + b; }
Tensor operator-(double a, const Tensor& b) { return scalar_like(b, a) - b; }
Tensor operator*(double a, const Tensor& b) { return scalar_like(b, a) * b; }
Tensor operator/(double a, const Tensor& b) { return scalar_like(b, a) / b; }
Tensor operator-(const Tensor& a) { return scalar_like(a, 0.0) - a; }

namespace {

// this[i] = f(this[i], other[i]) with other broadcast to this tensor's shape. The common case,
// equal shapes, runs over other's contiguous runs in place (other may be a view): the tape
// accumulates gradients this way.
template <class F>
void update(const char* op, Tensor& self, const Tensor& other, F f) {
    // The tape's case, equal shapes and one float dtype, needs no broadcast shape worked out.
    const bool same = self.defined() && other.defined() && self.dtype() == other.dtype() &&
                      is_floating(self.dtype()) && other.shape() == self.shape();
    if (!same && check_operands(op, self, other) != self.shape())
        throw ShapeError(fmt::format("{}: {} does not broadcast to {} in place", op,
                                     to_string(other.shape()), to_string(self.shape())));
    dispatch(self.dtype(), [&]<class T>() {
        if (other.shape() == self.shape()) {
            T* dst = self.mutable_xt<T>().data();  // own storage first: other cannot alias it
            const auto runs = other.rows<T>();
            for (std::size_t r = 0; r < runs.rows; ++r, dst += runs.cols) {
                const T* src = runs.row(r);
                for (std::size_t j = 0; j < runs.cols; ++j) dst[j] = f(dst[j], src[j]);
            }
            return;
        }
        auto& dst = self.mutable_xt<T>();
        const auto src = xt::broadcast(other.xt<T>(), dst.shape());
        auto s = src.begin();
        for (auto d = dst.begin(); d != dst.end(); ++d, ++s) *d = f(*d, *s);
    });
}

}  // namespace

Tensor& Tensor::add_(const Tensor& other) {
    update("Tensor::add_", *this, other, [](auto x, auto y) { return x + y; });
    return *this;
}
Tensor& Tensor::add_(const Tensor& other, double alpha) {
    update("Tensor::add_", *this, other,
           [alpha](auto x, auto y) { return x + static_cast<decltype(x)>(alpha) * y; });
    return *this;
}
Tensor& Tensor::sub_(const Tensor& other) {
    update("Tensor::sub_", *this, other, [](auto x, auto y) { return x - y; });
    return *this;
}
Tensor& Tensor::mul_(const Tensor& other) {
    update("Tensor::mul_", *this, other, [](auto x, auto y) { return x * y; });
    return *this;
}
Tensor& Tensor::div_(const Tensor& other) {
    update("Tensor::div_", *this, other, [](auto x, auto y) { return x / y; });
    return *this;
}
Tensor& Tensor::add_(double value) { return add_(scalar_like(*this, value)); }
Tensor& Tensor::mul_(double value) { return mul_(scalar_like(*this, value)); }

Tensor& Tensor::fill_(double value) {
    require_defined("fill_");
    if (!is_floating(dtype())) return copy_(Tensor::scalar(value, float64));
    return copy_(scalar_like(*this, value));
}

Tensor& Tensor::copy_(const Tensor& src) {
    require_defined("copy_");
    src.require_defined("copy_");
    bool fits = src.dim() <= dim();
    for (std::size_t i = 0; fits && i < src.dim(); ++i) {
        const std::size_t s = src.shape()[src.dim() - 1 - i];
        fits = s == 1 || s == shape()[dim() - 1 - i];
    }
    if (!fits)
        throw ShapeError(fmt::format("Tensor::copy_: {} does not broadcast to {}",
                                     to_string(src.shape()), to_string(shape())));
    const Tensor converted = src.to(dtype());  // copy_ converts: int64 from float and back
    dispatch_any(dtype(), [&]<class T>() {
        auto& dst = mutable_xt<T>();  // own storage first, so converted cannot alias it
        const auto b = xt::broadcast(converted.xt<T>(), dst.shape());
        std::copy(b.begin(), b.end(), dst.begin());
    });
    return *this;
}

}  // namespace tapegrad
