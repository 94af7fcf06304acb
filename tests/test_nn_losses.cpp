// Closed-form values and bad inputs for the neural-network functions and losses.
#include <doctest/doctest.h>

#include <cmath>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {
template <class E>
std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "(no exception of the expected type)";
}
Variable v(std::initializer_list<double> values, Shape shape) {
    return Variable(Tensor::from(values, shape, float64), true);
}
}  // namespace

TEST_CASE("nn: softmax and log_softmax are stable and normalised") {
    // huge logits would overflow a naive exp: softmax([1000, 1001]) = [1/(1+e), e/(1+e)]
    Variable x = v({1000, 1001, -5, -5}, {2, 2});
    Tensor s = softmax(x, 1).value();
    CHECK(s.flat(0) == doctest::Approx(1 / (1 + std::exp(1.0))));
    CHECK(s.flat(1) == doctest::Approx(std::exp(1.0) / (1 + std::exp(1.0))));
    CHECK(s.flat(2) == doctest::Approx(0.5));
    Tensor ls = log_softmax(x, 1).value();
    CHECK(ls.flat(1) == doctest::Approx(-std::log1p(std::exp(-1.0))));
    CHECK(std::isfinite(ls.flat(0)));
    current_tape().clear();
}

TEST_CASE("losses: cross_entropy against the hand formula, with ignore_index") {
    // row 0: logits [1, 2, 3], target 2: loss = log(e + e^2 + e^3) - 3
    Variable logits = v({1, 2, 3, 0, 0, 0, 5, 1, 1}, {3, 3});
    const double l0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3;
    const double l1 = std::log(3.0);  // row 1: uniform, target 0
    Variable mean_loss = cross_entropy(logits, {2, 0, -100});
    CHECK(mean_loss.item() == doctest::Approx((l0 + l1) / 2));  // the ignored row does not count
    CHECK(cross_entropy(logits, {2, 0, -100}, -100, Reduction::sum).item() ==
          doctest::Approx(l0 + l1));
    Tensor none = cross_entropy(logits, {2, 0, -100}, -100, Reduction::none).value();
    CHECK(none.shape() == Shape{3});
    CHECK(none.flat(2) == 0.0);
    // gradient of the mean: (softmax - onehot) / kept rows; the ignored row gets none
    mean_loss.backward();
    CHECK(
        logits.grad().flat(2) ==
        doctest::Approx((std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1) / 2));
    CHECK(logits.grad().flat(6) == 0.0);
}

TEST_CASE("losses: mse and binary cross-entropy with logits") {
    CHECK(mse_loss(v({1, 2}, {2}), v({0, 4}, {2})).item() == doctest::Approx(2.5));
    // bce(x, y) = log(1 + e^x) - x y; stable for large |x|
    Variable x = v({0.0, 50.0, -50.0}, {3}), y = v({1.0, 0.0, 0.0}, {3});
    Tensor per = binary_cross_entropy_with_logits(x, y, Reduction::none).value();
    CHECK(per.flat(0) == doctest::Approx(std::log(2.0)));
    CHECK(per.flat(1) == doctest::Approx(50.0));
    CHECK(per.flat(2) == doctest::Approx(0.0).epsilon(1e-12));
    current_tape().clear();
}

TEST_CASE("nn: layer_norm normalises and dropout keeps the expectation") {
    Tensor y = layer_norm(v({1, 2, 3, 4, 10, 10, 10, 14}, {2, 4}), 1).value();
    double mean0 = 0, var0 = 0;
    for (int i = 0; i < 4; ++i) mean0 += y.flat(i) / 4;
    for (int i = 0; i < 4; ++i) var0 += (y.flat(i) - mean0) * (y.flat(i) - mean0) / 4;
    CHECK(mean0 == doctest::Approx(0.0).epsilon(1e-9));
    CHECK(var0 == doctest::Approx(1.0).epsilon(1e-4));  // biased variance, eps = 1e-5
    Generator g(3);
    Variable ones(Tensor::ones({100000}, float64));
    Tensor d = dropout(ones, 0.3, true, g).value();
    std::size_t zeros = 0;
    double total = 0;
    for (std::size_t i = 0; i < d.numel(); ++i) {
        zeros += d.flat(i) == 0.0;
        total += d.flat(i);
    }
    CHECK(zeros / 100000.0 == doctest::Approx(0.3).epsilon(0.03));
    CHECK(total / 100000.0 == doctest::Approx(1.0).epsilon(0.02));
    CHECK(max_abs_diff(dropout(ones, 0.3, false, g).value(), ones.value()) ==
          0.0);  // eval: identity
    Generator g1(8), g2(8);
    CHECK(max_abs_diff(dropout(ones, 0.5, true, g1).value(),
                       dropout(ones, 0.5, true, g2).value()) == 0.0);
    current_tape().clear();
}

TEST_CASE("nn and losses: bad inputs name the op and what is wrong") {
    Variable logits = v({1, 2, 3, 4, 5, 6}, {2, 3});
    CHECK(error_of<ValueError>([&] {
              cross_entropy(logits, {0, 3});
          }).find("nll_loss: target 3 at position 1 is out of range for 3 classes") == 0);
    CHECK(error_of<ShapeError>([&] {
              cross_entropy(logits, {0});
          }).find("nll_loss: 1 targets for log_probs [2,3]") == 0);
    CHECK(error_of<ValueError>([&] {
              cross_entropy(logits, {-100, -100});
          }).find("ignore_index") != std::string::npos);
    CHECK(error_of<ShapeError>([&] {
              cross_entropy(v({1, 2}, {2}), {0, 1});
          }).find("cross_entropy: logits must be [N, C]") == 0);
    CHECK(error_of<ShapeError>([&] {
              mse_loss(logits, v({1, 2}, {2}));
          }).find("mse_loss: input [2,3] and target [2]") == 0);
    CHECK(error_of<DTypeError>([&] {
              mse_loss(logits, Variable(Tensor::ones({2, 3}, float32)));
          }).find("mse_loss: dtypes differ") == 0);
    CHECK(error_of<ShapeError>([&] {
              softmax(logits, 2);
          }).find("softmax: axis 2 is out of range") == 0);
    CHECK(error_of<ShapeError>([&] {
              layer_norm(logits, 1, v({1, 1}, {2}));
          }).find("layer_norm: weight is [2], expected [3]") == 0);
    CHECK(error_of<ShapeError>([&] {
              layer_norm(logits, 3);
          }).find("layer_norm: cannot normalise over the last 3 axes") == 0);
    Generator g(1);
    CHECK(error_of<ValueError>([&] {
              dropout(logits, 1.5, true, g);
          }).find("dropout: probability must be in [0, 1], got 1.5") == 0);
    CHECK(error_of<ShapeError>([&] {
              binary_cross_entropy_with_logits(logits, v({1}, {1}));
          }).find("binary_cross_entropy_with_logits") == 0);
    current_tape().clear();
}
