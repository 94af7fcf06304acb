// RNN, LSTM and GRU side by side on the adding problem, to check the source article's
// comparison table and rule of thumb against measurements. Writes table.md, curves.csv and
// curves.png (gnuplot) into --out, with gradient_flow.csv/.png, exploding_loss.csv,
// exploding.png and the structure diagram structure.png/.svg (graphviz); --figures DIR copies
// the figures to DIR as well (./run.sh demo: docs/figures, which the README shows).
//   build/examples/compare_cells [--hidden 64] [--short 10] [--long 100] [--steps 3000] [--stretch] ...
//
// Each cell trains at a short length (all three should learn it) and at T = 100 (only the
// gated cells should), stopping once solved. The runs go to worker threads (one model per
// thread, each recording on its own tape), with OpenBLAS kept to one thread. Timings are
// thread CPU time (CLOCK_THREAD_CPUTIME_ID), what a run costs on one core however many runs
// share the machine; the time per step in the table is measured with each cell alone, before
// the runs start.
//
// Vanishing gradients (examples/gradient_flow.hpp): at T = --long, each cell's ‖∂L/∂h_t‖ by
// distance from the loss, at initialisation and after training. Exploding gradients: the RNN with
// W_hh scaled to spectral radius > 1 (--radii), trained with SGD and with Adam, each with and
// without gradient clipping; on the first worker thread out of training runs.
#include <cblas.h>
#include <malloc.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "examples/adding_problem.hpp"
#include "examples/compare_cells.hpp"
#include "examples/gradient_flow.hpp"
#include "examples/structure_diagram.hpp"
#include "examples/train_common.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double solved_mse = 0.01;
constexpr double vanished = 1e-3;  // a gradient norm this fraction of the last step's has vanished
constexpr std::size_t flow_batch = 64;  // held-out sequences the gradient flow is measured on

struct Settings {
    std::size_t hidden = 64, batch = 64, steps = 3000, eval_every = 50, test_size = 512;
    std::size_t short_t = 10, long_t = 100;
    std::vector<std::string> cells{"rnn", "lstm", "gru"};
    double lr = 2e-3, clip = 1.0;
    std::uint64_t seed = 1;
    unsigned threads = 2;
    bool stretch = false;
    double log_seconds = 10;
    std::string out = "compare_cells_out";
    std::string figures;  // also copy the figures here, when set
    // The exploding-gradient experiment: an RNN with W_hh scaled to these spectral radii, the
    // last one also trained with SGD at length exploding_t, with and without clipping.
    std::vector<double> radii{1.5, 3.0};
    std::size_t exploding_t = 20, exploding_steps = 500;
    double exploding_lr = 0.05;
};

struct Job {
    CellKind kind;
    std::size_t T;
    LSTMInit lstm_init;
    std::string label;  // "LSTM", "LSTM (chrono)"
};

struct Point {
    std::size_t step;
    double train_mse;  // mean over the steps since the previous point
    double test_mse;
    double cpu_seconds;
};

struct Outcome {
    std::size_t parameters = 0;
    std::vector<Point> curve;
    bool solved = false;
    std::size_t steps_run = 0;
    double cpu_seconds = 0;  // the whole run (to solved, or to the budget)
    double fwd_bwd_ms = 0;   // median thread CPU time of forward + backward during training
    double alone_ms = 0;     // the same, timed alone before training (time_step_ms)
    double eval_cpu = 0;     // CPU seconds spent on test evaluations
    std::optional<GradientFlow> flow_init, flow_trained;  // at the long length only
    double final_mse() const { return curve.empty() ? 0 : curve.back().test_mse; }
    double best_mse() const {
        double best = curve.empty() ? 0 : curve.front().test_mse;
        for (const Point& p : curve) best = std::min(best, p.test_mse);
        return best;
    }
};

// What the display thread shows for one run.
struct Progress {
    enum { waiting, running, done } state = waiting;
    std::size_t step = 0;
    double loss = 0, test = -1;
    Clock::time_point start;
    std::string summary;  // when done
};

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

Outcome run(const Job& job, const Settings& s, Progress& progress, std::mutex& mutex) {
    Generator init_gen(s.seed), data_gen(s.seed * 1000003 + job.T);
    Generator test_gen(0x7e57 + job.T);  // the held-out set: the same for every cell and seed
    const AddingBatch test = adding_batch(job.T, s.test_size, test_gen);
    Trainer trainer({.kind = job.kind, .hidden = s.hidden, .lstm_init = job.lstm_init},
                    {.lr = s.lr, .clip = s.clip}, init_gen);
    Outcome out;
    out.parameters = trainer.model.parameter_count();
    // The gradient flow of the untouched and the trained model, outside the timed run.
    const bool measure_flow = job.T == s.long_t && job.label == cell_name(job.kind);
    Generator flow_gen(0xf10 + job.T);
    const AddingBatch flow = adding_batch(job.T, flow_batch, flow_gen);
    if (measure_flow) out.flow_init = gradient_flow(trainer.model, flow);
    const double cpu0 = thread_cpu_seconds();
    {
        std::lock_guard lock(mutex);
        progress.state = Progress::running;
        progress.start = Clock::now();
    }
    auto evaluate = [&] {
        const double t = thread_cpu_seconds();
        const double mse = trainer.evaluate(test);
        out.eval_cpu += thread_cpu_seconds() - t;
        return mse;
    };
    out.curve.push_back({0, std::nan(""), evaluate(), thread_cpu_seconds() - cpu0});
    std::vector<double> fwd_bwd;
    double loss_sum = 0;
    std::size_t loss_n = 0;
    for (std::size_t step = 1; step <= s.steps; ++step) {
        const StepResult r = trainer.step(adding_batch(job.T, s.batch, data_gen));
        fwd_bwd.push_back(r.fwd_bwd_cpu);
        loss_sum += r.loss;
        ++loss_n;
        out.steps_run = step;
        std::optional<double> mse;
        if (step % s.eval_every == 0 || step == s.steps) {
            mse = evaluate();
            out.curve.push_back(
                {step, loss_sum / static_cast<double>(loss_n), *mse, thread_cpu_seconds() - cpu0});
            loss_sum = 0;
            loss_n = 0;
        }
        std::lock_guard lock(mutex);
        progress.step = step;
        progress.loss = step == 1 ? r.loss : 0.95 * progress.loss + 0.05 * r.loss;  // smoothed
        if (mse) progress.test = *mse;
        if (mse && *mse < solved_mse) {
            out.solved = true;
            break;
        }
    }
    out.cpu_seconds = thread_cpu_seconds() - cpu0;
    out.fwd_bwd_ms = 1e3 * median(fwd_bwd);
    if (measure_flow) out.flow_trained = gradient_flow(trainer.model, flow);
    return out;
}

