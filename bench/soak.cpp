// bench/soak: a long training run that must keep its memory flat. An LSTM (hidden 32) with a
// linear head learns the adding problem (T = 50, batch 32, a fresh batch every step) with Adam
// and gradient clipping, recording on one tape cleared after every step, as a training loop
// does. It prints the resident set size (VmRSS) at the start, after warm-up, periodically and
// at the end, with steps per second and the training loss.
//
// Exits 1 when the end RSS exceeds the RSS after warm-up by more than --max-growth-mib: a
// leak of one small tensor per step (an LSTM gate's [32, 32] float32, 4 KiB) would add about
// 400 MiB over the default 100,000 steps. Not run by `./run.sh bench`; run it with
// `./run.sh soak [steps]`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "examples/adding_problem.hpp"

using namespace tapegrad;

namespace {

// VmRSS of this process, in MiB (from /proc/self/status; 0 where that is missing).
double rss_mib() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0)
            return std::stod(line.substr(6)) / 1024.0;  // "VmRSS:  1234 kB"
    return 0;
}

// x [T, B, 2] -> LSTM -> h_T [B, H] -> Linear -> [B, 1].
class Model : public Module {
public:
    Model(std::size_t hidden, Generator& gen) : Module("SoakModel"), hidden_(hidden) {
        lstm = register_module("lstm", std::make_shared<LSTM>(2, hidden, RecurrentOptions{}, gen));
        head = register_module("head", std::make_shared<Linear>(hidden, 1, gen));
    }
    Variable forward(const Variable& x) {
        const Variable h_last = lstm->forward(x).states[0];  // [1, B, H]
        return (*head)(reshape(h_last, Shape{x.shape()[1], hidden_}));
    }
    std::shared_ptr<LSTM> lstm;
    std::shared_ptr<Linear> head;

private:
    std::size_t hidden_;
};

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    CLI::App app{"bench/soak: LSTM training on the adding problem; memory must stay flat"};
    std::size_t steps = 100'000, hidden = 32, seq_len = 50, batch = 32, every = 10'000,
                warmup = 1'000;
    double max_growth_mib = 16;
    app.add_option("--steps", steps, "training steps")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--hidden", hidden, "LSTM hidden size")->capture_default_str();
    app.add_option("--seq-len", seq_len, "sequence length T")->capture_default_str();
    app.add_option("--batch", batch, "batch size")->capture_default_str();
    app.add_option("--every", every, "print a line every this many steps")->capture_default_str();
    app.add_option("--warmup", warmup, "steps before the reference RSS is taken")
        ->capture_default_str();
    app.add_option("--max-growth-mib", max_growth_mib, "allowed RSS growth after warm-up, MiB")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    warmup = std::clamp<std::size_t>(warmup, 1, steps);
    every = std::max<std::size_t>(every, 1);

    const double rss_start = rss_mib();
    fmt::print("soak: LSTM hidden {}, T = {}, batch {}, {} steps; RSS at start {:.1f} MiB\n",
               hidden, seq_len, batch, steps, rss_start);
    std::fflush(stdout);

    Generator gen(7);
    Model model(hidden, gen);
    Adam optimizer(Params(model), AdamOptions{.lr = 2e-3});
    Tape tape;
    TapeScope scope(tape);

    using Clock = std::chrono::steady_clock;
    const auto t_start = Clock::now();
    auto t_last = t_start;
    double rss_warm = 0, loss_sum = 0;
    std::size_t loss_count = 0;
    for (std::size_t step = 1; step <= steps; ++step) {
        const AddingBatch data = adding_batch(seq_len, batch, gen);
        optimizer.zero_grad();
        {
            const Variable loss = mse_loss(model.forward(Variable(data.x)), Variable(data.y));
            loss.backward();
            loss_sum += loss.item();
            ++loss_count;
        }
        clip_grad_norm(optimizer.parameters(), 1.0);
        optimizer.step();
        tape.clear();

        if (step == warmup) {
            rss_warm = rss_mib();
            fmt::print("step {:>7}: RSS after warm-up {:.1f} MiB\n", step, rss_warm);
        }
        if (step % every == 0 || step == steps) {
            const auto now = Clock::now();
            const double interval = std::chrono::duration<double>(now - t_last).count();
            const std::size_t done = step % every == 0 ? every : step % every;
            fmt::print(
                "step {:>7}: RSS {:7.1f} MiB  {:7.1f} steps/s  mean loss {:.5f} (baseline "
                "{:.5f})\n",
                step, rss_mib(), static_cast<double>(done) / interval,
                loss_sum / static_cast<double>(loss_count), adding_baseline_mse);
            std::fflush(stdout);
            t_last = now;
            loss_sum = 0;
            loss_count = 0;
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
    const double rss_end = rss_mib();
    fmt::print(
        "soak: RSS start {:.1f} MiB, after warm-up ({} steps) {:.1f} MiB, end {:.1f} MiB; "
        "{} steps in {:.0f} s ({:.1f} steps/s)\n",
        rss_start, warmup, rss_warm, rss_end, steps, seconds, static_cast<double>(steps) / seconds);
    if (rss_end > rss_warm + max_growth_mib) {
        fmt::print("soak: FAIL: RSS grew by {:.1f} MiB after warm-up (allowed {:.1f} MiB)\n",
                   rss_end - rss_warm, max_growth_mib);
        return 1;
    }
    fmt::print("soak: OK: RSS grew by {:.1f} MiB after warm-up (allowed {:.1f} MiB)\n",
               rss_end - rss_warm, max_growth_mib);
    return 0;
}
