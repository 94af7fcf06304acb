// The driver with cells that run whole sequences (Cell::sequence): the same cell run step by
// step and as one scan per layer and direction agrees to 1e-12, with layers, bidirectional,
// unsorted lengths, initial states and every gradient; and a sequence() that returns the wrong
// shapes is reported.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::has;
using tapegrad::test::message_of;

namespace {

// h_t = a_t ⊙ h_{t-1} + (1 - a_t) ⊙ u_t with a_t = σ(k_t): a gated leaky average, linear in h.
class LeakyCell : public Cell {
public:
    LeakyCell(std::size_t in, std::size_t hidden, Generator& g, bool whole)
        : Cell("LeakyCell"), in_(in), hidden_(hidden), whole_(whole) {
        const double k = 1.0 / std::sqrt(static_cast<double>(hidden));
        weight_ih = register_parameter("weight_ih", g.uniform({2 * hidden, in}, -k, k, float64));
        bias_ih = register_parameter("bias_ih", g.uniform({2 * hidden}, -k, k, float64));
    }
    std::size_t input_size() const override { return in_; }
    std::size_t hidden_size() const override { return hidden_; }
    bool projects_input() const override { return true; }
    Variable project_input(const Variable& x) override { return linear(x, weight_ih, bias_ih); }
    State step(const Variable& p, const State& s) override {
        const auto ku = chunk(p, 2, 1);
        const Variable a = sigmoid(ku[0]);
        return {a * s[0] + (1.0 - a) * ku[1]};
    }
    bool runs_sequences() const override { return whole_; }
    SequenceResult sequence(const Variable& p, const State& s, const Steps& steps) override {
        const auto ku = chunk(p, 2, 2);
        const Variable a = sigmoid(ku[0]);
        const Variable h = scan(a, (1.0 - a) * ku[1], s[0], steps);
        return {h, {last_state(h, steps)}};
    }
    Variable weight_ih, bias_ih;

private:
    std::size_t in_, hidden_;
    bool whole_;
};

Recurrent leaky(bool whole, RecurrentOptions options) {
    Generator g(21);
    return Recurrent(
        "Leaky",
        [whole](std::size_t in, Generator& gen) {
            return std::make_shared<LeakyCell>(in, 3, gen, whole);
        },
        2, options, g);
}

}  // namespace

TEST_CASE("sequence cells: one scan per layer and direction equals T steps, gradients too") {
    for (const bool ragged : {false, true}) {
        CAPTURE(ragged);
        const RecurrentOptions options{.num_layers = 2, .bidirectional = true};
        Recurrent steps = leaky(false, options), scans = leaky(true, options);
        Generator g(5);
        const Tensor x = g.normal({5, 3, 2}, 0, 1, float64);
        const Tensor h0 = g.normal({4, 3, 3}, 0, 1, float64);
        const Tensor w = g.normal({5, 3, 6}, 0, 1, float64);
        const std::vector<std::size_t> lengths =
            ragged ? std::vector<std::size_t>{5, 2, 4} : std::vector<std::size_t>{};
        auto run = [&](Recurrent& layer) {
            const Variable xv(x, true), hv(h0, true);
            const RecurrentOutput out = layer.forward(xv, {hv}, lengths);
            const Variable loss =
                sum(out.output * Variable(w)) + sum(out.states[0] * out.states[0]);
            std::vector<Variable> wrt{xv, hv};
            for (const auto& p : layer.parameters()) wrt.push_back(p);
            std::vector<Tensor> all{out.output.value(), out.states[0].value()};
            for (const auto& gr : grad(loss, wrt)) all.push_back(gr.value());
            return all;
        };
        const auto a = run(steps), b = run(scans);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            CAPTURE(i);
            CHECK(max_abs_diff(a[i], b[i]) < 1e-12);
        }
        if (ragged)  // padded outputs are zero: sequence 1 ends at step 1
            for (std::size_t j = 0; j < 6; ++j) CHECK(a[0].flat((3 * 3 + 1) * 6 + j) == 0.0);
    }
}

TEST_CASE("sequence cells: gradcheck through the driver, batch_first and dropout") {
    Recurrent layer = leaky(true, {.num_layers = 2, .bidirectional = true, .batch_first = true});
    Generator g(8);
    const auto report = gradcheck(
        layer,
        [&](const std::vector<Variable>& v) {
            return sum(tanh(layer.forward(v[0], {}, std::vector<std::size_t>{3, 1}).output));
        },
        {g.normal({2, 3, 2}, 0, 1, float64)});
    CHECK_MESSAGE(report.ok(), report.str());
    Recurrent dropped = leaky(true, {.num_layers = 2, .dropout = 0.5});
    const Variable out = dropped.forward(Variable(g.normal({4, 2, 2}, 0, 1, float64))).output;
    CHECK(out.shape() == Shape{4, 2, 3});
}

namespace {
class BadCell : public LeakyCell {
public:
    using LeakyCell::LeakyCell;
    SequenceResult sequence(const Variable& p, const State& s, const Steps& steps) override {
        SequenceResult r = LeakyCell::sequence(p, s, steps);
        return {narrow(r.outputs, 0, 0, 1), r.state};
    }
};
}  // namespace

TEST_CASE("sequence cells: a sequence() with the wrong shapes is reported") {
    Generator g(1);
    Recurrent layer(
        "Bad",
        [](std::size_t in, Generator& gen) { return std::make_shared<BadCell>(in, 3, gen, true); },
        2, {}, g);
    CHECK(has(message_of<ShapeError>([&] {
                  (void)layer.forward(Variable(Tensor::zeros({4, 2, 2}, float64)));
              }),
              "Bad.forward: LeakyCell::sequence must return outputs [4,2,3], got [1,2,3]"));
    LeakyCell plain(2, 3, g, false);
    CHECK(has(message_of<ValueError>([&] {
                  (void)plain.Cell::sequence(Variable(Tensor::zeros({1, 1, 6}, float64)), {}, {});
              }),
              "LeakyCell: sequence(): this cell runs step by step only"));
}
