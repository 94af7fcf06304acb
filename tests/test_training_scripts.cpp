// The pieces of the training scripts at tiny scale: char_lm's vocabulary, batches, training
// step, validation loss, sampling, checkpoint resume and divergence guard; sine_forecast's
// series, windows, baseline and training step; and the README's copy of train_minimal.
#include <doctest/doctest.h>

#include <barrier>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <thread>

#include <tapegrad/tapegrad.hpp>

#include "tests/test_support.hpp"

#include "examples/char_lm.hpp"
#include "examples/sine_forecast.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;
using train_common::CellType;

namespace {

const char* const kText =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. "
    "resolved.\n\n"
    "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n";

std::vector<Tensor> values(const Module& m) {
    std::vector<Tensor> out;
    for (const auto& p : m.parameters()) out.push_back(p.value().clone());
    return out;
}

// Largest difference between two lists of tensors of the same shapes.
double max_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
    REQUIRE(a.size() == b.size());
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, max_abs_diff(a[i], b[i]));
    return d;
}

std::vector<Tensor> optimizer_buffers(const Optimizer& opt) {
    std::vector<Tensor> out;
    for (const auto& [name, t] : opt.state_dict().tensors) out.push_back(t);
    return out;
}

char_lm::ModelConfig tiny_lm(CellType cell = CellType::lstm) {
    return {.cell = cell, .embed = 6, .hidden = 12, .layers = 1};
}