// Forward + backward of one training step, timed alone: the median thread CPU time of `reps`
// steps after `warmup`, run on this thread while no other run of ours is going on.
double time_step_ms(CellKind kind, std::size_t T, const Settings& s, int warmup = 3,
                    int reps = 10) {
    Generator init_gen(s.seed), data_gen(s.seed);
    Trainer trainer({.kind = kind, .hidden = s.hidden}, {.lr = s.lr, .clip = s.clip}, init_gen);
    std::vector<double> cpu;
    for (int i = 0; i < warmup + reps; ++i) {
        const double t = trainer.step(adding_batch(T, s.batch, data_gen)).fwd_bwd_cpu;
        if (i >= warmup) cpu.push_back(t);
    }
    return 1e3 * median(cpu);
}

std::string status_line(const Job& job, const Progress& p, const Settings& s) {
    const std::string name = fmt::format("{:<14} T={:<4}", job.label, job.T);
    if (p.state == Progress::waiting) return name + " waiting";
    if (p.state == Progress::done) return name + " " + p.summary;
    const double wall = std::chrono::duration<double>(Clock::now() - p.start).count();
    const double rate = wall > 0 ? static_cast<double>(p.step) / wall : 0;
    const double eta = rate > 0 ? static_cast<double>(s.steps - p.step) / rate : 0;
    return name + fmt::format(" step {:>5}/{}  loss {:.4f}  test {}  {:5.1f} steps/s  ETA {:.0f} s",
                              p.step, s.steps, p.loss,
                              p.test < 0 ? std::string("  -   ") : fmt::format("{:.4f}", p.test),
                              rate, eta);
}

std::string solve_text(const Outcome& o, std::size_t budget) {
    if (o.solved) return fmt::format("step {}, {:.1f} s", o.steps_run, o.cpu_seconds);
    return fmt::format("not solved: MSE {:.3f} after {} steps (best {:.3f})", o.final_mse(), budget,
                       o.best_mse());
}

// The outcome of the built-in `kind` at length T, or null when it did not run.
const Outcome* outcome_of(const std::vector<Job>& jobs, const std::vector<Outcome>& outcomes,
                          CellKind kind, std::size_t T) {
    for (std::size_t i = 0; i < jobs.size(); ++i)
        if (jobs[i].kind == kind && jobs[i].T == T && jobs[i].label == cell_name(kind))
            return &outcomes[i];
    return nullptr;
}

// ---- Vanishing and exploding gradients (examples/gradient_flow.hpp)

// The held-out batch the gradient flow at length T is measured on: the same for every model.
AddingBatch flow_batch_of(std::size_t T) {
    Generator gen(0xf10 + T);
    return adding_batch(T, flow_batch, gen);
}

// An RNN initialised as the training runs initialise it.
std::unique_ptr<AddingModel> initial_rnn(const Settings& s) {
    Generator gen(s.seed);
    return std::make_unique<AddingModel>(ModelOptions{.kind = CellKind::rnn, .hidden = s.hidden},
                                         gen);
}

struct ExplodingRun {
    std::string id;         // "sgd_clipped", in exploding_loss.csv
    std::string optimizer;  // "SGD"
    double lr = 0;
    std::string clipping;  // "no clipping", "clipped at 1"
    LossCurve curve;
    std::string label() const { return fmt::format("{} (lr {}), {}", optimizer, lr, clipping); }
};

// The exploding-gradient experiment: the gradient flow of the initial RNN with W_hh as it is
// and scaled to each of Settings::radii, and training runs from the last radius.
struct Exploding {
    std::vector<double> radii;        // radii[0]: W_hh's spectral radius as initialised
    std::vector<GradientFlow> flows;  // one per radius, at the long length
    std::vector<ExplodingRun> runs;   // SGD without and with clipping, then Adam likewise
};

Exploding exploding_experiment(const Settings& s) {
    Exploding e;
    e.radii.push_back(spectral_radius(recurrent_weight(*initial_rnn(s)).value()));
    e.radii.insert(e.radii.end(), s.radii.begin(), s.radii.end());
    if (s.long_t) {
        const AddingBatch batch = flow_batch_of(s.long_t);
        for (const double radius : e.radii) {
            const auto model = initial_rnn(s);
            set_spectral_radius(recurrent_weight(*model), radius);
            e.flows.push_back(gradient_flow(*model, batch));
        }
    }
    const double no_clip = std::numeric_limits<double>::infinity();
    for (const bool adam : {false, true})
        for (const double clip : {no_clip, s.clip}) {
            const auto model = initial_rnn(s);
            set_spectral_radius(recurrent_weight(*model), e.radii.back());
            std::unique_ptr<Optimizer> optimizer;
            if (adam) optimizer = std::make_unique<Adam>(Params(*model), AdamOptions{.lr = s.lr});
            else
                optimizer = std::make_unique<SGD>(Params(*model), SGDOptions{.lr = s.exploding_lr});
            Generator data(s.seed * 1000003 + s.exploding_t);
            const std::string id =
                std::string(adam ? "adam" : "sgd") + (clip == no_clip ? "" : "_clipped");
            const std::string clipping =
                clip == no_clip ? "no clipping" : fmt::format("clipped at {}", clip);
            e.runs.push_back({id, adam ? "Adam" : "SGD", adam ? s.lr : s.exploding_lr, clipping,
                              train_curve(*model, *optimizer, clip, s.exploding_t, s.batch,
                                          s.exploding_steps, data)});
        }
    return e;
}

// "d = 14" or "not within 100": where the gradient norm has vanished.
std::string vanishing_distance(const GradientFlow& f) {
    const std::optional<std::size_t> d = f.distance_below(vanished);
    return d ? fmt::format("d = {}", *d) : fmt::format("not within {}", f.relative.size());
}

// "has vanished by d = 14" or "has not vanished within 100 steps"
std::string vanishes(const GradientFlow& f) {
    const std::optional<std::size_t> d = f.distance_below(vanished);
    return d ? fmt::format("has vanished by d = {}", *d)
             : fmt::format("has not vanished within {} steps", f.relative.size());
}

// "1.3e-11 at d = 50, 4.8e-22 at d = 99"
std::string relative_norms(const GradientFlow& f) {
    const std::size_t far = f.relative.size() - 1, mid = (far + 1) / 2;
    return fmt::format("{:.1e} at d = {}, {:.1e} at d = {}", f.at(mid), mid, f.at(far), far);
}

double peak(const GradientFlow& f) {
    return *std::max_element(f.relative.begin(), f.relative.end());
}

