// argmax, argmin, select and accuracy: values (ties, NaN, negative axes and indices, keepdims),
// that argmax/argmin/accuracy carry no gradient, select's gradient, and the errors they report.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::has;
using tapegrad::test::message_of;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// 0, 1, 2, ... in `shape`.
Tensor iota(const Shape& shape, DType dtype = float64) {
    std::vector<double> v(numel(shape));
    std::iota(v.begin(), v.end(), 0.0);
    return Tensor::from(v, shape, dtype);
}

std::vector<double> values(const Variable& v) { return v.value().to_vector(); }

}  // namespace

// ---- argmax, argmin

TEST_CASE("argmax argmin: indices along an axis, in the input's dtype, as constants") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        // [[3, 1, 4], [1, 5, 9]]
        Variable x(Tensor::from({3, 1, 4, 1, 5, 9}, {2, 3}, dt), true);
        Variable a = argmax(x, 1);
        CHECK(a.shape() == Shape{2});
        CHECK(a.dtype() == dt);
        CHECK(values(a) == std::vector<double>{2, 2});
        CHECK(values(argmax(x, 0)) == std::vector<double>{0, 1, 1});
        CHECK(values(argmin(x, 1)) == std::vector<double>{1, 0});
        CHECK(values(argmin(x, 0)) == std::vector<double>{1, 0, 0});
        // no gradient, even from an input that requires one
        CHECK_FALSE(a.requires_grad());
        CHECK_FALSE(argmin(x, 0).requires_grad());
    }
}

TEST_CASE("argmax argmin: negative axis and keepdims") {
    Variable x(iota({2, 3, 4}));  // increasing: the max is the last entry, the min the first
    CHECK(argmax(x, -1).shape() == Shape{2, 3});
    CHECK(values(argmax(x, -1)) == std::vector<double>(6, 3));
    CHECK(values(argmax(x, -1)) == values(argmax(x, 2)));
    CHECK(values(argmin(x, -3)) == std::vector<double>(12, 0));
    Variable k = argmax(x, -2, true);
    CHECK(k.shape() == Shape{2, 1, 4});
    CHECK(values(k) == std::vector<double>(8, 2));
    CHECK(argmin(x, 0, true).shape() == Shape{1, 3, 4});
    CHECK(argmax(Variable(iota({5})), 0).shape() == Shape{});
    CHECK(argmax(Variable(iota({5})), 0).item() == 4);
    CHECK(argmax(Variable(iota({5})), -1, true).shape() == Shape{1});
}

TEST_CASE("argmax argmin: ties give the first index, as PyTorch") {
    Variable x(Tensor::from({2, 7, 7, 1, 1, 0, 5, 5, 5}, {3, 3}, float64));
    CHECK(values(argmax(x, 1)) == std::vector<double>{1, 0, 0});
    CHECK(values(argmin(x, 1)) == std::vector<double>{0, 2, 0});
    // along axis 0 (strided): every column ties
    Variable y(Tensor::from({4, 4, 3, 4, 4, 3}, {2, 3}, float32));
    CHECK(values(argmax(y, 0)) == std::vector<double>{0, 0, 0});
    CHECK(values(argmin(y, 0)) == std::vector<double>{0, 0, 0});
    CHECK(values(argmin(y, 1)) == std::vector<double>{2, 2});
    // -0.0 == 0.0: a tie
    CHECK(argmax(Variable(Tensor::from({-0.0, 0.0}, {2}, float64)), 0).item() == 0);
}

TEST_CASE("argmax argmin: NaN counts as the extreme (the first NaN), as PyTorch") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        Variable x(Tensor::from({1, kNaN, 9, kNaN, kInf, 2, -kInf, 3, kNaN}, {3, 3}, dt));
        CHECK(values(argmax(x, 1)) == std::vector<double>{1, 0, 2});
        CHECK(values(argmin(x, 1)) == std::vector<double>{1, 0, 2});
        // columns (strided): [1, kNaN, -kInf], [kNaN, kInf, 3], [9, 2, kNaN]
        CHECK(values(argmax(x, 0)) == std::vector<double>{1, 0, 2});
        CHECK(values(argmin(x, 0)) == std::vector<double>{1, 0, 2});
        // NaN first, then larger numbers: still the NaN
        CHECK(argmax(Variable(Tensor::from({kNaN, 5, kNaN}, {3}, dt)), 0).item() == 0);
        // infinities without NaN
        CHECK(argmax(Variable(Tensor::from({-kInf, kInf, kInf}, {3}, dt)), 0).item() == 1);
        CHECK(argmin(Variable(Tensor::from({kInf, -kInf, -kInf}, {3}, dt)), 0).item() == 1);
    }
}

TEST_CASE("argmax: a constant factor passes no gradient through the indices") {
    Variable x(Tensor::from({3, 1, 4, 1, 5, 9}, {2, 3}, float64), true);
    Variable y = sum(x * argmax(x, 1, true));  // d/dx = the index of each row's max, broadcast
    y.backward();
    CHECK(x.grad().to_vector() == std::vector<double>{2, 2, 2, 2, 2, 2});
}

