// Shared helpers for the benchmarks: wall-clock and CPU timing of repeated runs, median/min,
// peak RSS, the machine description, and running a benchmark's PyTorch peer script in a child
// /usr/bin/python3 (Debian's interpreter, the one with python3-torch) that prints JSON.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <time.h>

#include <nlohmann/json.hpp>

#ifndef TAPEGRAD_BENCH_DIR
#error "TAPEGRAD_BENCH_DIR must name the bench/ source directory (set by bench/CMakeLists.txt)"
#endif

namespace tapegrad::bench {

inline constexpr const char* python = "/usr/bin/python3";

// A bench's source directory, where its peer script lives.
inline std::string source_dir() { return TAPEGRAD_BENCH_DIR; }

struct Stats {
    double median = 0;
    double min = 0;
};

inline Stats summarize(std::vector<double> samples) {
    if (samples.empty()) return {};
    std::sort(samples.begin(), samples.end());
    const std::size_t n = samples.size();
    const double median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
    return {median, samples.front()};
}

inline Stats scaled(Stats s, double factor) { return {s.median * factor, s.min * factor}; }

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of the whole process (all threads), in seconds.
inline double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// One timed run on two clocks. On a machine shared with other work neither is trustworthy
// alone: a run that is preempted keeps its CPU time but not its wall time, and in this VM
// the CPU clock now and then runs up to twice as fast as the wall clock. A run cannot take
// longer than either, so `time()` — the smaller — is what the benches report and judge.
struct Elapsed {
    double wall = 0;  // seconds
    double cpu = 0;   // seconds of process CPU time
    double time() const { return std::min(wall, cpu); }
};

// A point in time on both clocks.
struct Instant {
    Clock::time_point wall = Clock::now();
    double cpu = process_cpu_seconds();
    Elapsed since() const { return {seconds_since(wall), process_cpu_seconds() - cpu}; }
};

struct Timings {
    Stats time, wall, cpu;  // over runs of Elapsed::time(), wall, cpu
};

inline Timings summarize(const std::vector<Elapsed>& samples, double factor = 1.0) {
    std::vector<double> time, wall, cpu;
    for (const auto& s : samples) {
        time.push_back(s.time());
        wall.push_back(s.wall);
        cpu.push_back(s.cpu);
    }
    return {scaled(summarize(std::move(time)), factor), scaled(summarize(std::move(wall)), factor),
            scaled(summarize(std::move(cpu)), factor)};
}

// Runs f() untimed at least `warmup` times and for at least `warmup_seconds` of wall time,
// then `reps` times; returns each timed run.
template <class F>
std::vector<Elapsed> time_reps(int warmup, int reps, F&& f, double warmup_seconds = 0) {
    const auto warmup_start = Clock::now();
    for (int i = 0; i < warmup || seconds_since(warmup_start) < warmup_seconds; ++i) f();
    std::vector<Elapsed> out;
    out.reserve(static_cast<std::size_t>(reps));
    for (int i = 0; i < reps; ++i) {
        const Instant start;
        f();
        out.push_back(start.since());
    }
    return out;
}

// Peak resident set size of this process so far, in MiB.
inline double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// "AMD EPYC", from /proc/cpuinfo (what lscpu prints as "Model name").
inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("model name", 0) == 0)
            if (auto colon = line.find(':'); colon != std::string::npos)
                return line.substr(line.find_first_not_of(' ', colon + 1));
    return "unknown";
}

// Today's date, YYYY-MM-DD (local time).
inline std::string today() {
    const std::time_t now = std::time(nullptr);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", std::localtime(&now));
    return buf;
}

// Replaces the part of a Markdown file between "<!-- bench:NAME begin -->" and
// "<!-- bench:NAME end -->" with `body` (appending the markers at the end the first time),
// leaving the rest of the file as it was. Written to a temporary file, then renamed.
inline void write_section(const std::string& path, const std::string& name,
                          const std::string& body) {
    std::string text;
    {
        std::ifstream in(path);
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const std::string begin = "<!-- bench:" + name + " begin -->\n",
                      end = "<!-- bench:" + name + " end -->\n";
    const auto b = text.find(begin), e = text.find(end);
    if (b == std::string::npos || e == std::string::npos || e < b) {
        if (!text.empty() && text.back() != '\n') text += '\n';
        text += "\n" + begin + body + end;
    } else {
        text = text.substr(0, b + begin.size()) + body + text.substr(e);
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        if (!out) {
            std::fprintf(stderr, "bench: could not write %s\n", tmp.c_str());
            return;
        }
    }
    std::rename(tmp.c_str(), path.c_str());
}

inline std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v ? v : fallback;
}

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Does /usr/bin/python3 import torch?
inline bool python_has_torch() {
    const std::string cmd = std::string(python) + " -c 'import torch' >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

// Runs a shell command and parses the last line of its stdout as JSON. Returns nothing
// (after a note on stderr) when the command fails.
inline std::optional<nlohmann::json> run_command_json(const std::string& cmd) {
    FILE* pipe = popen(cmd.c_str(), "r");
    if (!pipe) {
        std::fprintf(stderr, "bench: could not start %s\n", cmd.c_str());
        return std::nullopt;
    }
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
    const int status = pclose(pipe);
    if (status != 0) {
        std::fprintf(stderr, "bench: %s failed (status %d)\n", cmd.c_str(), status);
        return std::nullopt;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    const auto nl = out.rfind('\n');
    const std::string last = nl == std::string::npos ? out : out.substr(nl + 1);
    try {
        return nlohmann::json::parse(last);
    } catch (const nlohmann::json::exception& e) {
        std::fprintf(stderr, "bench: %s printed no JSON (%s)\n", cmd.c_str(), e.what());
        return std::nullopt;
    }
}

// Runs `/usr/bin/python3 <script> <args...>` pinned to one thread unless `threads` says
// otherwise, inheriting the rest of the environment (OPENBLAS_CORETYPE included); the last
// line of its stdout is JSON.
// cpu >= 0: the peer runs on that CPU only (taskset, from util-linux).
inline std::optional<nlohmann::json> run_python_peer(const std::string& script,
                                                     const std::vector<std::string>& args,
                                                     int threads = 1, int cpu = -1) {
    std::string cmd = "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=" + std::to_string(threads) +
                      " MKL_NUM_THREADS=1 " +
                      (cpu >= 0 ? "taskset -c " + std::to_string(cpu) + " " : std::string()) +
                      std::string(python) + " " + shell_quote(script);
    for (const auto& a : args) cmd += " " + shell_quote(a);
    return run_command_json(cmd);
}

}  // namespace tapegrad::bench
