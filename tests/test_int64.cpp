// int64 tensors (ids, labels, lengths, indices): made from integers, converted, refused where
// values are computed, taken by Embedding, the losses, accuracy, gather and index_select; and
// the arithmetic on tensors outside the tape.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::has;
using tapegrad::test::message_of;

namespace {
using Ints = std::vector<std::int64_t>;

}  // namespace

TEST_CASE("int64 tensors: made from integers, read back exactly, converted with checks") {
    const std::int64_t big = (std::int64_t{1} << 53) + 1;  // no float64 holds it
    const Tensor t = Tensor::from(Ints{3, -1, big, 0}, {2, 2});
    CHECK(t.dtype() == int64);
    CHECK(name(t.dtype()) == "int64");
    CHECK(t.nbytes() == 32);
    CHECK(t.shape() == Shape{2, 2});
    CHECK(t.values<std::int64_t>() == Ints{3, -1, big, 0});
    CHECK(t.flat(1) == -1.0);
    CHECK(t.clone().values<std::int64_t>() == Ints{3, -1, big, 0});
    CHECK(all_finite(t));
    CHECK(Tensor::zeros({3}, int64).values<std::int64_t>() == Ints{0, 0, 0});
    CHECK(Tensor::full({2}, 7, int64).values<std::int64_t>() == Ints{7, 7});
    CHECK(has(t.str(), "int64"));

    Tensor u = t;  // copy-on-write: t keeps its value
    u.set_flat(0, 9);
    CHECK(u.flat(0) == 9.0);
    CHECK(t.flat(0) == 3.0);

    // Conversions: to float exactly where it can be, to int64 truncating toward zero.
    CHECK(Tensor::from(Ints{1, -2}, {2}).to(float32).to_vector() == std::vector<double>{1, -2});
    CHECK(Tensor::from({1.9, -1.9, -0.5}, {3}, float64).to(int64).values<std::int64_t>() ==
          Ints{1, -1, 0});
    for (const double bad : {std::nan(""), HUGE_VAL, 1e19}) {
        CAPTURE(bad);
        const std::string m = message_of<ValueError>([&] {
            (void)Tensor::from({0.0, bad}, {2}, float64).to(int64);
        });
        CHECK(has(m, "Tensor::to(int64): element 1 of [2] float64"));
    }
    CHECK(Tensor::from({-9223372036854775808.0}, {1}, float64).to(int64).values<std::int64_t>() ==
          Ints{std::numeric_limits<std::int64_t>::min()});
}

TEST_CASE("Tensor::from takes float data without a detour through double; arange") {
    const std::vector<float> data{0.1f, 0.2f, 0.3f};
    const Tensor f = Tensor::from(data, {3});
    CHECK(f.dtype() == float32);
    CHECK(f.xt<float>()(1) == 0.2f);  // bit for bit the float given
    CHECK(Tensor::from(std::span<const float>(data), {3}, float64).xt<double>()(2) ==
          static_cast<double>(0.3f));
    CHECK(has(message_of<ShapeError>([&] {
                  (void)Tensor::from(data, {2, 2});
              }),
              "3 values do not fill shape [2,2]"));
    CHECK(message_of<DTypeError>([&] { (void)Tensor::from(data, {3}, int64); }) ==
          "Tensor::from: int64 tensors are made from std::int64_t values");

    CHECK(Tensor::arange(4).values<std::int64_t>() == Ints{0, 1, 2, 3});
    CHECK(Tensor::arange(4).dtype() == int64);
    CHECK(Tensor::arange(2, 9, 3).values<std::int64_t>() == Ints{2, 5, 8});
    CHECK(Tensor::arange(5, 0, -2).values<std::int64_t>() == Ints{5, 3, 1});
    CHECK(Tensor::arange(3, 3).numel() == 0);
    CHECK(Tensor::arange(3, 0).numel() == 0);
    CHECK(Tensor::arange(0, 3, 1, float32).to_vector() == std::vector<double>{0, 1, 2});
    CHECK(message_of<ValueError>([] { (void)Tensor::arange(0, 3, 0); }) ==
          "Tensor::arange: step must not be 0");
}

TEST_CASE("int64 tensors hold no values to differentiate: Variable and float code refuse them") {
    const Tensor ids = Tensor::from(Ints{1, 2}, {2});
    const std::string m = message_of<DTypeError>([&] { Variable v(ids, true); });
    CHECK(has(m, "Variable: an int64 tensor [2] holds ids, labels or lengths"));
    CHECK(has(m, ".to(float32)"));
    CHECK(has(message_of<DTypeError>([&] { (void)norm_of(ids); }),
              "works in float32 or float64, and got an int64 tensor"));
    CHECK(has(message_of<DTypeError>([&] { (void)(ids + ids); }), "Tensor +: [2] int64"));
}

