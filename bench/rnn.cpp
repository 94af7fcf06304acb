// bench/rnn: one training step (forward + backward + SGD update, loss = MSE of the last hidden
// state, float32) of tapegrad's RNN, LSTM and GRU layers, beside PyTorch's on the same machine.
//
// Configs (issue "Performance"): small T=50 B=32 I=32 H=128, large T=100 B=64 I=64 H=256.
// Every (config, cell, threads) measurement runs in a child process of its own (this binary
// re-run with --one), so each reports its own peak RSS; the PyTorch peer
// (bench/rnn_torch.py) does the same. Both sides get the same OPENBLAS_CORETYPE.
//
// The table: tapegrad ms/step at 1 thread (the batch as one shard, what a 1-thread user
// runs), at 1 and 2 threads with the batch cut into two shards of B/2 rows (what runs in
// parallel), PyTorch's fastest way (nn.* layer, primitive ops eager, TorchScript) and its nn.*
// layer, the ratios, the share of the machine's 1-thread sgemm throughput the step reaches
// (sgemm timed on the step's own shapes), the tape's bytes per time step, and peak RSS of both
// sides. Written to a section of bench/results.md.
//
// The machine is shared: every measurement is taken in --rounds rounds, tapegrad's and
// PyTorch's children alternating, and each side keeps its best round (the lowest median), so
// a slow phase of the machine does not land on one side only. Its speed drifts by up to 1.5x
// over minutes, so the ratios are not taken between those best rounds but within each round
// (tapegrad's 1-thread step measured just before and just after PyTorch's, seconds apart) and
// the median over the rounds is reported. The vCPUs are not equally fast
// (one ran the small steps 20-40% slower than the other in the ceiling table), so the 1-thread
// runs of both sides are pinned to the same CPU (--pin, default the last one). Its speed
// also drifts between separate runs, so the 2-thread speed-up is measured a second way too:
// 1- and 2-thread steps in turn in one process (--paired), the median of their ratios.
#include <cblas.h>
#include <sched.h>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "common.hpp"

using namespace tapegrad;
namespace tb = tapegrad::bench;

namespace {

struct Config {
    std::string name;
    std::size_t T, B, I, H;
};
const std::vector<Config> configs{{"small", 50, 32, 32, 128}, {"large", 100, 64, 64, 256}};

std::size_t gates_of(const std::string& cell) { return cell == "lstm" ? 4 : cell == "gru" ? 3 : 1; }

std::shared_ptr<Recurrent> make_layer(const std::string& cell, const Config& c, Generator& gen) {
    if (cell == "rnn") return std::make_shared<RNN>(c.I, c.H, RecurrentOptions{}, gen);
    if (cell == "lstm") return std::make_shared<LSTM>(c.I, c.H, RecurrentOptions{}, gen);
    if (cell == "gru") return std::make_shared<GRU>(c.I, c.H, RecurrentOptions{}, gen);
    throw ValueError("bench/rnn: unknown cell '" + cell + "' (rnn, lstm, gru)");
}

// FLOPs of one training step counted from the model, as the issue counts them: every matrix
// product of forward and backward (input gradient included), 2 flops per multiply-add.
double step_flops(const std::string& cell, const Config& c) {
    const double G = static_cast<double>(gates_of(cell)), T = static_cast<double>(c.T);
    const double B = static_cast<double>(c.B), I = static_cast<double>(c.I),
                 H = static_cast<double>(c.H);
    const double fwd = 2 * T * B * G * H * (I + H);
    return 3 * fwd;  // forward, and two products of the same size per product in backward
}

// Time of the step's matrix products at sgemm speed on this machine: the same shapes, one
// thread, as many calls as the step makes (the hoisted input projection and its weight
// gradient as one product over all T*B rows; the recurrent products per step).
double sgemm_ms(const std::string& cell, const Config& c) {
    const int G = static_cast<int>(gates_of(cell));
    const int T = static_cast<int>(c.T), B = static_cast<int>(c.B), I = static_cast<int>(c.I),
              H = static_cast<int>(c.H);
    Generator gen(7);
    auto buf = [&](std::size_t n) {
        Tensor t = gen.uniform({n}, -1, 1, DType::float32);
        return std::vector<float>(t.xt<float>().begin(), t.xt<float>().end());
    };
    auto X = buf(std::size_t(T) * B * I), W = buf(std::size_t(G) * H * std::max(I, H)),
         Y = buf(std::size_t(T) * B * G * H), h = buf(std::size_t(B) * H),
         dW = buf(std::size_t(G) * H * std::max(I, H)), out = buf(std::size_t(B) * G * H),
         dh = buf(std::size_t(B) * H), dX = buf(std::size_t(T) * B * I);
    auto run = [&] {
        // forward: projection [T*B, I] x [I, G*H]; per step [B, H] x [H, G*H]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T * B, G * H, I, 1, X.data(), I,
                    W.data(), I, 0, Y.data(), G * H);
        for (int t = 0; t < T; ++t)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G * H, H, 1, h.data(), H,
                        W.data(), H, 0, out.data(), G * H);
        // backward per step: dh = dG W ([B, G*H] x [G*H, H]), dW_hh += dGᵀ h ([G*H, B] x [B, H])
        for (int t = 0; t < T; ++t) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G * H, 1, out.data(),
                        G * H, W.data(), H, 0, dh.data(), H);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G * H, H, B, 1, out.data(), G * H,
                        h.data(), H, 1, dW.data(), H);
        }
        // backward of the projection: dW_ih = dGᵀ X, dX = dG W_ih
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G * H, I, T * B, 1, Y.data(), G * H,
                    X.data(), I, 0, dW.data(), I);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T * B, I, G * H, 1, Y.data(), G * H,
                    W.data(), I, 0, dX.data(), I);
    };
    auto samples = tb::time_reps(3, 15, run);
    return tb::summarize(samples, 1e3).time.median;
}