// The RNN's part: "suffers from vanishing and exploding gradients ...".
std::string rnn_gradient_claim(const Outcome& r, const Exploding& e, const Settings& s) {
    const GradientFlow &init = *r.flow_init, &trained = *r.flow_trained;
    const bool vanish_init = init.distance_below(vanished).has_value(),
               vanish_trained = trained.distance_below(vanished).has_value();
    std::string out =
        "- RNN: \"suffers from vanishing and exploding gradients, so long-term dependencies are "
        "hard to learn.\" ";
    out += vanish_init && vanish_trained ? "Vanishing: supported. "
           : vanish_init                 ? "Vanishing: supported at initialisation only. "
                                         : "Vanishing: not seen. ";
    out += fmt::format("At initialisation its norm {} ({}); after training it {} ({}); ",
                       vanishes(init), relative_norms(init), vanishes(trained),
                       relative_norms(trained));
    out += r.solved ? fmt::format("yet it solved T = {}.", s.long_t)
                    : fmt::format("and it did not learn T = {}.", s.long_t);
    const double rnn_peak = std::max(peak(init), peak(trained));
    if (rnn_peak > 1e3)
        return out + fmt::format(
                         " Exploding: supported, the norm rises to {:.1e} times its "
                         "value at d = 0.\n",
                         rnn_peak);
    out += fmt::format(
        " Exploding: not as initialised (W_hh's spectral radius {:.2f}) nor after "
        "training, where the norm {}",
        e.radii[0],
        rnn_peak <= 1.0 ? std::string("never exceeds its value at d = 0")
                        : fmt::format("peaks at {:.2g} times its value at d = 0", rnn_peak));
    const std::size_t far = s.long_t - 1;
    bool explodes_scaled = false;
    for (std::size_t i = 1; i < e.flows.size(); ++i) {
        const double growth = e.flows[i].at(far);
        explodes_scaled = explodes_scaled || growth > 1e3;
        out += fmt::format("; with W_hh scaled to spectral radius {} {}: {:.1e} at d = {}{}",
                           e.radii[i],
                           growth > 1e3   ? "it explodes"
                           : growth > 1.0 ? "it grows, slowly"
                                          : "it still does not grow",
                           growth, far, growth > 1e3 ? "" : " (the tanh saturates, |tanh'| < 1)");
    }
    return out + (explodes_scaled ? ". Exploding gradients need a larger W_hh than the default "
                                    "initialisation's.\n"
                                  : ".\n");
}

// The LSTM's part: "through its gates, solves long-term dependencies".
std::string lstm_gradient_claim(const Outcome& l, const Outcome& r, const Settings& s) {
    const GradientFlow &init = *l.flow_init, &trained = *l.flow_trained;
    const std::size_t far = s.long_t - 1;
    std::string out =
        "- LSTM: \"through its gates, solves long-term dependencies\" (its section: the gates "
        "\"effectively alleviate vanishing gradients\"). ";
    const bool vanish_init = init.distance_below(vanished).has_value(),
               vanish_trained = trained.distance_below(vanished).has_value();
    out += !vanish_trained && !vanish_init ? "Supported. "
           : !vanish_trained               ? "Supported once trained. "
                                           : "Not supported here. ";
    out += fmt::format(
        "At initialisation its norm {} ({}: {:.1e} times the RNN's at d = {}); after training it "
        "{} ({}, against the trained RNN's {:.1e})",
        vanishes(init), relative_norms(init), init.at(far) / r.flow_init->at(far), far,
        vanishes(trained), relative_norms(trained), r.flow_trained->at(far));
    out += l.solved ? fmt::format(", and it solved T = {}.\n", s.long_t)
                    : fmt::format(", and it did not solve T = {}.\n", s.long_t);
    return out;
}

// The article's statements about gradients through time, each with what the measurements say.
std::string gradient_claims(const std::vector<Job>& jobs, const std::vector<Outcome>& outcomes,
                            const Exploding& e, const Settings& s) {
    auto find = [&](CellKind kind) { return outcome_of(jobs, outcomes, kind, s.long_t); };
    const Outcome *r = find(CellKind::rnn), *l = find(CellKind::lstm), *g = find(CellKind::gru);
    if (!s.long_t || !r) return "";
    std::string out = fmt::format(
        "Gradients through time, the article's RNN and LSTM sections against measurements: "
        "‖∂L/∂h_t‖ relative to its value at the last step, by distance d = T-1-t from the loss, "
        "at T = {} on {} held-out sequences, at initialisation and after the T = {} run "
        "(gradient_flow.png); vanished: below {}.\n",
        s.long_t, flow_batch, s.long_t, vanished);
    out += rnn_gradient_claim(*r, e, s);
    if (l) out += lstm_gradient_claim(*l, *r, s);
    if (g)
        out += fmt::format(
            "- GRU (the article's table: long-term dependencies strong): at initialisation its "
            "norm {} ({}); after training it {} ({}).\n",
            vanishes(*g->flow_init), relative_norms(*g->flow_init), vanishes(*g->flow_trained),
            relative_norms(*g->flow_trained));
    return out;
}

// The mean loss of the last `n` steps.
double tail_mean(const LossCurve& c, std::size_t n = 50) {
    n = std::min(n, c.loss.size());
    double sum = 0;
    for (std::size_t i = c.loss.size() - n; i < c.loss.size(); ++i) sum += c.loss[i];
    return sum / static_cast<double>(n);
}

// One training run of the exploding-gradient experiment, in words.
std::string run_summary(const ExplodingRun& run) {
    const LossCurve& c = run.curve;
    std::size_t largest = 0;  // the step (from 0) of the largest finite gradient norm
    for (std::size_t i = 0; i < c.grad_norm.size(); ++i)
        if (std::isfinite(c.grad_norm[i]) && c.grad_norm[i] > c.grad_norm[largest]) largest = i;
    const std::string grads =
        fmt::format("gradient norm {:.1e} at step 1, largest {:.1e} at step {}", c.grad_norm[0],
                    c.grad_norm[largest], largest + 1);
    if (c.diverged && *c.diverged > 1)
        return fmt::format(
            "{}: diverged; the loss was {:.1e} at step {}, not finite at step {} ({})", run.label(),
            c.loss[*c.diverged - 2], *c.diverged - 1, *c.diverged, grads);
    if (c.diverged) return run.label() + ": the loss was not finite at step 1";
    return fmt::format(
        "{}: the loss went from {:.2f} at step 1 to {:.3f} over the last 50 steps ({})",
        run.label(), c.loss.front(), tail_mean(c), grads);
}

