// The pieces of examples/sine_forecast.cpp that the tests use: the noisy multi-sine series,
// windows of past values with the values to forecast, the last-value baseline, the model (a
// recurrent layer and a linear head from its last hidden state to the next K values) and one
// guarded training step.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "examples/train_common.hpp"

namespace sine_forecast {

using tapegrad::Generator;
using tapegrad::Tensor;
using tapegrad::Variable;

struct SeriesConfig {
    std::size_t length = 4000;
    std::vector<double> periods{23.0, 61.0, 147.0};
    std::vector<double> amplitudes{1.0, 0.6, 0.4};
    double noise = 0.1;  // standard deviation of the Gaussian noise
};

// x[t] = Σ_k a_k sin(2π t / P_k + φ_k) + noise ε_t, with phases φ_k ~ U(0, 2π) and ε_t ~ N(0, 1)
// drawn from gen.
inline std::vector<double> make_series(const SeriesConfig& config, Generator& gen) {
    if (config.periods.empty() || config.periods.size() != config.amplitudes.size())
        throw tapegrad::ValueError(
            fmt::format("sine_forecast: {} periods and {} amplitudes; give one amplitude per "
                        "period",
                        config.periods.size(), config.amplitudes.size()));
    std::vector<double> phases;
    for (std::size_t k = 0; k < config.periods.size(); ++k)
        phases.push_back(gen.uniform(0.0, 2 * std::numbers::pi));
    std::vector<double> x(config.length);
    for (std::size_t t = 0; t < config.length; ++t) {
        double v = 0;
        for (std::size_t k = 0; k < config.periods.size(); ++k)
            v += config.amplitudes[k] *
                 std::sin(2 * std::numbers::pi * static_cast<double>(t) / config.periods[k] +
                          phases[k]);
        x[t] = v + config.noise * gen.normal();
    }
    return x;
}

// For each origin o: the `window` values x[o - window + 1 .. o] and the `horizon` values
// x[o + 1 .. o + horizon] that follow.
struct Windows {
    Tensor x;  // [window, N, 1], time-major as the recurrent layers take it
    Tensor y;  // [N, horizon]
    std::vector<std::size_t> origins;
};

inline Windows make_windows(const std::vector<double>& series,
                            const std::vector<std::size_t>& origins, std::size_t window,
                            std::size_t horizon, tapegrad::DType dtype = tapegrad::float32) {
    const std::size_t N = origins.size();
    if (N == 0 || window == 0 || horizon == 0)
        throw tapegrad::ValueError(
            fmt::format("sine_forecast: make_windows needs origins ({}), a window ({}) and a "
                        "horizon ({})",
                        N, window, horizon));
    Tensor x = Tensor::empty({window, N, 1}, dtype), y = Tensor::empty({N, horizon}, dtype);
    for (std::size_t n = 0; n < N; ++n) {
        const std::size_t o = origins[n];
        if (o + 1 < window || o + horizon >= series.size())
            throw tapegrad::ValueError(
                fmt::format("sine_forecast: origin {} needs values {} to {}, the series has 0 "
                            "to {}",
                            o, static_cast<long>(o) - static_cast<long>(window) + 1, o + horizon,
                            series.size() - 1));
        for (std::size_t t = 0; t < window; ++t) x.set_flat(t * N + n, series[o + 1 - window + t]);
        for (std::size_t h = 0; h < horizon; ++h) y.set_flat(n * horizon + h, series[o + 1 + h]);
    }
    return {x, y, origins};
}

// n origins drawn uniformly from [first, last].
inline std::vector<std::size_t> random_origins(std::size_t first, std::size_t last, std::size_t n,
                                               Generator& gen) {
    if (last < first)
        throw tapegrad::ValueError(
            fmt::format("sine_forecast: no origins in [{}, {}]", first, last));
    std::vector<std::size_t> origins(n);
    for (auto& o : origins) o = first + gen.below(last - first + 1);
    return origins;
}

// The naive forecast: the last observed value, repeated for every step ahead. [N, horizon]
inline Tensor last_value_forecast(const Windows& w) {
    const std::size_t window = w.x.shape()[0], N = w.x.shape()[1], horizon = w.y.shape()[1];
    Tensor f = Tensor::empty({N, horizon}, w.x.dtype());
    for (std::size_t n = 0; n < N; ++n)
        for (std::size_t h = 0; h < horizon; ++h)
            f.set_flat(n * horizon + h, w.x.flat((window - 1) * N + n));
    return f;
}

// Mean squared error of forecasts [N, K] for each step ahead (K values) and over all.
inline std::vector<double> mse_per_horizon(const Tensor& forecast, const Tensor& truth) {
    const std::size_t N = truth.shape()[0], K = truth.shape()[1];
    std::vector<double> mse(K, 0.0);
    for (std::size_t n = 0; n < N; ++n)
        for (std::size_t h = 0; h < K; ++h) {
            const double d = forecast.flat(n * K + h) - truth.flat(n * K + h);
            mse[h] += d * d / static_cast<double>(N);
        }
    return mse;
}
inline double mse(const Tensor& forecast, const Tensor& truth) {
    const auto per = mse_per_horizon(forecast, truth);
    double total = 0;
    for (const double m : per) total += m;
    return total / static_cast<double>(per.size());
}

struct ModelConfig {
    train_common::CellType cell = train_common::CellType::gru;
    std::size_t hidden = 32;
    std::size_t horizon = 10;
};

// x [W, N, 1] -> the last hidden state [N, H] -> linear head -> the next K values [N, K].
class Forecaster : public tapegrad::Module {
public:
    Forecaster(const ModelConfig& config, Generator& gen) : Module("Forecaster"), config_(config) {
        rnn = register_module("rnn",
                              train_common::make_recurrent(config.cell, 1, config.hidden, 1, gen));
        head = register_module(
            "head", std::make_shared<tapegrad::Linear>(config.hidden, config.horizon, gen));
    }
    Variable forward(const Variable& x) {
        const Variable h_last = rnn->forward(x).states[0];  // [1, N, H]
        return (*head)(tapegrad::squeeze(h_last, 0));
    }
    const ModelConfig& config() const { return config_; }