TEST_CASE("Embedding takes a [T, B] batch of int64 ids and returns [T, B, dim]") {
    Generator gen(1);
    Embedding emb(5, 3, gen, float64);
    const Tensor ids = Tensor::from(Ints{4, 0, 2, 4, 1, 3}, {3, 2});  // T = 3, B = 2
    const Variable out = emb.forward(ids);
    CHECK(out.shape() == Shape{3, 2, 3});
    const Tensor& w = emb.weight.value();
    for (std::size_t i = 0; i < 6; ++i)
        for (std::size_t d = 0; d < 3; ++d)
            CHECK(out.value().flat(i * 3 + d) ==
                  w.flat(static_cast<std::size_t>(ids.flat(i)) * 3 + d));
    // Gradients reach the rows used, repeats adding up (id 4 twice).
    sum(out).backward();
    const Tensor g = emb.weight.grad();
    for (std::size_t d = 0; d < 3; ++d) {
        CHECK(g.flat(4 * 3 + d) == 2.0);
        CHECK(g.flat(0 * 3 + d) == 1.0);
    }
    CHECK(has(message_of<DTypeError>([&] { (void)emb.forward(Tensor::from({1.0}, {1}, float32)); }),
              "Embedding: ids must be an int64 tensor, got [1] float32"));
    CHECK(has(message_of<ValueError>([&] {
                  (void)emb.forward(Tensor::from(Ints{0, 5}, {2}));
              }),
              "5"));
}

TEST_CASE("cross_entropy, nll_loss, accuracy, gather and index_select take int64 tensors") {
    Generator gen(2);
    const Variable logits(gen.normal({4, 3}, 0, 1, float64), true);
    const Ints labels{2, 0, 1, 2};
    const Tensor targets = Tensor::from(labels, {4});
    CHECK(cross_entropy(logits, targets).value().item() ==
          cross_entropy(logits, labels).value().item());
    CHECK(cross_entropy(logits, targets, 0).value().item() ==
          cross_entropy(logits, labels, 0).value().item());  // ignore_index
    const Variable lp = log_softmax(logits, 1);
    CHECK(nll_loss(lp, targets, -100, Reduction::sum).value().item() ==
          nll_loss(lp, labels, -100, Reduction::sum).value().item());
    CHECK(accuracy(logits, targets).value().item() == accuracy(logits, labels).value().item());

    const Variable picked = gather(logits, 1, Tensor::from(Ints{2, 0, 1, 2}, {4, 1}));
    CHECK(picked.shape() == Shape{4, 1});
    for (std::size_t i = 0; i < 4; ++i)
        CHECK(picked.value().flat(i) ==
              logits.value().flat(i * 3 + static_cast<std::size_t>(labels[i])));
    const Variable rows = index_select(logits, 0, Tensor::from(Ints{3, 3}, {2}));
    CHECK(rows.value().flat(4) == logits.value().flat(10));

    // Errors name the op, the argument and what is wrong.
    CHECK(has(message_of<DTypeError>([&] {
                  (void)cross_entropy(logits, Tensor::from({2.0, 0, 1, 2}, {4}, float64));
              }),
              "cross_entropy: targets must be an int64 tensor, got [4] float64"));
    CHECK(has(message_of<ShapeError>([&] {
                  (void)cross_entropy(logits, Tensor::from(labels, {4, 1}));
              }),
              "cross_entropy: targets must have 1 dimension, got [4,1]"));
    CHECK(has(message_of<ShapeError>([&] {
                  (void)accuracy(logits, Tensor::from(labels, {2, 2}));
              }),
              "accuracy: labels [2,2] for logits [4,3]: one label per row, shape [4]"));
    CHECK(has(message_of<ValueError>([&] {
                  (void)cross_entropy(logits, Tensor::from(Ints{2, 0, 3, 2}, {4}));
              }),
              "3"));
    CHECK(has(
        message_of<DTypeError>([&] { (void)gather(logits, 1, Tensor::arange(0, 4, 1, float64)); }),
        "gather: index must be an int64 tensor"));
}

