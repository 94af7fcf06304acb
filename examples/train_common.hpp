// What the training scripts (examples/char_lm, examples/sine_forecast, compare_cells) share:
// positive options, the recurrent layer chosen by a flag, the guarded update that stops training at the first NaN or Inf in a
// loss or a gradient, a progress line, and gnuplot. Header-only, as the other example headers.
#pragma once

#include <unistd.h>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

namespace train_common {

// A command-line option that must be positive, with its default shown in --help.
template <class T>
CLI::Option* positive_option(CLI::App& app, const std::string& name, T& value,
                             const std::string& help) {
    return app.add_option(name, value, help)->check(CLI::PositiveNumber)->capture_default_str();
}

enum class CellType { rnn, lstm, gru };

inline const char* cell_name(CellType type) {
    return type == CellType::rnn ? "rnn" : type == CellType::lstm ? "lstm" : "gru";
}

inline const char* cell_label(CellType type) {
    return type == CellType::rnn ? "RNN" : type == CellType::lstm ? "LSTM" : "GRU";
}

inline CellType parse_cell(const std::string& name) {
    if (name == "rnn") return CellType::rnn;
    if (name == "lstm") return CellType::lstm;
    if (name == "gru") return CellType::gru;
    throw tapegrad::ValueError("cell '" + name + "' is not one of rnn, lstm, gru");
}

// A tanh RNN, an LSTM with forget-gate bias 1 (Jozefowicz et al. 2015) or a GRU, [T, B, input] in.
inline std::shared_ptr<tapegrad::Recurrent> make_recurrent(
    CellType type, std::size_t input, std::size_t hidden, std::size_t layers,
    tapegrad::Generator& gen, tapegrad::DType dtype = tapegrad::float32) {
    tapegrad::RecurrentOptions options{.num_layers = layers, .dtype = dtype};
    switch (type) {
        case CellType::rnn: return std::make_shared<tapegrad::RNN>(input, hidden, options, gen);
        case CellType::lstm:
            options.init = {.forget_bias = 1.0};
            return std::make_shared<tapegrad::LSTM>(input, hidden, options, gen);
        case CellType::gru: return std::make_shared<tapegrad::GRU>(input, hidden, options, gen);
    }
    throw tapegrad::ValueError("make_recurrent: unknown cell type");
}

// Training stopped at a NaN or Inf; what() names the step and what was not finite.
class Diverged : public tapegrad::Error {
public:
    Diverged(std::int64_t step, const std::string& what)
        : Error(fmt::format("step {}: {}", step, what)), step_(step) {}
    std::int64_t step() const { return step_; }

private:
    std::int64_t step_;
};

// What to do after a Diverged, for the scripts' error message.
inline std::string divergence_advice(bool anomaly_on, bool can_resume) {
    std::string advice;
    if (!anomaly_on)
        advice +=
            "Rerun with --anomaly to name the op that produced the NaN or Inf (AnomalyGuard). ";
    if (can_resume) advice += "--resume restarts from the last good checkpoint; ";
    return advice + (can_resume ? "a" : "A") + " lower --lr or --clip may avoid it.";
}

// "NaN", "Inf", "-Inf" or the number.
inline std::string number_text(double x) {
    if (std::isnan(x)) return "NaN";
    if (std::isinf(x)) return x > 0 ? "Inf" : "-Inf";
    return fmt::format("{}", x);
}

// The guarded end of a training step, after backward: a non-finite loss, or a non-finite
// gradient (the parameter is named), throws Diverged before any parameter changes; otherwise
// the gradient norm is clipped to `clip` and the optimizer steps. Returns the gradient norm
// before clipping.
inline double guarded_step(tapegrad::Optimizer& optimizer, const tapegrad::Module& model,
                           double loss, double clip, std::int64_t step) {
    if (!std::isfinite(loss)) throw Diverged(step, "the loss is " + number_text(loss));
    const double norm = tapegrad::clip_grad_norm(optimizer.parameters(), clip);
    if (!std::isfinite(norm)) {
        for (const auto& [name, p] : model.named_parameters())
            if (p.grad().defined() && !tapegrad::all_finite(p.grad()))
                throw Diverged(step,
                               fmt::format("the gradient of {} {} holds NaN or Inf (loss {})", name,
                                           tapegrad::to_string(p.shape()), number_text(loss)));
        throw Diverged(step, "the gradient norm is " + number_text(norm) + " (loss " +
                                 number_text(loss) + ")");
    }
    optimizer.step();
    return norm;
}

// backward from the scalar `loss` of step `step`, then guarded_step. A non-finite loss throws
// before backward; an AnomalyError (under AnomalyGuard) is rethrown as Diverged with the step.
inline double guarded_update(tapegrad::Optimizer& optimizer, const tapegrad::Module& model,
                             const tapegrad::Variable& loss, double clip, std::int64_t step) {
    const double value = loss.item();
    if (!std::isfinite(value)) throw Diverged(step, "the loss is " + number_text(value));
    try {
        loss.backward();
    } catch (const tapegrad::AnomalyError& e) {
        throw Diverged(step, e.what());
    }
    return guarded_step(optimizer, model, value, clip, step);
}

// "1h02m", "3m05s", "42s"
inline std::string format_seconds(double seconds) {
    const long s = std::lround(std::max(0.0, seconds));
    if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
    if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
    return fmt::format("{}s", s);
}

// The progress line: redrawn in place on a terminal; a plain line every `log_seconds` when
// the output is piped. print() writes a permanent line.
class Progress {
public:
    using Clock = std::chrono::steady_clock;
    explicit Progress(double log_seconds = 10)
        : tty_(isatty(fileno(stdout)) != 0), log_seconds_(log_seconds), last_(Clock::now()) {}

    void update(const std::string& text) {
        const auto now = Clock::now();
        const double since = std::chrono::duration<double>(now - last_).count();
        if (tty_ && since >= 0.2) {
            fmt::print("\r\x1b[2K{}", text);
            std::fflush(stdout);
            open_ = true;
            last_ = now;
        } else if (!tty_ && since >= log_seconds_) {
            print(text);
        }
    }
    void print(const std::string& line) {
        fmt::print("{}{}\n", open_ ? "\r\x1b[2K" : "", line);
        std::fflush(stdout);
        open_ = false;
        last_ = Clock::now();
    }

private:
    bool tty_;
    double log_seconds_;
    Clock::time_point last_;
    bool open_ = false;
};

// Runs `script` (a gnuplot file in `dir`) there; false when gnuplot is missing or fails.
inline bool run_gnuplot(const std::filesystem::path& dir, const std::string& script) {
    if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
    const std::string cmd = fmt::format("cd '{}' && gnuplot '{}'", dir.string(), script);
    return std::system(cmd.c_str()) == 0;
}

}  // namespace train_common
