// Vanishing and exploding gradients through time, measured on the adding-problem model
// (examples/compare_cells.hpp): how much of the loss's gradient reaches the hidden state of
// each step, ‖∂L/∂h_t‖, read with StateGradients (layers/recurrent.hpp). The loss reads the
// last state h_{T-1} only, so everything earlier steps receive has come back through the
// recurrence, d = T-1-t steps of it.
//
//   const GradientFlow flow = gradient_flow(model, batch);  // at init, or after training
//   flow.relative[d];                   // ‖∂L/∂h_{T-1-d}‖ / ‖∂L/∂h_{T-1}‖
//   flow.distance_below(1e-3);          // the first d where it is below 1e-3, if any
//
// For exploding gradients: spectral_radius and set_spectral_radius (an RNN's W_hh, see
// recurrent_weight), and train_curve (training losses with or without gradient clipping).
// Header-only, as examples/compare_cells.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <vector>

#include <tapegrad/tapegrad.hpp>

#include "examples/adding_problem.hpp"
#include "examples/compare_cells.hpp"

namespace tapegrad {

// ‖∂L/∂h_t‖ for every step t (the Frobenius norm over the batch), L the model's MSE on
// `batch`. Records on a tape of its own and leaves no gradient in the model.
inline std::vector<double> state_gradient_norms(AddingModel& model, const AddingBatch& batch) {
    Tape tape;
    const TapeScope scope(tape);
    const StateGradients watch(*model.rnn);
    const Variable loss = mse_loss(model.forward(Variable(batch.x)), Variable(batch.y));
    loss.backward();
    model.zero_grad();
    return watch.norms(0);
}

// The gradient norms by distance from the loss, relative to the last step's.
struct GradientFlow {
    std::vector<double> relative;  // [d] = ‖∂L/∂h_{T-1-d}‖ / ‖∂L/∂h_{T-1}‖, d = 0 .. T-1
    double last_norm = 0;          // ‖∂L/∂h_{T-1}‖

    // The first distance where the relative norm is below `fraction`, or none within T.
    std::optional<std::size_t> distance_below(double fraction) const {
        for (std::size_t d = 0; d < relative.size(); ++d)
            if (relative[d] < fraction) return d;
        return std::nullopt;
    }
    // The relative norm at distance d, clamped to the sequence.
    double at(std::size_t d) const { return relative[std::min(d, relative.size() - 1)]; }
};

inline GradientFlow gradient_flow(AddingModel& model, const AddingBatch& batch) {
    const std::vector<double> norms = state_gradient_norms(model, batch);
    GradientFlow flow;
    flow.last_norm = norms.back();
    for (auto it = norms.rbegin(); it != norms.rend(); ++it)
        flow.relative.push_back(*it / flow.last_norm);
    return flow;
}

// The spectral radius (largest |eigenvalue|) of a square matrix by power iteration: the
// geometric mean of the growth ‖W v‖ / ‖v‖ over many steps, which converges to it even when
// the largest eigenvalues are a complex pair (Gelfand's formula, ρ = lim ‖W^k‖^(1/k)).
inline double spectral_radius(const Tensor& w, std::size_t steps = 3000, std::size_t warmup = 300) {
    const std::size_t n = w.shape()[0];
    const std::vector<double> a = w.to_vector();  // row-major [n, n]
    std::vector<double> v(n, 1.0), next(n);
    double log_growth = 0;
    for (std::size_t k = 0; k < warmup + steps; ++k) {
        double norm = 0;
        for (std::size_t i = 0; i < n; ++i) {
            next[i] = 0;
            for (std::size_t j = 0; j < n; ++j) next[i] += a[i * n + j] * v[j];
            norm += next[i] * next[i];
        }
        norm = std::sqrt(norm / static_cast<double>(n));  // v has RMS 1
        for (std::size_t i = 0; i < n; ++i) v[i] = next[i] / norm;
        if (k >= warmup) log_growth += std::log(norm);
    }
    return std::exp(log_growth / static_cast<double>(steps));
}

// The recurrent weight W_hh of the model's cell (a built-in one).
inline Variable& recurrent_weight(AddingModel& model) {
    return dynamic_cast<BuiltinCell&>(model.rnn->cell(0)).weight_hh;
}

// Scales a square weight (an RNN's weight_hh) in place to spectral radius `radius`; returns
// the radius it had.
inline double set_spectral_radius(Variable& weight, double radius) {
    const double before = spectral_radius(weight.value());
    if (!(before > 0)) throw ValueError("set_spectral_radius: the weight's spectral radius is 0");
    Tensor& w = weight.mutable_value();
    for (std::size_t i = 0; i < w.numel(); ++i) w.set_flat(i, w.flat(i) * radius / before);
    return before;
}

// One training run's losses, step by step.
struct LossCurve {
    std::vector<double> loss;             // training MSE of each step's batch, before its update
    std::vector<double> grad_norm;        // the gradient norm of each step, before clipping
    std::optional<std::size_t> diverged;  // the first step whose loss was not finite
};

// Trains `model` with `optimizer` on fresh adding-problem batches of length T from `data`,
// clipping the gradient norm to `clip` (infinity: no clipping). Stops at the first loss that
// is not finite: the parameters are then NaN or infinite and nothing more would change.
inline LossCurve train_curve(AddingModel& model, Optimizer& optimizer, double clip, std::size_t T,
                             std::size_t batch, std::size_t steps, Generator& data) {
    LossCurve curve;
    Tape tape;
    const TapeScope scope(tape);
    for (std::size_t step = 1; step <= steps; ++step) {
        const AddingBatch b = adding_batch(T, batch, data);
        optimizer.zero_grad();
        const Variable loss = mse_loss(model.forward(Variable(b.x)), Variable(b.y));
        loss.backward();
        curve.loss.push_back(loss.item());
        curve.grad_norm.push_back(clip_grad_norm(optimizer.parameters(), clip));
        tape.clear();
        if (!std::isfinite(curve.loss.back())) {
            curve.diverged = step;
            break;
        }
        optimizer.step();
    }
    return curve;
}

}  // namespace tapegrad