TEST_CASE("argmax argmin: errors name the axis and the shape") {
    Variable x(iota({2, 3}));
    auto m = message_of<ShapeError>([&] { argmax(x, 2); });
    CHECK(m.find("argmax: axis 2 is out of range for a tensor of rank 2") == 0);
    CHECK(has(m, "test_select_argmax.cpp:"));
    m = message_of<ShapeError>([&] { argmin(x, -3); });
    CHECK(m.find("argmin: axis -3 is out of range for a tensor of rank 2") == 0);
    m = message_of<ShapeError>([&] { argmax(Variable(Tensor::zeros({2, 0}, float32)), -1); });
    CHECK(m.find("argmax: axis -1 of [2,0] is empty: there is no index to return") == 0);
    m = message_of<ShapeError>([&] { argmin(Variable(Tensor::scalar(1.0, float64)), 0); });
    CHECK(m.find("argmin: axis 0 is out of range for a tensor of rank 0") == 0);
    m = message_of<ValueError>([&] { argmax(Variable(), 0); });
    CHECK(m.find("argmax: an input variable is undefined") == 0);
    // an empty axis other than the reduced one is fine: an empty result
    CHECK(argmax(Variable(Tensor::zeros({0, 3}, float32)), 1).shape() == Shape{0});
}

// ---- select

TEST_CASE("select: removes the axis; a negative index counts from the end") {
    Variable x(iota({2, 3, 4}));
    Variable s = select(x, 1, -1);  // x[:, -1]
    CHECK(s.shape() == Shape{2, 4});
    CHECK(values(s) == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});
    CHECK(values(select(x, 1, 2)) == values(s));
    CHECK(values(select(x, 0, 1)) == values(narrow(x, 0, 1, 1)));
    CHECK(select(x, 0, 1).shape() == Shape{3, 4});
    CHECK(values(select(x, -1, 0)) == std::vector<double>{0, 4, 8, 12, 16, 20});
    CHECK(values(select(x, 2, -4)) == values(select(x, -1, 0)));
    Variable v(iota({5}, float32));
    CHECK(select(v, 0, -2).shape() == Shape{});
    CHECK(select(v, 0, -2).item() == 3);
    CHECK(select(v, 0, -2).dtype() == float32);
}

TEST_CASE("select: the gradient lands at the selected entry, zeros elsewhere") {
    Variable x(iota({2, 3}), true);
    Variable y = sum(select(x, 1, -2) * Variable(Tensor::from({10, 20}, {2}, float64)));
    y.backward();
    CHECK(x.grad().to_vector() == std::vector<double>{0, 10, 0, 0, 20, 0});
    x.zero_grad();
    // used twice: the gradients add up
    sum(select(x, 0, 0) + select(x, 0, -2) * 3.0).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{4, 4, 4, 0, 0, 0});
}

TEST_CASE("select: second derivatives") {
    Variable x(iota({2, 2}), true);
    // y = Σ select(x, 0, 1)^3, dy/dx[1, j] = 3 x[1, j]^2, d/dx of Σ (dy/dx)^2 = 36 x^3 at row 1
    Variable y = sum(pow(select(x, 0, 1), 3.0));
    Variable g = grad(y, {x}, {}, {.create_graph = true})[0];
    CHECK(g.value().to_vector() == std::vector<double>{0, 0, 12, 27});
    sum(g * g).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 288, 972});
}

TEST_CASE("select: errors name the index, the axis and the shape") {
    Variable x(iota({2, 3}));
    auto m = message_of<ValueError>([&] { select(x, 1, 3); });
    CHECK(m.find("select: index 3 is out of range for axis 1 of size 3 of [2,3]") == 0);
    CHECK(has(m, "test_select_argmax.cpp:"));
    m = message_of<ValueError>([&] { select(x, -2, -3); });
    CHECK(m.find("select: index -3 is out of range for axis -2 of size 2 of [2,3]") == 0);
    m = message_of<ValueError>([&] { select(Variable(Tensor::zeros({0, 2}, float32)), 0, 0); });
    CHECK(m.find("select: index 0 is out of range for axis 0 of size 0 of [0,2]") == 0);
    m = message_of<ShapeError>([&] { select(x, 2, 0); });
    CHECK(m.find("select: axis 2 is out of range for a tensor of rank 2") == 0);
    m = message_of<ShapeError>([&] { select(Variable(Tensor::scalar(1.0, float64)), 0, 0); });
    CHECK(m.find("select: axis 0 is out of range for a tensor of rank 0") == 0);
}

// ---- accuracy