fs::path temp_dir(const std::string& name) {
    const fs::path dir = tapegrad::test::scratch_dir("tests") / name;  // per process
    fs::remove_all(dir);
    return dir;
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

TEST_CASE("char_lm: vocabulary of UTF-8 characters, round trip, unknown characters rejected") {
    const std::string text = "hello, w\xc3\xb6rld\n";  // ö is one character of two bytes
    const char_lm::Vocabulary vocab = char_lm::Vocabulary::from_text(text);
    CHECK(vocab.size() == 11);  // \n space , d e h l o r w ö
    const auto ids = vocab.encode(text);
    CHECK(ids.size() == 13);  // characters, not bytes (14 bytes)
    CHECK(vocab.decode(ids) == text);
    CHECK(vocab.contains("\xc3\xb6"));
    for (std::size_t i = 1; i < vocab.size(); ++i)
        CHECK(vocab.chars()[i - 1] < vocab.chars()[i]);  // sorted, distinct
    CHECK_THROWS_AS(vocab.encode("x"), ValueError);
    // a byte that starts no valid UTF-8 sequence is a character of its own
    CHECK(char_lm::split_utf8("a\xff\xc3 b") ==
          std::vector<std::string>{"a", "\xff", "\xc3", " ", "b"});
}

TEST_CASE("char_lm: 90/10 split and batches whose targets are the inputs shifted by one") {
    const char_lm::Corpus corpus = char_lm::make_corpus(kText);
    const auto all = corpus.vocab.encode(kText);
    CHECK(corpus.train.size() == static_cast<std::size_t>(0.9 * static_cast<double>(all.size())));
    CHECK(corpus.train.size() + corpus.val.size() == all.size());
    CHECK(std::equal(corpus.val.begin(), corpus.val.end(),
                     all.end() - static_cast<long>(corpus.val.size())));

    // ids equal to their position show exactly which characters each window holds
    std::vector<std::int64_t> positions(500);
    for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<std::int64_t>(i);
    Generator gen(4);
    const std::size_t T = 9, B = 6;
    for (int rep = 0; rep < 20; ++rep) {
        const char_lm::Batch b = char_lm::random_batch(positions, T, B, gen);
        REQUIRE(b.inputs.size() == T * B);
        REQUIRE(b.targets.size() == T * B);
        for (std::size_t w = 0; w < B; ++w) {
            const std::int64_t start = b.inputs[w];
            CHECK(start >= 0);
            CHECK(start + static_cast<std::int64_t>(T) <
                  500);  // the last target is inside the text
            for (std::size_t t = 0; t < T; ++t) {
                CHECK(b.inputs[t * B + w] == start + static_cast<std::int64_t>(t));  // time-major
                CHECK(b.targets[t * B + w] ==
                      start + static_cast<std::int64_t>(t) + 1);  // shifted by one
            }
        }
    }
    // on the real text every id is in the vocabulary
    const char_lm::Batch b = char_lm::random_batch(corpus.train, 16, 8, gen);
    for (const auto id : b.inputs)
        CHECK((id >= 0 && id < static_cast<std::int64_t>(corpus.vocab.size())));
    for (const auto id : b.targets)
        CHECK((id >= 0 && id < static_cast<std::int64_t>(corpus.vocab.size())));
    CHECK_THROWS_AS(char_lm::batch_at(positions, {495}, 5),
                    ValueError);  // needs 6 characters from 495
    CHECK_NOTHROW(char_lm::batch_at(positions, {494}, 5));
    CHECK_THROWS_AS(char_lm::random_batch(positions, 500, 1, gen), ValueError);
}

TEST_CASE("char_lm: training steps on a repeated batch lower the loss; every gradient is finite") {
    const char_lm::Corpus corpus = char_lm::make_corpus(kText);
    const std::size_t recorded = current_tape().size();
    for (const CellType cell : {CellType::rnn, CellType::lstm, CellType::gru}) {
        CAPTURE(train_common::cell_name(cell));
        char_lm::Trainer trainer(corpus.vocab, tiny_lm(cell),
                                 {.seq = 12, .batch = 4, .lr = 1e-2, .clip = 1.0, .seed = 5});
        Generator gen(1);
        const char_lm::Batch batch = char_lm::random_batch(corpus.train, 12, 4, gen);
        const auto before = values(trainer.model);
        const double first = trainer.step(batch);
        CHECK(first ==
              doctest::Approx(std::log(static_cast<double>(corpus.vocab.size()))).epsilon(0.1));
        for (const auto& [name, p] : trainer.model.named_parameters()) {
            CAPTURE(name);
            REQUIRE(p.grad().defined());
            CHECK(all_finite(p.grad()));
        }
        const auto after = values(trainer.model);
        for (std::size_t i = 0; i < before.size(); ++i)
            CHECK(max_abs_diff(before[i], after[i]) > 0);
        double last = first;
        for (int i = 0; i < 15; ++i) last = trainer.step(batch);
        CHECK(last < first - 0.5);
        CHECK(trainer.steps_done() == 16);
        CHECK(trainer.optimizer.step_count() == 16);
        CHECK(current_tape().size() == recorded);  // the steps recorded on the trainer's own tape
    }
}

TEST_CASE("char_lm: validation loss is the mean cross-entropy of the windows; samples are seeded") {
    const char_lm::Corpus corpus = char_lm::make_corpus(kText);
    Generator init(2);
    char_lm::ModelConfig config = tiny_lm(CellType::gru);
    config.vocab = corpus.vocab.size();
    char_lm::CharModel model(config, init);
    NoGradGuard no_grad;
    const std::size_t seq = 5, windows = (corpus.val.size() - 1) / seq;
    REQUIRE(windows >= 3);
    // the same windows in one pass, by hand
    std::vector<std::size_t> starts;
    for (std::size_t w = 0; w < windows; ++w) starts.push_back(w * seq);
    const char_lm::Batch b = char_lm::batch_at(corpus.val, starts, seq);
    const double by_hand =
        cross_entropy(model.forward(b.inputs, seq, b.batch).logits, b.targets).item();
    CHECK(char_lm::evaluate(model, corpus.val, seq) == doctest::Approx(by_hand).epsilon(1e-6));
    CHECK(char_lm::evaluate(model, corpus.val, seq, 2) ==
          doctest::Approx(by_hand).epsilon(1e-6));  // in chunks
    CHECK(char_lm::evaluate(model, corpus.val, seq, 128, 1) !=
          doctest::Approx(by_hand).epsilon(1e-6));  // capped
    CHECK_THROWS_AS(char_lm::evaluate(model, corpus.val, corpus.val.size()), ValueError);

    Generator g1(8), g2(8);
    const std::string s1 = char_lm::sample(model, corpus.vocab, "Fir", 40, 0.9, g1);
    CHECK(char_lm::split_utf8(s1).size() == 40);
    CHECK_NOTHROW(corpus.vocab.encode(s1));
    CHECK(char_lm::sample(model, corpus.vocab, "Fir", 40, 0.9, g2) == s1);
    // a very low temperature is (nearly) greedy: the same text whatever the draws
    Generator g3(1), g4(99);
    CHECK(char_lm::sample(model, corpus.vocab, "F", 20, 1e-3, g3) ==
          char_lm::sample(model, corpus.vocab, "F", 20, 1e-3, g4));
    CHECK_THROWS_AS(char_lm::sample(model, corpus.vocab, "F", 5, 0.0, g1), ValueError);
}

TEST_CASE("char_lm: resuming a checkpoint continues bit for bit as the uninterrupted run") {
    const char_lm::Corpus corpus = char_lm::make_corpus(kText);
    const char_lm::TrainConfig tc{.seq = 10, .batch = 3, .lr = 5e-3, .clip = 0.5, .seed = 3};
    const fs::path dir = temp_dir("char_lm_resume");

    char_lm::Trainer first(corpus.vocab, tiny_lm(), tc);
    for (int i = 0; i < 3; ++i) first.step(corpus.train);
    first.save(dir);
    const auto params_at_save = values(first.model);
    const auto buffers_at_save = optimizer_buffers(first.optimizer);
    std::vector<double> losses;
    for (int i = 0; i < 4; ++i) losses.push_back(first.step(corpus.train));

    // a trainer built with another seed: everything must come from the checkpoint
    char_lm::Trainer resumed(corpus.vocab, tiny_lm(),
                             {.seq = 10, .batch = 3, .lr = 5e-3, .clip = 0.5, .seed = 77});
    CHECK(max_diff(values(resumed.model), params_at_save) > 0);
    const char_lm::RunInfo info = resumed.load(dir);
    CHECK(info.step == 3);
    CHECK(resumed.steps_done() == 3);
    CHECK(resumed.optimizer.step_count() == 3);
    CHECK(info.train.seed == 3);
    CHECK(info.vocab == corpus.vocab);
    CHECK(max_diff(values(resumed.model), params_at_save) == 0.0);
    CHECK(max_diff(optimizer_buffers(resumed.optimizer), buffers_at_save) == 0.0);
    for (int i = 0; i < 4; ++i)
        CHECK(resumed.step(corpus.train) == losses[static_cast<std::size_t>(i)]);  // bitwise
    CHECK(max_diff(values(resumed.model), values(first.model)) == 0.0);
    CHECK(max_diff(optimizer_buffers(resumed.optimizer), optimizer_buffers(first.optimizer)) ==
          0.0);

    // the sample generator is restored too
    char_lm::Trainer again(corpus.vocab, tiny_lm(), tc);
    again.load(dir);
    CHECK(again.sample_gen.state().s[0] == info.sample_gen.s[0]);
    CHECK(again.data_gen.state().s[3] == info.data_gen.s[3]);

    // a checkpoint of another shape is refused, naming what differs
    char_lm::ModelConfig wider = tiny_lm();
    wider.hidden = 13;
    char_lm::Trainer other(corpus.vocab, wider, tc);
    CHECK_THROWS_WITH_AS(other.load(dir),
                         doctest::Contains("--hidden is 12 in the checkpoint, 13 here"), IOError);
    char_lm::Trainer other_vocab(char_lm::Vocabulary::from_text("abc"), tiny_lm(), tc);
    CHECK_THROWS_WITH_AS(other_vocab.load(dir), doctest::Contains("vocabulary"), IOError);
    CHECK_THROWS_AS(char_lm::read_run_info(temp_dir("char_lm_missing")), IOError);
}

TEST_CASE("char_lm: data-parallel steps over 2 processes (threads here) match one process") {
    // What char_lm does under mpirun, with a stand-in for MPI: each "rank" trains on its rows
    // of the same global batch and the reduce hook sums share-weighted gradients and losses.
    const char_lm::Corpus corpus = char_lm::make_corpus(kText);
    const char_lm::TrainConfig tc{
        .seq = 10, .batch = 5, .lr = 1e-2, .clip = 0.5, .seed = 4, .shards = 2};
    char_lm::Trainer single(corpus.vocab, tiny_lm(), tc);
    std::vector<double> losses;
    for (int i = 0; i < 4; ++i) losses.push_back(single.step(corpus.train));

    constexpr int kRanks = 2;
    std::vector<std::unique_ptr<char_lm::Trainer>> ranks;
    for (int r = 0; r < kRanks; ++r)
        ranks.push_back(std::make_unique<char_lm::Trainer>(corpus.vocab, tiny_lm(), tc));
    std::barrier sync(kRanks);
    std::vector<std::vector<Tensor>> grads(kRanks);
    std::vector<double> partial(kRanks);
    std::vector<std::vector<double>> rank_losses(kRanks);
    for (int r = 0; r < kRanks; ++r) {
        ranks[static_cast<std::size_t>(r)]->parallel.rows = [r](std::size_t n) {
            return r == 0 ? Shard{0, 0, n - n / 2} : Shard{1, n - n / 2, n};  // 3 and 2 of 5 rows
        };
        ranks[static_cast<std::size_t>(r)]->parallel.reduce =
            [&, r](const std::vector<Variable>& params, double loss, double share) {
                const auto me = static_cast<std::size_t>(r);
                grads[me].clear();
                for (const auto& p : params) {
                    Tensor g = p.grad().clone();
                    for (std::size_t i = 0; i < g.numel(); ++i) g.set_flat(i, share * g.flat(i));
                    grads[me].push_back(g);
                }
                partial[me] = share * loss;
                sync.arrive_and_wait();
                for (std::size_t k = 0; k < params.size(); ++k) {
                    Tensor sum = grads[0][k].clone();
                    for (std::size_t i = 0; i < sum.numel(); ++i)
                        sum.set_flat(i, grads[0][k].flat(i) + grads[1][k].flat(i));
                    Variable(params[k]).set_grad(sum);
                }
                const double total = partial[0] + partial[1];
                sync.arrive_and_wait();  // everyone has read the others' parts
                return total;
            };
    }
    {
        std::vector<std::jthread> threads;
        for (int r = 0; r < kRanks; ++r)
            threads.emplace_back([&, r] {
                for (int i = 0; i < 4; ++i)
                    rank_losses[static_cast<std::size_t>(r)].push_back(
                        ranks[static_cast<std::size_t>(r)]->step(corpus.train));
            });
    }
    for (int r = 0; r < kRanks; ++r) {
        for (std::size_t i = 0; i < losses.size(); ++i)
            CHECK(rank_losses[static_cast<std::size_t>(r)][i] ==
                  doctest::Approx(losses[i]).epsilon(1e-5));
        CHECK(max_diff(values(ranks[static_cast<std::size_t>(r)]->model), values(single.model)) <
              1e-5);
    }
    CHECK(max_diff(values(ranks[0]->model), values(ranks[1]->model)) == 0.0);
}

TEST_CASE("char_lm: a NaN loss stops training before any update, naming the step") {
    const char_lm::Corpus corpus = char_lm::make_corpus(kText);
    const std::size_t recorded = current_tape().size();
    char_lm::Trainer trainer(corpus.vocab, tiny_lm(),
                             {.seq = 8, .batch = 2, .lr = 1e-2, .clip = 1.0, .seed = 1});
    trainer.step(corpus.train);
    trainer.step(corpus.train);
    trainer.model.head->bias.mutable_value().set_flat(0, std::numeric_limits<double>::quiet_NaN());
    const auto before = values(trainer.model);
    try {
        trainer.step(corpus.train);
        FAIL("expected Diverged");
    } catch (const train_common::Diverged& e) {
        CHECK(e.step() == 3);
        const std::string msg = e.what();
        CAPTURE(msg);
        CHECK(msg.find("step 3: the loss is NaN") != std::string::npos);
    }
    const auto after = values(trainer.model);
    for (std::size_t i = 0; i + 1 < before.size(); ++i)
        CHECK(max_abs_diff(before[i], after[i]) == 0.0);  // no update
    CHECK(trainer.optimizer.step_count() == 2);

    // under anomaly mode the first op to produce the NaN is named, with the step
    AnomalyGuard on;
    try {
        trainer.step(corpus.train);
        FAIL("expected Diverged");
    } catch (const train_common::Diverged& e) {
        CHECK(e.step() == 4);
        const std::string msg = e.what();
        CHECK(msg.find("step 4: ") == 0);
        CHECK(msg.find("add: produced NaN or Inf in its forward result") !=
              std::string::npos);  // + bias
    }
    CHECK(current_tape().size() == recorded);  // nothing recorded on this thread's tape
}

namespace {
struct SqrtModel : Module {
    Variable w;
    SqrtModel() : Module("SqrtModel") {
        w = register_parameter("w", Tensor::from({0.0, 4.0}, {2}, float64));
    }
};
}  // namespace

TEST_CASE(
    "guarded update: an infinite gradient with a finite loss names the parameter and the step") {
    SqrtModel m;
    SGD sgd(Params(m), SGDOptions{.lr = 0.1});
    const Variable loss = sum(sqrt(m.w));  // d sqrt(w)/dw = 1 / (2 sqrt(w)): infinite at w = 0
    CHECK(std::isfinite(loss.item()));
    CHECK_THROWS_WITH_AS(train_common::guarded_update(sgd, m, loss, 1.0, 17),
                         doctest::Contains("step 17: the gradient of w [2] holds NaN or Inf"),
                         train_common::Diverged);
    CHECK(m.w.value().flat(1) == 4.0);  // not updated
    const std::string advice = train_common::divergence_advice(false, true);
    CHECK(advice.find("--anomaly") != std::string::npos);
    CHECK(advice.find("--resume") != std::string::npos);
}

TEST_CASE("sine_forecast: the series is the sum of sines plus Gaussian noise of the given size") {
    sine_forecast::SeriesConfig clean{
        .length = 3000, .periods = {20.0, 50.0}, .amplitudes = {1.0, 0.5}, .noise = 0.0};
    sine_forecast::SeriesConfig noisy = clean;
    noisy.noise = 0.2;
    Generator g1(6), g2(6), g3(7);
    const auto x = sine_forecast::make_series(clean, g1), y = sine_forecast::make_series(noisy, g2);
    REQUIRE(x.size() == 3000);
    REQUIRE(y.size() == 3000);
    double max_abs = 0, period_err = 0, mean = 0, var = 0;
    for (std::size_t t = 0; t < x.size(); ++t) {
        max_abs = std::max(max_abs, std::abs(x[t]));
        if (t + 100 < x.size())
            period_err = std::max(period_err, std::abs(x[t + 100] - x[t]));  // lcm of 20 and 50
        mean += (y[t] - x[t]) / 3000.0;  // the same phases: the difference is the noise
    }
    for (std::size_t t = 0; t < x.size(); ++t)
        var += (y[t] - x[t] - mean) * (y[t] - x[t] - mean) / 3000.0;
    CHECK(max_abs <= 1.5);
    CHECK(max_abs > 1.0);
    CHECK(period_err < 1e-9);
    CHECK(std::abs(mean) < 0.015);  // standard error 0.2 / sqrt(3000) = 0.0037
    CHECK(std::sqrt(var) == doctest::Approx(0.2).epsilon(0.05));
    CHECK(sine_forecast::make_series(clean, g3) != x);  // the phases depend on the seed
    CHECK_THROWS_AS(
        sine_forecast::make_series({.length = 10, .periods = {5.0}, .amplitudes = {}}, g3),
        ValueError);
}

TEST_CASE(
    "sine_forecast: windows hold the past values and the next K; the baseline repeats the last") {
    std::vector<double> series(100);
    for (std::size_t t = 0; t < series.size(); ++t) series[t] = 0.5 * static_cast<double>(t);
    const std::size_t W = 7, K = 3;
    const std::vector<std::size_t> origins{6, 40, 96};  // the first and the last possible origins
    const sine_forecast::Windows w = sine_forecast::make_windows(series, origins, W, K);
    REQUIRE(w.x.shape() == Shape{W, 3, 1});
    REQUIRE(w.y.shape() == Shape{3, K});
    for (std::size_t n = 0; n < 3; ++n) {
        const std::size_t o = origins[n];
        for (std::size_t t = 0; t < W; ++t) CHECK(w.x.flat(t * 3 + n) == series[o + 1 - W + t]);
        CHECK(w.x.flat((W - 1) * 3 + n) == series[o]);  // the window ends at the origin
        for (std::size_t h = 0; h < K; ++h) CHECK(w.y.flat(n * K + h) == series[o + 1 + h]);
    }
    const Tensor naive = sine_forecast::last_value_forecast(w);
    for (std::size_t n = 0; n < 3; ++n)
        for (std::size_t h = 0; h < K; ++h) CHECK(naive.flat(n * K + h) == series[origins[n]]);
    // the series rises 0.5 per step: the naive error at h steps ahead is 0.5 h
    const auto per = sine_forecast::mse_per_horizon(naive, w.y);
    CHECK(per == std::vector<double>{0.25, 1.0, 2.25});
    CHECK(sine_forecast::mse(naive, w.y) == doctest::Approx(3.5 / 3));
    CHECK_THROWS_AS(sine_forecast::make_windows(series, {5}, W, K), ValueError);  // starts before 0
    CHECK_THROWS_AS(sine_forecast::make_windows(series, {97}, W, K),
                    ValueError);  // runs past the end
    Generator gen(1);
    for (const auto o : sine_forecast::random_origins(10, 12, 50, gen)) CHECK((o >= 10 && o <= 12));
}

TEST_CASE("sine_forecast: training steps change every parameter and fit a repeated batch") {
    Generator series_gen(2), init(3), batch_gen(4);
    const auto series = sine_forecast::make_series({.length = 400}, series_gen);
    for (const CellType cell : {CellType::gru, CellType::lstm}) {
        CAPTURE(train_common::cell_name(cell));
        sine_forecast::Trainer trainer({.cell = cell, .hidden = 8, .horizon = 4},
                                       {.lr = 1e-2, .clip = 1.0}, init);
        const auto batch = sine_forecast::make_windows(
            series, sine_forecast::random_origins(15, 300, 16, batch_gen), 16, 4);
        const auto before = values(trainer.model);
        const double mse_before = sine_forecast::mse(trainer.predict(batch), batch.y);
        const double first = trainer.step(batch);
        CHECK(first == doctest::Approx(mse_before).epsilon(1e-5));  // the loss before the update
        const auto after = values(trainer.model);
        for (std::size_t i = 0; i < before.size(); ++i)
            CHECK(max_abs_diff(before[i], after[i]) > 0);
        double last = first;
        for (int i = 0; i < 40; ++i) last = trainer.step(batch);
        CHECK(last < 0.5 * first);
        const Tensor p = trainer.predict(batch);
        CHECK(p.shape() == Shape{16, 4});
        CHECK(max_abs_diff(trainer.predict(batch, 5), p) < 1e-6);  // in chunks
        CHECK(trainer.steps_done() == 41);
    }
}

TEST_CASE("train_minimal: README.md holds examples/train_minimal.cpp verbatim in a cpp block") {
    const fs::path root(TAPEGRAD_SOURCE_DIR);
    const std::string readme = read_file(root / "README.md"),
                      script = read_file(root / "examples" / "train_minimal.cpp");
    REQUIRE(!script.empty());
    CHECK(script.size() < 1500);  // "about 20 lines"
    CHECK(readme.find("```cpp\n" + script + "```\n") != std::string::npos);
}
