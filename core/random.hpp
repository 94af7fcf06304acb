// A seeded generator with its own distributions (not std::*_distribution, whose output
// differs between standard libraries), so the same seed gives the same numbers everywhere.
#pragma once

#include <cstdint>

#include "core/tensor.hpp"

namespace tapegrad {

class Generator {
public:
    explicit Generator(std::uint64_t seed = 0) { this->seed(seed); }
    void seed(std::uint64_t seed);

    std::uint64_t next_u64();                 // splitmix64-seeded xoshiro256**
    double uniform();                         // [0, 1)
    double uniform(double low, double high);  // [low, high)
    double normal();                          // N(0, 1), Box-Muller
    std::uint64_t below(std::uint64_t n);     // uniform integer in [0, n)

    Tensor uniform(const Shape& shape, double low, double high, DType dtype);
    Tensor normal(const Shape& shape, double mean, double stddev, DType dtype);

    // The whole state, to save and restore a run exactly.
    struct State {
        std::uint64_t s[4];
        bool has_spare;
        double spare;
    };
    State state() const { return {{s_[0], s_[1], s_[2], s_[3]}, has_spare_, spare_}; }
    void set_state(const State& st);

private:
    std::uint64_t s_[4]{};
    bool has_spare_ = false;
    double spare_ = 0;
};

// 0 .. n-1 in a random order (Fisher-Yates with gen.below), as an int64 tensor [n]: the same
// order for the same generator state on every platform.
Tensor randperm(std::size_t n, Generator& gen);

}  // namespace tapegrad