struct One {
    double ms = 0, ms_min = 0, wall_ms = 0, cpu_ms = 0, tape_bytes_per_step = 0, peak_rss_mib = 0,
           loss = 0;
};

// Warm-up before the timed steps, the same rule as bench/rnn_torch.py: at least 3 steps and
// at least 0.25 s. The first steps of a process fault in its memory and start TBB's workers;
// with 3 steps alone, the small configs (1-2 ms a step) were timed while that still went on.
constexpr int warmup_steps = 3;
constexpr double warmup_seconds = 0.25;

// --ragged: sequences of lengths from T down to about T/2, unsorted, as a padded batch.
bool ragged = false;
std::vector<std::size_t> ragged_lengths(std::size_t T, std::size_t B) {
    std::vector<std::size_t> lengths(B);
    for (std::size_t b = 0; b < B; ++b) lengths[b] = T - (b * 7 % B) * (T / 2) / B;
    return lengths;
}

// One training step of `cell` on config c, `rows` rows per shard (parallel_backward): B for
// one shard, B/2 for two.
struct Step {
    Config c;
    Generator gen{0};
    std::shared_ptr<Recurrent> layer;
    Variable xs, y;
    std::unique_ptr<SGD> opt;
    std::vector<Variable> params;
    std::size_t rows;
    std::vector<std::size_t> lengths;  // empty: every sequence has all T steps
    std::vector<double> tape_bytes;
    double loss = 0, tape_bytes_per_step = 0;

    Step(const std::string& cell, const Config& config, std::size_t rows_per_shard)
        : c(config),
          layer(make_layer(cell, c, gen)),
          xs(gen.normal({c.T, c.B, c.I}, 0, 1, DType::float32)),
          y(gen.normal({c.B, c.H}, 0, 1, DType::float32)),
          opt(std::make_unique<SGD>(*layer, SGDOptions{.lr = 0.01})),
          params(layer->parameters()),
          rows(rows_per_shard),
          lengths(ragged ? ragged_lengths(c.T, c.B) : std::vector<std::size_t>{}),
          tape_bytes(make_shards(c.B, {.rows = rows}).size()) {}

    void operator()() {
        opt->zero_grad();
        loss = parallel_backward(
            params, c.B,
            [&](const Shard& s) {
                const long b0 = static_cast<long>(s.begin), n = static_cast<long>(s.size());
                const std::vector<std::size_t> shard_lengths =
                    lengths.empty()
                        ? lengths
                        : std::vector<std::size_t>(lengths.begin() + b0, lengths.begin() + b0 + n);
                RecurrentOutput out = layer->forward(narrow(xs, 1, b0, n), {}, shard_lengths);
                const Variable h_last = reshape(out.states[0], Shape{s.size(), c.H});
                const Variable l = mse_loss(h_last, narrow(y, 0, b0, n));
                tape_bytes[s.index] = static_cast<double>(current_tape().saved_bytes());
                return l;
            },
            {.rows = rows});
        tape_bytes_per_step =
            std::accumulate(tape_bytes.begin(), tape_bytes.end(), 0.0) / static_cast<double>(c.T);
        opt->step();
    }
};

One measure(const std::string& cell, const Config& c, int threads, std::size_t rows, int reps,
            bool pin_threads) {
    set_num_threads(static_cast<std::size_t>(threads), {.pin = pin_threads});
    Step step(cell, c, rows);
    auto samples = tb::time_reps(
        warmup_steps, reps, [&] { step(); }, warmup_seconds);
    const auto s = tb::summarize(samples, 1e3);
    One r;
    r.loss = step.loss;
    r.tape_bytes_per_step = step.tape_bytes_per_step;
    r.ms = s.time.median;
    r.wall_ms = s.wall.median;
    r.cpu_ms = s.cpu.median;
    r.ms_min = s.time.min;
    r.peak_rss_mib = tb::peak_rss_mib();
    return r;
}

// The SIMD kernels (packed per-step products, exp/sigmoid/tanh) on and off in the same
// process, one thread, one shard: 2 * reps steps alternating on, off, off, on, ... so both
// see the same machine; the median ms of each.
std::pair<double, double> kernels_on_off(const std::string& cell, const Config& c, int reps) {
    set_num_threads(1);
    Step step(cell, c, c.B);
    auto use = [](bool on) {
        packed_gemm::set_enabled(on);
        vector_math::set_enabled(on);
    };
    tb::time_reps(
        warmup_steps, 0, [&] { step(); }, warmup_seconds);
    std::vector<tb::Elapsed> on, off;
    for (int i = 0; i < 2 * reps; ++i) {
        const bool mode = (i + i / 2) % 2 == 0;
        use(mode);
        const tb::Instant start;
        step();
        (mode ? on : off).push_back(start.since());
    }
    use(true);
    return {tb::summarize(on, 1e3).time.median, tb::summarize(off, 1e3).time.median};
}