TEST_CASE("accuracy: the fraction of rows whose argmax is the label") {
    for (DType dt : {float32, float64}) {
        CAPTURE(name(dt));
        // argmax per row: 2, 0, 1, 1 (row 3 ties between 1 and 2: the first)
        Variable logits(Tensor::from({0, 1, 2, 5, 1, 1, 0, 3, 2, 0, 4, 4}, {4, 3}, dt), true);
        Variable a = accuracy(logits, std::vector<std::int64_t>{2, 0, 2, 1});
        CHECK(a.shape() == Shape{});
        CHECK(a.dtype() == dt);
        CHECK_FALSE(a.requires_grad());
        CHECK(a.item() == 0.75);
        CHECK(accuracy(logits, {2, 0, 1, 1}).item() == 1.0);
        CHECK(accuracy(logits, {0, 1, 0, 2}).item() == 0.0);  // row 3's tie counts as 1, not 2
        // labels as a tensor of integer values, of either dtype
        CHECK(accuracy(logits, Variable(Tensor::from({2, 1, 1, 1}, {4}, float32))).item() == 0.75);
        CHECK(accuracy(logits, Variable(Tensor::from({2, 1, 1, 1}, {4}, float64))).item() == 0.75);
        CHECK(accuracy(logits, argmax(logits, -1)).item() == 1.0);
    }
}

TEST_CASE("accuracy: rows of a [B, T, C] tensor and a single row") {
    Variable logits(iota({2, 2, 3}));  // every argmax is 2
    CHECK(accuracy(logits, {2, 2, 0, 2}).item() == 0.75);
    CHECK(accuracy(logits, Variable(Tensor::from({2, 1, 2, 2}, {2, 2}, float64))).item() == 0.75);
    Variable one(Tensor::from({0.5, -1, 3}, {3}, float64));
    CHECK(accuracy(one, {2}).item() == 1.0);
    CHECK(accuracy(one, Variable(Tensor::scalar(0.0, float64))).item() == 0.0);
    // NaN is the argmax, as argmax has it
    Variable with_nan(Tensor::from({1, kNaN, 3, 4, 5, 6}, {2, 3}, float64));
    CHECK(accuracy(with_nan, {1, 2}).item() == 1.0);
}

TEST_CASE("accuracy: errors") {
    Variable logits(iota({2, 3}));
    auto m = message_of<ShapeError>([&] { accuracy(logits, {0, 1, 2}); });
    CHECK(m.find("accuracy: 3 labels for logits [2,3] (2 rows)") == 0);
    CHECK(has(m, "test_select_argmax.cpp:"));
    m = message_of<ValueError>([&] { accuracy(logits, {0, 3}); });
    CHECK(m.find("accuracy: label 3 at position 1 is out of range for 3 classes") == 0);
    m = message_of<ValueError>([&] { accuracy(logits, {-1, 0}); });
    CHECK(m.find("accuracy: label -1 at position 0 is out of range for 3 classes") == 0);
    m = message_of<ShapeError>([&] {
        accuracy(logits, Variable(Tensor::from({0, 1}, {1, 2}, float64)));
    });
    CHECK(m.find("accuracy: labels [1,2] for logits [2,3]: expected labels [2]") == 0);
    m = message_of<ValueError>([&] {
        accuracy(logits, Variable(Tensor::from({0, 1.5}, {2}, float64)));
    });
    CHECK(m.find("accuracy: label 1.5 at [1] is not an integer") == 0);
    m = message_of<ValueError>([&] {
        accuracy(logits, Variable(Tensor::from({kNaN, 1}, {2}, float64)));
    });
    CHECK(m.find("accuracy: label nan at [0] is not an integer") == 0);
    m = message_of<ShapeError>([&] { accuracy(Variable(Tensor::scalar(1.0, float64)), {0}); });
    CHECK(m.find("accuracy: logits must be [..., C] with C >= 1 classes, got [] float64") == 0);
    m = message_of<ShapeError>([&] { accuracy(Variable(Tensor::zeros({2, 0}, float32)), {0, 0}); });
    CHECK(m.find("accuracy: logits must be [..., C] with C >= 1 classes, got [2,0] float32") == 0);
    m = message_of<ValueError>([&] {
        accuracy(Variable(Tensor::zeros({0, 3}, float32)), std::vector<std::int64_t>{});
    });
    CHECK(m.find("accuracy: logits [0,3] have no rows: the fraction is undefined") == 0);
    m = message_of<ValueError>([&] { accuracy(logits, Variable()); });
    CHECK(m.find("accuracy: an input variable is undefined") == 0);
}

TEST_CASE("max_with_indices, min_with_indices: values with their gradient, int64 indices") {
    const Variable x(Tensor::from({3, 1, 4, 1, 5, 9}, {2, 3}, float64), true);
    const auto [values, indices] = max_with_indices(x, 1);
    CHECK(values.value().to_vector() == std::vector<double>{4, 9});
    CHECK(indices.dtype() == int64);
    CHECK(indices.values<std::int64_t>() == std::vector<std::int64_t>{2, 2});
    const auto lo = min_with_indices(x, 0, true);
    CHECK(lo.values.shape() == Shape{1, 3});
    CHECK(lo.indices.shape() == Shape{1, 3});
    CHECK(lo.indices.values<std::int64_t>() == std::vector<std::int64_t>{1, 0, 0});
    sum(values).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 1, 0, 0, 1});
    CHECK(has(message_of<ShapeError>([&] { (void)max_with_indices(x, 2); }), "axis 2"));
}
