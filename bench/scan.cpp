// bench/scan: the minGRU layer's sequence form (one linear_scan for all steps), measured.
//  1. A training step (forward + backward + SGD, loss = sum(output ⊙ w), float32, h0 = 0.5) of
//     a 1-layer minGRU, T=1000 B=32 I=H=256, 1 thread: scan form, the same cell step by step,
//     log-space form; PyTorch's minGRU (scan_torch.py): the paper's log-space form, a loop.
//  2. The scan form at T = 100, 1000, 10000: ms per time step and peak RSS.
//  3. linear_scan alone on 1 and 2 threads; 1, 2 and 4 threads bitwise equal?
// Parts 1 and 2 measure in child processes (this binary with --one, each its own peak RSS),
// 1-thread children of both sides pinned to one CPU (--pin); part 1 runs in rounds with the
// sides alternating, ratios taken within a round (the machine's speed drifts), then the median.
#include <sched.h>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "common.hpp"

using namespace tapegrad;
namespace tb = tapegrad::bench;

namespace {

// The cell step by step: the driver calls step() T times instead of sequence().
struct SteppedMinGRU : MinGRUCell {
    using MinGRUCell::MinGRUCell;
    bool runs_sequences() const override { return false; }
};

struct Size {
    std::size_t T, B, I, H;
};

// One training step of the minGRU layer in form "scan", "steps" or "log".
struct Step {
    Generator gen{0};
    std::shared_ptr<Recurrent> layer;
    Variable xs, w, h0;
    SGD opt;
    double tape_bytes = 0;

    Step(const std::string& form, const Size& s)
        : layer(std::make_shared<Recurrent>(
              "minGRU",
              [&](std::size_t in, Generator& g) -> std::shared_ptr<Cell> {
                  if (form == "steps") return std::make_shared<SteppedMinGRU>(in, s.H, g);
                  if (form == "scan") return std::make_shared<MinGRUCell>(in, s.H, g);
                  if (form == "log")
                      return std::make_shared<MinGRUCell>(in, s.H, g, float32,
                                                          MinGRUOptions{.log_space = true});
                  throw ValueError("bench/scan: unknown form '" + form + "' (scan, steps, log)");
              },
              s.I, RecurrentOptions{}, gen)),
          xs(gen.normal({s.T, s.B, s.I}, 0, 1, float32)),
          w(constant(gen.normal({s.T, s.B, s.H}, 0, 1, float32))),
          h0(constant(Tensor::full({1, s.B, s.H}, 0.5, float32))),
          opt(*layer, SGDOptions{.lr = 1e-3}) {}

