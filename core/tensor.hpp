// Tensor: an immutable n-d array of float, double or int64, chosen at run time. The storage is an
// xtensor array (Array<T>: its buffers come from core/memory's cache) shared between copies,
// so saving a tensor for backward costs no copy.
// Mutation goes through mutable_xt(), which copies first when the storage is shared.
//
// A tensor can also be a view: a piece of another tensor's storage (what split, chunk and
// unbind return), laid out as `rows` runs of `cols` contiguous elements, `stride` apart.
// Kernels that take strided rows read a view in place (rows<T>()); everything else calls
// xt<T>(), which copies the view into an array of its own once, on first use.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <xtensor/xarray.hpp>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"

namespace tapegrad {

using Shape = xt::svector<std::size_t, 4>;

std::string to_string(const Shape& shape);  // "[32,64]"
std::size_t numel(const Shape& shape);

class Tensor {
public:
    Tensor() = default;  // undefined: defined() is false
    // The array is moved (or copied) straight into the tensor's storage.
    template <class T>
    explicit Tensor(Array<T>&& values)
        : storage_(make_cached<Storage>(std::in_place_type<Array<T>>, std::move(values))) {}
    template <class T>
    explicit Tensor(const Array<T>& values)
        : storage_(make_cached<Storage>(std::in_place_type<Array<T>>, values)) {}
    // Any float, double or int64 xtensor expression (an xt::xarray<T>, a + b, ...), evaluated
    // into an Array<T> of its own.
    template <class E>
    requires(std::is_same_v<typename E::value_type, float> ||
             std::is_same_v<typename E::value_type, double> ||
             std::is_same_v<typename E::value_type,
                            std::int64_t>) explicit Tensor(const xt::xexpression<E>& values)
        : storage_(
              make_cached<Storage>(std::in_place_type<Array<typename E::value_type>>, values)) {}

    static Tensor empty(const Shape& shape, DType dtype);
    static Tensor zeros(const Shape& shape, DType dtype);
    static Tensor ones(const Shape& shape, DType dtype);
    static Tensor full(const Shape& shape, double value, DType dtype);
    static Tensor scalar(double value, DType dtype);  // 0-d
    // Row-major values; values.size() must equal the product of shape. A std::vector converts
    // to the span: Tensor::from(std::vector<float>{...}, {n, 8}) is float32 with no detour.
    static Tensor from(std::span<const double> values, const Shape& shape, DType dtype);
    static Tensor from(std::initializer_list<double> values, const Shape& shape, DType dtype);
    static Tensor from(std::span<const float> values, const Shape& shape, DType dtype = float32);
    static Tensor from(std::span<const std::int64_t> values, const Shape& shape);  // int64
    // start, start + step, ... up to stop (excluded), as torch.arange: int64 unless dtype says.
    static Tensor arange(std::int64_t stop);
    static Tensor arange(std::int64_t start, std::int64_t stop, std::int64_t step = 1,
                         DType dtype = int64);

    // A view of `base`: `shape`'s elements in row-major order are `rows` runs of `cols`
    // elements, run r starting at element offset + r * stride of base's storage.
    static Tensor view(const Tensor& base, const Shape& shape, std::size_t offset, std::size_t rows,
                       std::size_t cols, std::size_t stride);

    bool defined() const { return storage_ != nullptr || view_ != nullptr; }
    bool is_view() const { return view_ != nullptr; }
    DType dtype() const {
        require_defined("dtype");
        return static_cast<DType>(base().index());  // Storage's order is DType's
    }
    const Shape& shape() const;
    std::size_t dim() const { return shape().size(); }
    std::size_t numel() const;
    std::size_t nbytes() const { return numel() * itemsize(dtype()); }

    // The xtensor array; T must match dtype() (DTypeError otherwise).
    template <class T>
    const Array<T>& xt() const;
    // Writable array; copies the storage first if another tensor shares it (a view always
    // becomes a copy of its own).
    template <class T>
    Array<T>& mutable_xt();

    // The elements in row-major order as runs of contiguous values, read in place: a view's
    // own layout, or one run of numel() for a tensor that owns its storage.
    template <class T>
    struct Rows {
        const T* data;
        std::size_t rows, cols, stride;
        bool contiguous() const { return rows <= 1 || stride == cols; }
        const T* row(std::size_t r) const { return data + r * stride; }
    };
    template <class T>
    Rows<T> rows() const;
    // The elements in row-major order as one array: in place unless this is a strided view,
    // which is copied once (as by xt()).
    template <class T>
    const T* data() const {
        const Rows<T> r = rows<T>();
        return r.contiguous() ? r.data : xt<T>().data();
    }

