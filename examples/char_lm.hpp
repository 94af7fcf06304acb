// The pieces of examples/char_lm.cpp that the tests use: the vocabulary, batches cut from the
// text, the model (embedding -> RNN/LSTM/GRU -> linear head over the vocabulary), the
// validation loss, sampling, one guarded training step, and checkpoints that resume a run
// exactly (model, optimizer, step counter and random generators).
#pragma once

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "examples/train_common.hpp"

namespace char_lm {

using tapegrad::Generator;
using tapegrad::Variable;
using train_common::CellType;

// The characters of a UTF-8 text, each a string of 1 to 4 bytes; a byte that does not start
// a valid UTF-8 sequence is a character of its own.
inline std::vector<std::string> split_utf8(std::string_view text) {
    std::vector<std::string> chars;
    for (std::size_t i = 0; i < text.size();) {
        const auto lead = static_cast<unsigned char>(text[i]);
        std::size_t n = lead < 0x80           ? 1
                        : (lead >> 5) == 0x6  ? 2
                        : (lead >> 4) == 0xE  ? 3
                        : (lead >> 3) == 0x1E ? 4
                                              : 1;
        if (i + n > text.size()) n = 1;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) n = 1;
        chars.emplace_back(text.substr(i, n));
        i += n;
    }
    return chars;
}

// The distinct characters of a text, sorted (by bytes); a character's id is its position.
class Vocabulary {
public:
    Vocabulary() = default;
    explicit Vocabulary(std::vector<std::string> chars) : chars_(std::move(chars)) {
        std::sort(chars_.begin(), chars_.end());
        chars_.erase(std::unique(chars_.begin(), chars_.end()), chars_.end());
        for (std::size_t i = 0; i < chars_.size(); ++i)
            ids_[chars_[i]] = static_cast<std::int64_t>(i);
    }
    static Vocabulary from_text(std::string_view text) { return Vocabulary(split_utf8(text)); }

    std::size_t size() const { return chars_.size(); }
    const std::vector<std::string>& chars() const { return chars_; }
    const std::string& at(std::int64_t id) const { return chars_.at(static_cast<std::size_t>(id)); }
    bool contains(const std::string& c) const { return ids_.count(c) != 0; }

    std::vector<std::int64_t> encode(std::string_view text) const {
        std::vector<std::int64_t> ids;
        for (const std::string& c : split_utf8(text)) {
            const auto it = ids_.find(c);
            if (it == ids_.end())
                throw tapegrad::ValueError(
                    fmt::format("char_lm: character '{}' is not in the vocabulary", c));
            ids.push_back(it->second);
        }
        return ids;
    }
    std::string decode(const std::vector<std::int64_t>& ids) const {
        std::string text;
        for (const std::int64_t id : ids) text += at(id);
        return text;
    }
    bool operator==(const Vocabulary& other) const { return chars_ == other.chars_; }

private:
    std::vector<std::string> chars_;
    std::map<std::string, std::int64_t> ids_;
};

// The text as ids, split into the first 90% for training and the last 10% for validation.
struct Corpus {
    Vocabulary vocab;
    std::vector<std::int64_t> train, val;
};

inline Corpus make_corpus(std::string_view text, double train_fraction = 0.9) {
    Corpus c;
    c.vocab = Vocabulary::from_text(text);
    std::vector<std::int64_t> ids = c.vocab.encode(text);
    const auto n_train = static_cast<std::size_t>(train_fraction * static_cast<double>(ids.size()));
    c.train.assign(ids.begin(), ids.begin() + static_cast<long>(n_train));
    c.val.assign(ids.begin() + static_cast<long>(n_train), ids.end());
    return c;
}

// `batch` windows of `seq` + 1 characters: inputs are the first seq, targets the last seq (the
// inputs shifted by one). Time-major: entry t * batch + b is step t of window b.
struct Batch {
    std::size_t seq = 0, batch = 0;
    std::vector<std::int64_t> inputs, targets;
};

// Windows starting at the given offsets of `ids`.
inline Batch batch_at(const std::vector<std::int64_t>& ids, const std::vector<std::size_t>& starts,
                      std::size_t seq) {
    Batch out{seq, starts.size(), std::vector<std::int64_t>(seq * starts.size()),
              std::vector<std::int64_t>(seq * starts.size())};
    for (std::size_t b = 0; b < starts.size(); ++b) {
        if (starts[b] + seq + 1 > ids.size())
            throw tapegrad::ValueError(
                fmt::format("char_lm: a window of {} + 1 characters at {} runs past the "
                            "end of the {} characters",
                            seq, starts[b], ids.size()));
        for (std::size_t t = 0; t < seq; ++t) {
            out.inputs[t * out.batch + b] = ids[starts[b] + t];
            out.targets[t * out.batch + b] = ids[starts[b] + t + 1];
        }
    }
    return out;
}