    void operator()() {
        opt.zero_grad();
        const Variable loss = sum(layer->forward(xs, {h0}).output * w);
        tape_bytes = static_cast<double>(current_tape().saved_bytes());
        loss.backward();
        opt.step();
    }
};

bool run_on_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

// --one: a training step of one form, timed in this process; JSON on stdout.
nlohmann::json measure(const std::string& form, const Size& s, int reps) {
    set_num_threads(1);
    Step step(form, s);
    const auto t = tb::summarize(tb::time_reps(2, reps, step, 0.25), 1e3);
    return {{"ms", t.time.median},
            {"tape_mib", step.tape_bytes / (1 << 20)},
            {"peak_rss_mib", tb::peak_rss_mib()}};
}

// ---- part 3: linear_scan alone

struct ScanAlone {
    Variable a, b, h0;
    Tensor g;
    ScanAlone(std::size_t T, std::size_t lanes) {
        Generator gen(1);
        a = Variable(gen.uniform({T, lanes}, 0.5, 1, float32), true);
        b = Variable(gen.normal({T, lanes}, 0, 1, float32), true);
        h0 = Variable(gen.normal({lanes}, 0, 1, float32), true);
        g = gen.normal({T, lanes}, 0, 1, float32);
    }
    Variable run(bool backward) {
        for (Variable* v : {&a, &b, &h0}) v->zero_grad();
        if (!backward) {
            NoGradGuard no_grad;
            return linear_scan(a, b, h0);
        }
        Variable h = linear_scan(a, b, h0);
        h.backward(g);
        return h;
    }
    // h and the three gradients (doubles hold floats exactly; compared byte for byte)
    std::vector<double> results() {
        std::vector<double> out = run(true).value().to_vector();
        for (Variable* v : {&a, &b, &h0}) {
            const auto grad = v->grad().to_vector();
            out.insert(out.end(), grad.begin(), grad.end());
        }
        return out;
    }
};

struct Speedup {
    double t1 = 0, t2 = 0, ratio = 0;
};

// 1 and 2 threads in turn, `rounds` times (the order swapped every other round), reps runs
// each after a warm-up; the median ms of each and the median of the rounds' ratios.
Speedup speedup(ScanAlone& s, bool backward, int rounds, int reps) {
    std::vector<double> t1, t2, ratio;
    for (int r = 0; r < rounds; ++r) {
        double ms[3] = {};
        for (int n : r % 2 ? std::vector{2, 1} : std::vector{1, 2}) {
            set_num_threads(static_cast<std::size_t>(n));
            ms[n] = tb::summarize(tb::time_reps(
                                      3, reps, [&] { s.run(backward); }, 0.1),
                                  1e3)
                        .time.median;
        }
        t1.push_back(ms[1]);
        t2.push_back(ms[2]);
        ratio.push_back(ms[1] / ms[2]);
    }
    return {tb::summarize(t1).median, tb::summarize(t2).median, tb::summarize(ratio).median};
}

std::string fmt_ms(double v) { return v > 0 ? fmt::format("{:.1f}", v) : "—"; }
std::string loadavg() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    CLI::App app{"tapegrad: the minGRU layer's scan form vs step by step vs PyTorch"};
    bool quick = false, no_torch = false;
    std::string one, out = tb::source_dir() + "/results.md";
    Size size{1000, 32, 256, 256};
    std::vector<std::size_t> lengths{100, 1000, 10000};
    int reps = 7, rounds = 3, cpu = -1;
    int pin = std::thread::hardware_concurrency() >= 2
                  ? static_cast<int>(std::thread::hardware_concurrency()) - 1
                  : -1;
    app.add_flag("--quick", quick, "a short run: T = 200, lengths 100 and 1000, 1 round");
    app.add_flag("--no-torch", no_torch, "skip the PyTorch peer");
    app.add_option("--one", one, "measure one form (scan, steps, log) in this process; JSON");
    app.add_option("--T", size.T, "time steps of part 1 (and of --one)");
    app.add_option("--lengths", lengths, "the T of part 2");
    app.add_option("--reps", reps, "timed repetitions per measurement (median reported)");
    app.add_option("--rounds", rounds, "rounds of part 1, the two sides alternating");
    app.add_option("--cpu", cpu, "with --one: run on this CPU only");
    app.add_option("--pin", pin, "1-thread children of both sides on this CPU (-1: not pinned)");
    app.add_option("--out", out, "Markdown file for the section");
    CLI11_PARSE(app, argc, argv);

    if (!one.empty()) {
        if (cpu >= 0 && !run_on_cpu(cpu)) return 2;
        fmt::print("{}\n", measure(one, size, reps).dump());
        return 0;
    }
    if (quick) {
        size.T = 200;
        lengths = {100, 1000};
        reps = 3;
        rounds = 1;
    }
    warn_if_slow_blas();
    const std::string load_before = loadavg();
    const std::string self =
        tb::shell_quote(std::filesystem::read_symlink("/proc/self/exe").string());
    const bool torch = !no_torch && tb::python_has_torch();
    if (!no_torch && !torch)
        fmt::print("bench/scan: notice: /usr/bin/python3 cannot import torch; tapegrad alone\n");
    auto child = [&](const std::string& form, std::size_t T, int n) {
        fmt::print("bench/scan: tapegrad {} T={} ...\n", form, T);
        std::fflush(stdout);
        return tb::run_command_json(
            fmt::format("{} --one {} --T {} --reps {} --cpu {}", self, form, T, n, pin));
    };
    auto torch_child = [&](const std::string& form) {
        fmt::print("bench/scan: PyTorch {} ...\n", form);
        std::fflush(stdout);
        return tb::run_python_peer(
            tb::source_dir() + "/scan_torch.py",
            {form, std::to_string(size.T), std::to_string(size.B), std::to_string(size.I),
             std::to_string(size.H), std::to_string(reps)},
            1, pin);
    };