    // Elements as double (int64 ones exactly up to 2^53); values() reads them as T.
    double item() const;               // the only element of a 1-element tensor
    double flat(std::size_t i) const;  // element i in row-major order
    void set_flat(std::size_t i, double value);
    std::vector<double> to_vector() const;
    template <class T>
    std::vector<T> values() const {  // T must match dtype(): t.values<std::int64_t>()
        const T* p = data<T>();
        return std::vector<T>(p, p + numel());
    }

    // A converted copy (or *this when already dtype). To int64, values are truncated toward
    // zero, as torch's .to(torch.int64); NaN, Inf or a value beyond int64's range is a
    // ValueError.
    Tensor to(DType dtype) const;
    Tensor clone() const;  // a deep copy with its own storage

    // Arithmetic outside the tape, in place (core/tensor_arith.cpp; the free operators are
    // below): for code that updates or inspects values, never recorded. float32 and float64
    // only; `other` broadcasts to this tensor's shape and has its dtype. This tensor first
    // gets storage of its own if it shares it, so nothing that shares it (a tensor saved for
    // backward, say) changes, and `other` cannot alias it.
    Tensor& add_(const Tensor& other);
    Tensor& add_(const Tensor& other, double alpha);  // this += alpha * other
    Tensor& sub_(const Tensor& other);
    Tensor& mul_(const Tensor& other);
    Tensor& div_(const Tensor& other);
    Tensor& add_(double value);
    Tensor& mul_(double value);
    Tensor& fill_(double value);
    // Copies src's values in (broadcast to this shape, converted to this dtype; int64 too).
    Tensor& copy_(const Tensor& src);
    bool shares_storage_with(const Tensor& other) const {  // a view shares its base's
        return defined() && other.defined() && &base() == &other.base();
    }
    bool unique() const { return storage_.use_count() == 1; }  // false for a view

    std::string str() const;  // "tensor([[1, 2], [3, 4]], float64)"

private:
    using Storage = std::variant<Array<float>, Array<double>, Array<std::int64_t>>;
    struct Layout {
        std::size_t offset, rows, cols, stride;
    };
    struct View {
        std::shared_ptr<Storage> base;
        Shape shape;
        Layout layout;
        std::once_flag copied;
        std::unique_ptr<Storage> copy;  // the elements in an array of their own, made on first xt()
    };
    std::shared_ptr<Storage> storage_;  // owned storage, or
    std::shared_ptr<View> view_;        // a view (exactly one of the two is set)
    // Inline: every op asks a tensor its shape and dtype several times.
    void require_defined(const char* what) const {
        if (!defined()) [[unlikely]]
            undefined(what);
    }
    [[noreturn]] static void undefined(const char* what);
    const Storage& base() const {  // the storage the elements live in (a view's base)
        require_defined("base");
        return view_ ? *view_->base : *storage_;
    }
    const Storage& resolved() const;  // an array holding exactly this tensor's elements
    Layout layout() const;            // a view's place in its base
    [[noreturn]] void wrong_dtype(const char* what, DType asked) const;
};

// a + b, a - b, a * b, a / b outside the tape, with NumPy broadcasting and scalars on either
// side: new tensors, float32 or float64, both operands of one dtype.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator-(const Tensor& a);

bool all_finite(const Tensor& t);  // true for int64
// The 2-norm of all elements as one vector (Frobenius), accumulated in double.
double norm_of(const Tensor& t);
// max |a - b| over elements; shapes must match.
double max_abs_diff(const Tensor& a, const Tensor& b);

inline const Shape& Tensor::shape() const {
    require_defined("shape");
    if (view_) return view_->shape;
    return std::visit([](const auto& a) -> const Shape& { return a.shape(); }, *storage_);
}

inline std::size_t Tensor::numel() const {
    require_defined("numel");
    if (view_) return view_->layout.rows * view_->layout.cols;
    return std::visit([](const auto& a) -> std::size_t { return a.size(); }, *storage_);
}

template <class T>
const Array<T>& Tensor::xt() const {
    require_defined("xt");
    if (auto* p = std::get_if<Array<T>>(&resolved())) return *p;
    wrong_dtype("xt", dtype_of<T>());
}

template <class T>
Array<T>& Tensor::mutable_xt() {
    const auto& current = xt<T>();
    if (view_ || storage_.use_count() > 1) {
        storage_ = make_cached<Storage>(current);
        view_.reset();
    }
    return std::get<Array<T>>(*storage_);
}

template <class T>
Tensor::Rows<T> Tensor::rows() const {
    require_defined("rows");
    const auto* a = std::get_if<Array<T>>(&base());
    if (!a) wrong_dtype("rows", dtype_of<T>());
    if (!view_) return {a->data(), 1, a->size(), a->size()};
    const Layout l = layout();
    if (l.rows * l.cols == 0) return {a->data(), 0, l.cols, l.cols};  // no runs to read
    return {a->data() + l.offset, l.rows, l.cols, l.stride};
}

}  // namespace tapegrad