// Windows [begin, end) of a batch, as a batch of their own.
inline Batch windows_of(const Batch& b, std::size_t begin, std::size_t end) {
    const std::size_t n = end - begin;
    Batch out{b.seq, n, std::vector<std::int64_t>(b.seq * n), std::vector<std::int64_t>(b.seq * n)};
    for (std::size_t t = 0; t < b.seq; ++t)
        for (std::size_t w = 0; w < n; ++w) {
            out.inputs[t * n + w] = b.inputs[t * b.batch + begin + w];
            out.targets[t * n + w] = b.targets[t * b.batch + begin + w];
        }
    return out;
}

// Windows at uniformly random offsets, drawn from `gen`.
inline Batch random_batch(const std::vector<std::int64_t>& ids, std::size_t seq, std::size_t batch,
                          Generator& gen) {
    if (ids.size() < seq + 1)
        throw tapegrad::ValueError(
            fmt::format("char_lm: the training text has {} characters, fewer than one "
                        "window of --seq {} + 1",
                        ids.size(), seq));
    std::vector<std::size_t> starts(batch);
    for (auto& s : starts) s = gen.below(ids.size() - seq);
    return batch_at(ids, starts, seq);
}

struct ModelConfig {
    CellType cell = CellType::lstm;
    std::size_t vocab = 0;
    std::size_t embed = 64;
    std::size_t hidden = 128;
    std::size_t layers = 1;
};

// ids -> embedding [T, B, E] -> recurrent layer [T, B, H] -> linear head -> logits [T*B, V].
class CharModel : public tapegrad::Module {
public:
    CharModel(const ModelConfig& config, Generator& gen) : Module("CharModel"), config_(config) {
        embed = register_module(
            "embed", std::make_shared<tapegrad::Embedding>(config.vocab, config.embed, gen));
        rnn =
            register_module("rnn", train_common::make_recurrent(config.cell, config.embed,
                                                                config.hidden, config.layers, gen));
        head = register_module(
            "head", std::make_shared<tapegrad::Linear>(config.hidden, config.vocab, gen));
    }
    struct Output {
        Variable logits;               // [T*B, V], time-major rows
        std::vector<Variable> states;  // the recurrent layer's last states
    };
    // ids: T*B time-major ids; initial: empty (zeros) or the states of a previous call.
    Output forward(const std::vector<std::int64_t>& ids, std::size_t T, std::size_t B,
                   const std::vector<Variable>& initial = {}) {
        auto [out, states] =
            rnn->forward(embed->forward(tapegrad::Tensor::from(ids, {T, B})), initial);
        return {(*head)(tapegrad::reshape(out, tapegrad::Shape{T * B, config_.hidden})),
                std::move(states)};
    }
    const ModelConfig& config() const { return config_; }

    std::shared_ptr<tapegrad::Embedding> embed;
    std::shared_ptr<tapegrad::Recurrent> rnn;
    std::shared_ptr<tapegrad::Linear> head;

private:
    ModelConfig config_;
};

// The number of consecutive windows of `seq` characters (plus the target after each) that
// fit in `ids`, at most `max_windows` (0: no cap).
inline std::size_t eval_windows(const std::vector<std::int64_t>& ids, std::size_t seq,
                                std::size_t max_windows = 0) {
    std::size_t windows = ids.size() > seq ? (ids.size() - 1) / seq : 0;
    if (max_windows) windows = std::min(windows, max_windows);
    if (windows == 0)
        throw tapegrad::ValueError(
            fmt::format("char_lm: the validation text has {} characters, fewer than one "
                        "window of --seq {} + 1",
                        ids.size(), seq));
    return windows;
}

// The summed cross-entropy in nats of windows [begin, end) of those (window w starts at
// w * seq, each from a zero state), `chunk` windows per forward pass.
inline double evaluate_sum(CharModel& model, const std::vector<std::int64_t>& ids, std::size_t seq,
                           std::size_t begin, std::size_t end, std::size_t chunk = 128) {
    tapegrad::NoGradGuard no_grad;
    double total = 0;
    for (std::size_t first = begin; first < end; first += chunk) {
        std::vector<std::size_t> starts;
        for (std::size_t w = first; w < std::min(end, first + chunk); ++w)
            starts.push_back(w * seq);
        const Batch b = batch_at(ids, starts, seq);
        const Variable logits = model.forward(b.inputs, seq, b.batch).logits;
        total += tapegrad::cross_entropy(logits, b.targets, -100, tapegrad::Reduction::sum).item();
    }
    return total;
}