    // ---- 1: the forms side by side, rounds alternating the two sides
    const std::vector<std::string> ours{"scan", "steps", "log"}, theirs{"log", "seq"};
    std::map<std::string, std::vector<double>> ms, rss;  // by "tapegrad scan", "PyTorch log", ...
    std::map<std::string, std::vector<double>> ratios;
    for (int r = 0; r < rounds; ++r) {
        std::map<std::string, double> now;
        auto run_ours = [&] {
            for (const auto& f : ours)
                if (auto j = child(f, size.T, reps)) {
                    now["tapegrad " + f] = (*j)["ms"].get<double>();
                    rss["tapegrad " + f].push_back((*j)["peak_rss_mib"].get<double>());
                }
        };
        auto run_theirs = [&] {
            if (torch)
                for (const auto& f : theirs)
                    if (auto j = torch_child(f)) {
                        now["PyTorch " + f] = (*j)["ms"].get<double>();
                        rss["PyTorch " + f].push_back((*j)["peak_rss_mib"].get<double>());
                    }
        };
        if (r % 2 == 0) run_ours(), run_theirs();
        else run_theirs(), run_ours();
        for (const auto& [k, v] : now) ms[k].push_back(v);
        auto ratio = [&](const std::string& key, const std::string& a, const std::string& b) {
            if (now.count(a) && now.count(b)) ratios[key].push_back(now[a] / now[b]);
        };
        ratio("steps / scan", "tapegrad steps", "tapegrad scan");
        ratio("scan / PyTorch log", "tapegrad scan", "PyTorch log");
        ratio("log / PyTorch log", "tapegrad log", "PyTorch log");
        ratio("PyTorch loop / PyTorch log", "PyTorch seq", "PyTorch log");
    }
    auto median = [](const std::vector<double>& v) { return tb::summarize(v).median; };
    auto max_of = [](const std::vector<double>& v) {
        return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
    };

    std::string text = fmt::format(
        "- Date: {}; CPU: {}; OpenBLAS core: {} (OPENBLAS_CORETYPE={}); command: `{}`; load "
        "average before the run: {}\n"
        "- One training step of a 1-layer minGRU (Recurrent of MinGRUCell, float32, h0 = 0.5, "
        "loss = sum(output ⊙ w), forward + backward + SGD), T={} B={} I={} H={}, 1 thread both "
        "sides, each measurement a process of its own pinned to CPU {}: median of {} steps after "
        "warm-up; {} rounds, the sides alternating; ms = median over rounds, ratios = median of "
        "the rounds' ratios (both sides seconds apart). tapegrad steps = the same cell with "
        "runs_sequences() = false (T calls of step()). PyTorch log = minGRU's parallel "
        "log-space form from the paper (nn.Linear, −softplus, cumsum, logcumsumexp, Heinsen); "
        "loop = its sequential form, a Python loop over t.\n\n"
        "| form | ms/step | peak RSS MiB |\n|---|---|---|\n",
        tb::today(), tb::cpu_model(), blas_info().corename,
        tb::env_or("OPENBLAS_CORETYPE", "unset"), quick ? "bench/scan --quick" : "bench/scan",
        load_before, size.T, size.B, size.I, size.H, pin, reps, rounds);
    for (const std::string k :
         {"tapegrad scan", "tapegrad steps", "tapegrad log", "PyTorch log", "PyTorch seq"})
        if (ms.count(k))
            text += fmt::format("| {} | {} | {:.0f} |\n", k == "PyTorch seq" ? "PyTorch loop" : k,
                                fmt_ms(median(ms[k])), max_of(rss[k]));
    text += "\n| ratio | median | by round | target |\n|---|---|---|---|\n";
    const std::map<std::string, std::string> targets{
        {"steps / scan", "≥ 5"}, {"scan / PyTorch log", "≤ 1.0"}, {"log / PyTorch log", "≤ 1.0"}};
    for (const auto& [k, v] : ratios) {
        std::string by;
        for (double q : v) by += fmt::format("{}{:.2f}", by.empty() ? "" : " ", q);
        text += fmt::format("| {} | {:.2f} | {} | {} |\n", k, median(v), by,
                            targets.count(k) ? targets.at(k) : "—");
    }

