// RNN, LSTM and GRU side by side on the adding problem, to check the source article's
// comparison table and rule of thumb against measurements. Writes table.md, curves.csv and
// curves.png (gnuplot) into --out.
//   build/examples/compare_cells [--hidden 64] [--short 10] [--long 100] [--steps 3000] [--stretch] ...
//
// Each cell trains at a short length (all three should learn it) and at T = 100 (only the
// gated cells should), stopping once solved. The runs go to worker threads (one model per
// thread, each recording on its own tape), with OpenBLAS kept to one thread. Timings are
// thread CPU time (CLOCK_THREAD_CPUTIME_ID), what a run costs on one core however many runs
// share the machine; the time per step in the table is measured with each cell alone, before
// the runs start.
#include <cblas.h>
#include <malloc.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "examples/adding_problem.hpp"
#include "examples/compare_cells.hpp"
#include "examples/train_common.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double solved_mse = 0.01;

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
    std::ofstream(dir / "curves.gp") << gp;
    if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
    const std::string cmd = fmt::format("cd '{}' && gnuplot curves.gp", dir.string());
    return std::system(cmd.c_str()) == 0;
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
    app.add_option("--out", s.out, "output folder for table.md, curves.csv, curves.png")
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
        "runs on {} "
        "threads.\n",
        wall, jobs.size(), s.threads);
    fmt::print("\n{}\n{}{}\n{}", table, stretch.empty() ? "" : stretch + "\n", rule, notes);

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
        << notes;
    write_csv(dir / "curves.csv", jobs, outcomes);
    const bool png = write_plot(dir, jobs, s);
    fmt::print("\nWrote {}, {}{}\n", (dir / "table.md").string(), (dir / "curves.csv").string(),
               png ? ", " + (dir / "curves.png").string() : std::string());
    if (!png)
        fmt::print("notice: gnuplot not found (or it failed); curves.png skipped, see {}\n",
                   (dir / "curves.gp").string());
    return 0;
}