// Which of two runs, without and with clipping, diverged.
std::string divergence(const LossCurve& unclipped, const LossCurve& clipped) {
    if (unclipped.diverged && clipped.diverged) return "both runs diverged";
    if (unclipped.diverged) return "only the unclipped run diverged";
    if (clipped.diverged) return "only the clipped run diverged";
    return fmt::format("neither run diverged (final losses {:.3f} without clipping, {:.3f} with)",
                       tail_mean(unclipped), tail_mean(clipped));
}

std::string exploding_summary(const Exploding& e, const Settings& s) {
    std::string out = fmt::format(
        "Exploding gradients (exploding.png): W_hh of the RNN as the runs initialise it has "
        "spectral radius {:.2f} (power iteration). Scaled to radius {}, and trained from there "
        "on the adding problem at T = {}, batch {}, {} steps, on the same data every run:\n",
        e.radii[0], e.radii.back(), s.exploding_t, s.batch, s.exploding_steps);
    for (const ExplodingRun& run : e.runs) out += "- " + run_summary(run) + ".\n";
    const LossCurve &sgd = e.runs[0].curve, &sgd_clipped = e.runs[1].curve;
    const double first_update = s.exploding_lr * sgd.grad_norm[0];
    if (sgd.diverged && !sgd_clipped.diverged)
        out += fmt::format(
            "With SGD, clipping is what keeps training stable: unclipped, the first gradient "
            "makes an update of norm {:.1f} (lr {} x {:.0f}) and from there the loss grows without "
            "bound; clipped at {}, no update is larger than {} and the loss ends at {:.3f} ({}).",
            first_update, s.exploding_lr, sgd.grad_norm[0], s.clip, s.exploding_lr * s.clip,
            tail_mean(sgd_clipped),
            tail_mean(sgd_clipped) > 0.8 * adding_baseline_mse
                ? fmt::format("about the {:.3f} of always predicting 1.0: stable, but this RNN "
                              "does not learn the task in {} steps",
                              adding_baseline_mse, s.exploding_steps)
                : fmt::format("below the {:.3f} of always predicting 1.0", adding_baseline_mse));
    else out += "With SGD, " + divergence(sgd, sgd_clipped) + ".";
    const LossCurve &adam = e.runs[2].curve, &adam_clipped = e.runs[3].curve;
    if (!adam.diverged && !adam_clipped.diverged)
        out += fmt::format(
            " With Adam (the demo's optimizer) neither run diverged and clipping changed little "
            "({:.3f} without, {:.3f} with): Adam scales each parameter's step by that "
            "parameter's own gradient history, so a large gradient does not make a large step.",
            tail_mean(adam), tail_mean(adam_clipped));
    else out += " With Adam, " + divergence(adam, adam_clipped) + ".";
    return out + "\n";
}

// The article's table (translated) with measured rows under each of its claims.
std::string comparison_table(const std::vector<Job>& jobs, const std::vector<Outcome>& outcomes,
                             const Settings& s) {
    auto find = [&](CellKind kind, std::size_t T) { return outcome_of(jobs, outcomes, kind, T); };
    const CellKind kinds[] = {CellKind::rnn, CellKind::lstm, CellKind::gru};
    auto row = [&](std::string label, auto&& cell) {
        std::vector<std::string> r{std::move(label)};
        for (const CellKind k : kinds) r.push_back(cell(k));
        return r;
    };
    auto article = [](const char* rnn, const char* lstm, const char* gru) {
        return [=](CellKind k) {
            return std::string(k == CellKind::rnn ? rnn : k == CellKind::lstm ? lstm : gru);
        };
    };
    std::vector<std::vector<std::string>> rows;
    rows.push_back(
        row("Structure (article)", article("simple, one recurrent layer",
                                           "complex: 3 gates + cell state", "simpler: 2 gates")));
    rows.push_back(row(fmt::format("Parameters, H = {}", s.hidden), [&](CellKind k) {
        const Outcome* o = find(k, s.long_t);
        if (!o) o = find(k, s.short_t);
        return o ? fmt::format("{}", o->parameters) : std::string("-");
    }));
    rows.push_back(row("Computational cost (article)", article("low", "high", "medium")));
    for (const std::size_t T : {s.long_t, s.short_t})
        if (T)
            rows.push_back(row(fmt::format("Forward+backward per step, T = {}, B = {}", T, s.batch),
                               [&](CellKind k) {
                                   const Outcome* o = find(k, T);
                                   return o ? fmt::format("{:.1f} ms", o->alone_ms)
                                            : std::string("-");
                               }));
    rows.push_back(row("Training speed (article)", article("fast", "slow", "fairly fast")));
    for (const std::size_t T : {s.short_t, s.long_t})
        if (T)
            rows.push_back(row(fmt::format("Solved (test MSE < {}) at T = {}", solved_mse, T),
                               [&](CellKind k) {
                                   const Outcome* o = find(k, T);
                                   return o ? solve_text(*o, s.steps) : std::string("-");
                               }));
    rows.push_back(row("Long-term dependencies (article)", article("weak", "strong", "strong")));
    if (s.long_t)
        rows.push_back(row(
            fmt::format("Long-term dependencies, measured at T = {}", s.long_t), [&](CellKind k) {
                const Outcome* o = find(k, s.long_t);
                if (!o) return std::string("-");
                return o->solved ? std::string("strong: solved")
                                 : fmt::format("weak: not solved in {} steps", s.steps);
            }));
    if (s.long_t)
        rows.push_back(row(fmt::format("Vanishing gradients, T = {}: distance at which ‖∂L/∂h_t‖ "
                                       "< {} of the last step's (init / trained)",
                                       s.long_t, vanished),
                           [&](CellKind k) {
                               const Outcome* o = find(k, s.long_t);
                               if (!o || !o->flow_init) return std::string("-");
                               return vanishing_distance(*o->flow_init) + " / " +
                                      vanishing_distance(*o->flow_trained);
                           }));
    rows.push_back(row("Typical uses (article)", article("simple sequence modelling",
                                                         "machine translation, speech recognition",
                                                         "NLP, recommendation, time series")));
    return markdown_table({"", "RNN", "LSTM", "GRU"}, rows);
}