    // ---- 2: cost per time step as T grows
    text += fmt::format(
        "\nThe scan form as T grows (B={} H={}, 1 thread, a process per T; tape = bytes the tape "
        "holds after forward):\n\n| T | ms/step | µs per time step | tape MiB | peak RSS MiB | "
        "RSS KiB per time step |\n|---|---|---|---|---|---|\n",
        size.B, size.H);
    for (std::size_t T : lengths)
        if (auto j = child("scan", T, T >= 10000 ? 3 : reps)) {
            const double step_ms = (*j)["ms"].get<double>(),
                         mib = (*j)["peak_rss_mib"].get<double>();
            text += fmt::format("| {} | {} | {:.1f} | {:.0f} | {:.0f} | {:.1f} |\n", T,
                                fmt_ms(step_ms), 1e3 * step_ms / double(T),
                                (*j)["tape_mib"].get<double>(), mib, 1024 * mib / double(T));
        }

    // ---- 3: linear_scan alone, 1 and 2 threads; bitwise equality over 1, 2, 4
    text +=
        "\nlinear_scan alone (float32, a ∈ [0.5, 1)), median ms of each thread count over "
        "rounds alternating 1 and 2 threads (set_num_threads), speed-up = median of the "
        "rounds' 1T / 2T; bitwise = h and the gradients of a, b, h0 equal bit for bit on "
        "1, 2 and 4 threads:\n\n"
        "| T × lanes | pass | 1T ms | 2T ms | speed-up | target | bitwise 1 = 2 = 4 |\n"
        "|---|---|---|---|---|---|---|\n";
    struct Case {
        std::size_t T, lanes;
    };
    const std::vector<Case> cases =
        quick ? std::vector<Case>{{200, 8192}} : std::vector<Case>{{1000, 8192}, {1000, 65536}};
    for (const Case& c : cases) {
        fmt::print("bench/scan: linear_scan {} x {} ...\n", c.T, c.lanes);
        std::fflush(stdout);
        ScanAlone s(c.T, c.lanes);
        std::vector<double> base;
        bool same = true;
        for (std::size_t n : {1, 2, 4}) {
            set_num_threads(n);
            const auto r = s.results();
            if (base.empty()) base = r;
            same = same && r.size() == base.size() &&
                   std::memcmp(r.data(), base.data(), r.size() * sizeof(double)) == 0;
        }
        for (bool backward : {false, true}) {
            const Speedup p = speedup(s, backward, quick ? 2 : 5, reps);
            text += fmt::format("| {} × {} | {} | {} | {} | {:.2f} | ≥ 1.7 | {} |\n", c.T, c.lanes,
                                backward ? "forward + backward" : "forward", fmt_ms(p.t1),
                                fmt_ms(p.t2), p.ratio, same ? "yes" : "NO");
        }
        fmt::print("bench/scan: {} x {}: 1, 2 and 4 threads bitwise equal: {}\n", c.T, c.lanes,
                   same ? "yes" : "NO");
    }
    set_num_threads(0);
    text += fmt::format("\nLoad average after the run: {}\n", loadavg());
    fmt::print("\n{}", text);
    tb::write_section(out, "scan", text);
    fmt::print("bench/scan: section written to {}\n", out);
    return 0;
}
