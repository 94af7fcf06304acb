// The pieces of examples/compare_cells: the adding-problem generator, one training step of
// the demo's model for each cell, and the Markdown table writer.
#include <doctest/doctest.h>

#include <cmath>

#include <tapegrad/tapegrad.hpp>

#include "examples/adding_problem.hpp"
#include "examples/compare_cells.hpp"

using namespace tapegrad;

TEST_CASE("adding problem: shapes, one marker per half, target = sum of the marked values") {
    for (const std::size_t T : {2, 7, 100}) {
        Generator gen(3);
        const std::size_t B = 500, half = T / 2;
        const AddingBatch batch = adding_batch(T, B, gen);
        REQUIRE(batch.x.shape() == Shape{T, B, 2});
        REQUIRE(batch.y.shape() == Shape{B, 1});
        CHECK(batch.x.dtype() == float32);
        std::size_t bad_values = 0, bad_markers = 0, bad_halves = 0, bad_positions = 0,
                    bad_targets = 0;
        for (std::size_t b = 0; b < B; ++b) {
            std::size_t in_first = 0, in_second = 0;
            double marked = 0;
            for (std::size_t t = 0; t < T; ++t) {
                const double value = batch.x.flat((t * B + b) * 2),
                             marker = batch.x.flat((t * B + b) * 2 + 1);
                bad_values += !(value >= 0.0 && value < 1.0);
                bad_markers += !(marker == 0.0 || marker == 1.0);
                if (marker == 1.0) {
                    (t < half ? in_first : in_second) += 1;
                    marked += value;
                    bad_positions += !(t == batch.first[b] || t == batch.second[b]);
                }
            }
            bad_halves += !(in_first == 1 && in_second == 1);
            bad_targets += std::abs(batch.y.flat(b) - marked) > 1e-6;
        }
        CHECK(bad_values == 0);
        CHECK(bad_markers == 0);
        CHECK(bad_halves == 0);     // exactly one marker in [0, T/2) and one in [T/2, T)
        CHECK(bad_positions == 0);  // where first/second say
        CHECK(bad_targets == 0);    // y = the sum of the two marked values
    }
}

TEST_CASE("adding problem: statistics over many sequences") {
    Generator gen(11);
    const std::size_t T = 20, B = 20000;
    const AddingBatch batch = adding_batch(T, B, gen, float64);
    double mean = 0, mse_of_one = 0;
    std::vector<std::size_t> first_hits(T, 0), second_hits(T, 0);
    for (std::size_t b = 0; b < B; ++b) {
        const double y = batch.y.flat(b);
        mean += y / B;
        mse_of_one += (y - 1.0) * (y - 1.0) / B;
        first_hits[batch.first[b]] += 1;
        second_hits[batch.second[b]] += 1;
    }
    // y = u1 + u2 with u ~ U(0,1): E[y] = 1, Var[y] = 2/12; standard errors 0.0029 and 0.0013
    CHECK(mean == doctest::Approx(1.0).epsilon(0.015));
    CHECK(mse_of_one == doctest::Approx(adding_baseline_mse).epsilon(0.05));
    // markers uniform over their halves: each of the 10 positions gets about 2000 hits
    for (std::size_t t = 0; t < T; ++t) {
        const std::size_t hits = t < T / 2 ? first_hits[t] : second_hits[t];
        CHECK(hits > 1700);
        CHECK(hits < 2300);
        CHECK((t < T / 2 ? second_hits[t] : first_hits[t]) == 0);
    }
}

TEST_CASE("adding problem: seeded, and rejects T < 2") {
    Generator a(5), b(5);
    const AddingBatch x = adding_batch(12, 8, a), y = adding_batch(12, 8, b);
    CHECK(max_abs_diff(x.x, y.x) == 0.0);
    CHECK(max_abs_diff(x.y, y.y) == 0.0);
    CHECK_THROWS_AS(adding_batch(1, 8, a), ValueError);
    CHECK_THROWS_AS(adding_batch(10, 0, a), ValueError);
}

TEST_CASE("compare_cells model: one training step per cell changes every parameter") {
    for (const CellKind kind : {CellKind::rnn, CellKind::lstm, CellKind::gru}) {
        CAPTURE(cell_name(kind));
        const std::size_t entries_before = current_tape().size();  // earlier cases' leftovers
        Generator gen(2), data(9);
        Trainer trainer({.kind = kind, .hidden = 8}, {.lr = 1e-2, .clip = 1.0}, gen);
        const auto named = trainer.model.named_parameters();
        std::vector<Tensor> before;
        for (const auto& [name, p] : named) before.push_back(p.value().clone());
        const AddingBatch batch = adding_batch(6, 4, data);
        const double mse_before = trainer.evaluate(batch);
        const StepResult r = trainer.step(batch);
        CHECK(std::isfinite(r.loss));
        CHECK(r.loss > 0);
        CHECK(r.loss == doctest::Approx(mse_before).epsilon(1e-5));  // loss before the update
        CHECK(std::isfinite(r.grad_norm));
        CHECK(r.grad_norm > 0);
        CHECK(r.fwd_bwd_cpu >= 0);
        for (std::size_t i = 0; i < named.size(); ++i) {
            CAPTURE(named[i].first);
            CHECK(max_abs_diff(before[i], named[i].second.value()) > 0);
        }
        // the evaluation in chunks agrees with one pass over the batch
        CHECK(trainer.evaluate(batch, 3) == doctest::Approx(trainer.evaluate(batch)).epsilon(1e-5));
        CHECK(current_tape().size() == entries_before);  // the step used the trainer's own tape
    }
}

TEST_CASE("compare_cells model: LSTM forget gate starts at bias 1, output [B, 1]") {
    Generator gen(4);
    AddingModel model({.kind = CellKind::lstm, .hidden = 5}, gen);
    auto& cell = dynamic_cast<LSTMCell&>(model.rnn->cell(0));
    for (std::size_t j = 0; j < 5; ++j)  // gates i, f, g, o: f is rows 5..9
        CHECK(cell.bias_ih.value().flat(5 + j) + cell.bias_hh.value().flat(5 + j) ==
              doctest::Approx(1.0));
    Generator data(1);
    CHECK(model.forward(Variable(adding_batch(4, 3, data).x)).shape() == Shape{3, 1});
    CHECK(model.parameter_count() == 4 * 5 * (2 + 5 + 2) + 5 + 1);
}

TEST_CASE("markdown_table: header, separator, padding, alignment, escaping") {
    const std::string table = markdown_table(
        {"", "RNN", "LSTM"},
        {{"Parameters", "4417", "17473"}, {"a|b", "x"}, {"長期依賴", "weak", "strong"}}, {1});
    CHECK(table ==
          "|            |  RNN | LSTM   |\n"
          "| ---------- | ---: | ------ |\n"
          "| Parameters | 4417 | 17473  |\n"
          "| a\\|b       |    x |        |\n"
          "| 長期依賴       | weak | strong |\n");  // padded by code points, not display width
    CHECK(markdown_table({"a"}, {}) == "| a   |\n| --- |\n");
}
