// bench/tape_overhead: what the engine costs per recorded op when the tensors are so small
// that the kernels are free — the tape, allocation and dispatch overhead alone.
//
// Graph: h = tanh(h * w + b) repeated, on float32 tensors of shape [4] (w, b leaves that
// require grad, reused every step as an RNN's weights), then sum(h) and backward. Ops are
// counted as the tape entries the forward records. The same graph runs in PyTorch eager
// (bench/tape_overhead_torch.py) in a child /usr/bin/python3 when torch is installed.
//
// Targets (issue "Foundation"): forward + backward <= 1 us per op, and at least 5x less than
// PyTorch's per-op cost.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "common.hpp"

using namespace tapegrad;
namespace tb = tapegrad::bench;

namespace {

constexpr double target_ns_per_op = 1000.0;
constexpr double target_ratio = 5.0;

struct Config {
    int ops = 1000;  // recorded ops: 3 per step (mul, add, tanh) plus the final sum
    int reps = 50;
    int warmup = 5;
    bool torch = true;
    int steps() const { return std::max(1, (ops - 1) / 3); }
};

// The fixed inputs, shared with the Python peer so the two graphs compute the same numbers.
const std::initializer_list<double> x0_values{0.1, 0.2, 0.3, 0.4};
const std::initializer_list<double> w_values{0.5, -0.6, 0.7, -0.8};
const std::initializer_list<double> b_values{0.05, 0.1, -0.05, 0.2};

Tensor vec4(std::initializer_list<double> v) { return Tensor::from(v, Shape{4}, DType::float32); }

struct Side {
    std::string name;
    long ops = 0;
    tb::Timings total, forward, backward, nograd;  // ns per op
    double loss = 0;
    std::vector<double> grad_w, grad_b;
};

Variable chain(Variable h, const Variable& w, const Variable& b, int steps) {
    for (int i = 0; i < steps; ++i) h = tanh(h * w + b);
    return sum(h);
}

// The tapegrad side. Its repetitions are taken in two halves, before and after the PyTorch
// child runs, so a slow phase of a shared machine weighs on both sides alike.
class TapegradRun {
public:
    explicit TapegradRun(const Config& cfg) : cfg_(cfg) { side_.name = "tapegrad"; }

    // `warmup` untimed repetitions, then `reps` timed ones, of the recorded graph and of the
    // forward under NoGradGuard.
    void measure(int reps) {
        for (int i = 0; i < cfg_.warmup; ++i) rep(false);
        for (int i = 0; i < reps; ++i) rep(true);
        const auto nograd = tb::time_reps(cfg_.warmup, reps, [&] {
            NoGradGuard no_grad;
            Variable loss = chain(x0_, w_, b_, cfg_.steps());
            if (!std::isfinite(loss.item())) std::abort();
        });
        nograd_.insert(nograd_.end(), nograd.begin(), nograd.end());
    }

    Side result() const {
        Side side = side_;
        const double per_op = 1e9 / static_cast<double>(side.ops);
        side.forward = tb::summarize(fwd_, per_op);
        side.backward = tb::summarize(bwd_, per_op);
        side.total = tb::summarize(total_, per_op);
        side.nograd = tb::summarize(nograd_, per_op);
        side.grad_w = w_.grad().to_vector();
        side.grad_b = b_.grad().to_vector();
        return side;
    }

private:
    const Config& cfg_;
    const Variable x0_{vec4(x0_values)};
    Variable w_{vec4(w_values), true, "w"};
    Variable b_{vec4(b_values), true, "b"};
    Side side_;
    std::vector<tb::Elapsed> fwd_, bwd_, total_, nograd_;

