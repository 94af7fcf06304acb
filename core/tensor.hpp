// Tensor: an immutable n-d array of float or double, chosen at run time. The storage is an
// xtensor xarray shared between copies, so saving a tensor for backward costs no copy.
// Mutation goes through mutable_xt(), which copies first when the storage is shared.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <xtensor/xarray.hpp>

#include "core/dtype.hpp"
#include "core/error.hpp"

namespace tapegrad {

using Shape = xt::svector<std::size_t, 4>;

std::string to_string(const Shape& shape);  // "[32,64]"
std::size_t numel(const Shape& shape);

class Tensor {
public:
    Tensor() = default;  // undefined: defined() is false
    template <class T>
    explicit Tensor(xt::xarray<T> values)
        : storage_(std::make_shared<Storage>(std::move(values))) {}

    static Tensor empty(const Shape& shape, DType dtype);
    static Tensor zeros(const Shape& shape, DType dtype);
    static Tensor ones(const Shape& shape, DType dtype);
    static Tensor full(const Shape& shape, double value, DType dtype);
    static Tensor scalar(double value, DType dtype);  // 0-d
    // Row-major values; values.size() must equal the product of shape.
    static Tensor from(std::span<const double> values, const Shape& shape, DType dtype);
    static Tensor from(std::initializer_list<double> values, const Shape& shape, DType dtype);

    bool defined() const { return storage_ != nullptr; }
    DType dtype() const;
    const Shape& shape() const;
    std::size_t dim() const { return shape().size(); }
    std::size_t numel() const;
    std::size_t nbytes() const { return numel() * itemsize(dtype()); }

    // The xtensor array; T must match dtype() (DTypeError otherwise).
    template <class T>
    const xt::xarray<T>& xt() const;
    // Writable array; copies the storage first if another tensor shares it.
    template <class T>
    xt::xarray<T>& mutable_xt();

    double item() const;                  // the only element of a 1-element tensor
    double flat(std::size_t i) const;     // element i in row-major order, as double
    void set_flat(std::size_t i, double value);
    std::vector<double> to_vector() const;

    Tensor to(DType dtype) const;  // a converted copy (or *this when already dtype)
    Tensor clone() const;          // a deep copy with its own storage
    bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }
    bool unique() const { return storage_.use_count() == 1; }

    std::string str() const;  // "tensor([[1, 2], [3, 4]], float64)"

private:
    using Storage = std::variant<xt::xarray<float>, xt::xarray<double>>;
    std::shared_ptr<Storage> storage_;
    void require_defined(const char* what) const;
};

bool all_finite(const Tensor& t);
// max |a - b| over elements; shapes must match.
double max_abs_diff(const Tensor& a, const Tensor& b);

template <class T>
const xt::xarray<T>& Tensor::xt() const {
    require_defined("xt");
    if (auto* p = std::get_if<xt::xarray<T>>(storage_.get())) return *p;
    throw DTypeError("Tensor::xt: tensor " + to_string(shape()) + " holds " +
                     std::string(name(dtype())) + ", asked for " +
                     std::string(name(dtype_of<T>())));
}

template <class T>
xt::xarray<T>& Tensor::mutable_xt() {
    const auto& current = xt<T>();
    if (storage_.use_count() > 1) storage_ = std::make_shared<Storage>(current);
    return std::get<xt::xarray<T>>(*storage_);
}

}  // namespace tapegrad
