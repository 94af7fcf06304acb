#include "train/data.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace tapegrad {

Tensor take(const Tensor& t, std::size_t axis, const std::vector<std::int64_t>& indices) {
    if (!t.defined()) throw ValueError("take: the tensor is undefined");
    if (axis >= t.dim())
        throw ShapeError(fmt::format("take: axis {} is out of range for a tensor of shape {}", axis,
                                     to_string(t.shape())));
    const Shape& shape = t.shape();
    const auto size = static_cast<std::int64_t>(shape[axis]);
    for (std::size_t j = 0; j < indices.size(); ++j)
        if (indices[j] < 0 || indices[j] >= size)
            throw ValueError(
                fmt::format("take: index {} (entry {}) is out of range for axis {} "
                            "of shape {}",
                            indices[j], j, axis, to_string(shape)));
    std::size_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < axis; ++d) outer *= shape[d];
    for (std::size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    Shape out_shape = shape;
    out_shape[axis] = indices.size();
    return dispatch_any(t.dtype(), [&]<class T>() {
        const T* src = t.data<T>();
        auto out = Array<T>::from_shape(out_shape);
        T* dst = out.data();
        for (std::size_t o = 0; o < outer; ++o)
            for (const std::int64_t i : indices) {
                std::copy_n(src + (o * shape[axis] + static_cast<std::size_t>(i)) * inner, inner,
                            dst);
                dst += inner;
            }
        return Tensor(std::move(out));
    });
}

Tensor take(const Tensor& t, std::size_t axis, const Tensor& indices) {
    if (!indices.defined() || indices.dtype() != int64 || indices.dim() != 1)
        throw DTypeError(fmt::format("take: indices must be a 1-d int64 tensor, got {}",
                                     indices.defined() ? to_string(indices.shape()) + " " +
                                                             std::string(name(indices.dtype()))
                                                       : std::string("an undefined tensor")));
    return take(t, axis, indices.values<std::int64_t>());
}

DataLoader::DataLoader(std::size_t samples, DataOptions options)
    : options_(options), samples_(samples), gen_(options.seed) {
    if (options_.batch_size == 0) throw ValueError("DataLoader: batch_size must be positive");
}

DataLoader::DataLoader(Tensor x, Tensor y, DataOptions options)
    : options_(options), x_(std::move(x)), y_(std::move(y)), gen_(options.seed) {
    if (options_.batch_size == 0) throw ValueError("DataLoader: batch_size must be positive");
    if (!x_.defined()) throw ValueError("DataLoader: x is undefined");
    if (options_.x_axis >= x_.dim())
        throw ShapeError(fmt::format("DataLoader: x_axis {} is out of range for x {}",
                                     options_.x_axis, to_string(x_.shape())));
    samples_ = x_.shape()[options_.x_axis];
    if (y_.defined()) {
        if (options_.y_axis >= y_.dim())
            throw ShapeError(fmt::format("DataLoader: y_axis {} is out of range for y {}",
                                         options_.y_axis, to_string(y_.shape())));
        if (y_.shape()[options_.y_axis] != samples_)
            throw ShapeError(fmt::format(
                "DataLoader: x {} holds {} samples along axis {}, y {} holds {} along axis {}",
                to_string(x_.shape()), samples_, options_.x_axis, to_string(y_.shape()),
                y_.shape()[options_.y_axis], options_.y_axis));
    }
}

std::size_t DataLoader::batches() const {
    const std::size_t b = options_.batch_size;
    return options_.drop_last ? samples_ / b : (samples_ + b - 1) / b;
}

Epoch DataLoader::epoch() {
    const auto n = static_cast<std::int64_t>(samples_);
    return Epoch(
        *this,
        (options_.shuffle ? randperm(samples_, gen_) : Tensor::arange(n)).values<std::int64_t>());
}

std::size_t Epoch::size() const { return loader_->batches(); }

Batch Epoch::operator[](std::size_t b) const {
    if (b >= size()) throw ValueError(fmt::format("Epoch: batch {} of an epoch of {}", b, size()));
    const DataLoader& l = *loader_;
    const std::size_t begin = b * l.options_.batch_size;
    const std::size_t end = std::min(begin + l.options_.batch_size, l.samples_);
    const std::vector<std::int64_t> idx(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                                        order_.begin() + static_cast<std::ptrdiff_t>(end));
    Batch batch{Tensor::from(idx, Shape{idx.size()}), {}, {}};
    if (l.x_.defined()) batch.x = take(l.x_, l.options_.x_axis, idx);
    if (l.y_.defined()) batch.y = take(l.y_, l.options_.y_axis, idx);
    return batch;
}

}  // namespace tapegrad