TEST_CASE("safetensors: int64 tensors save as I64 and load back exactly") {
    const auto dir = tapegrad::test::scratch_dir("int64");
    const std::string path = (dir / "ids.safetensors").string();
    const Ints values{std::numeric_limits<std::int64_t>::min(), -1, (std::int64_t{1} << 53) + 1,
                      std::numeric_limits<std::int64_t>::max()};
    save_safetensors(path, {{"ids", Tensor::from(values, {2, 2})}});
    const TensorFile f = load_safetensors(path);
    CHECK(f.dtype("ids") == "I64");
    REQUIRE(f.find("ids") != nullptr);
    CHECK(f.find("ids")->dtype() == int64);
    CHECK(f.find("ids")->shape() == Shape{2, 2});
    CHECK(f.find("ids")->values<std::int64_t>() == values);
    std::filesystem::remove_all(dir);
}

// ---- arithmetic outside the tape

TEST_CASE("tensor arithmetic: + - * / with broadcasting and scalars, in both float dtypes") {
    for (const DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        const Tensor a = Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
        const Tensor row = Tensor::from({10, 20, 30}, {3}, dt);
        const Tensor col = Tensor::from({2, 4}, {2, 1}, dt);
        CHECK((a + row).to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
        CHECK((a - row).to_vector() == std::vector<double>{-9, -18, -27, -6, -15, -24});
        CHECK((a * col).to_vector() == std::vector<double>{2, 4, 6, 16, 20, 24});
        CHECK((a / col).to_vector() == std::vector<double>{0.5, 1, 1.5, 1, 1.25, 1.5});
        CHECK((a * 2.0).to_vector() == std::vector<double>{2, 4, 6, 8, 10, 12});
        CHECK((1.0 - a).to_vector() == std::vector<double>{0, -1, -2, -3, -4, -5});
        const double fifth = dt == float32 ? static_cast<double>(12.0f / 5.0f) : 12.0 / 5.0;
        CHECK((12.0 / a).to_vector() == std::vector<double>{12, 6, 4, 3, fifth, 2});
        CHECK((a + 0.5).dtype() == dt);
        CHECK((-a).to_vector() == std::vector<double>{-1, -2, -3, -4, -5, -6});
        CHECK((col + row).shape() == Shape{2, 3});  // both sides broadcast
    }
    const Tensor a = Tensor::ones({2, 3}, float32);
    CHECK(has(message_of<ShapeError>([&] { (void)(a + Tensor::ones({2}, float32)); }),
              "Tensor +: shapes [2,3] and [2] do not broadcast"));
    CHECK(has(message_of<DTypeError>([&] { (void)(a * Tensor::ones({3}, float64)); }),
              "Tensor *: [2,3] float32 and [3] float64"));
    CHECK(has(message_of<ValueError>([&] { (void)(a - Tensor()); }), "Tensor -: an operand"));
}

TEST_CASE("tensor arithmetic in place: add_ sub_ mul_ div_ fill_ copy_, copy-on-write") {
    Tensor p = Tensor::from({1, 2, 3, 4}, {2, 2}, float64);
    const Tensor saved = p;  // shares p's storage, as a tensor saved for backward would
    const Tensor d = Tensor::from({1, -1}, {2}, float64);
    p.add_(d, 0.5).mul_(2.0);  // p = 2 (p + 0.5 d), the row broadcast down
    CHECK(p.to_vector() == std::vector<double>{3, 3, 7, 7});
    CHECK(saved.to_vector() == std::vector<double>{1, 2, 3, 4});  // untouched
    p.sub_(Tensor::ones({2, 2}, float64)).div_(Tensor::from({2, 1}, {2, 1}, float64));
    CHECK(p.to_vector() == std::vector<double>{1, 1, 6, 6});
    p.add_(-1.0);
    CHECK(p.to_vector() == std::vector<double>{0, 0, 5, 5});
    p.mul_(Tensor::from({3, 4, 5, 6}, {2, 2}, float64));
    CHECK(p.to_vector() == std::vector<double>{0, 0, 25, 30});
    p.fill_(0.25);
    CHECK(p.to_vector() == std::vector<double>{0.25, 0.25, 0.25, 0.25});
    p.copy_(Tensor::from({7, 8}, {2}, float32));  // broadcast and converted
    CHECK(p.to_vector() == std::vector<double>{7, 8, 7, 8});
    CHECK(p.dtype() == float64);
    Tensor ids = Tensor::zeros({2}, int64);
    ids.copy_(Tensor::from({2.7, -1.2}, {2}, float64));
    CHECK(ids.values<std::int64_t>() == Ints{2, -1});

    // Moving a parameter along a direction, as a finite-difference check does.
    Variable w(Tensor::from({1, 2}, {2}, float64), true);
    w.mutable_value().add_(Tensor::from({1, 1}, {2}, float64), 1e-3);
    CHECK(w.value().to_vector() == std::vector<double>{1.001, 2.001});

    CHECK(has(message_of<ShapeError>([&] { p.add_(Tensor::ones({3}, float64)); }),
              "Tensor::add_: shapes [2,2] and [3] do not broadcast"));
    CHECK(has(message_of<ShapeError>([&] {
                  p.mul_(Tensor::ones({2, 2, 2}, float64));
              }),
              "Tensor::mul_: [2,2,2] does not broadcast to [2,2] in place"));
    CHECK(has(message_of<ShapeError>([&] { p.copy_(Tensor::ones({3}, float64)); }),
              "Tensor::copy_: [3] does not broadcast to [2,2]"));
    CHECK(has(message_of<DTypeError>([&] { ids.add_(ids); }),
              "Tensor::add_: [2] int64 and [2] int64"));
}

TEST_CASE("GradcheckReport: the overall worst element across inputs") {
    // input 1's gradient is wrong by a factor: it must be the worst whatever the order.
    const GradcheckFn f = [](const std::vector<Variable>& x) {
        return sum(x[0] * x[0]) + sum(x[1] * 3.0);
    };
    const auto good = gradcheck(
        f, {Tensor::from({0.5, -1}, {2}, float64), Tensor::from({2, 3, 4}, {3}, float64)});
    REQUIRE(good.ok());
    REQUIRE(good.worst() != nullptr);
    CHECK(good.max_abs_error() < 1e-6);

    const GradcheckFn wrong = [](const std::vector<Variable>& x) {
        // x1's custom gradient is doubled by a hook: analytic 6, numeric 3
        Variable y = x[1] * 1.0;
        if (y.requires_grad()) y.register_hook([](const Variable& g) { return g * 2.0; });
        return sum(x[0] * x[0]) + sum(y * 3.0);
    };
    const auto bad = gradcheck(
        wrong, {Tensor::from({0.5, -1}, {2}, float64), Tensor::from({2, 3, 4}, {3}, float64)});
    CHECK_FALSE(bad.ok());
    REQUIRE(bad.worst() != nullptr);
    CHECK(bad.worst()->input == 1);
    CHECK(bad.worst()->analytic == doctest::Approx(6.0));
    CHECK(bad.max_abs_error() == doctest::Approx(3.0).epsilon(1e-6));
    CHECK(bad.max_abs_error() == bad.worst()->max_abs_error);
    CHECK(has(bad.str(), "worst: input 1 at"));
}

TEST_CASE("load_state_dict: an int64 tensor is no parameter's value") {
    Generator gen(3);
    Linear fc(2, 1, gen, float32);
    const Tensor bias = fc.bias.value().clone();
    const auto report = fc.load_state_dict(
        {{"weight", fc.weight.value()}, {"bias", Tensor::from(Ints{1}, {1})}}, false);
    CHECK(
        report.mismatched ==
        std::vector<std::string>{"bias: an int64 tensor in the source, a float32 parameter here"});
    CHECK(max_abs_diff(fc.bias.value(), bias) == 0.0);
}

TEST_CASE("Recurrent::forward takes lengths as an int64 tensor, as the vector form") {
    Generator gen(4);
    GRU gru(2, 3, {.bidirectional = true, .dtype = float64}, gen);
    const Variable x(gen.normal({5, 3, 2}, 0, 1, float64));
    const auto a = gru.forward(x, {}, std::vector<std::size_t>{5, 2, 4});
    const auto b = gru.forward(x, {}, Tensor::from(Ints{5, 2, 4}, {3}));
    CHECK(max_abs_diff(a.output.value(), b.output.value()) == 0.0);
    CHECK(max_abs_diff(a.states[0].value(), b.states[0].value()) == 0.0);
    CHECK(has(message_of<ValueError>([&] {
                  (void)gru.forward(x, {}, Tensor::from(Ints{5, -1, 4}, {3}));
              }),
              "GRU.forward: length -1 of sequence 1 is below 1"));
    CHECK(has(message_of<ValueError>([&] {
                  (void)gru.forward(x, {}, Tensor::from(Ints{5, 6, 4}, {3}));
              }),
              "length 6 of sequence 1 is outside [1, 5]"));
    CHECK(has(message_of<DTypeError>([&] {
                  (void)gru.forward(x, {}, Tensor::from({5.0, 2, 4}, {3}, float64));
              }),
              "GRU.forward: lengths must be a 1-d int64 tensor, got [3] float64"));
}