// The packed kernel (kernels/packed_gemm.hpp) against one-thread sgemm on the per-step product
// of a small and a large LSTM ([B, H] x [H, 4H]), B packed once outside the timing as a
// WeightPackScope does: `rounds` rounds of `reps` products each way in turn; per product, the
// medians of each and the median of the rounds' sgemm / packed.
nlohmann::json packed_vs_sgemm(int rounds, int reps) {
    nlohmann::json out = nlohmann::json::array();
    for (const Config& c : configs) {
        const std::size_t m = c.B, k = c.H, n = 4 * c.H;
        Generator gen(11);
        const Tensor a = gen.uniform({m, k}, -1, 1, DType::float32),
                     b = gen.uniform({k, n}, -1, 1, DType::float32);
        std::vector<float> out_packed(m * n), out_blas(m * n);
        const packed_gemm::PackedMatrix packed(b.xt<float>().data(), k, n, n, false);
        auto run_packed = [&] { packed.multiply(m, a.xt<float>().data(), k, out_packed.data()); };
        auto run_blas = [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                        static_cast<int>(n), static_cast<int>(k), 1, a.xt<float>().data(),
                        static_cast<int>(k), b.xt<float>().data(), static_cast<int>(n), 0,
                        out_blas.data(), static_cast<int>(n));
        };
        std::vector<double> packed_us, blas_us, ratios;
        for (int r = 0; r < rounds; ++r) {
            const double p =
                tb::summarize(tb::time_reps(reps / 4, reps, run_packed), 1e6).time.median;
            const double q =
                tb::summarize(tb::time_reps(reps / 4, reps, run_blas), 1e6).time.median;
            packed_us.push_back(p);
            blas_us.push_back(q);
            ratios.push_back(q / p);
        }
        out.push_back({{"product", fmt::format("[{},{}]x[{},{}]", m, k, k, n)},
                       {"packed_us", tb::summarize(packed_us).median},
                       {"sgemm_us", tb::summarize(blas_us).median},
                       {"ratio", tb::summarize(ratios).median}});
    }
    return out;
}

// This thread on `cpu` only; false when that is not possible.
bool run_on_cpu(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

// Two independent steps of half the batch at once, each one shard on a thread of its own
// pinned to a CPU of its own (this thread on the first, a helper on the second): no shared
// tape, parameters, tasks or reduction. The time until both are done is what two equal
// shards take on this machine with nothing of parallel_backward's in between, so t1 over it
// is the 2T speed-up a static split of the batch could reach at that moment.
class Halves {
public:
    Halves(const std::string& cell, const Config& c, int cpu_main, int cpu_helper)
        : half_(Config{c.name, c.T, c.B / 2, c.I, c.H}),
          mine_(cell, half_, half_.B),
          theirs_(cell, half_, half_.B),
          cpu_main_(cpu_main) {
        helper_ = std::thread([this, cpu_helper] {
            run_on_cpu(cpu_helper);
            for (int seen = 0;;) {
                // spin a little before sleeping: the timed run follows an untimed one at once
                const auto start = tb::Clock::now();
                int g = go_.load(std::memory_order_acquire);
                while (g == seen && tb::seconds_since(start) < 200e-6)
                    g = go_.load(std::memory_order_acquire);
                if (g == seen) {
                    go_.wait(seen, std::memory_order_acquire);
                    g = go_.load(std::memory_order_acquire);
                }
                if (g < 0) return;
                seen = g;
                theirs_();
                done_.store(g, std::memory_order_release);
            }
        });
    }
    Halves(const Halves&) = delete;
    Halves& operator=(const Halves&) = delete;
    ~Halves() {
        go_.store(-1, std::memory_order_release);
        go_.notify_one();
        helper_.join();
    }
    void operator()() {
        run_on_cpu(cpu_main_);
        const int g = ++generation_;
        go_.store(g, std::memory_order_release);
        go_.notify_one();
        mine_();
        while (done_.load(std::memory_order_acquire) != g) {}
    }

private:
    Config half_;
    Step mine_, theirs_;
    int cpu_main_, generation_ = 0;
    std::atomic<int> go_{0}, done_{0};
    std::thread helper_;
};

// The 2-thread speed-up measured in pairs within one process: a 1-thread step (one shard of
// B rows, this thread pinned to one CPU) and a 2-thread step (two shards of B/2 rows) in turn,
// reps times, the order of the two swapped every other pair. The thread count stays at 2
// throughout: a step of one shard runs on the calling thread alone, with no TBB task, and
// switching TBB between 1 and 2 threads for every pair left its worker asleep at the start of
// some timed 2-thread steps, which a training loop never sees. The 1-thread step runs on
// `cpu` when >= 0, otherwise on each CPU of the process in turn, and the ratio is taken over
// each round of those: the 1-thread steps' mean over the CPUs against the 2-thread steps'
// mean, a moment apart. The vCPUs here are not equally fast (the small RNN step 2.4 ms on
// one, 3.7 on the other, in a ceiling table), so a ratio per pair is two clusters, one per
// CPU, and their median lands wherever the gap between them is. Each timed step follows an
// untimed one of its kind, so both run with warm caches and TBB's worker awake, as in a
// training loop. On a shared machine whose speed drifts over seconds, a ratio of steps taken
// a moment apart is what the drift spares; the median of the rounds' ratios is reported, with
// the median ms of each side. With two CPUs or more, each pair is followed by Halves on the
// first two, timed the same way, and the median of the rounds' t1 / halves is the ceiling of
// the moment.
struct Paired {
    double t1 = 0, t2 = 0, speedup = 0, halves = 0, ceiling = 0;
};
Paired paired_speedup(const std::string& cell, const Config& c, int reps, int cpu,
                      std::size_t rows1, bool pin_threads) {
    Step one(cell, c, rows1), two(cell, c, c.B / 2);
    cpu_set_t every;
    sched_getaffinity(0, sizeof every, &every);
    std::vector<int> cpus, all;
    for (int k = 0; k < CPU_SETSIZE; ++k)
        if (CPU_ISSET(k, &every)) {
            all.push_back(k);
            if (cpu < 0 || k == cpu) cpus.push_back(k);
        }
    std::unique_ptr<Halves> halves;
    if (all.size() >= 2) halves = std::make_unique<Halves>(cell, c, all[0], all[1]);
    auto run1 = [&](int on) {
        run_on_cpu(on);
        one();
    };
    auto run2 = [&] {
        sched_setaffinity(0, sizeof every, &every);
        two();
    };
    set_num_threads(2, {.pin = pin_threads});
    // 2 threads first: TBB's worker starts while this thread may run on every CPU
    tb::time_reps(warmup_steps, 0, run2, warmup_seconds);
    tb::time_reps(
        warmup_steps, 0, [&] { run1(cpus.front()); }, warmup_seconds);
    if (halves)
        tb::time_reps(
            warmup_steps, 0, [&] { (*halves)(); }, warmup_seconds);
    auto timed = [](auto&& run) {
        run();
        const tb::Instant start;
        run();
        return start.since().time();
    };
    const std::size_t round = cpus.size();
    const int rounds = std::max(1, reps / static_cast<int>(round));
    std::vector<double> t1, t2, th, ratio, ceiling;
    for (int i = 0; i < rounds * static_cast<int>(round); ++i) {
        const int on = cpus[static_cast<std::size_t>(i) % round];
        auto single = [&] { run1(on); };
        double a = 0, b = 0;
        if ((i / 2) % 2 == 0) {
            a = timed(single);
            b = timed(run2);
        } else {
            b = timed(run2);
            a = timed(single);
        }
        t1.push_back(a);
        t2.push_back(b);
        if (halves) th.push_back(timed(*halves));
        if (t1.size() % round == 0) {  // a round: every CPU once
            auto mean_of_round = [&](const std::vector<double>& v) {
                return std::accumulate(v.end() - static_cast<long>(round), v.end(), 0.0) /
                       static_cast<double>(round);
            };
            ratio.push_back(mean_of_round(t1) / mean_of_round(t2));
            if (halves) ceiling.push_back(mean_of_round(t1) / mean_of_round(th));
        }
    }
    sched_setaffinity(0, sizeof every, &every);
    Paired p{1e3 * tb::summarize(t1).median, 1e3 * tb::summarize(t2).median,
             tb::summarize(ratio).median};
    if (halves) {
        p.halves = 1e3 * tb::summarize(th).median;
        p.ceiling = tb::summarize(ceiling).median;
    }
    return p;
}

// Runs this binary with --one in a child and parses its JSON line; cpu >= 0 pins a 1-thread
// child to that CPU.
std::optional<nlohmann::json> tapegrad_child(const std::string& self, const std::string& cell,
                                             const Config& c, int threads, std::size_t rows,
                                             int reps, int cpu) {
    std::string cmd = fmt::format("{} --one --cell {} --config {} --threads {} --rows {} --reps {}",
                                  tb::shell_quote(self), cell, c.name, threads, rows, reps);
    if (threads == 1 && cpu >= 0) cmd += fmt::format(" --cpu {}", cpu);
    if (threads > 1) cmd += " --pin-threads";
    return tb::run_command_json(cmd);
}

// The PyTorch peer, one way in a child process (its own peak RSS); pinned like tapegrad's.
std::optional<nlohmann::json> torch_child(const std::string& cell, const Config& c,
                                          const std::string& way, int threads, int reps, int cpu) {
    return tb::run_python_peer(tb::source_dir() + "/rnn_torch.py",
                               {cell, c.name, way, std::to_string(threads), std::to_string(reps)},
                               threads, threads == 1 ? cpu : -1);
}

// The lower of two measurements, 0 meaning none.
double best_of(double a, double b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); }