    std::shared_ptr<tapegrad::Recurrent> rnn;
    std::shared_ptr<tapegrad::Linear> head;

private:
    ModelConfig config_;
};

struct TrainConfig {
    double lr = 3e-3;
    double clip = 1.0;
};

// The model and its Adam optimizer, recording on their own tape.
class Trainer {
public:
    Trainer(const ModelConfig& model_config, const TrainConfig& config, Generator& init_gen)
        : model(model_config, init_gen),
          optimizer(tapegrad::Params(model), tapegrad::AdamOptions{.lr = config.lr}),
          config_(config) {}

    // One guarded step of MSE on `batch`; returns the loss before the update (throws Diverged).
    double step(const Windows& batch) {
        tapegrad::TapeScope scope(tape_);
        ++step_;
        double loss_value = 0;
        try {
            optimizer.zero_grad();
            const Variable loss =
                tapegrad::mse_loss(model.forward(Variable(batch.x)), Variable(batch.y));
            loss_value = loss.item();
            train_common::guarded_update(optimizer, model, loss, config_.clip, step_);
        } catch (const tapegrad::AnomalyError& e) {  // from the forward pass, under --anomaly
            tape_.clear();
            throw train_common::Diverged(step_, e.what());
        } catch (...) {
            tape_.clear();
            throw;
        }
        tape_.clear();
        return loss_value;
    }

    // Forecasts [N, K] without recording, `chunk` windows at a time.
    Tensor predict(const Windows& w, std::size_t chunk = 256) {
        tapegrad::NoGradGuard no_grad;
        const std::size_t N = w.x.shape()[1];
        std::vector<Variable> parts;
        const Variable x(w.x);
        for (std::size_t start = 0; start < N; start += chunk) {
            const auto n = static_cast<long>(std::min(chunk, N - start));
            parts.push_back(model.forward(tapegrad::narrow(x, 1, static_cast<long>(start), n)));
        }
        return tapegrad::concat(parts, 0).value();
    }

    std::int64_t steps_done() const { return step_; }

    Forecaster model;
    tapegrad::Adam optimizer;

private:
    TrainConfig config_;
    std::int64_t step_ = 0;
    tapegrad::Tape tape_;
};

}  // namespace sine_forecast