// Mean cross-entropy in nats per character over the consecutive windows of `seq` characters
// that fit in `ids` (each window from a zero state), `chunk` windows per forward pass;
// `max_windows` (0: all) caps the cost.
inline double evaluate(CharModel& model, const std::vector<std::int64_t>& ids, std::size_t seq,
                       std::size_t chunk = 128, std::size_t max_windows = 0) {
    const std::size_t windows = eval_windows(ids, seq, max_windows);
    return evaluate_sum(model, ids, seq, 0, windows, chunk) / static_cast<double>(windows * seq);
}

// Feeds `prime` (at least one character) and then draws `n` characters, each from
// softmax(logits / temperature). Returns the n drawn characters.
inline std::string sample(CharModel& model, const Vocabulary& vocab, std::string_view prime,
                          std::size_t n, double temperature, Generator& gen) {
    if (!(temperature > 0))
        throw tapegrad::ValueError(
            fmt::format("char_lm: temperature must be > 0, got {}", temperature));
    std::vector<std::int64_t> ids = vocab.encode(prime);
    if (ids.empty()) throw tapegrad::ValueError("char_lm: sampling needs a non-empty prime");
    tapegrad::NoGradGuard no_grad;
    auto out = model.forward(ids, ids.size(), 1);  // the whole prime in one pass
    std::vector<std::int64_t> drawn;
    for (std::size_t i = 0; i < n; ++i) {
        const Variable last = tapegrad::narrow(out.logits, 0, -1, 1);  // [1, V]
        const Variable probs = tapegrad::softmax(last * (1.0 / temperature), -1);
        double u = gen.uniform();
        std::int64_t id = static_cast<std::int64_t>(vocab.size()) - 1;
        for (std::size_t c = 0; c < vocab.size(); ++c) {
            u -= probs.value().flat(c);
            if (u < 0) {
                id = static_cast<std::int64_t>(c);
                break;
            }
        }
        drawn.push_back(id);
        out = model.forward({id}, 1, 1, out.states);
    }
    return vocab.decode(drawn);
}

struct TrainConfig {
    std::size_t seq = 128;
    std::size_t batch = 32;
    double lr = 5e-3;
    double clip = 1.0;
    std::uint64_t seed = 1;
    // The batch is cut into this many shards, run in parallel (tapegrad::parallel_backward) on
    // as many threads as tapegrad::set_num_threads allows. Results depend on the shards, never
    // on the thread count.
    std::size_t shards = 2;
};

// The files of a checkpoint folder.
struct CheckpointFiles {
    std::filesystem::path model, optimizer, run;
    explicit CheckpointFiles(const std::filesystem::path& dir)
        : model(dir / "model.safetensors"),
          optimizer(dir / "optimizer.safetensors"),
          run(dir / "run.safetensors") {}
};

// What a checkpoint's run file records besides the tensors: the configuration, the vocabulary
// and where the run stopped.
struct RunInfo {
    ModelConfig model;
    TrainConfig train;
    Vocabulary vocab;
    std::int64_t step = 0;
    Generator::State data_gen{}, sample_gen{};
};

namespace detail {
inline std::string hex(std::string_view bytes) {
    std::string out;
    for (const char c : bytes) out += fmt::format("{:02x}", static_cast<unsigned char>(c));
    return out;
}
inline std::string unhex(const std::string& text) {
    if (text.size() % 2)
        throw tapegrad::IOError("char_lm checkpoint: bad hex text in the run file");
    std::string out;
    for (std::size_t i = 0; i < text.size(); i += 2)
        out += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
    return out;
}
inline std::string generator_text(const Generator::State& s) {
    std::uint64_t spare_bits = 0;
    static_assert(sizeof(double) == sizeof(std::uint64_t));
    std::memcpy(&spare_bits, &s.spare, sizeof spare_bits);
    return fmt::format("{:016x} {:016x} {:016x} {:016x} {} {:016x}", s.s[0], s.s[1], s.s[2], s.s[3],
                       s.has_spare ? 1 : 0, spare_bits);
}
inline Generator::State parse_generator(const std::string& text) {
    Generator::State s{};
    std::uint64_t spare_bits = 0;
    int has_spare = 0;
    if (std::sscanf(text.c_str(), "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %d %" SCNx64,
                    &s.s[0], &s.s[1], &s.s[2], &s.s[3], &has_spare, &spare_bits) != 6)
        throw tapegrad::IOError("char_lm checkpoint: bad generator state '" + text +
                                "' in the run file");
    s.has_spare = has_spare != 0;
    std::memcpy(&s.spare, &spare_bits, sizeof spare_bits);
    return s;
}
}  // namespace detail