struct Row {
    std::string config, cell;
    double t1 = 0;         // 1 thread, one shard of B rows
    double t1_shards = 0;  // 1 thread, two shards of B/2 rows
    double t2 = 0;         // 2 threads, two shards of B/2 rows
    double paired =
        0;  // 2T speed-up, pairs of 1T and 2T steps in one process (--paired), threads pinned
    double paired_unpinned = 0;  // the same, threads not pinned
    double ceiling = 0;  // 1T over two independent half-batch steps at once, in the same pairs
    double sgemm = 0, tape_mib_per_step = 0, rss = 0;
    std::map<std::string, double> torch1, torch2, torch_rss;  // by way
    // Per round at 1 thread: tapegrad's one-shard step (the mean of its runs just before and
    // just after PyTorch's) and PyTorch's ways, seconds apart.
    struct Round {
        double t1 = 0;
        std::map<std::string, double> torch1;
    };
    std::vector<Round> rounds;
    double torch_best1() const {
        double b = 0;
        for (const auto& [w, ms] : torch1) b = best_of(b, ms);
        return b;
    }
    // The rounds' ratios tapegrad 1T / PyTorch (way "fused", or the round's fastest way when
    // way is empty), and their median; 0 without any.
    std::vector<double> round_ratios(const std::string& way) const {
        std::vector<double> out;
        for (const Round& r : rounds) {
            double peer = 0;
            for (const auto& [w, ms] : r.torch1)
                if (way.empty() || w == way) peer = best_of(peer, ms);
            if (r.t1 > 0 && peer > 0) out.push_back(r.t1 / peer);
        }
        return out;
    }
    double median_ratio(const std::string& way) const {
        return tb::summarize(round_ratios(way)).median;
    }
    double torch_best2() const {
        double b = 0;
        for (const auto& [w, ms] : torch2) b = best_of(b, ms);
        return b;
    }
};

// One progress line per child run of the table (they take seconds to minutes).
void progress(const std::string& config, const std::string& cell, const std::string& what) {
    fmt::print("bench/rnn: {} {}{} ...\n", config, cell, what);
    std::fflush(stdout);
}

