// A character-level language model: an LSTM (or GRU, or tanh RNN) reads a text file and
// learns to predict its next character. Reports the validation loss in nats per character
// (the last 10% of the text), saves checkpoints that --resume continues exactly, and samples
// text at a chosen temperature.
//   build/examples/char_lm --text input.txt [--cell lstm|gru|rnn] [--hidden 128] [--steps 3000] ...
//   build/examples/char_lm --text input.txt --resume          # continue from --checkpoint
// Built with tapegrad::mpi, the same command line trains data-parallel on N processes: each
// trains on its rows of the same global batches, so the steps are those of one process (up to
// float rounding) and a checkpoint resumes on any number of processes.
//   mpirun -np 2 build/examples/char_lm --text input.txt --threads 1
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "examples/char_lm.hpp"

#ifdef TAPEGRAD_EXAMPLES_MPI
#include <tapegrad/distributed/mpi.hpp>
#endif

using namespace tapegrad;
using namespace char_lm;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IOError(fmt::format("char_lm: cannot open --text '{}'", path));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The processes of a data-parallel run (tapegrad::mpi); one process when built without it.
namespace ranks {
#ifdef TAPEGRAD_EXAMPLES_MPI
int size() { return distributed::size(); }
bool root() { return distributed::is_root(); }
double all_sum(double x) { return distributed::all_sum(x); }
void on_root(const std::function<void()>& fn) { distributed::on_root(fn); }
void on_all(const std::function<void()>& fn) { distributed::on_all(fn); }
Shard shard(std::size_t n) { return distributed::shard_range(n); }
#else
int size() { return 1; }
bool root() { return true; }
double all_sum(double x) { return x; }
void on_root(const std::function<void()>& fn) { fn(); }
void on_all(const std::function<void()>& fn) { fn(); }
Shard shard(std::size_t n) { return {0, 0, n}; }
#endif
}  // namespace ranks

// --threads 0 under mpirun: the cores shared among the ranks on this machine.
std::size_t default_threads() {
    if (ranks::size() == 1) return 0;
    for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
        if (const char* v = std::getenv(var)) {
            const long local = std::strtol(v, nullptr, 10);
            if (local > 1)
                return std::max<std::size_t>(
                    1, std::thread::hardware_concurrency() / static_cast<std::size_t>(local));
        }
    return 0;
}

int run(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
#ifdef TAPEGRAD_EXAMPLES_MPI
    distributed::Environment mpi(argc, argv);  // one rank when not started by mpirun
    return distributed::run_guarded(
        [&] { return run(argc, argv); });  // a throwing rank ends the job
#else
    return run(argc, argv);
#endif
}