inline RunInfo read_run_info(const std::filesystem::path& dir) {
    const CheckpointFiles files(dir);
    const tapegrad::TensorFile f = tapegrad::load_safetensors(files.run.string());
    auto get = [&](const std::string& key) -> const std::string& {
        const auto it = f.metadata.find(key);
        if (it == f.metadata.end())
            throw tapegrad::IOError(
                fmt::format("char_lm checkpoint '{}': no '{}' entry", files.run.string(), key));
        return it->second;
    };
    if (get("format") != "char_lm run 1")
        throw tapegrad::IOError(
            fmt::format("char_lm checkpoint '{}': not a char_lm run file", files.run.string()));
    RunInfo info;
    info.model.cell = train_common::parse_cell(get("cell"));
    info.model.embed = std::stoul(get("embed"));
    info.model.hidden = std::stoul(get("hidden"));
    info.model.layers = std::stoul(get("layers"));
    info.train.seq = std::stoul(get("seq"));
    info.train.batch = std::stoul(get("batch"));
    info.train.lr = tapegrad::detail::parse_double(get("lr"), "lr");
    info.train.clip = tapegrad::detail::parse_double(get("clip"), "clip");
    info.train.seed = std::stoull(get("seed"));
    info.train.shards = std::stoul(get("shards"));
    info.step = std::stoll(get("step"));
    info.data_gen = detail::parse_generator(get("data_gen"));
    info.sample_gen = detail::parse_generator(get("sample_gen"));
    std::vector<std::string> chars;
    std::istringstream words(get("vocab"));
    for (std::string word; words >> word;) chars.push_back(detail::unhex(word));
    info.vocab = Vocabulary(std::move(chars));
    info.model.vocab = info.vocab.size();
    return info;
}

// The model and its Adam optimizer with everything a resumed run needs: the step counter, the
// generator of the training batches and that of the samples.
class Trainer {
public:
    Trainer(const Vocabulary& vocab, const ModelConfig& model_config, const TrainConfig& config)
        : vocab(vocab),
          config(config),
          init_gen(config.seed),
          model(with_vocab(model_config, vocab), init_gen),
          optimizer(tapegrad::Params(model), tapegrad::AdamOptions{.lr = config.lr}),
          data_gen(config.seed * 0x9E3779B97F4A7C15ULL + 1),
          sample_gen(config.seed + 12345) {}

    // Data parallelism across processes (char_lm under mpirun). Every process draws the same
    // global batch and trains on its rows of it; `reduce` then replaces each parameter's
    // gradient with Σ_p share_p · grad_p over the processes (share = its rows / the batch) and
    // returns the global loss Σ_p share_p · loss_p. Unset (one process): the whole batch here.
    struct DataParallel {
        std::function<tapegrad::Shard(std::size_t batch)> rows;  // this process's rows of a batch
        std::function<double(const std::vector<Variable>& params, double loss, double share)>
            reduce;
    };
    DataParallel parallel;

    // One guarded step on `batch`, its shards in parallel; returns the loss before the update
    // (throws Diverged). Under `parallel`, the loss and the gradients are those of the global
    // batch, the same on every process, so every process stops at the same step.
    double step(const Batch& batch) {
        ++step_;
        optimizer.zero_grad();
        const tapegrad::Shard mine =
            parallel.rows ? parallel.rows(batch.batch) : tapegrad::Shard{0, 0, batch.batch};
        const std::size_t shards = std::max<std::size_t>(1, config.shards);
        const std::size_t rows = (mine.size() + shards - 1) / shards;
        double loss = 0;
        if (mine.size() > 0) {
            const Batch local = parallel.rows ? windows_of(batch, mine.begin, mine.end) : Batch{};
            const Batch& here = parallel.rows ? local : batch;
            try {
                loss = tapegrad::parallel_backward(
                    optimizer.parameters(), here.batch,
                    [&](const tapegrad::Shard& shard) {
                        const Batch part = windows_of(here, shard.begin, shard.end);
                        return tapegrad::cross_entropy(
                            model.forward(part.inputs, part.seq, part.batch).logits, part.targets);
                    },
                    {.rows = rows});
            } catch (const tapegrad::AnomalyError& e) {  // under --anomaly
                if (parallel
                        .reduce)  // found on this process only: not a step every process stops at
                    throw tapegrad::Error(fmt::format("step {}: {}", step_, e.what()));
                throw train_common::Diverged(step_, e.what());
            }
        }
        if (parallel.reduce)
            loss = parallel.reduce(
                optimizer.parameters(), loss,
                static_cast<double>(mine.size()) / static_cast<double>(batch.batch));
        train_common::guarded_step(optimizer, model, loss, config.clip, step_);
        return loss;
    }
    // One step on a random batch of the training ids, drawn from data_gen.
    double step(const std::vector<std::int64_t>& train_ids) {
        return step(random_batch(train_ids, config.seq, config.batch, data_gen));
    }