// The article's closing rule of thumb, each clause with what the measurements say about it.
std::string rule_of_thumb(const std::vector<Job>& jobs, const std::vector<Outcome>& outcomes,
                          const Settings& s) {
    auto find = [&](CellKind kind, std::size_t T) { return outcome_of(jobs, outcomes, kind, T); };
    const Outcome *rs = find(CellKind::rnn, s.short_t), *ls = find(CellKind::lstm, s.short_t),
                  *gs = find(CellKind::gru, s.short_t), *rl = find(CellKind::rnn, s.long_t),
                  *ll = find(CellKind::lstm, s.long_t), *gl = find(CellKind::gru, s.long_t);
    std::string out =
        "Rule of thumb (the article's closing lines), as these measurements support it:\n";
    // 1. short sequences: RNN is enough
    out += "- \"If the sequence is short, an RNN is enough.\" ";
    if (rs && rs->solved) {
        out += fmt::format("Supported: at T = {} the RNN solved the task (step {}, {:.1f} s)",
                           s.short_t, rs->steps_run, rs->cpu_seconds);
        if (ls && gs) {
            out += fmt::format(" with the cheapest step ({:.1f} ms against {:.1f} and {:.1f} ms)",
                               rs->alone_ms, ls->alone_ms, gs->alone_ms);
            const Outcome* fastest = rs;
            for (const Outcome* o : {ls, gs})
                if (o->solved && o->cpu_seconds < fastest->cpu_seconds) fastest = o;
            if (fastest != rs)
                out += fmt::format(
                    ", though it needed more steps than the gated cells (LSTM {}, GRU {}) and the "
                    "{} "
                    "got there sooner ({:.1f} s)",
                    ls->solved ? std::to_string(ls->steps_run) : "-",
                    gs->solved ? std::to_string(gs->steps_run) : "-",
                    fastest == ls ? "LSTM" : "GRU", fastest->cpu_seconds);
        }
        out += ".\n";
    } else if (rs) {
        out += fmt::format(
            "Not supported here: the RNN did not solve T = {} within {} steps (MSE {:.3f}).\n",
            s.short_t, s.steps, rs->final_mse());
    } else {
        out += "Not measured.\n";
    }
    // 2. long-term dependencies: LSTM is more robust
    out += "- \"If long-term dependencies matter, an LSTM is more robust.\" ";
    if (ll && rl) {
        if (ll->solved && !rl->solved)
            out += fmt::format(
                "Supported against the RNN: at T = {} the LSTM solved it (step {}) and the RNN "
                "did not (MSE {:.3f} after {} steps, best {:.3f}; predicting 1.0 scores {:.3f})",
                s.long_t, ll->steps_run, rl->final_mse(), s.steps, rl->best_mse(),
                adding_baseline_mse);
        else if (ll->solved)
            out += fmt::format("Both the LSTM (step {}) and the RNN (step {}) solved T = {}",
                               ll->steps_run, rl->steps_run, s.long_t);
        else
            out += fmt::format(
                "Not supported within the budget: the LSTM did not solve T = {} in {} steps (MSE "
                "{:.3f})",
                s.long_t, s.steps, ll->final_mse());
        if (gl && ll->solved) {
            if (gl->solved && gl->steps_run < ll->steps_run)
                out += fmt::format(
                    "; but the GRU solved it too, in fewer steps ({}), so on this task the LSTM is "
                    "not more robust than the GRU",
                    gl->steps_run);
            else if (!gl->solved)
                out += "; the GRU did not, so here the LSTM is the more robust gated cell";
            else out += fmt::format("; the GRU needed {} steps", gl->steps_run);
        }
        out += ".\n";
    } else {
        out += "Not measured.\n";
    }
    // 3. a balance of speed and quality: GRU
    out += "- \"For a balance of training speed and quality, a GRU is a good choice.\" ";
    if (gl && ll) {
        const double ratio = ll->alone_ms / gl->alone_ms;
        if (gl->solved)
            out += fmt::format(
                "Supported: the GRU solved T = {} in {:.1f} s against the LSTM's {}; its step "
                "costs "
                "{:.1f} ms against {:.1f} ms ({:.2f}x).\n",
                s.long_t, gl->cpu_seconds,
                ll->solved ? fmt::format("{:.1f} s", ll->cpu_seconds) : std::string("not solved"),
                gl->alone_ms, ll->alone_ms, ratio);
        else
            out += fmt::format(
                "Not supported here: the GRU did not solve T = {} (MSE {:.3f}); its step costs "
                "{:.1f} ms against the LSTM's {:.1f} ms.\n",
                s.long_t, gl->final_mse(), gl->alone_ms, ll->alone_ms);
    } else {
        out += "Not measured.\n";
    }
    return out;
}

void write_csv(const fs::path& path, const std::vector<Job>& jobs,
               const std::vector<Outcome>& outcomes) {
    std::ofstream f(path);
    f << "cell,T,step,train_mse,test_mse,cpu_seconds\n";
    for (std::size_t i = 0; i < jobs.size(); ++i)
        for (const Point& p : outcomes[i].curve)
            f << fmt::format(
                "{},{},{},{},{:.6g},{:.3f}\n", jobs[i].label, jobs[i].T, p.step,
                std::isnan(p.train_mse) ? std::string() : fmt::format("{:.6g}", p.train_mse),
                p.test_mse, p.cpu_seconds);
}

// Writes `script` into dir and runs it there with gnuplot; false when gnuplot is missing or fails.
bool gnuplot(const fs::path& dir, const std::string& name, const std::string& script) {
    std::ofstream(dir / name) << script;
    if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
    const std::string cmd = fmt::format("cd '{}' && gnuplot {}", dir.string(), name);
    return std::system(cmd.c_str()) == 0;
}

// Test MSE against step, one panel per length, drawn by gnuplot from the CSV.
bool write_plot(const fs::path& dir, const std::vector<Job>& jobs, const Settings& s) {
    std::vector<std::size_t> lengths;
    for (const Job& j : jobs)
        if (std::find(lengths.begin(), lengths.end(), j.T) == lengths.end()) lengths.push_back(j.T);
    std::sort(lengths.begin(), lengths.end());
    std::vector<Job> ordered = jobs;  // RNN, LSTM, GRU, then the stretch run, in every panel
    std::stable_sort(ordered.begin(), ordered.end(), [](const Job& a, const Job& b) {
        return std::pair(a.label != cell_name(a.kind), a.kind) <
               std::pair(b.label != cell_name(b.kind), b.kind);
    });
    std::string gp = fmt::format(
        "set terminal pngcairo size {},480 font 'sans,10'\nset output 'curves.png'\n"
        "set datafile separator ','\nset key bottom left box opaque\nset logscale y\nset yrange "
        "[1e-3:2]\n"
        "set xlabel 'training step'\nset ylabel 'test MSE'\nset grid\n"
        "set multiplot layout 1,{} title 'Adding problem: RNN vs LSTM vs GRU (H = {}, batch {}, "
        "Adam {})'\n",
        560 * lengths.size(), lengths.size(), s.hidden, s.batch, s.lr);
    for (const std::size_t T : lengths) {
        gp += fmt::format(
            "set title 'T = {}'\nplot {} with lines dt 2 lc 'gray' title 'predict 1.0 (1/6)', "
            "{} with lines dt 3 lc 'black' title 'solved (0.01)'",
            T, adding_baseline_mse, solved_mse);
        for (const Job& j : ordered)
            if (j.T == T)
                gp += fmt::format(
                    ", 'curves.csv' using 3:((strcol(1) eq '{}' && $2 == {}) ? $5 : NaN) "
                    "with linespoints pt 7 ps 0.4 lw 2 lc '{}' title '{}'",
                    j.label, T,
                    j.label != cell_name(j.kind) ? "#9467bd"
                    : j.kind == CellKind::rnn    ? "#d62728"
                    : j.kind == CellKind::lstm   ? "#1f77b4"
                                                 : "#2ca02c",
                    j.label);
        gp += "\n";
    }
    gp += "unset multiplot\n";
    return gnuplot(dir, "curves.gp", gp);
}