std::string fmt_ms(double v) { return v > 0 ? fmt::format("{:.1f}", v) : "—"; }
std::string fmt_ratio(double a, double b) {
    return a > 0 && b > 0 ? fmt::format("{:.2f}", a / b) : "—";
}

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    CLI::App app{"tapegrad vs PyTorch: one RNN/LSTM/GRU training step"};
    bool one = false, no_torch = false, no_sgemm = false, kernels_ab = false, paired = false,
         pin_threads = false, gemm = false;
    std::string cell = "lstm", config = "large";
    int threads = 1, reps = 7,
        rounds =
            5;  // rounds: one wild round in three moved the median (large RNN 1.02, 0.63, 0.88)
    std::size_t one_rows = 0;
    int one_cpu = -1;
    const int cpus = static_cast<int>(std::thread::hardware_concurrency());
    int pin = cpus >= 2 ? cpus - 1 : -1;
    std::vector<std::string> cells{"rnn", "lstm", "gru"}, config_names{"small", "large"};
    std::vector<int> thread_counts{1, 2};
    std::string out = tb::source_dir() + "/results.md";
    app.add_flag("--one", one,
                 "measure one (cell, config, threads) and print JSON (used by the table)");
    app.add_option("--cell", cell, "with --one: rnn, lstm or gru");
    app.add_option("--config", config, "with --one: small or large");
    app.add_option("--threads", threads, "with --one: threads");
    app.add_option("--rows", one_rows,
                   "with --one: rows per shard (default: the whole batch); with --paired, of the "
                   "1-thread steps");
    app.add_option("--cpu", one_cpu,
                   "with --one --threads 1: run on this CPU only (sched_setaffinity)");
    app.add_option("--pin", pin,
                   "the table's 1-thread runs, both sides, on this CPU only (-1: wherever the "
                   "scheduler puts them; default: the last CPU)");
    app.add_option("--rounds", rounds,
                   "rounds, tapegrad and PyTorch alternating; each side keeps its best")
        ->check(CLI::PositiveNumber);
    app.add_option("--cells", cells, "cells in the table");
    app.add_option("--configs", config_names, "configs in the table");
    app.add_option("--thread-counts", thread_counts, "thread counts in the table");
    app.add_option("--reps", reps, "timed repetitions (median reported)");
    app.add_flag("--no-torch", no_torch, "skip the PyTorch peer");
    app.add_flag("--ragged", ragged,
                 "with --one: a padded batch, lengths from T down to T/2 (no PyTorch peer)");
    app.add_flag("--no-sgemm", no_sgemm,
                 "with --one: skip the sgemm reference (to profile the step alone)");
    app.add_flag("--kernels-ab", kernels_ab,
                 "with --one: 1 thread, the SIMD kernels on and off in turn in this process");
    app.add_flag("--gemm", gemm,
                 "with --one: the packed kernel against sgemm on the LSTMs' per-step products");
    app.add_flag("--paired", paired,
                 "with --one: 1 and 2 threads in turn in this process (the 2T speed-up in pairs; "
                 "the 1T steps on each CPU in turn, or on --cpu)");
    app.add_flag("--pin-threads", pin_threads,
                 "with --one: set_num_threads(threads, {.pin = true}), each of "
                 "parallel_backward's threads on a CPU of its own");
    app.add_option("--out", out, "Markdown file for the table");
    CLI11_PARSE(app, argc, argv);

    auto find = [&](const std::string& name) {
        for (const auto& c : configs)
            if (c.name == name) return c;
        throw ValueError("bench/rnn: unknown config '" + name + "' (small, large)");
    };

    if (one) {
        if (one_cpu >= 0 && !paired) {
            if (threads != 1) {
                fmt::print(stderr, "bench/rnn: --cpu needs --threads 1\n");
                return 2;
            }
            if (!run_on_cpu(one_cpu)) {
                fmt::print(stderr, "bench/rnn: cannot run on CPU {} (sched_setaffinity failed)\n",
                           one_cpu);
                return 2;
            }
        }
        openblas_set_num_threads(1);
        const Config c = find(config);
        if (gemm) {
            if (!packed_gemm::available()) {
                fmt::print(stderr, "bench/rnn: --gemm: the packed kernel is off on this path\n");
                return 2;
            }
            fmt::print("{}\n", packed_vs_sgemm(rounds, 20 * reps).dump());
            return 0;
        }
        if (kernels_ab) {
            const auto [on, off] = kernels_on_off(cell, c, reps);
            fmt::print("{}\n", nlohmann::json{{"on_ms", on}, {"off_ms", off}}.dump());
            return 0;
        }
        if (paired) {
            const Paired p =
                paired_speedup(cell, c, reps, one_cpu, one_rows == 0 ? c.B : one_rows, pin_threads);
            fmt::print("{}\n", nlohmann::json{{"t1_ms", p.t1},
                                              {"t2_ms", p.t2},
                                              {"speedup", p.speedup},
                                              {"halves_ms", p.halves},
                                              {"ceiling", p.ceiling}}
                                   .dump());
            return 0;
        }
        const One r = measure(cell, c, threads, one_rows == 0 ? c.B : one_rows, reps, pin_threads);
        nlohmann::json j{{"ms", r.ms},
                         {"ms_min", r.ms_min},
                         {"wall_ms", r.wall_ms},
                         {"cpu_ms", r.cpu_ms},
                         {"tape_bytes_per_step", r.tape_bytes_per_step},
                         {"peak_rss_mib", r.peak_rss_mib},
                         {"loss", r.loss},
                         {"sgemm_ms", no_sgemm ? 0.0 : sgemm_ms(cell, c)},
                         {"gflop", step_flops(cell, c) / 1e9}};
        fmt::print("{}\n", j.dump());
        return 0;
    }
    if (pin >= cpus) {
        fmt::print(stderr, "bench/rnn: --pin {}: this machine has CPUs 0 to {}\n", pin, cpus - 1);
        return 2;
    }
    warn_if_slow_blas();
    // A capped run stands for a CPU without the faster set: PyTorch's own kernels are capped
    // the same way unless ATEN_CPU_CAPABILITY says otherwise (OPENBLAS_CORETYPE is the
    // caller's, for both sides).
    if (isa() < cpu_isa() && !std::getenv("ATEN_CPU_CAPABILITY"))
        setenv("ATEN_CPU_CAPABILITY", isa() == Isa::avx2 ? "avx2" : "default", 1);
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const bool torch = !no_torch && tb::python_has_torch();
    if (!no_torch && !torch)
        fmt::print(
            "bench/rnn: notice: /usr/bin/python3 cannot import torch (apt-get install "
            "python3-torch); "
            "tapegrad runs alone\n");
    const std::vector<std::string> ways{"fused", "eager", "script"};
    std::vector<Row> rows;
    for (const auto& config_name : config_names) {
        const Config c = find(config_name);
        for (const auto& cell_name : cells) {
            Row row;
            row.config = c.name;
            row.cell = cell_name;
            progress(c.name, cell_name, "");
            for (int round = 0; round < rounds; ++round)
                for (int threads : thread_counts) {
                    // tapegrad at `threads` with shards of `rows_per_shard` rows: ms, 0 if it failed
                    auto run_tapegrad = [&](std::size_t rows_per_shard) {
                        auto j =
                            tapegrad_child(self, cell_name, c, threads, rows_per_shard, reps, pin);
                        if (!j) return 0.0;
                        const double ms = (*j)["ms"].get<double>();
                        double& slot = threads != 1            ? row.t2
                                       : rows_per_shard == c.B ? row.t1
                                                               : row.t1_shards;
                        slot = best_of(slot, ms);
                        if (threads == 1 && rows_per_shard == c.B) {
                            row.sgemm = best_of(row.sgemm, (*j)["sgemm_ms"].get<double>());
                            row.tape_mib_per_step =
                                (*j)["tape_bytes_per_step"].get<double>() / (1 << 20);
                            row.rss = std::max(row.rss, (*j)["peak_rss_mib"].get<double>());
                        }
                        return ms;
                    };
                    // 1 thread: the batch as one shard just before and just after PyTorch's
                    // runs (the machine's speed drifts over minutes), then as the two shards
                    // 2 threads run
                    Row::Round here;
                    std::vector<double> around{run_tapegrad(threads == 1 ? c.B : c.B / 2)};
                    if (torch)
                        for (const auto& way : ways)
                            if (auto j = torch_child(cell_name, c, way, threads, reps, pin)) {
                                const double ms = (*j)["ms"].get<double>();
                                double& slot = (threads == 1 ? row.torch1 : row.torch2)[way];
                                slot = best_of(slot, ms);
                                if (threads == 1) {
                                    here.torch1[way] = ms;
                                    row.torch_rss[way] = std::max(
                                        row.torch_rss[way], (*j)["peak_rss_mib"].get<double>());
                                }
                            }
                    if (threads != 1) continue;
                    if (torch) around.push_back(run_tapegrad(c.B));
                    if (std::find(around.begin(), around.end(), 0.0) == around.end())
                        here.t1 = std::accumulate(around.begin(), around.end(), 0.0) /
                                  static_cast<double>(around.size());
                    row.rounds.push_back(here);
                    run_tapegrad(c.B / 2);
                }
            // The speed-up in pairs: 1T and 2T steps in turn, in one child, 4 x reps pairs;
            // the 2T threads pinned (as in the 2T column), then not
            progress(c.name, cell_name, ", 1 and 2 threads in pairs");
            const std::string paired_cmd =
                fmt::format("{} --one --paired --cell {} --config {} --reps {}",
                            tb::shell_quote(self), cell_name, c.name, 4 * reps);
            if (auto j = tb::run_command_json(paired_cmd + " --pin-threads")) {
                row.paired = (*j)["speedup"].get<double>();
                row.ceiling = (*j)["ceiling"].get<double>();
            }
            if (auto j = tb::run_command_json(paired_cmd))
                row.paired_unpinned = (*j)["speedup"].get<double>();
            rows.push_back(row);
        }
    }

    // The SIMD kernels' share: each config in a child that alternates them on and off.
    std::string kernels_table;
    if (packed_gemm::available() && vector_math::available()) {
        kernels_table =
            "\nThe SIMD kernels (kernels/packed_gemm.hpp: per-step products with the weight "
            "packed "
            "once per sequence; kernels/vector_math.hpp: exp, sigmoid, tanh) switched on and off "
            "in "
            "turn within one process, tapegrad 1T, median ms of each "
            "(`bench/rnn --one --kernels-ab --cell C --config K`):\n\n"
            "| config | cell | kernels on | off | on / off |\n|---|---|---|---|---|\n";
        for (const Row& r : rows) {
            progress(r.config, r.cell, ", SIMD kernels on and off");
            auto j = tb::run_command_json(
                fmt::format("{} --one --kernels-ab --cell {} --config {} --reps {}",
                            tb::shell_quote(self), r.cell, r.config, 2 * reps));
            if (!j) continue;
            const double on = (*j)["on_ms"].get<double>(), off = (*j)["off_ms"].get<double>();
            kernels_table += fmt::format("| {} | {} | {} | {} | {} |\n", r.config, r.cell,
                                         fmt_ms(on), fmt_ms(off), fmt_ratio(on, off));
        }
        // the packed kernel alone against sgemm, in a child pinned like the 1-thread runs
        progress("", "", "packed kernel against sgemm");
        const std::string gemm_cmd =
            fmt::format("{} --one --gemm --rounds {} --reps {}{}", tb::shell_quote(self), rounds,
                        reps, pin >= 0 ? fmt::format(" --cpu {}", pin) : std::string());
        if (auto j = tb::run_command_json(gemm_cmd)) {
            kernels_table += fmt::format(
                "\nThe packed kernel against one-thread sgemm on the LSTMs' per-step product, B "
                "packed once (`bench/rnn --one --gemm`): medians of {} rounds of {} products "
                "each way; ratio = the median of the rounds' sgemm / packed.\n\n"
                "| product | packed us | sgemm us | sgemm / packed |\n|---|---|---|---|\n",
                rounds, 20 * reps);
            for (const auto& p : *j)
                kernels_table +=
                    fmt::format("| {} | {:.1f} | {:.1f} | {:.2f} |\n",
                                p["product"].get<std::string>(), p["packed_us"].get<double>(),
                                p["sgemm_us"].get<double>(), p["ratio"].get<double>());
        }
    }

    const BlasInfo blas = blas_info();
    // how this table was made: ./run.sh bench, or a run capped by hand (its variables and flags)
    std::string command = "./run.sh bench";
    if (isa() < cpu_isa()) {
        command = fmt::format("TAPEGRAD_ISA={} OPENBLAS_CORETYPE={} build/bench/rnn",
                              tb::env_or("TAPEGRAD_ISA", "unset"),
                              tb::env_or("OPENBLAS_CORETYPE", "unset"));
        for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
    }
    std::string table = fmt::format(
        "- Date: {}; CPU: {}; kernels: {} (TAPEGRAD_ISA={}; PyTorch's ATEN_CPU_CAPABILITY={}); "
        "OpenBLAS core: {} (OPENBLAS_CORETYPE={}); command: `{}`\n"
        "- ms per training step (forward + backward + SGD, float32): median of {} repetitions "
        "after "
        "warm-up (at least {} steps and {} s), each side in its own process, in {} rounds with the "
        "two sides "
        "alternating; each side's best round is shown. {} "
        "PyTorch best = the fastest of nn.* (fused), "
        "primitive ops eager, TorchScript. tapegrad 1T = one thread, the batch as one shard; "
        "1T 2 shards and 2T = the batch cut into two shards of B/2 rows (parallel_backward), on "
        "one and two threads, the 2T threads pinned one to a CPU (`set_num_threads(2, {{.pin = "
        "true}})`); "
        "2T speed-up = 1T / 2T (in brackets: 1T 2 shards / 2T, the same work). "
        "Paired = the 2T speed-up measured in pairs in one process ({} pairs of a 1T step, on each "
        "CPU "
        "in turn, and a 2T step, a moment apart; per round of both CPUs, the 1T steps' mean over "
        "the "
        "2T steps' mean; the median of the rounds): the machine's speed drifts between the "
        "separate "
        "runs above, not within a round. Not pinned = the same with the 2T threads left to the "
        "scheduler. Ceiling = in the same rounds, 1T over two independent steps of B/2 rows at "
        "once "
        "on two threads pinned one to each CPU, sharing nothing (no tape, task, parameter or "
        "reduction): what a static split of the batch in two can gain on this machine at that "
        "moment. "
        "Ratio = tapegrad 1T / PyTorch 1 thread, the median over the rounds of each round's ratio: "
        "in "
        "a round, tapegrad's 1T step is run just before and just after PyTorch's 1T runs and the "
        "two "
        "averaged, so the two sides of a ratio are seconds apart (the ms columns are each side's "
        "best "
        "round, possibly minutes apart); by round = the rounds' ratios vs best, in order. % sgemm "
        "= the step's matrix products timed alone "
        "with one-thread sgemm on the same shapes, over tapegrad 1T. RSS = peak resident MiB of "
        "the 1T process (PyTorch: its nn.* layer's process).\n\n",
        tb::today(), tb::cpu_model(), isa_name(isa()), tb::env_or("TAPEGRAD_ISA", "unset"),
        tb::env_or("ATEN_CPU_CAPABILITY", "unset"), blas.corename,
        tb::env_or("OPENBLAS_CORETYPE", "unset"), command, reps, warmup_steps, warmup_seconds,
        rounds,
        pin >= 0
            ? fmt::format("Every 1-thread run, of both sides, is pinned to CPU {} (`--pin`), so a "
                          "slower vCPU cannot land on one side only; 2T runs use every CPU.",
                          pin)
            : std::string("1-thread runs are not pinned (`--pin -1`)."),
        4 * reps);
    table +=
        "| config | cell | tapegrad 1T | 1T 2 shards | 2T | 2T speed-up | paired | not pinned | "
        "ceiling | PyTorch nn.* 1T | PyTorch best 1T | "
        "PyTorch best 2T | ratio vs nn.* | ratio vs best | by round | % sgemm | tape MiB/step | "
        "RSS tapegrad | RSS PyTorch |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    // What two threads can gain on this machine at most: two independent 1-thread processes
    // running the same step at once, against one alone (before and after the pair). No
    // sharing, no synchronisation: whatever slows the pair is the machine's (the two vCPUs'
    // shared core, cache or clock), and it bounds any 2-thread scheme. Then the step alone on
    // each CPU in turn (pinned): when one vCPU is slower, two equal shards finish when the slow
    // one does, so 2T can gain at most 2 x fast / slow.
    std::string ceiling_table =
        "\nThe machine's ceiling for 2 threads: the 1T step run by two independent processes at "
        "once, against one process alone just before and after (`bench/rnn --one --threads 1 "
        "--no-sgemm`, median ms). Ceiling = 2 x alone / pair, the throughput two cores give "
        "two programs that share nothing. CPU 0 / CPU 1: the 1T step alone, pinned to each CPU "
        "(`--cpu N`); with two equal shards, 2T gains at most 2 x faster / slower.\n\n"
        "| config | cell | 1T alone | two 1T at once | ceiling | 1T on CPU 0 | 1T on CPU 1 | 2 x "
        "faster / slower | 2T speed-up |\n"
        "|---|---|---|---|---|---|---|---|---|\n";
    for (const Row& r : rows) {
        progress(r.config, r.cell, ", two processes at once");
        const std::string cmd =
            fmt::format("{} --one --no-sgemm --cell {} --config {} --threads 1 --reps {}",
                        tb::shell_quote(self), r.cell, r.config, reps);
        auto ms = [](const std::optional<nlohmann::json>& j) {
            return j ? (*j)["ms"].get<double>() : 0.0;
        };
        const double before = ms(tb::run_command_json(cmd));
        auto other = std::async(std::launch::async, [&] { return tb::run_command_json(cmd); });
        const double pair_a = ms(tb::run_command_json(cmd)), pair_b = ms(other.get());
        const double after = ms(tb::run_command_json(cmd));
        if (before == 0 || after == 0 || pair_a == 0 || pair_b == 0) continue;
        const double alone = (before + after) / 2, pair = (pair_a + pair_b) / 2;
        double cpu0 = 0, cpu1 = 0;
        if (cpus >= 2) {
            cpu0 = ms(tb::run_command_json(cmd + " --cpu 0"));
            cpu1 = ms(tb::run_command_json(cmd + " --cpu 1"));
        }
        const std::string bound =
            cpu0 > 0 && cpu1 > 0
                ? fmt::format("{:.2f}", 2 * std::min(cpu0, cpu1) / std::max(cpu0, cpu1))
                : "—";
        ceiling_table +=
            fmt::format("| {} | {} | {} | {} | {:.2f} | {} | {} | {} | {} |\n", r.config, r.cell,
                        fmt_ms(alone), fmt_ms(pair), 2 * alone / pair, fmt_ms(cpu0), fmt_ms(cpu1),
                        bound, fmt_ratio(r.t1, r.t2));
    }

    double worst = 0, worst_paired = 0, worst_of_ceiling = 0;
    std::string worst_at, worst_paired_at;
    for (const Row& r : rows) {
        const double fused = r.torch1.count("fused") ? r.torch1.at("fused") : 0;
        const double best = r.torch_best1();
        const double vs_fused = r.median_ratio("fused"), vs_best = r.median_ratio("");
        std::string by_round;
        for (double q : r.round_ratios(""))
            by_round += fmt::format("{}{:.2f}", by_round.empty() ? "" : " ", q);
        auto fmt_median = [](double q) {
            return q > 0 ? fmt::format("{:.2f}", q) : std::string("—");
        };
        table += fmt::format(
            "| {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} "
            "| {:.2f} | {:.0f} | {} |\n",
            r.config, r.cell, fmt_ms(r.t1), fmt_ms(r.t1_shards), fmt_ms(r.t2),
            fmt_ratio(r.t1, r.t2), fmt_ratio(r.t1_shards, r.t2), fmt_median(r.paired),
            fmt_median(r.paired_unpinned), fmt_median(r.ceiling), fmt_ms(fused), fmt_ms(best),
            fmt_ms(r.torch_best2()), fmt_median(vs_fused), fmt_median(vs_best),
            by_round.empty() ? "—" : by_round,
            r.t1 > 0 ? fmt::format("{:.0f}%", 100 * r.sgemm / r.t1) : "—", r.tape_mib_per_step,
            r.rss,
            r.torch_rss.count("fused") ? fmt::format("{:.0f}", r.torch_rss.at("fused")) : "—");
        if (r.paired > 0 && r.ceiling > 0 &&
            (worst_of_ceiling == 0 || r.paired / r.ceiling < worst_of_ceiling))
            worst_of_ceiling = r.paired / r.ceiling;
        if (r.paired > 0 && (worst_paired == 0 || r.paired < worst_paired)) {
            worst_paired = r.paired;
            worst_paired_at = r.config + " " + r.cell +
                              (r.ceiling > 0 ? fmt::format(", whose ceiling was {:.2f}", r.ceiling)
                                             : std::string());
        }
        if (vs_best > worst) {
            worst = vs_best;
            worst_at = r.config + " " + r.cell;
        }
    }
    table += kernels_table + ceiling_table;
    fmt::print("\n{}", table);
    std::string summary = worst > 0 ? fmt::format(
                                          "bench/rnn: worst ratio tapegrad / PyTorch best (1 "
                                          "thread, median of rounds): {:.2f} ({})",
                                          worst, worst_at)
                                    : std::string("bench/rnn: no PyTorch comparison in this run");
    if (worst_paired > 0)
        summary +=
            fmt::format("; lowest 2T speed-up, paired: {:.2f} ({})", worst_paired, worst_paired_at);
    if (worst_of_ceiling > 0)
        summary += fmt::format("; lowest paired / ceiling: {:.2f}", worst_of_ceiling);
    fmt::print("\n{}\n", summary);
    // one section per instruction set: a run capped at AVX2 (TAPEGRAD_ISA=avx2) keeps the
    // AVX-512 run's table
    const std::string section = isa() == cpu_isa() ? "rnn" : fmt::format("rnn-{}", isa_name(isa()));
    tb::write_section(out, section, table + "\n" + summary + "\n");
    fmt::print("bench/rnn: table written to {}\n", out);
    return 0;
}