    std::int64_t steps_done() const { return step_; }

    // Writes the checkpoint folder (created if missing): model, optimizer, then the run file,
    // each file atomically.
    void save(const std::filesystem::path& dir) const {
        std::filesystem::create_directories(dir);
        const CheckpointFiles files(dir);
        tapegrad::save(model, files.model.string());
        tapegrad::save(optimizer, files.optimizer.string());
        std::string chars;  // each character's bytes in hex, separated by spaces
        for (const auto& c : vocab.chars()) chars += (chars.empty() ? "" : " ") + detail::hex(c);
        const ModelConfig& m = model.config();
        tapegrad::save_safetensors(files.run.string(), {},
                                   {{"format", "char_lm run 1"},
                                    {"cell", train_common::cell_name(m.cell)},
                                    {"embed", std::to_string(m.embed)},
                                    {"hidden", std::to_string(m.hidden)},
                                    {"layers", std::to_string(m.layers)},
                                    {"seq", std::to_string(config.seq)},
                                    {"batch", std::to_string(config.batch)},
                                    {"lr", tapegrad::detail::format_double(config.lr)},
                                    {"clip", tapegrad::detail::format_double(config.clip)},
                                    {"seed", std::to_string(config.seed)},
                                    {"shards", std::to_string(config.shards)},
                                    {"step", std::to_string(step_)},
                                    {"data_gen", detail::generator_text(data_gen.state())},
                                    {"sample_gen", detail::generator_text(sample_gen.state())},
                                    {"vocab", chars}});
    }

    // Restores a checkpoint written by save() into a trainer built with the same vocabulary
    // and model configuration (IOError naming what differs otherwise). The batch size, length,
    // learning rate, clipping and shards of this trainer are kept, so a resumed run may change
    // them (and then continues differently from the uninterrupted run).
    RunInfo load(const std::filesystem::path& dir) {
        const CheckpointFiles files(dir);
        RunInfo info = read_run_info(dir);
        const ModelConfig& m = model.config();
        auto differs = [&](const char* what, auto saved, auto here) {
            if (saved != here)
                throw tapegrad::IOError(
                    fmt::format("char_lm checkpoint '{}': {} is {} in the checkpoint, {} here",
                                dir.string(), what, saved, here));
        };
        differs("the cell", std::string(train_common::cell_name(info.model.cell)),
                std::string(train_common::cell_name(m.cell)));
        differs("--embed", info.model.embed, m.embed);
        differs("--hidden", info.model.hidden, m.hidden);
        differs("--layers", info.model.layers, m.layers);
        if (!(info.vocab == vocab))
            throw tapegrad::IOError(
                fmt::format("char_lm checkpoint '{}': its vocabulary ({} characters) is not the "
                            "text's ({} characters)",
                            dir.string(), info.vocab.size(), vocab.size()));
        tapegrad::load(model, files.model.string());
        tapegrad::load(optimizer, files.optimizer.string());
        if (optimizer.step_count() != info.step)
            throw tapegrad::IOError(
                fmt::format("char_lm checkpoint '{}': the optimizer file is at step {}, the run "
                            "file at step {}: the files come from different saves",
                            dir.string(), optimizer.step_count(), info.step));
        optimizer.set_lr(config.lr);
        step_ = info.step;
        data_gen.set_state(info.data_gen);
        sample_gen.set_state(info.sample_gen);
        return info;
    }

    Vocabulary vocab;
    TrainConfig config;
    Generator init_gen;  // initialises the model (declared before it)
    CharModel model;
    tapegrad::Adam optimizer;
    Generator data_gen, sample_gen;

private:
    static ModelConfig with_vocab(ModelConfig config, const Vocabulary& vocab) {
        config.vocab = vocab.size();
        return config;
    }
    std::int64_t step_ = 0;
};

}  // namespace char_lm