    void rep(bool timed) {
        w_.zero_grad();
        b_.zero_grad();
        const std::size_t before = current_tape().size();
        const tb::Instant t0;
        tb::Elapsed t_fwd;
        {
            Variable loss = chain(x0_, w_, b_, cfg_.steps());
            t_fwd = t0.since();
            side_.ops = static_cast<long>(current_tape().size() - before);
            loss.backward();
            side_.loss = loss.item();
        }  // the graph's variables are released inside the timed region, as in PyTorch
        const tb::Elapsed t_all = t0.since();
        if (!timed) return;
        fwd_.push_back(t_fwd);
        bwd_.push_back({t_all.wall - t_fwd.wall, t_all.cpu - t_fwd.cpu});
        total_.push_back(t_all);
    }
};

tb::Timings timings_from(const nlohmann::json& j) {
    auto stats = [](const nlohmann::json& s) {
        return tb::Stats{s.at("median").get<double>(), s.at("min").get<double>()};
    };
    return {stats(j.at("time")), stats(j.at("wall")), stats(j.at("cpu"))};
}

std::optional<Side> run_torch(const Config& cfg) {
    if (!cfg.torch) return std::nullopt;
    if (!tb::python_has_torch()) {
        std::printf(
            "note: %s cannot import torch (apt install python3-torch); PyTorch side "
            "skipped\n",
            tb::python);
        return std::nullopt;
    }
    const auto j =
        tb::run_python_peer(tb::source_dir() + "/tape_overhead_torch.py",
                            {"--ops", std::to_string(cfg.ops), "--reps", std::to_string(cfg.reps),
                             "--warmup", std::to_string(cfg.warmup)});
    if (!j) return std::nullopt;
    Side side;
    side.name = "torch " + j->at("torch_version").get<std::string>();
    side.ops = j->at("ops").get<long>();
    side.total = timings_from(j->at("fwd_bwd_ns_per_op"));
    side.forward = timings_from(j->at("fwd_ns_per_op"));
    side.backward = timings_from(j->at("bwd_ns_per_op"));
    side.nograd = timings_from(j->at("nograd_fwd_ns_per_op"));
    side.loss = j->at("loss").get<double>();
    side.grad_w = j->at("grad_w").get<std::vector<double>>();
    side.grad_b = j->at("grad_b").get<std::vector<double>>();
    return side;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return INFINITY;
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    return worst;
}

void usage() {
    std::printf(
        "usage: tape_overhead [--ops N] [--reps R] [--warmup W] [--no-torch]\n"
        "  N recorded ops (default 1000), R timed repetitions (default 50, >= 30 for "
        "the record), W warm-up runs (default 5)\n");
}

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    Config cfg;
    for (int i = 1; i < argc; ++i) {
        auto value = [&] {
            if (i + 1 >= argc) {
                usage();
                std::exit(2);
            }
            return std::atoi(argv[++i]);
        };
        if (!std::strcmp(argv[i], "--ops")) cfg.ops = value();
        else if (!std::strcmp(argv[i], "--reps")) cfg.reps = value();
        else if (!std::strcmp(argv[i], "--warmup")) cfg.warmup = value();
        else if (!std::strcmp(argv[i], "--no-torch")) cfg.torch = false;
        else {
            usage();
            return std::strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (cfg.ops < 4 || cfg.reps < 2 || cfg.warmup < 0) {
        usage();
        return 2;
    }

    warn_if_slow_blas();
    std::printf(
        "tape_overhead: h = tanh(h * w + b) x %d, sum, backward; float32 [4]; %d reps "
        "after %d warm-up; 1 thread\n",
        cfg.steps(), cfg.reps, cfg.warmup);
    std::printf("cpu: %s | OpenBLAS core: %s | OPENBLAS_CORETYPE=%s\n", tb::cpu_model().c_str(),
                blas_info().corename.c_str(), tb::env_or("OPENBLAS_CORETYPE", "(unset)").c_str());
    std::fflush(stdout);

    TapegradRun run(cfg);
    run.measure(cfg.reps / 2);
    const auto torch = run_torch(cfg);
    run.measure(cfg.reps - cfg.reps / 2);
    const Side ours = run.result();
    const double rss = tb::peak_rss_mib();

    std::printf(
        "\n| side | ops | fwd+bwd ns/op median | min | wall median | CPU median | "
        "fwd (recording) | bwd | no-grad fwd | torch / tapegrad |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n");
    auto row = [](const Side& s, const std::string& ratio) {
        std::printf("| %s | %ld | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s |\n",
                    s.name.c_str(), s.ops, s.total.time.median, s.total.time.min,
                    s.total.wall.median, s.total.cpu.median, s.forward.time.median,
                    s.backward.time.median, s.nograd.time.median, ratio.c_str());
    };
    const double ratio = torch ? torch->total.time.median / ours.total.time.median : 0;
    row(ours, "1");
    if (torch)
        row(*torch, fmt::format("{:.1f}x (min {:.1f}x)", ratio,
                                torch->total.time.min / ours.total.time.min));
    std::printf(
        "\nns per recorded op; each run's time is the smaller of its wall and process CPU "
        "time (see bench/common.hpp); fwd, bwd, no-grad fwd are medians.\n"
        "what the tape adds over the bare forward kernels: %.0f ns/op\n",
        ours.total.time.median - ours.nograd.time.median);
    std::printf("tapegrad peak RSS: %.1f MiB\n", rss);

    const bool fast = ours.total.time.median <= target_ns_per_op;
    std::printf("target: tapegrad fwd+bwd <= %.0f ns/op: %.0f ns/op -> %s\n", target_ns_per_op,
                ours.total.time.median, fast ? "PASS" : "FAIL");
    bool ok = fast;
    if (torch) {
        const bool faster = ratio >= target_ratio;
        ok = ok && faster;
        std::printf("target: torch / tapegrad >= %.0fx: %.1fx -> %s\n", target_ratio, ratio,
                    faster ? "PASS" : "FAIL");
        // Same graph on both sides? Their results agree to float32 rounding.
        const double d =
            std::max({std::abs(ours.loss - torch->loss), max_diff(ours.grad_w, torch->grad_w),
                      max_diff(ours.grad_b, torch->grad_b)});
        std::printf("same graph: loss and dL/dw, dL/db agree with torch to %.1e -> %s\n", d,
                    d < 1e-4 ? "ok" : "MISMATCH");
        if (torch->ops != ours.ops) std::printf("MISMATCH: torch ran %ld ops\n", torch->ops);
    } else {
        std::printf("target: torch / tapegrad >= %.0fx: not measured\n", target_ratio);
    }
    std::printf("overall: %s\n", ok ? "PASS" : "FAIL");
    return 0;
}
