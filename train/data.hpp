// Minibatches of in-memory data, as torch.utils.data.DataLoader over a TensorDataset:
//
//   DataLoader loader(x, y, {.batch_size = 32, .shuffle = true, .x_axis = 1, .seed = 7});
//   for (const Batch& b : loader.epoch()) {    // a new order each epoch
//       Variable logits = model(Variable(b.x));  // b.x: [T, 32, F], b.y: int64 [32]
//       cross_entropy(logits, b.y).backward();
//   }
//
// x and y hold the same number of samples along their sample axes (x_axis, y_axis); a batch
// holds the samples b.indices, in that order, copied into tensors of their own (contiguous,
// so parallel_backward's shards narrow them: shard s is rows [s.begin, s.end) of the batch).
// Any dtype, int64 included. The shuffle comes from the loader's own generator, seeded by
// options.seed: the same seed gives the same batches everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/random.hpp"
#include "core/tensor.hpp"

namespace tapegrad {

struct DataOptions {
    std::size_t batch_size = 1;
    bool shuffle = false;
    bool drop_last = false;  // drop the last batch when it is smaller than batch_size
    std::size_t x_axis = 0;  // the sample axis of x, and of y
    std::size_t y_axis = 0;
    std::uint64_t seed = 0;
};

struct Batch {
    Tensor indices;  // int64 [size]: the samples of the batch, in order
    Tensor x, y;     // those samples of x and y (undefined for an index-only loader)
    std::size_t size() const { return indices.numel(); }
};

class DataLoader;

// One pass over the data: an order of the samples, cut into batches that are made when read.
class Epoch {
public:
    struct iterator {
        const Epoch* epoch;
        std::size_t b;
        Batch operator*() const { return (*epoch)[b]; }
        iterator& operator++() {
            ++b;
            return *this;
        }
        bool operator==(const iterator&) const = default;
    };
    iterator begin() const { return {this, 0}; }
    iterator end() const { return {this, size()}; }
    std::size_t size() const;               // batches
    Batch operator[](std::size_t b) const;  // batch b (the last one may be partial)

private:
    friend class DataLoader;
    Epoch(const DataLoader& loader, std::vector<std::int64_t> order)
        : loader_(&loader), order_(std::move(order)) {}
    const DataLoader* loader_;
    std::vector<std::int64_t> order_;
};

class DataLoader {
public:
    // Index batches over `samples` samples.
    explicit DataLoader(std::size_t samples, DataOptions options = {});
    // (x, y) batches; y may be undefined (x alone).
    DataLoader(Tensor x, Tensor y, DataOptions options = {});

    // One pass over the data: in order, or in a new random order per call when shuffling.
    // The last batch is partial unless drop_last. The epoch reads the loader's data: the
    // loader must outlive it.
    Epoch epoch();
    std::size_t samples() const { return samples_; }
    std::size_t batches() const;  // per epoch
    const DataOptions& options() const { return options_; }

private:
    friend class Epoch;
    DataOptions options_;
    std::size_t samples_ = 0;
    Tensor x_, y_;
    Generator gen_;
};

// The entries `indices` of `axis` of t, in that order, as a new tensor of any dtype (a
// tensor-level index_select, outside the tape). Indices lie in [0, size): ValueError naming
// the index and the shape otherwise.
Tensor take(const Tensor& t, std::size_t axis, const std::vector<std::int64_t>& indices);
// The same with the indices as an int64 tensor (a batch's indices: take(lengths, 0, b.indices)).
Tensor take(const Tensor& t, std::size_t axis, const Tensor& indices);

}  // namespace tapegrad
