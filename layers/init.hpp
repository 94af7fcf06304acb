// Initialisation helpers, as PyTorch's torch.nn.init, on a whole parameter or on a block of it:
//
//   init::orthogonal_(lstm.parameter("weight_hh_l0"), gen);                    // the whole matrix
//   init::constant_(lstm.parameter("bias_ih_l0"), 1.0, init::rows(H, 2 * H));  // the forget gate
//
// Each function writes through the leaf's mutable value (no tape records it) and touches only the
// block's elements; the rest of the parameter stays bit for bit as it was. A Variable is a shared
// handle, so the functions take it by const reference: a temporary, such as the Variable that
// Module::parameter returns, is written through like any other handle to the parameter.
// The parameter must be a leaf that requires grad (ValueError otherwise); float32 and float64.
#pragma once

#include <optional>
#include <string_view>

#include "core/random.hpp"
#include "core/variable.hpp"

namespace tapegrad::init {

// A block of a parameter along one axis: [start, stop) of `axis` (negative values count from
// the end, Python style); the whole tensor by default. A block outside the parameter, or an
// axis it does not have, is a ShapeError; an empty block (start == stop) changes nothing.
struct Part {
    long axis = 0;
    long start = 0;
    std::optional<long> stop;
};
inline Part rows(long start, long stop) { return Part{0, start, stop}; }
inline Part cols(long start, long stop) { return Part{1, start, stop}; }

// U(low, high): values in [low, high) (low > high is a ValueError).
void uniform_(const Variable& p, double low, double high, Generator& gen, Part part = {});
// N(mean, stddev^2) (stddev < 0 is a ValueError).
void normal_(const Variable& p, double mean, double stddev, Generator& gen, Part part = {});
void constant_(const Variable& p, double value, Part part = {});
void zeros_(const Variable& p, Part part = {});
void ones_(const Variable& p, Part part = {});

// The fans of the block as PyTorch computes them: fan_in = size(1) * receptive field,
// fan_out = size(0) * receptive field, the receptive field being the product of the dims after
// the first two. Needs at least 2 dimensions (ShapeError).
// U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(const Variable& p, Generator& gen, double gain = 1.0, Part part = {});
// As PyTorch: the block seen as a matrix [size(0), product of the other dims] is filled with
// the Q of a QR decomposition (in double) of a N(0, 1) matrix of that shape (of its transpose
// when it has fewer rows than columns), columns signed by diag(R), times gain. Its columns
// (rows >= cols) or rows (rows < cols) are then orthonormal (times gain). Needs at least 2
// dimensions (ShapeError).
void orthogonal_(const Variable& p, Generator& gen, double gain = 1.0, Part part = {});

// The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain: "linear",
// "conv1d/2d/3d", "conv_transpose1d/2d/3d" and "sigmoid" 1, "tanh" 5/3, "relu" sqrt(2),
// "leaky_relu" sqrt(2 / (1 + param^2)) with param the negative slope, "selu" 3/4.
// Any other name is a ValueError.
double calculate_gain(std::string_view nonlinearity, double param = 0.01);

}  // namespace tapegrad::init