namespace {

int run(int argc, char** argv) {
    CLI::App app{
        "Train a character-level language model (LSTM, GRU or RNN) on a text file, report the "
        "validation "
        "loss in nats per character, and sample text"};
    std::string text_path, cell_flag = "lstm", checkpoint = "char_lm_checkpoint", prime;
    ModelConfig mc;
    TrainConfig tc;
    std::size_t steps = 3000, eval_every = 250, eval_windows = 0, sample_chars = 500, threads = 0;
    double temperature = 0.8, log_seconds = 10;
    bool resume = false, anomaly = false, pin_threads = false;
    app.add_option("--text", text_path,
                   "the text file to train on (any UTF-8 or ASCII text; required)");
    app.add_option("--cell", cell_flag, "recurrent cell")
        ->check(CLI::IsMember({"lstm", "gru", "rnn"}))
        ->capture_default_str();
    auto* hidden_opt = train_common::positive_option(app, "--hidden", mc.hidden, "hidden size");
    auto* layers_opt =
        train_common::positive_option(app, "--layers", mc.layers, "stacked recurrent layers");
    auto* embed_opt =
        train_common::positive_option(app, "--embed", mc.embed, "character embedding size");
    auto* seq_opt = train_common::positive_option(
        app, "--seq", tc.seq, "characters per training window (truncated BPTT length)");
    auto* batch_opt = train_common::positive_option(app, "--batch", tc.batch, "windows per step");
    app.add_option("--steps", steps,
                   "train until this step (a resumed run counts from its checkpoint)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    auto* lr_opt = train_common::positive_option(app, "--lr", tc.lr, "Adam learning rate");
    auto* clip_opt =
        train_common::positive_option(app, "--clip", tc.clip, "gradient-norm clipping threshold");
    auto* shards_opt =
        app.add_option("--shards", tc.shards,
                       "the batch is cut into this many shards, trained in "
                       "parallel (results depend on it, not on --threads); on one thread "
                       "--shards 1 is fastest (larger matrix products)")
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
    app.add_option("--threads", threads,
                   "threads for the shards (0: every core, shared by the processes of an "
                   "mpirun on this machine)")
        ->capture_default_str();
    app.add_flag("--pin-threads", pin_threads,
                 "each thread on a CPU of its own while it trains the shards (faster "
                 "on an otherwise idle machine; not for one busy with other work)");
    auto* seed_opt =
        app.add_option("--seed", tc.seed, "seed of initialisation, batches and samples")
            ->capture_default_str();
    train_common::positive_option(app, "--eval-every", eval_every,
                                  "steps between validation losses (and checkpoints)");
    app.add_option("--eval-windows", eval_windows,
                   "validation windows of --seq characters to use (0: all)")
        ->capture_default_str();
    train_common::positive_option(app, "--temperature", temperature,
                                  "sampling temperature: < 1 more conservative, > 1 more varied");
    app.add_option("--sample", sample_chars, "characters to sample after training (0: none)")
        ->capture_default_str();
    app.add_option("--prime", prime, "text the sample starts from (default: a newline)");
    app.add_option("--checkpoint", checkpoint,
                   "checkpoint folder, written at every evaluation (empty: none)")
        ->capture_default_str();
    app.add_flag("--resume", resume, "continue the run saved in --checkpoint");
    app.add_flag("--anomaly", anomaly,
                 "check every op for NaN/Inf (slower) to name the op where training breaks");
    train_common::positive_option(app, "--log-seconds", log_seconds,
                                  "seconds between progress lines when output is not a terminal");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {  // --help, bad flags: printed once
        std::ostringstream quiet;
        return ranks::root() ? app.exit(e) : app.exit(e, quiet, quiet);
    }
    const bool root = ranks::root();

    if (text_path.empty()) {
        if (root)
            fmt::print(stderr,
                       "char_lm: --text FILE is required: the text to train on, any plain-text "
                       "file of at least a "
                       "few thousand characters (for example the Tiny Shakespeare corpus, about 1 "
                       "MB). See --help.\n");
        return 2;
    }
    if (root) warn_if_slow_blas();
    set_num_threads(threads ? threads : default_threads(), {.pin = pin_threads});
    mc.cell = train_common::parse_cell(cell_flag);
    const bool save_checkpoints = !checkpoint.empty();

    try {
        const std::string text = read_text(text_path);
        const Corpus corpus = make_corpus(text);
        if (corpus.val.size() < 2)
            throw ValueError(
                fmt::format("char_lm: '{}' has {} characters; it needs enough for a 90/10 split",
                            text_path, corpus.train.size() + corpus.val.size()));

        if (!prime.empty()) corpus.vocab.encode(prime);  // fails now rather than after training
        std::optional<RunInfo> saved;
        if (resume) {
            if (!save_checkpoints) throw ValueError("char_lm: --resume needs --checkpoint FOLDER");
            if (!fs::exists(CheckpointFiles(checkpoint).run))
                throw IOError(fmt::format("char_lm: --resume: no checkpoint in '{}' (no {})",
                                          checkpoint,
                                          CheckpointFiles(checkpoint).run.filename().string()));
            ranks::on_all([&] { saved = read_run_info(checkpoint); });
            // The model comes from the checkpoint; flags that disagree are an error. Training
            // settings come from the checkpoint unless given again.
            const bool cell_given = app.count("--cell") > 0;
            auto require_same = [&](CLI::Option* opt, std::size_t given, std::size_t stored) {
                if (opt->count() && given != stored)
                    throw ValueError(fmt::format(
                        "char_lm: --resume: the checkpoint has {} {}, the command line {}",
                        opt->get_name(), stored, given));
            };
            if (cell_given && mc.cell != saved->model.cell)
                throw ValueError(fmt::format(
                    "char_lm: --resume: the checkpoint has --cell {}, the command line {}",
                    train_common::cell_name(saved->model.cell), cell_flag));
            require_same(hidden_opt, mc.hidden, saved->model.hidden);
            require_same(layers_opt, mc.layers, saved->model.layers);
            require_same(embed_opt, mc.embed, saved->model.embed);
            mc = saved->model;
            if (!seq_opt->count()) tc.seq = saved->train.seq;
            if (!batch_opt->count()) tc.batch = saved->train.batch;
            if (!lr_opt->count()) tc.lr = saved->train.lr;
            if (!clip_opt->count()) tc.clip = saved->train.clip;
            if (!seed_opt->count()) tc.seed = saved->train.seed;
            if (!shards_opt->count()) tc.shards = saved->train.shards;
        }
        if (root && !resume && save_checkpoints && fs::exists(CheckpointFiles(checkpoint).run))
            fmt::print(
                "note: '{}' holds a checkpoint (step {}); this run will overwrite it (--resume "
                "continues it)\n",
                checkpoint, read_run_info(checkpoint).step);
        Trainer trainer(corpus.vocab, mc, tc);
#ifdef TAPEGRAD_EXAMPLES_MPI
        distributed::check_same_model(trainer.model);      // the same flags on every rank
        distributed::broadcast_parameters(trainer.model);  // rank 0's initial values everywhere
        if (ranks::size() > 1) {  // each rank trains on its rows of the same global batch
            trainer.parallel.rows = ranks::shard;
            trainer.parallel.reduce = [](const std::vector<Variable>& params, double loss,
                                         double share) {
                distributed::average_gradients(params, {.share = share});
                return distributed::all_sum(loss * share);
            };
        }
#endif
        if (saved) ranks::on_all([&] { trainer.load(checkpoint); });  // every rank reads the files

        if (root) {
            fmt::print("{}: {} characters, vocabulary {}, {} for training, {} for validation\n",
                       text_path, corpus.train.size() + corpus.val.size(), corpus.vocab.size(),
                       corpus.train.size(), corpus.val.size());
            fmt::print(
                "{} x {} layer(s), hidden {}, embedding {}: {} parameters. Adam lr {}, clip {}, "
                "batch {} x {} "
                "characters in {} shard(s) on {} thread(s){}, seed {}{}\n",
                train_common::cell_name(mc.cell), mc.layers, mc.hidden, mc.embed,
                trainer.model.parameter_count(), tc.lr, tc.clip, tc.batch, tc.seq, tc.shards,
                num_threads(), threads_pinned() ? " pinned to CPUs" : "", tc.seed,
                anomaly ? ", anomaly mode on" : "");
            if (ranks::size() > 1)
                fmt::print(
                    "Data-parallel on {} processes: each trains on its part of every batch of "
                    "{}.\n",
                    ranks::size(), tc.batch);
            if (saved)
                fmt::print("Resumed from '{}' at step {}.\n", checkpoint, trainer.steps_done());
            std::fflush(stdout);
        }

        AnomalyGuard anomaly_guard(anomaly);
        train_common::Progress progress(log_seconds);
        const auto wall0 = Clock::now();
        double train_seconds = 0;
        std::size_t session_steps = 0;
        auto validate = [&] {
            const auto t = Clock::now();
            double val = 0;
            if (ranks::size() == 1) {
                val = evaluate(trainer.model, corpus.val, tc.seq, 128, eval_windows);
            } else {  // each rank its part of the windows
                const std::size_t windows = char_lm::eval_windows(corpus.val, tc.seq, eval_windows);
                const Shard mine = ranks::shard(windows);
                val = ranks::all_sum(
                          evaluate_sum(trainer.model, corpus.val, tc.seq, mine.begin, mine.end)) /
                      static_cast<double>(windows * tc.seq);
            }
            const double eval_seconds = seconds_since(t);
            const double rate =
                train_seconds > 0 ? static_cast<double>(session_steps) / train_seconds : 0.0;
            if (root)
                progress.print(fmt::format(
                    "step {:>6}  val loss {:.4f} nats ({:.3f} bits/char)  [{} wall, {:.1f} "
                    "steps/s, eval {:.1f} s]",
                    trainer.steps_done(), val, val / std::log(2.0),
                    train_common::format_seconds(seconds_since(wall0)), rate, eval_seconds));
            if (save_checkpoints && trainer.steps_done() > 0)
                ranks::on_root([&] { trainer.save(checkpoint); });
        };
        if (trainer.steps_done() == 0) validate();

        double smoothed = 0;
        try {
            while (static_cast<std::size_t>(trainer.steps_done()) < steps) {
                const auto t = Clock::now();
                const double loss = trainer.step(corpus.train);
                train_seconds += seconds_since(t);
                ++session_steps;
                smoothed = session_steps == 1 ? loss : 0.98 * smoothed + 0.02 * loss;
                const auto step = static_cast<std::size_t>(trainer.steps_done());
                const double rate = static_cast<double>(session_steps) / train_seconds;
                if (root)
                    progress.update(fmt::format(
                        "step {:>6}/{}  loss {:.4f}  {:.2f} steps/s  ETA {}", step, steps, smoothed,
                        rate,
                        train_common::format_seconds(static_cast<double>(steps - step) / rate)));
                if (step % eval_every == 0 || step == steps) validate();
            }
        } catch (const train_common::Diverged& e) {  // found on every rank at the same step
            if (!root) return 3;
            progress.print("");
            fmt::print(
                stderr, "char_lm: training stopped at {}\n{}\n", e.what(),
                train_common::divergence_advice(
                    anomaly, save_checkpoints && fs::exists(CheckpointFiles(checkpoint).run)));
            return 3;
        }
        if (session_steps == 0 && saved)
            validate();  // nothing left to train: where the checkpoint stands
        if (root)
            fmt::print("Trained {} steps in {} ({} total wall).\n", session_steps,
                       train_common::format_seconds(train_seconds),
                       train_common::format_seconds(seconds_since(wall0)));

        if (root && sample_chars > 0) {
            if (prime.empty())
                prime = corpus.vocab.contains("\n") ? "\n" : corpus.vocab.at(corpus.train.front());
            const std::string drawn = sample(trainer.model, corpus.vocab, prime, sample_chars,
                                             temperature, trainer.sample_gen);
            fmt::print("\nSample at temperature {}:\n{}{}\n", temperature, prime, drawn);
        }
    } catch (const Error& e) {
        if (ranks::size() > 1) throw;  // run_guarded: "rank R: ..." and the whole job ends
        fmt::print(stderr, "{}\n", e.what());
        return 1;
    }
    return 0;
}

}  // namespace