// ‖∂L/∂h_t‖ of every model measured, by distance d from the loss: the cells at the long length
// (at initialisation and trained) and the RNN with W_hh scaled (at initialisation).
void write_flow_csv(const fs::path& path, const std::vector<Job>& jobs,
                    const std::vector<Outcome>& outcomes, const Exploding& e) {
    std::ofstream f(path);
    f << "model,when,d,t,norm,relative\n";
    auto rows = [&](const std::string& model, const char* when, const GradientFlow& flow) {
        const std::size_t T = flow.relative.size();
        for (std::size_t d = 0; d < T; ++d)
            f << fmt::format("{},{},{},{},{:.6g},{:.6g}\n", model, when, d, T - 1 - d,
                             flow.relative[d] * flow.last_norm, flow.relative[d]);
    };
    for (std::size_t i = 0; i < jobs.size(); ++i)
        if (outcomes[i].flow_init) {
            rows(jobs[i].label, "init", *outcomes[i].flow_init);
            rows(jobs[i].label, "trained", *outcomes[i].flow_trained);
        }
    for (std::size_t i = 0; i < e.flows.size(); ++i)
        rows(fmt::format("RNN radius {:.2f}", e.radii[i]), "init", e.flows[i]);
}

void write_exploding_csv(const fs::path& path, const Exploding& e) {
    std::ofstream f(path);
    f << "run,step,loss,grad_norm\n";
    for (const ExplodingRun& run : e.runs)
        for (std::size_t i = 0; i < run.curve.loss.size(); ++i) {
            auto value = [](double v) {  // empty when not finite: gnuplot skips it
                return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string();
            };
            f << fmt::format("{},{},{},{}\n", run.id, i + 1, value(run.curve.loss[i]),
                             value(run.curve.grad_norm[i]));
        }
}

const char* cell_color(CellKind kind) {
    return kind == CellKind::rnn ? "#d62728" : kind == CellKind::lstm ? "#1f77b4" : "#2ca02c";
}

// The relative gradient norm against distance, log y: each cell at init (dashed) and trained.
bool write_flow_plot(const fs::path& dir, const Settings& s) {
    std::string gp = fmt::format(
        "set terminal pngcairo size 900,500 font 'sans,10' enhanced\n"
        "set output 'gradient_flow.png'\nset datafile separator ','\n"
        "set logscale y\nset format y '10^{{%L}}'\nset grid\nset xrange [0:{}]\n"
        "set key bottom left box opaque width -2\n"
        "set xlabel 'distance from the loss, d = T - 1 - t (steps)'\n"
        "set ylabel '‖∂L/∂h_t‖  relative to  ‖∂L/∂h_{{T-1}}‖'\n"
        "set title 'Vanishing gradients through time, T = {} (H = {}, {} held-out sequences): "
        "dashed at initialisation, solid after training'\n"
        "plot {} with lines dt 3 lw 1.5 lc 'black' title 'vanished: 10^{{{}}}'",
        s.long_t - 1, s.long_t, s.hidden, flow_batch, vanished, std::lround(std::log10(vanished)));
    for (const CellKind k : {CellKind::rnn, CellKind::lstm, CellKind::gru})
        for (const char* when : {"init", "trained"})
            gp += fmt::format(
                ", \\\n  'gradient_flow.csv' using 3:((strcol(1) eq '{}' && strcol(2) eq '{}' "
                "&& $6 > 0) ? $6 : NaN) with lines lw 2 dt {} lc '{}' title '{}, {}'",
                cell_name(k), when, when == std::string("init") ? 2 : 1, cell_color(k),
                cell_name(k), when == std::string("init") ? "at initialisation" : "trained");
    return gnuplot(dir, "gradient_flow.gp", gp + "\n");
}

