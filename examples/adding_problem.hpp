// The adding problem (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016):
// a sequence of T pairs (value, marker); values are U(0, 1), the marker is 1 at one random
// step of the first half and one of the second half, 0 elsewhere. The target is the sum of
// the two marked values. Predicting the mean (1.0) always scores an MSE of 1/6.
//
//   Generator gen(1);
//   AddingBatch batch = adding_batch(100, 64, gen);   // x [100, 64, 2], y [64, 1]
//
// Header-only so both the demo (examples/compare_cells.cpp) and the tests can use it.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"

namespace tapegrad {

struct AddingBatch {
    Tensor x;                         // [T, B, 2]: channel 0 the values, channel 1 the markers
    Tensor y;                         // [B, 1]: the sum of the two marked values
    std::vector<std::size_t> first;   // per sequence: the marked step in [0, T/2)
    std::vector<std::size_t> second;  // per sequence: the marked step in [T/2, T)
};

// The MSE of always predicting the mean target 1.0: Var(U(0,1) + U(0,1)) = 2/12.
inline constexpr double adding_baseline_mse = 1.0 / 6.0;

// B sequences of length T (T >= 2) drawn from `gen`.
inline AddingBatch adding_batch(std::size_t T, std::size_t B, Generator& gen,
                                DType dtype = float32) {
    if (T < 2 || B == 0)
        throw ValueError("adding_batch: need T >= 2 and B >= 1, got T = " + std::to_string(T) +
                         ", B = " + std::to_string(B));
    const std::size_t half = T / 2;
    std::vector<double> x(T * B * 2, 0.0), y(B, 0.0);
    AddingBatch out;
    out.first.resize(B);
    out.second.resize(B);
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t b = 0; b < B; ++b) x[(t * B + b) * 2] = gen.uniform();
    for (std::size_t b = 0; b < B; ++b) {
        out.first[b] = gen.below(half);
        out.second[b] = half + gen.below(T - half);
        for (const std::size_t t : {out.first[b], out.second[b]}) {
            x[(t * B + b) * 2 + 1] = 1.0;
            y[b] += x[(t * B + b) * 2];
        }
    }
    out.x = Tensor::from(x, {T, B, 2}, dtype);
    out.y = Tensor::from(y, {B, 1}, dtype);
    return out;
}

}  // namespace tapegrad
