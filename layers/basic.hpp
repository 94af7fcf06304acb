// Basic modules: Linear, Embedding, Dropout, LayerNorm.
#pragma once

#include <cstdint>
#include <vector>

#include "core/random.hpp"
#include "layers/module.hpp"

namespace tapegrad {

// y = x Wᵀ + b over the last axis: x [..., in] -> [..., out]. weight [out, in], bias [out],
// both U(-1/sqrt(in), 1/sqrt(in)) as PyTorch.
class Linear : public UnaryModule {
public:
    Linear(std::size_t in_features, std::size_t out_features, Generator& gen, DType dtype = float32,
           bool bias = true);
    Variable forward(const Variable& x) override;
    Variable weight, bias;
};

// Rows of a [num, dim] table, N(0, 1) initialised as PyTorch.
class Embedding : public Module {
public:
    Embedding(std::size_t num_embeddings, std::size_t dim, Generator& gen, DType dtype = float32);
    // indices (any order, repeats allowed) -> [indices.size(), dim]
    Variable forward(const std::vector<std::int64_t>& indices);
    // int64 ids of any shape S (a [T, B] batch, say) -> [S..., dim]
    Variable forward(const Tensor& ids);
    Variable weight;
};

class Dropout : public UnaryModule {
public:
    explicit Dropout(double p, std::uint64_t seed = 0);
    Variable forward(const Variable& x) override;  // identity in eval mode

private:
    double p_;
    Generator gen_;
};

// Normalises over the trailing axes `normalized_shape`, with learnable weight (ones) and bias (zeros).
class LayerNorm : public UnaryModule {
public:
    LayerNorm(const Shape& normalized_shape, DType dtype = float32, double eps = 1e-5);
    Variable forward(const Variable& x) override;
    Variable weight, bias;

private:
    std::size_t dims_;
    double eps_;
};

}  // namespace tapegrad
