#include "layers/basic.hpp"

#include <fmt/format.h>
#include <cmath>

#include "ops/arith.hpp"
#include "ops/index.hpp"
#include "ops/linalg.hpp"
#include "ops/nn.hpp"
#include "ops/shape.hpp"

namespace tapegrad {

Linear::Linear(std::size_t in, std::size_t out, Generator& gen, DType dtype, bool with_bias)
    : UnaryModule("Linear") {
    if (in == 0 || out == 0)
        throw ValueError(fmt::format(
            "Linear: in_features ({}) and out_features ({}) must be positive", in, out));
    const double k = 1.0 / std::sqrt(static_cast<double>(in));
    weight = register_parameter("weight", gen.uniform({out, in}, -k, k, dtype));
    if (with_bias) bias = register_parameter("bias", gen.uniform({out}, -k, k, dtype));
}

Variable Linear::forward(const Variable& x) {
    const std::size_t in = weight.shape()[1];
    if (!x.defined() || x.dim() == 0 || x.shape().back() != in)
        throw ShapeError(fmt::format("Linear: input {} does not end in {} features",
                                     x.defined() ? to_string(x.shape()) : "undefined", in));
    // y = x Wᵀ + b on the rows of x flattened to [N, in]
    Shape out_shape = x.shape();
    out_shape.back() = weight.shape()[0];
    const Variable rows = x.dim() == 2 ? x : reshape(x, Shape{x.numel() / in, in});
    Variable y = matmul(rows, weight, false, true);
    if (bias.defined()) y = y + bias;
    return x.dim() == 2 ? y : reshape(y, out_shape);
}

Embedding::Embedding(std::size_t num, std::size_t dim, Generator& gen, DType dtype)
    : Module("Embedding") {
    if (num == 0 || dim == 0)
        throw ValueError(
            fmt::format("Embedding: num_embeddings ({}) and dim ({}) must be positive", num, dim));
    weight = register_parameter("weight", gen.normal({num, dim}, 0.0, 1.0, dtype));
}

Variable Embedding::forward(const std::vector<std::int64_t>& indices) {
    return index_select(weight, 0, indices);
}

Variable Embedding::forward(const Tensor& ids) {
    if (!ids.defined() || ids.dtype() != int64)
        throw DTypeError(fmt::format(
            "Embedding: ids must be an int64 tensor, got {}",
            ids.defined() ? to_string(ids.shape()) + " " + std::string(name(ids.dtype()))
                          : std::string("an undefined tensor")));
    Shape shape = ids.shape();
    shape.push_back(weight.shape()[1]);
    return reshape(index_select(weight, 0, ids.values<std::int64_t>()), shape);
}

Dropout::Dropout(double p, std::uint64_t seed) : UnaryModule("Dropout"), p_(p), gen_(seed) {
    if (!(p >= 0.0 && p <= 1.0))
        throw ValueError(fmt::format("Dropout: p must be in [0, 1], got {}", p));
}

Variable Dropout::forward(const Variable& x) { return dropout(x, p_, is_training(), gen_); }

LayerNorm::LayerNorm(const Shape& normalized_shape, DType dtype, double eps)
    : UnaryModule("LayerNorm"), dims_(normalized_shape.size()), eps_(eps) {
    if (normalized_shape.empty() || numel(normalized_shape) == 0)
        throw ValueError("LayerNorm: normalized_shape must be non-empty with positive sizes");
    weight = register_parameter("weight", Tensor::ones(normalized_shape, dtype));
    bias = register_parameter("bias", Tensor::zeros(normalized_shape, dtype));
}

Variable LayerNorm::forward(const Variable& x) { return layer_norm(x, dims_, weight, bias, eps_); }

}  // namespace tapegrad
