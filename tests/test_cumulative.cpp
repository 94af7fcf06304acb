// cumsum and logcumsumexp: values along either axis and reversed, logcumsumexp's stability
// (large and -Inf inputs, forward and backward), the plain and create_graph gradients agreeing,
// empty axes and the errors. Gradchecks are rows in op_rows_reduce.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::has;
using tapegrad::test::message_of;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> values(const Variable& v) { return v.value().to_vector(); }

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        if (std::isinf(want[i])) CHECK(got[i] == want[i]);
        else CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
    }
}
}  // namespace

TEST_CASE("cumsum: running sums along an axis, reversed, in both dtypes") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        const Variable x(Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, dt));
        CHECK(cumsum(x, 1).dtype() == dt);
        CHECK(cumsum(x, 1).shape() == Shape{2, 3});
        CHECK(values(cumsum(x, 1)) == std::vector<double>{1, 3, 6, 4, 9, 15});
        CHECK(values(cumsum(x, -1)) == std::vector<double>{1, 3, 6, 4, 9, 15});
        CHECK(values(cumsum(x, 0)) == std::vector<double>{1, 2, 3, 5, 7, 9});
        CHECK(values(cumsum(x, 1, true)) == std::vector<double>{6, 5, 3, 15, 11, 6});
        CHECK(values(cumsum(x, 0, true)) == std::vector<double>{5, 7, 9, 4, 5, 6});
    }
}

TEST_CASE("cumsum: the gradient is the reverse cumsum of the incoming one") {
    Variable x(Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, float64), true);
    const Variable w = constant(Tensor::from({1, 10, 100, 1, 10, 100}, {2, 3}, float64));
    sum(cumsum(x, 1) * w).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{111, 110, 100, 111, 110, 100});
    Variable z(Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, float64), true);
    sum(cumsum(z, 1, true) * w).backward();
    CHECK(z.grad().to_vector() == std::vector<double>{1, 11, 111, 1, 11, 111});
}

TEST_CASE("logcumsumexp: log(cumsum(exp(x))) on moderate values, in both dtypes") {
    const std::vector<double> v{0.5, -1.25, 2.0, 0.0, 1.5, -0.75, 3.0, -2.0, 0.25, 1.0, -0.5, 2.5};
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        const double tol = dt == float32 ? 1e-5 : 1e-12;
        const Variable x(Tensor::from(v, {3, 4}, dt));
        for (long axis : {0L, 1L, -1L}) {
            CAPTURE(axis);
            const Variable y = logcumsumexp(x, axis);
            CHECK(y.dtype() == dt);
            CHECK(y.shape() == Shape{3, 4});
            check_close(values(y), values(log(cumsum(exp(x), axis))), tol);
        }
    }
}

TEST_CASE("logcumsumexp: stable at large and -Inf inputs, forward and backward") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        const double tol = dt == float32 ? 1e-6 : 1e-14;
        Variable big(Tensor::from({1000, 1000}, {2}, dt), true);
        const Variable y = logcumsumexp(big, 0);
        check_close(values(y), {1000, 1000 + std::log(2.0)}, tol);
        sum(y).backward();
        // exp(x - y) with y rounded near 1000: an ulp of 1000 is a relative 6e-5 in float32
        check_close(big.grad().to_vector(), {1.5, 0.5}, dt == float32 ? 2e-4 : 1e-12);

        Variable neg(Tensor::from({-kInf, 0}, {2}, dt), true);
        const Variable z = logcumsumexp(neg, 0);
        check_close(values(z), {-kInf, 0}, tol);
        // y_0 = x_0, and x_0 = -Inf adds nothing to y_1: dy/dx_0 = (1, 0), dy/dx_1 = (0, 1)
        sum(z).backward();
        check_close(neg.grad().to_vector(), {1, 1}, tol);

        const Variable all(Tensor::from({-kInf, -kInf, 1}, {3}, dt));
        check_close(values(logcumsumexp(all, 0)), {-kInf, -kInf, 1}, tol);
    }
}

TEST_CASE("logcumsumexp: the plain and the create_graph gradient agree, also at x = 1000") {
    const std::vector<double> v{1000, 999, 1001.5, -3, 0.5, -1000, 2, 700};
    const std::vector<double> g{0.5, -2, 1, 0, 3, -1, 0.25, -0.5};
    Tape tape;  // the create_graph graph stays on this tape, not on the thread's default one
    const TapeScope scope(tape);
    for (long axis : {0L, 1L}) {
        CAPTURE(axis);
        Variable a(Tensor::from(v, {2, 4}, float64), true);
        logcumsumexp(a, axis).backward(Tensor::from(g, {2, 4}, float64));
        Variable b(Tensor::from(v, {2, 4}, float64), true);
        logcumsumexp(b, axis).backward(Tensor::from(g, {2, 4}, float64), {.create_graph = true});
        check_close(b.grad().to_vector(), a.grad().to_vector(), 1e-10);
        for (double e : a.grad().to_vector()) CHECK(std::isfinite(e));
    }
}

TEST_CASE("cumsum logcumsumexp: empty axes, 0-size results, and axis errors") {
    for (DType dt : {float32, float64}) {
        const Variable e(Tensor::zeros({2, 0, 3}, dt), true);
        CHECK(cumsum(e, 1).shape() == Shape{2, 0, 3});
        CHECK(logcumsumexp(e, 1).shape() == Shape{2, 0, 3});
        CHECK(logcumsumexp(e, -1).shape() == Shape{2, 0, 3});
        CHECK(cumsum(e, 2, true).shape() == Shape{2, 0, 3});
    }
    const Variable x(Tensor::zeros({2, 3}, float64));
    CHECK(has(message_of([&] { cumsum(x, 2); }), "cumsum"));
    CHECK(has(message_of([&] { cumsum(x, -3, true); }), "cumsum"));
    CHECK(has(message_of([&] { logcumsumexp(x, 5); }), "logcumsumexp"));
    CHECK_THROWS_AS(cumsum(x, 2), ShapeError);
    CHECK_THROWS_AS(logcumsumexp(x, -3), ShapeError);
}