// Two panels: the scaled RNNs' gradient norm against distance, and the training losses.
bool write_exploding_plot(const fs::path& dir, const Exploding& e, const Settings& s) {
    const char* radius_colors[] = {"#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b"};
    std::string gp = fmt::format(
        "set terminal pngcairo size 1100,500 font 'sans,10' enhanced\n"
        "set output 'exploding.png'\nset datafile separator ','\n"
        "set logscale y\nset format y '10^{{%L}}'\nset grid\n"
        "set multiplot layout 1,2 title 'Exploding gradients: a tanh RNN (H = {}) with W_{{hh}} "
        "scaled to spectral radius ρ > 1'\n"
        "set title 'Gradient norm through time at initialisation, T = {}'\n"
        "set key top left box opaque width -4\nset xrange [0:{}]\n"
        "set xlabel 'distance from the loss, d = T - 1 - t (steps)'\n"
        "set ylabel '‖∂L/∂h_t‖  relative to  ‖∂L/∂h_{{T-1}}‖'\n"
        "plot 1 with lines dt 3 lc 'black' notitle",
        s.hidden, s.long_t, s.long_t - 1);
    for (std::size_t i = 0; i < e.flows.size(); ++i)
        gp += fmt::format(
            ", \\\n  'gradient_flow.csv' using 3:((strcol(1) eq 'RNN radius {:.2f}' && $6 > 0) ? "
            "$6 : NaN) with lines lw 2 lc '{}' title 'ρ(W_{{hh}}) = {:.2f}{}'",
            e.radii[i], radius_colors[i % 5], e.radii[i], i == 0 ? ", as initialised" : "");
    gp += fmt::format(
        "\nset title 'Training loss from ρ = {}, T = {}, batch {}; SGD lr {}, Adam lr {}'\n"
        "set key right center box opaque width -3\nset yrange [0.03:1e5]\n"
        "set logscale x\nset format x '%g'\nset xrange [1:{}]\n"
        "set xlabel 'training step (log scale)'\nset ylabel 'training MSE of the batch'\n"
        "plot {} with lines dt 3 lc 'black' title 'predict 1.0 (1/6)'",
        e.radii.back(), s.exploding_t, s.batch, s.exploding_lr, s.lr, s.exploding_steps,
        adding_baseline_mse);
    const char* run_styles[] = {"lw 2 lc '#d62728'", "lw 2 lc '#1f77b4'", "lw 1 lc '#ff7f0e'",
                                "lw 1 lc '#2ca02c'"};
    for (std::size_t i = 0; i < e.runs.size(); ++i) {
        const ExplodingRun& run = e.runs[i];
        const LossCurve& c = run.curve;
        const std::string fate =
            c.diverged ? fmt::format(" (inf at step {})", *c.diverged) : std::string();
        gp += fmt::format(
            ", \\\n  'exploding_loss.csv' using 2:(strcol(1) eq '{}' ? $3 : NaN) with lines {} "
            "title '{}, {}{}'",
            run.id, run_styles[i % 4], run.optimizer, run.clipping, fate);
    }
    return gnuplot(dir, "exploding.gp", gp + "\nunset multiplot\n");
}

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    CLI::App app{
        "Train RNN, LSTM and GRU on the adding problem and compare them with the article's table"};
    Settings s;
    s.threads = std::max(1u, std::thread::hardware_concurrency());
    train_common::positive_option(app, "--hidden", s.hidden, "hidden size of every cell");
    train_common::positive_option(app, "--batch", s.batch, "sequences per training step");
    train_common::positive_option(app, "--steps", s.steps,
                                  "step budget per run (a run stops early once solved)");
    train_common::positive_option(app, "--eval-every", s.eval_every,
                                  "steps between test evaluations");
    train_common::positive_option(app, "--test-size", s.test_size, "held-out sequences per length");
    app.add_option("--short", s.short_t, "the short length (0: skip)")->capture_default_str();
    app.add_option("--long", s.long_t, "the long length (0: skip)")->capture_default_str();
    train_common::positive_option(app, "--lr", s.lr, "Adam learning rate");
    train_common::positive_option(app, "--clip", s.clip, "gradient-norm clipping threshold");
    app.add_option("--seed", s.seed, "seed of initialisation and training data")
        ->capture_default_str();
    train_common::positive_option(app, "--threads", s.threads,
                                  "runs trained at the same time (default: the number of cores)");
    app.add_option("--cells", s.cells, "cells to train")
        ->check(CLI::IsMember({"rnn", "lstm", "gru"}))
        ->delimiter(',')
        ->capture_default_str();
    app.add_flag("--stretch", s.stretch,
                 "also train an LSTM with chrono initialisation at twice the long length");
    train_common::positive_option(app, "--log-seconds", s.log_seconds,
                                  "seconds between progress lines when output is not a terminal");
    app.add_option("--out", s.out,
                   "output folder for table.md, the CSV files and the figures (gnuplot)")
        ->capture_default_str();
    app.add_option("--figures", s.figures,
                   "also copy the figures (curves, gradient_flow, exploding, structure) here")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.add_option("--radii", s.radii,
                   "spectral radii W_hh is scaled to for exploding gradients; the last is trained")
        ->check(CLI::PositiveNumber)
        ->delimiter(',')
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    for (const std::size_t T : {s.short_t, s.long_t})
        if (T == 1) {
            fmt::print(stderr, "compare_cells: a length must be at least 2\n");
            return 2;
        }
    warn_if_slow_blas();
    openblas_set_num_threads(1);  // one BLAS thread per run: the runs themselves fill the cores
    // glibc gives each worker thread its own arena, which hands its heaps back to the kernel
    // whenever a step's graph is freed, so the next step page-faults them in again: an LSTM
    // step at T = 100 took 48 ms of CPU on a worker thread against 27 ms on the main thread
    // (52k against 18k minor faults over 80 steps). Keeping 64 MB of headroom per heap and the
    // large buffers in the heaps (not in mmap) removes the difference: more than tune_malloc()
    // sets, and applied even under TAPEGRAD_MALLOC_TUNING=0.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TOP_PAD, 64 << 20);

    std::vector<Job> jobs;  // longest first, so the worker threads finish together
    const LSTMInit forget1{.forget_bias = 1.0};
    const bool with_lstm = std::find(s.cells.begin(), s.cells.end(), "lstm") != s.cells.end();
    if (s.stretch && s.long_t && with_lstm)
        jobs.push_back({CellKind::lstm,
                        2 * s.long_t,
                        {.chrono_t_max = 2.0 * static_cast<double>(s.long_t)},
                        "LSTM (chrono)"});
    for (const std::size_t T : {s.long_t, s.short_t}) {
        if (T == 0) continue;
        for (const CellKind k : {CellKind::lstm, CellKind::gru, CellKind::rnn}) {
            std::string name = cell_name(k);
            std::transform(name.begin(), name.end(), name.begin(),
                           [](char c) { return static_cast<char>(std::tolower(c)); });
            if (std::find(s.cells.begin(), s.cells.end(), name) != s.cells.end())
                jobs.push_back({k, T, forget1, cell_name(k)});
        }
    }
    fmt::print(
        "Adding problem, hidden {}, batch {}, Adam lr {}, clip {}, budget {} steps, test MSE every "
        "{} steps on {} "
        "held-out sequences; solved: test MSE < {} (predicting 1.0 scores {:.3f}).\n"
        "{} runs on {} threads; a run stops once solved (its ETA assumes the whole budget).\n\n",
        s.hidden, s.batch, s.lr, s.clip, s.steps, s.eval_every, s.test_size, solved_mse,
        adding_baseline_mse, jobs.size(), s.threads);
    std::fflush(stdout);

    // Time per step, measured fairly: each cell alone on this thread before the runs start.
    std::vector<double> alone_ms(jobs.size());
    fmt::print("Timing forward+backward of each cell alone ...");
    std::fflush(stdout);
    for (std::size_t i = 0; i < jobs.size(); ++i)
        alone_ms[i] = time_step_ms(jobs[i].kind, jobs[i].T, s);
    fmt::print(" done\n");

    std::vector<Outcome> outcomes(jobs.size());
    std::vector<Progress> progress(jobs.size());
    std::mutex mutex;
    std::atomic<std::size_t> next{0}, finished{0};
    std::atomic<bool> exploding_taken{false};
    Exploding exploding;
    std::vector<std::string> errors;
    const auto wall0 = Clock::now();
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < std::min<std::size_t>(s.threads, jobs.size()); ++w)
        workers.emplace_back([&] {
            for (std::size_t i; (i = next++) < jobs.size();) {
                try {
                    outcomes[i] = run(jobs[i], s, progress[i], mutex);
                    outcomes[i].alone_ms = alone_ms[i];
                    std::lock_guard lock(mutex);
                    progress[i].summary = (outcomes[i].solved ? "solved at " : "") +
                                          solve_text(outcomes[i], s.steps) +
                                          fmt::format(" ({:.1f} ms per step, {:.1f} s evaluating)",
                                                      outcomes[i].fwd_bwd_ms, outcomes[i].eval_cpu);
                } catch (const std::exception& e) {
                    std::lock_guard lock(mutex);
                    errors.push_back(
                        fmt::format("{} T={}: {}", jobs[i].label, jobs[i].T, e.what()));
                    progress[i].summary = "failed";
                }
                {
                    std::lock_guard lock(mutex);
                    progress[i].state = Progress::done;
                }
                ++finished;
            }
            // The first worker out of runs also does the exploding-gradient experiment.
            if (exploding_taken.exchange(true)) return;
            try {
                exploding = exploding_experiment(s);
            } catch (const std::exception& e) {
                std::lock_guard lock(mutex);
                errors.push_back(fmt::format("exploding gradients: {}", e.what()));
            }
        });

    // Progress: on a terminal one line per run, redrawn in place; otherwise plain lines.
    const bool tty = isatty(fileno(stdout));
    auto fit = [](std::string line) {  // a wrapped line would break the redraw
        winsize ws{};
        if (ioctl(fileno(stdout), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
            line.size() >= ws.ws_col)
            line.resize(ws.ws_col - 1);
        return line;
    };
    std::vector<bool> reported(jobs.size(), false);
    auto last_log = Clock::now();
    for (bool first = true;; first = false) {
        const bool all_done = finished == jobs.size();
        {
            std::lock_guard lock(mutex);
            if (tty) {
                if (!first) fmt::print("\x1b[{}F", jobs.size());
                for (std::size_t i = 0; i < jobs.size(); ++i)
                    fmt::print("\x1b[2K{}\n", fit(status_line(jobs[i], progress[i], s)));
            } else {
                const bool periodic =
                    Clock::now() - last_log >= std::chrono::duration<double>(s.log_seconds);
                for (std::size_t i = 0; i < jobs.size(); ++i) {
                    if (progress[i].state == Progress::done && !reported[i]) {
                        fmt::print("{}\n", status_line(jobs[i], progress[i], s));
                        reported[i] = true;
                    } else if (periodic && progress[i].state == Progress::running) {
                        fmt::print("{}\n", status_line(jobs[i], progress[i], s));
                    }
                }
                if (periodic) last_log = Clock::now();
            }
            std::fflush(stdout);
        }
        if (all_done) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 100));
    }
    for (auto& w : workers) w.join();
    const double wall = std::chrono::duration<double>(Clock::now() - wall0).count();
    for (const auto& e : errors) fmt::print(stderr, "compare_cells: {}\n", e);
    if (!errors.empty()) return 1;

    const std::string table = comparison_table(jobs, outcomes, s);
    const std::string rule = rule_of_thumb(jobs, outcomes, s);
    std::string stretch;
    for (std::size_t i = 0; i < jobs.size(); ++i)
        if (jobs[i].label != cell_name(jobs[i].kind))
            stretch += fmt::format("Stretch: {} at T = {}: {}.\n", jobs[i].label, jobs[i].T,
                                   solve_text(outcomes[i], s.steps));
    const std::string notes = fmt::format(
        "Forward+backward per step: median thread CPU time of 10 steps (after 3 warm-up steps) of "
        "each cell timed "
        "alone, before the runs started. Seconds to solve: CPU time of the run's own thread "
        "(training, data and "
        "evaluations), i.e. what it takes on one core. Training took {:.0f} s of wall time for {} "
        "runs and the exploding-gradient experiment on {} threads.\n",
        wall, jobs.size(), s.threads);
    const std::string gradients = gradient_claims(jobs, outcomes, exploding, s);
    const std::string explosion = exploding_summary(exploding, s);
    fmt::print("\n{}\n{}{}\n{}{}\n{}", table, stretch.empty() ? "" : stretch + "\n", rule,
               gradients.empty() ? "" : gradients + "\n", explosion, notes);

    const fs::path dir(s.out);
    fs::create_directories(dir);
    std::ofstream(dir / "table.md")
        << "# RNN vs LSTM vs GRU on the adding problem\n\n"
        << fmt::format(
               "Hidden {}, batch {}, Adam lr {}, gradient-norm clip {}, budget {} "
               "steps per run, seed {}; solved: test MSE < {} on {} held-out "
               "sequences (always predicting 1.0 scores {:.3f}).\n\n",
               s.hidden, s.batch, s.lr, s.clip, s.steps, s.seed, solved_mse, s.test_size,
               adding_baseline_mse)
        << table << "\n"
        << (stretch.empty() ? "" : stretch + "\n") << rule << "\n"
        << (gradients.empty() ? "" : gradients + "\n") << explosion << "\n"
        << notes;
    write_csv(dir / "curves.csv", jobs, outcomes);
    write_flow_csv(dir / "gradient_flow.csv", jobs, outcomes, exploding);
    write_exploding_csv(dir / "exploding_loss.csv", exploding);
    std::vector<std::string> figures;  // the ones gnuplot drew
    if (write_plot(dir, jobs, s)) figures.push_back("curves.png");
    if (s.long_t && write_flow_plot(dir, s)) figures.push_back("gradient_flow.png");
    if (s.long_t && write_exploding_plot(dir, exploding, s)) figures.push_back("exploding.png");
    // The article's section 五, the structure diagram, drawn from one recorded step of each cell.
    if (write_structure_diagram(dir)) {
        figures.push_back("structure.png");
        figures.push_back("structure.svg");
    }
    fmt::print("\nWrote table.md, curves.csv, gradient_flow.csv, exploding_loss.csv{}{} into {}\n",
               figures.empty() ? "" : ", ", fmt::join(figures, ", "), dir.string());
    if (std::find(figures.begin(), figures.end(), "curves.png") == figures.end())
        fmt::print(
            "notice: gnuplot not found (or it failed); figures skipped, see the .gp files "
            "in {}\n",
            dir.string());
    if (std::find(figures.begin(), figures.end(), "structure.png") == figures.end())
        fmt::print("notice: graphviz's dot not found (or it failed); see structure.dot in {}\n",
                   dir.string());
    if (!s.figures.empty() && !figures.empty()) {
        fs::create_directories(s.figures);
        for (const std::string& png : figures)
            fs::copy_file(dir / png, fs::path(s.figures) / png,
                          fs::copy_options::overwrite_existing);
        fmt::print("Copied {} into {}\n", fmt::join(figures, ", "), s.figures);
    }
    return 0;
}
