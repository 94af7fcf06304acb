// Training throughput of a character-level LSTM language model (the char_lm model: embedding
// -> LSTM -> linear head over the vocabulary, Adam, clipping) over MPI ranks, and what the
// gradient allreduce costs per step. Launched with mpirun; built as build/distributed/.
//   mpirun -np 1 build/distributed/bench_distributed
//   mpirun -np 2 --oversubscribe build/distributed/bench_distributed [--text FILE] [--batch 32]
// Every rank draws the same global batch of --batch windows and trains on its share of them;
// the gradients are averaged with distributed::average_gradients before each step.
#include <malloc.h>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/distributed/mpi.hpp>
#include <tapegrad/tapegrad.hpp>

#include "common.hpp"

using namespace tapegrad;
namespace dist = tapegrad::distributed;
using tapegrad::bench::Clock;
using tapegrad::bench::seconds_since;

namespace {

// English-like text when no file is given: words from a small list, with punctuation and line
// breaks, drawn from a fixed seed (about 60 distinct characters).
std::string synthetic_text(std::size_t chars) {
    static const char* words[] = {
        "the",    "of",    "and",   "to",     "in",     "a",     "is",    "that",  "for",  "it",
        "as",     "was",   "with",  "be",     "by",     "on",    "not",   "he",    "I",    "this",
        "are",    "or",    "his",   "from",   "at",     "which", "but",   "have",  "an",   "had",
        "they",   "you",   "were",  "their",  "one",    "all",   "we",    "can",   "her",  "has",
        "there",  "been",  "if",    "more",   "when",   "will",  "would", "who",   "so",   "no",
        "KING",   "QUEEN", "Romeo", "Juliet", "love",   "night", "death", "sweet", "lord", "good",
        "Verona", "why",   "what",  "XV",     "Zounds", "joy"};
    Generator gen(42);
    std::string text;
    while (text.size() < chars) {
        text += words[gen.below(std::size(words))];
        const double u = gen.uniform();
        text += u < 0.05 ? ".\n" : u < 0.1 ? ", " : u < 0.12 ? "? " : u < 0.13 ? "; " : " ";
    }
    return text;
}

struct Model : Module {
    std::shared_ptr<Embedding> embed;
    std::shared_ptr<LSTM> rnn;
    std::shared_ptr<Linear> head;
    std::size_t E, Hs;
    Model(std::size_t vocab, std::size_t E, std::size_t H, Generator& gen)
        : Module("CharModel"), E(E), Hs(H) {
        embed = register_module("embed", std::make_shared<Embedding>(vocab, E, gen));
        rnn = register_module("rnn", std::make_shared<LSTM>(E, H, RecurrentOptions{}, gen));
        head = register_module("head", std::make_shared<Linear>(H, vocab, gen));
    }
    // ids: T*b time-major -> mean cross-entropy against targets
    Variable loss(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets,
                  std::size_t T, std::size_t b) {
        const Variable x = reshape(embed->forward(ids), Shape{T, b, E});
        const Variable out = rnn->forward(x).output;
        return cross_entropy((*head)(reshape(out, Shape{T * b, Hs})), targets);
    }
};

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    dist::Environment env(argc, argv);
    CLI::App app{"Data-parallel training throughput of a char-level LSTM LM over MPI ranks"};
    std::string text_path;
    std::size_t batch = 32, seq = 128, embed = 64, hidden = 128, steps = 30, warmup = 3,
                threads = 1;
    std::size_t bucket_kib = 4096;
    app.add_option("--text", text_path,
                   "text file to train on (default: 1 MB of synthetic English-like text)");
    app.add_option("--batch", batch, "global windows per step, split over the ranks")
        ->capture_default_str();
    app.add_option("--seq", seq, "characters per window")->capture_default_str();
    app.add_option("--embed", embed, "embedding size")->capture_default_str();
    app.add_option("--hidden", hidden, "LSTM hidden size")->capture_default_str();
    app.add_option("--steps", steps, "timed steps")->capture_default_str();
    app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
    app.add_option("--threads", threads,
                   "TBB threads per rank (parallel_backward over the local rows)")
        ->capture_default_str();
    app.add_option("--bucket-kib", bucket_kib, "allreduce bucket size in KiB")
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return env.is_root() ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
    }
    // as examples/compare_cells: keep freed graph memory, with more top pad than tune_malloc()
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TOP_PAD, 64 << 20);

    return dist::run_guarded([&] {
        set_num_threads(threads);
        std::string text;
        if (text_path.empty()) {
            text = synthetic_text(1 << 20);
        } else {
            std::ifstream in(text_path, std::ios::binary);
            if (!in)
                throw IOError(fmt::format("bench_distributed: cannot open --text '{}'", text_path));
            std::ostringstream s;
            s << in.rdbuf();
            text = s.str();
        }
        // Vocabulary: the distinct bytes, sorted.
        std::vector<int> index(256, -1);
        std::vector<unsigned char> chars(text.begin(), text.end());
        std::sort(chars.begin(), chars.end());
        chars.erase(std::unique(chars.begin(), chars.end()), chars.end());
        for (std::size_t i = 0; i < chars.size(); ++i) index[chars[i]] = static_cast<int>(i);
        std::vector<std::int64_t> ids;
        for (const unsigned char c : text) ids.push_back(index[c]);
        if (ids.size() < seq + 1)
            throw ValueError("bench_distributed: the text is shorter than one window");

        Generator init(1), data(2);
        Model model(chars.size(), embed, hidden, init);
        dist::check_same_model(model);
        dist::broadcast_parameters(model);
        Adam opt(model, {.lr = 2e-3});
        const Shard mine = dist::shard_range(batch);
        const dist::AverageOptions avg{.bucket_bytes = bucket_kib << 10};

        std::vector<double> compute, wait, comm, wall;  // seconds per timed step, this rank
        double loss_sum = 0;
        std::uint64_t control_bytes = 0;
        dist::AverageReport report;
        for (std::size_t step = 0; step < warmup + steps; ++step) {
            if (step == warmup) {
                dist::barrier();
                dist::reset_comm_stats();
            }
            const auto t0 = Clock::now();
            // The global batch (same on every rank), then this rank's windows of it, time-major.
            std::vector<std::size_t> starts(batch);
            for (auto& s : starts) s = data.below(ids.size() - seq);
            const std::size_t b = mine.size();
            std::vector<std::int64_t> in(seq * b), out(seq * b);
            for (std::size_t j = 0; j < b; ++j)
                for (std::size_t t = 0; t < seq; ++t) {
                    in[t * b + j] = ids[starts[mine.begin + j] + t];
                    out[t * b + j] = ids[starts[mine.begin + j] + t + 1];
                }
            opt.zero_grad();
            double loss = 0;
            if (b > 0) {
                if (threads > 1) {
                    loss = parallel_backward(
                        model.parameters(), b,
                        [&](const Shard& s) {
                            std::vector<std::int64_t> si(seq * s.size()), so(seq * s.size());
                            for (std::size_t t = 0; t < seq; ++t)
                                for (std::size_t j = 0; j < s.size(); ++j) {
                                    si[t * s.size() + j] = in[t * b + s.begin + j];
                                    so[t * s.size() + j] = out[t * b + s.begin + j];
                                }
                            return model.loss(si, so, seq, s.size());
                        },
                        {.rows = (b + threads - 1) / threads});
                } else {
                    const Variable l = model.loss(in, out, seq, b);
                    loss = l.item();
                    l.backward();
                }
            }
            const double t_compute = seconds_since(t0);
            // Waiting for the slowest rank apart from moving the bytes: the allreduce would wait anyway.
            const auto t1 = Clock::now();
            dist::barrier();
            const double t_wait = seconds_since(t1);
            report = dist::average_gradients(opt.parameters(), avg);
            clip_grad_norm(opt.parameters(), 1.0);
            opt.step();
            if (step >= warmup) {
                compute.push_back(t_compute);
                wait.push_back(t_wait);
                comm.push_back(report.seconds);
                wall.push_back(seconds_since(t0));
                loss_sum += loss;
            }
        }
        control_bytes = dist::comm_stats().control_bytes;
        // The allreduce alone, ranks in step: the gradients are equal on all ranks by now, so
        // averaging them again changes nothing.
        std::vector<double> alone;
        for (int rep = 0; rep < 20; ++rep) {
            dist::barrier();
            alone.push_back(dist::average_gradients(opt.parameters(), avg).seconds);
        }
        std::sort(alone.begin(), alone.end());
        const double alone_ms = 1e3 * dist::all_max(alone[alone.size() / 2]);
        dist::barrier();
        // Per step: the median over the steps of the largest over the ranks; the throughput
        // from the slowest rank's total wall time.
        const int n = dist::size();
        auto median_of_max = [](std::vector<double> v) {
            for (double& x : v) x = dist::all_max(x);
            std::sort(v.begin(), v.end());
            return 1e3 * v[v.size() / 2];
        };
        double total = 0;
        for (const double w : wall) total += w;
        total = dist::all_max(total);
        const double compute_ms = median_of_max(compute), wait_ms = median_of_max(wait),
                     comm_ms = median_of_max(comm), wall_ms = median_of_max(wall);
        const double mean_loss =
            dist::all_sum(loss_sum * static_cast<double>(mine.size()) / static_cast<double>(batch));
        if (env.is_root()) {
            const double per_step = total / static_cast<double>(steps);
            fmt::print(
                "ranks {}  threads/rank {}  vocab {}  embed {}  hidden {}  seq {}  global batch {} "
                "({} per rank)\n",
                n, threads, chars.size(), embed, hidden, seq, batch, mine.size());
            fmt::print("  parameters {}  gradient bytes {}  buckets {} of <= {} KiB\n",
                       model.parameter_count(), report.bytes, report.buckets, bucket_kib);
            fmt::print(
                "  throughput {:.1f} sequences/s  {:.0f} chars/s  ({:.1f} ms per step over {} "
                "steps)\n",
                static_cast<double>(batch) / per_step, static_cast<double>(batch * seq) / per_step,
                1e3 * per_step, steps);
            fmt::print(
                "  median step {:.1f} ms: compute {:.1f} ms, waiting for the slowest rank {:.2f} "
                "ms, allreduce "
                "{:.2f} ms\n",
                wall_ms, compute_ms, wait_ms, comm_ms);
            fmt::print(
                "  allreduce payload {} bytes/step; ring estimate sent per rank {:.0f} bytes/step; "
                "control "
                "{} bytes/step\n",
                report.bytes, dist::ring_allreduce_bytes(report.bytes, n), control_bytes / steps);
            if (n > 1)
                fmt::print(
                    "  allreduce alone (median of 20, ranks in step): {:.2f} ms, {:.0f} MB/s of "
                    "payload\n",
                    alone_ms, static_cast<double>(report.bytes) / alone_ms / 1e3);
            fmt::print("  mean loss {:.4f}\n", mean_loss / static_cast<double>(steps));
        }
        return 0;
    });
}
