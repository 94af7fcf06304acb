// gradcheck itself: it passes right gradients, catches wrong ones and reports them.
#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>
#include <tapegrad/train/gradcheck_doctest.hpp>

using namespace tapegrad;

namespace {
// mul with a planted bug: the gradient for the second input is doubled.
Variable buggy_mul(const Variable& a, const Variable& b) {
    Tensor out = Tensor(xt::xarray<double>(a.value().xt<double>() * b.value().xt<double>()));
    return record("buggy_mul", out, {a, b}, [](Backward& bw) {
        bw.add(0, bw.grad_out() * bw.input(1));
        bw.add(1, bw.grad_out() * bw.input(0) * 2.0);  // wrong on purpose
    });
}
}  // namespace

TEST_CASE("gradcheck: a planted wrong backward rule fails and is named") {
    auto f = [](const std::vector<Variable>& x) { return sum(buggy_mul(x[0], x[1])); };
    Generator gen(3);
    auto report = gradcheck(
        f, {gen.uniform({2, 3}, 0.5, 1.5, float64), gen.uniform({2, 3}, 0.5, 1.5, float64)});
    CHECK_FALSE(report.ok());
    REQUIRE(report.inputs.size() == 2);
    CHECK(report.inputs[0].ok);
    CHECK_FALSE(report.inputs[1].ok);
    CHECK(report.inputs[1].analytic == doctest::Approx(2 * report.inputs[1].numeric));
    const std::string text = report.str();
    CHECK(text.find("FAILED") != std::string::npos);
    CHECK(text.find("input 1 [2,3]: WRONG") != std::string::npos);
    CHECK(fmt::format("{}", report) == text);
}

TEST_CASE("gradcheck: the full Jacobian of a small non-scalar output") {
    auto f = [](const std::vector<Variable>& x) { return tanh(x[0]) * x[1]; };
    Generator gen(4);
    auto report =
        gradcheck(f, {gen.uniform({3}, -1, 1, float64), gen.uniform({3}, -1, 1, float64)});
    CHECK(report.ok());
    CHECK(report.mode.find("full Jacobian (3 outputs)") == 0);
    // the same function with the planted bug fails through the Jacobian too
    auto bad = [](const std::vector<Variable>& x) { return buggy_mul(x[0], x[1]); };
    CHECK_FALSE(
        gradcheck(bad, {gen.uniform({3}, 0.5, 1, float64), gen.uniform({3}, 0.5, 1, float64)})
            .ok());
}

TEST_CASE("gradcheck: random projections for a large output") {
    auto f = [](const std::vector<Variable>& x) { return matmul(x[0], x[1]); };
    Generator gen(5);
    auto report =
        gradcheck(f, {gen.normal({10, 4}, 0, 1, float64), gen.normal({4, 10}, 0, 1, float64)});
    CHECK(report.ok());
    CHECK(report.mode.find("random projections of 100 outputs") != std::string::npos);
    auto bad = [](const std::vector<Variable>& x) { return buggy_mul(x[0], x[1]); };
    auto r = gradcheck(
        bad, {gen.uniform({10, 10}, 0.5, 1, float64), gen.uniform({10, 10}, 0.5, 1, float64)});
    CHECK_FALSE(r.ok());
    CHECK(r.inputs[0].ok);
    CHECK_FALSE(r.inputs[1].ok);
}

TEST_CASE("gradcheck: float32 inputs are checked on a float64 copy") {
    auto f = [](const std::vector<Variable>& x) { return sum(sigmoid(x[0]) * x[0]); };
    Generator gen(6);
    auto report = gradcheck(f, {gen.normal({2, 2}, 0, 1, float32)});
    CHECK(report.ok());
    CHECK(report.inputs[0].max_abs_error < 1e-8);
}

TEST_CASE("gradcheck: inputs that do not require grad are passed through unchecked") {
    auto f = [](const std::vector<Variable>& x) { return sum(x[0] * x[1]); };
    Variable a(Tensor::from({1, 2}, {2}, float64), true), c(Tensor::from({3, 4}, {2}, float64));
    auto report = gradcheck(f, std::vector<Variable>{a, c});
    CHECK(report.ok());
    CHECK(report.inputs[0].checked);
    CHECK_FALSE(report.inputs[1].checked);
}

TEST_CASE("gradcheck: options are settable and the doctest helper reads like one line") {
    auto f = [](const std::vector<Variable>& x) { return sum(exp(x[0])); };
    const auto in = std::vector<Tensor>{Tensor::from({0.1, -0.3}, {2}, float64)};
    CHECK_GRADCHECK(f, in);
    CHECK_GRADCHECK(f, in, GradcheckOptions{.eps = 1e-5, .atol = 1e-6, .rtol = 1e-4});
    // a step so large the central difference is visibly off: a tight tolerance catches it
    CHECK_FALSE(gradcheck(f, in, {.eps = 0.5, .atol = 1e-9, .rtol = 1e-9}).ok());
}

TEST_CASE("gradgradcheck: catches a backward rule that is not differentiable") {
    // The rule computes g * 2x from a *constant* copy of x, so the gradient is right but its
    // own gradient is missing: gradcheck passes, gradgradcheck must not.
    auto square = [](const Variable& x) {
        Tensor out = Tensor(xt::xarray<double>(x.value().xt<double>() * x.value().xt<double>()));
        return record("square_detached", out, {x},
                      [](Backward& bw) { bw.add(0, bw.grad_out() * bw.input(0).detach() * 2.0); });
    };
    auto f = [&](const std::vector<Variable>& x) { return sum(square(x[0]) * x[0]); };
    const std::vector<Tensor> in{Tensor::from({0.5, -1.2, 0.8}, {3}, float64)};
    CHECK(gradcheck(f, in).ok());
    CHECK_FALSE(gradgradcheck(f, in).ok());
}
