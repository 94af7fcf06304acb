// Shape, indexing and batched matmul ops: values, closed-form gradients, and the errors every
// op reports for bad inputs (exception type and message).
#include <doctest/doctest.h>

#include <functional>
#include <numeric>
#include <string>

#include <tapegrad/core/counters.hpp>
#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::has;
using tapegrad::test::message_of;

namespace {
// 0, 1, 2, ... in `shape`.
Tensor iota(const Shape& shape, DType dtype = float64) {
    std::vector<double> v(numel(shape));
    std::iota(v.begin(), v.end(), 0.0);
    return Tensor::from(v, shape, dtype);
}

Variable param(const Shape& shape, DType dtype = float64) {
    return Variable(iota(shape, dtype), true);
}

std::vector<double> values(const Variable& v) { return v.value().to_vector(); }
std::vector<double> grad_values(const Variable& v) { return v.grad().to_vector(); }

}  // namespace

// ---- values and closed-form gradients

TEST_CASE("shape ops: permute, transpose, squeeze, unsqueeze") {
    Variable x = param({2, 3, 4});
    Variable p = permute(x, {2, 0, 1});
    REQUIRE(p.shape() == Shape{4, 2, 3});
    // p[k][i][j] = x[i][j][k] = 12 i + 4 j + k
    CHECK(p.value().flat(1 * 6 + 1 * 3 + 2) == 12 + 8 + 1);
    CHECK(values(transpose(x, 0, 2)) == values(permute(x, {2, 1, 0})));
    CHECK(permute(x, {0, 1, 2}).impl() == x.impl());  // the identity is free
    CHECK(squeeze(Variable(iota({1, 2, 1, 3}))).shape() == Shape{2, 3});
    CHECK(squeeze(Variable(iota({2, 1, 3})), 1).shape() == Shape{2, 3});
    CHECK(unsqueeze(x, 0).shape() == Shape{1, 2, 3, 4});
    CHECK(unsqueeze(x, -1).shape() == Shape{2, 3, 4, 1});
    CHECK(unsqueeze(x, 2).shape() == Shape{2, 3, 1, 4});
    CHECK(unsqueeze(Variable(Tensor::scalar(1.0, float64)), 0).shape() == Shape{1});
}

TEST_CASE("reshape: a view of elements in one run, a copy of a strided view; never aliases") {
    Variable x = param({2, 6});
    Variable r = reshape(x, Shape{3, 4});
    CHECK(r.value().is_view());
    CHECK(r.value().shares_storage_with(x.value()));
    CHECK(r.value().data<double>() == x.value().data<double>());  // no element moved
    CHECK(values(r) == values(x));
    // a contiguous piece (the second row) reshapes in place too, from its own offset
    Variable row = chunk(x, 2, 0)[1];
    Variable rr = reshape(row, Shape{2, 3});
    CHECK(rr.value().data<double>() == x.value().data<double>() + 6);
    CHECK(values(rr) == std::vector<double>{6, 7, 8, 9, 10, 11});
    // columns 2..3 are runs 6 apart: reshaped, they are copied
    Variable cols = chunk(x, 3, 1)[1];
    Variable rc = reshape(cols, Shape{4});
    CHECK_FALSE(rc.value().shares_storage_with(x.value()));
    CHECK(values(rc) == std::vector<double>{2, 3, 8, 9});
    // writing to either side copies first
    Tensor w = r.value();
    w.set_flat(0, -1.0);
    CHECK(x.value().flat(0) == 0.0);
    CHECK(r.value().flat(0) == 0.0);
    // the gradient flows back through views and copies alike
    (sum(r * r) + sum(rc)).backward();
    std::vector<double> want(12);
    for (std::size_t i = 0; i < 12; ++i) want[i] = 2.0 * static_cast<double>(i);
    for (std::size_t i : {2, 3, 8, 9}) want[i] += 1.0;
    CHECK(grad_values(x) == want);
}

TEST_CASE("slice: Python's rules for start, stop and step") {
    Variable x(iota({10}));
    CHECK(values(slice(x, 0, -3, 100)) == std::vector<double>{7, 8, 9});
    CHECK(values(slice(x, 0, 1, 8, 3)) == std::vector<double>{1, 4, 7});
    CHECK(values(slice(x, 0, -100, 2)) == std::vector<double>{0, 1});
    CHECK(slice(x, 0, 5, 2).shape() == Shape{0});
    CHECK(values(slice(x, 0, 2, -5, 2)) == std::vector<double>{2, 4});
    CHECK(values(narrow(x, 0, -4, 2)) == std::vector<double>{6, 7});
    Variable m(iota({3, 4}));
    CHECK(values(slice(m, 1, 1, 4, 2)) == std::vector<double>{1, 3, 5, 7, 9, 11});
    CHECK(values(narrow(m, 0, 1, 1)) == std::vector<double>{4, 5, 6, 7});
}

TEST_CASE("slice: backward scatters into zeros of the input shape") {
    Variable x = param({2, 5});
    // d/dx sum(3 * x[:, 1:5:2]) = 3 at columns 1 and 3, 0 elsewhere
    sum(slice(x, 1, 1, 5, 2) * 3.0).backward();
    CHECK(grad_values(x) == std::vector<double>{0, 3, 0, 3, 0, 0, 3, 0, 3, 0});
}

TEST_CASE("concat, stack, split, chunk, unbind: values") {
    Variable a(iota({2, 2}));
    Variable b = Variable(iota({2, 1})) + 10.0;
    CHECK(values(concat({a, b}, 1)) == std::vector<double>{0, 1, 10, 2, 3, 11});
    CHECK(values(concat({a, a}, 0)) == std::vector<double>{0, 1, 2, 3, 0, 1, 2, 3});
    CHECK(values(stack({a, a * 2.0}, 2)) == std::vector<double>{0, 0, 1, 2, 2, 4, 3, 6});
    CHECK(stack({a, a, a}, 0).shape() == Shape{3, 2, 2});
    Variable x(iota({2, 6}));
    auto p = split(x, {1, 0, 3, 2}, -1);
    REQUIRE(p.size() == 4);
    CHECK(values(p[0]) == std::vector<double>{0, 6});
    CHECK(p[1].shape() == Shape{2, 0});
    CHECK(values(p[2]) == std::vector<double>{1, 2, 3, 7, 8, 9});
    CHECK(values(p[3]) == std::vector<double>{4, 5, 10, 11});
    auto c = chunk(x, 3, 1);
    REQUIRE(c.size() == 3);
    CHECK(values(c[1]) == std::vector<double>{2, 3, 8, 9});
    auto u = unbind(x, 1);
    REQUIRE(u.size() == 6);
    CHECK(u[4].shape() == Shape{2});
    CHECK(values(u[4]) == std::vector<double>{4, 10});
    CHECK(values(stack(u, 1)) == values(x));
    // the pieces are views of x's storage, not copies
    for (const auto& piece : {p[2], c[1], u[4]}) {
        CHECK(piece.value().is_view());
        CHECK(piece.value().shares_storage_with(x.value()));
    }
    // ops read views in place: elementwise, unary, and the addend of addmm
    CHECK(values(c[1] * c[2]) == std::vector<double>{8, 15, 80, 99});
    CHECK(values(tanh(c[1])) == values(tanh(Variable(c[1].value().clone()))));
    CHECK(values(addmm(p[2], a, Variable(iota({2, 3})), false, false)) ==
          values(addmm(Variable(p[2].value().clone()), a, Variable(iota({2, 3})), false, false)));
    // float32: a strided view as the addend of addmm's product, plain and (inside a
    // WeightPackScope, on an AVX-512 CPU) on the packed kernel, as at an RNN step
    Generator gen(5);
    Variable gates(gen.normal({16, 96}, 0, 1, float32)), h(gen.normal({16, 32}, 0, 1, float32));
    Variable weight(gen.normal({32, 32}, 0, 1, float32), true);
    const auto q = chunk(gates, 3, 1);
    const Variable copied(q[1].value().clone());
    CHECK(max_abs_diff(addmm(q[1], h, weight, false, true).value(),
                       addmm(copied, h, weight, false, true).value()) == 0.0);
    WeightPackScope packs;
    const std::size_t before = detail::weights_packed();
    const Tensor packed_sum = addmm(q[1], h, weight, false, true).value();
    CHECK(detail::weights_packed() ==
          before + (packed_gemm::available() ? 2 : 0));  // op(W) and op(W)ᵀ
    CHECK(max_abs_diff(packed_sum, addmm(copied, h, weight, false, true).value()) == 0.0);
}

TEST_CASE("chunk: gradients of the pieces, unused ones as zeros, joined once") {
    Variable x = param({2, 8});
    const std::size_t before = current_tape().size();
    auto g = chunk(x, 4, 1);
    CHECK(current_tape().size() == before + 1);  // one entry, four results
    // loss = sum(2 g0 + g3): gradient 2 on the first quarter, 1 on the last, 0 between
    sum(g[0] * 2.0 + g[3]).backward();
    CHECK(grad_values(x) == std::vector<double>{2, 2, 0, 0, 0, 0, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1});
}

TEST_CASE("chunk: retain_graph runs the backward twice, the second time from scratch") {
    Variable x = param({1, 4});
    auto g = chunk(x, 2, 1);
    Variable loss = sum(g[1] * 3.0);
    loss.backward({}, {.retain_graph = true});
    loss.backward();
    CHECK(grad_values(x) == std::vector<double>{0, 0, 6, 6});
    // a second graph over the same pieces' op, reaching only the other piece
    Variable y = param({1, 4});
    auto h = chunk(y, 2, 1);
    Variable first = sum(h[0]), second = sum(h[1] * 5.0);
    first.backward({}, {.retain_graph = true});
    CHECK(grad_values(y) == std::vector<double>{1, 1, 0, 0});
    second.backward();
    CHECK(grad_values(y) == std::vector<double>{1, 1, 5, 5});
}

TEST_CASE("chunk and concat: gradients of gradients") {
    // f = sum(a * b) with [a, b] = chunk(x, 2): df/dx = [b, a], and d/dx sum(df/dx * w) = [w1, w0]
    Variable x(Tensor::from({1, 2, 3, 4}, {4}, float64), true);
    auto p = chunk(x, 2, 0);
    Variable f = sum(p[0] * p[1]);
    auto g = grad(f, {x}, {}, {.create_graph = true});
    CHECK(values(g[0]) == std::vector<double>{3, 4, 1, 2});
    Variable w(Tensor::from({10, 20, 30, 40}, {4}, float64));
    auto gg = grad(sum(g[0] * w), {x});
    CHECK(values(gg[0]) == std::vector<double>{30, 40, 10, 20});
}

TEST_CASE("stack and concat over many inputs (a two-level link tree)") {
    std::vector<Variable> xs;
    for (int i = 0; i < 70; ++i) xs.emplace_back(Tensor::full({2}, i, float64), i % 3 != 1);
    Variable s = stack(xs, 0);
    REQUIRE(s.shape() == Shape{70, 2});
    CHECK(s.value().flat(2 * 69 + 1) == 69);
    // loss = sum_i w_i . xs[i] with w_i = (i, -i): each input's gradient is its own w_i
    Variable w(Tensor::empty({70, 2}, float64));
    for (std::size_t i = 0; i < 70; ++i) {
        w.mutable_value().set_flat(2 * i, double(i));
        w.mutable_value().set_flat(2 * i + 1, -double(i));
    }
    sum(s * w).backward();
    for (std::size_t i = 0; i < 70; ++i) {
        CAPTURE(i);
        if (i % 3 == 1) {
            CHECK(!xs[i].grad().defined());
        } else {
            CHECK(grad_values(xs[i]) == std::vector<double>{double(i), -double(i)});
        }
    }
    std::vector<Variable> ys;
    for (int i = 0; i < 20; ++i) ys.push_back(param({1, 3}));
    sum(concat(ys, 1) * 2.0).backward();
    CHECK(grad_values(ys[19]) == std::vector<double>{2, 2, 2});
}

TEST_CASE("index_select: repeated indices accumulate (the embedding lookup)") {
    Variable table = param({4, 2});
    Variable rows = index_select(table, 0, {1, 3, 1, 1});
    CHECK(values(rows) == std::vector<double>{2, 3, 6, 7, 2, 3, 2, 3});
    sum(rows).backward();
    // row 1 was looked up three times, row 3 once, rows 0 and 2 never
    CHECK(grad_values(table) == std::vector<double>{0, 0, 3, 3, 0, 0, 1, 1});
    Variable m(iota({2, 3}));
    CHECK(values(index_select(m, -1, {2, 2, 0})) == std::vector<double>{2, 2, 0, 5, 5, 3});
}

TEST_CASE("gather: PyTorch semantics, repeated indices accumulate") {
    Variable x = param({2, 3});
    // axis 1: out[i][j] = x[i][index[i][j]]
    Variable y = gather(x, 1, {2, 2, 0, 1}, {2, 2});
    CHECK(values(y) == std::vector<double>{2, 2, 3, 4});
    sum(y).backward();
    CHECK(grad_values(x) == std::vector<double>{0, 0, 2, 1, 1, 0});
    // axis 0: out[i][j] = x[index[i][j]][j], the index narrower than x
    CHECK(values(gather(Variable(iota({2, 3})), 0, {1, 0}, {1, 2})) == std::vector<double>{3, 1});
}

TEST_CASE("matmul: batched products equal per-batch 2-D products") {
    for (DType dtype : {float32, float64}) {
        CAPTURE(name(dtype));
        struct Case {
            Shape a, b;
            bool ta, tb;
        };
        for (const Case& c :
             {Case{{2, 3, 4}, {2, 4, 5}, false, false}, Case{{3, 4}, {2, 4, 5}, false, false},
              Case{{1, 3, 4}, {2, 4, 5}, false, false}, Case{{2, 3, 4}, {4, 5}, false, false},
              Case{{2, 3, 4}, {5, 4}, false, true}, Case{{2, 4, 3}, {2, 5, 4}, true, true},
              Case{{2, 4, 3}, {4, 5}, true, false}}) {
            CAPTURE(to_string(c.a));
            CAPTURE(to_string(c.b));
            Variable a = Variable(iota(c.a, dtype)) * 0.1;
            Variable b = Variable(iota(c.b, dtype)) * 0.01 - 0.2;
            Variable y = matmul(a, b, c.ta, c.tb);
            REQUIRE(y.shape() == Shape{2, 3, 5});
            for (long i = 0; i < 2; ++i) {
                auto batch = [&](const Variable& v) {  // batch i of v, broadcast
                    if (v.dim() == 2) return v;
                    return squeeze(narrow(v, 0, v.shape()[0] == 1 ? 0 : i, 1), 0);
                };
                Variable expected = matmul(batch(a), batch(b), c.ta, c.tb);
                CHECK(max_abs_diff(squeeze(narrow(y, 0, i, 1), 0).value(), expected.value()) <
                      1e-6);
            }
        }
    }
}

TEST_CASE("addmm: equals c + matmul, and reports bad shapes") {
    for (DType dtype : {float32, float64}) {
        CAPTURE(name(dtype));
        Variable a = Variable(iota({3, 4}, dtype)) * 0.1;
        Variable b = Variable(iota({5, 4}, dtype)) * 0.01 - 0.2;
        Variable bias = Variable(iota({5}, dtype)) * 0.3;
        Variable full = Variable(iota({3, 5}, dtype)) * -0.05;
        CHECK(max_abs_diff(addmm(bias, a, b, false, true).value(),
                           (matmul(a, b, false, true) + bias).value()) < 1e-6);
        CHECK(max_abs_diff(addmm(full, a, b, false, true).value(),
                           (matmul(a, b, false, true) + full).value()) < 1e-6);
        Variable column = Variable(iota({3, 1}, dtype)) * 0.7,
                 square = Variable(iota({3, 4}, dtype)) * 0.1;
        Variable ab =
            matmul(a, square, false, true);  // [3, 3]: a column and a row have the same size
        CHECK(max_abs_diff(addmm(column, a, square, false, true).value(), (ab + column).value()) <
              1e-6);
        CHECK(max_abs_diff(
                  addmm(Variable(Tensor::scalar(2.0, dtype)), a, square, false, true).value(),
                  (ab + 2.0).value()) < 1e-6);
    }
    Variable a(Tensor::zeros({3, 4}, float64)), b(Tensor::zeros({4, 5}, float64));
    CHECK_THROWS_WITH_AS(
        addmm(Variable(Tensor::zeros({4}, float64)), a, b),
        doctest::Contains("addmm: c [4] does not broadcast to the product's [3,5]"), ShapeError);
    CHECK_THROWS_WITH_AS(addmm(Variable(Tensor::zeros({5}, float64)), a, a),
                         doctest::Contains("inner dimensions 4 and 3 differ"), ShapeError);
    CHECK_THROWS_WITH_AS(addmm(Variable(Tensor::zeros({5}, float64)),
                               Variable(Tensor::zeros({2, 3, 4}, float64)), b),
                         doctest::Contains("both operands must be matrices"), ShapeError);
    CHECK_THROWS_AS(addmm(Variable(Tensor::zeros({5}, float32)), a, b), DTypeError);
}

TEST_CASE("matmul: the gradient of a broadcast operand sums over the batch") {
    Variable w = param({2, 2}), x = param({3, 2, 2});
    // y_b = W x_b: dL/dW = sum_b G_b x_bᵀ with G = 1, i.e. sum over b and columns of x_b rows
    sum(matmul(w, x)).backward();
    // x_b = [[4b, 4b+1], [4b+2, 4b+3]]; (G x_bᵀ)[i][k] = sum_j x_b[k][j]: row sums 8b+1, 8b+5
    // summed over b = 0, 1, 2: 27 and 39
    CHECK(grad_values(w) == std::vector<double>{27, 39, 27, 39});
}

TEST_CASE("shape ops: without grad, nothing is recorded") {
    Variable x(iota({2, 8}), true);
    const std::size_t before = current_tape().size();
    {
        NoGradGuard no_grad;
        auto c = chunk(x, 4, 1);
        CHECK(!c[0].requires_grad());
        CHECK(!concat(c, 0).requires_grad());
    }
    CHECK(current_tape().size() == before);
}

// ---- bad inputs

TEST_CASE("permute and transpose: bad dims") {
    Variable x(iota({2, 3, 4}));
    auto m = message_of<ShapeError>([&] { permute(x, {0, 1}); });
    CHECK(m.find("permute: dims [0,1] name 2 axes for [2,3,4] float64") == 0);
    m = message_of<ShapeError>([&] { permute(x, {0, -3, 1}); });
    CHECK(m.find("permute: dims [0,-3,1] repeat axis 0 of [2,3,4]") == 0);
    m = message_of<ShapeError>([&] { permute(x, {0, 1, 3}); });
    CHECK(m.find("permute: axis 3 is out of range for a tensor of rank 3") == 0);
    m = message_of<ShapeError>([&] { transpose(x, 0, -4); });
    CHECK(m.find("transpose: axis -4 is out of range for a tensor of rank 3") == 0);
    m = message_of<ShapeError>([&] { transpose(Variable(iota({3}))); });
    CHECK(m.find("transpose: needs a tensor of rank >= 2, got [3] float64") == 0);
    CHECK(has(m, "test_op_errors_shape.cpp:"));
}

TEST_CASE("squeeze and unsqueeze: bad axes") {
    Variable x(iota({2, 3}));
    auto m = message_of<ShapeError>([&] { squeeze(x, 1); });
    CHECK(m.find("squeeze: axis 1 of [2,3] has size 3, not 1") == 0);
    m = message_of<ShapeError>([&] { squeeze(x, 2); });
    CHECK(m.find("squeeze: axis 2 is out of range for a tensor of rank 2") == 0);
    m = message_of<ShapeError>([&] { unsqueeze(x, 3); });
    CHECK(m.find("unsqueeze: axis 3 is out of range for a tensor of rank 3") == 0);
    m = message_of<ShapeError>([&] { unsqueeze(x, -4); });
    CHECK(m.find("unsqueeze: axis -4 is out of range") == 0);
}

TEST_CASE("slice and narrow: bad axis, step and range") {
    Variable x(iota({2, 5}));
    auto m = message_of<ShapeError>([&] { slice(x, 2, 0, 1); });
    CHECK(m.find("slice: axis 2 is out of range for a tensor of rank 2") == 0);
    m = message_of<ValueError>([&] { slice(x, 1, 0, 5, 0); });
    CHECK(m.find("slice: step must be positive, got 0") == 0);
    m = message_of<ValueError>([&] { slice(x, 1, 5, 0, -1); });
    CHECK(m.find("slice: step must be positive, got -1") == 0);
    m = message_of<ValueError>([&] { narrow(x, 1, 3, 4); });
    CHECK(m.find("narrow: start 3 and length 4 do not fit in axis 1 of size 5 of [2,5]") == 0);
    m = message_of<ValueError>([&] { narrow(x, -1, -6, 1); });
    CHECK(m.find("narrow: start -6 and length 1 do not fit") == 0);
    m = message_of<ValueError>([&] { narrow(x, 0, 0, -1); });
    CHECK(m.find("narrow: start 0 and length -1 do not fit in axis 0 of size 2") == 0);
    m = message_of<ShapeError>([&] { narrow(x, -3, 0, 1); });
    CHECK(m.find("narrow: axis -3 is out of range") == 0);
}

TEST_CASE("concat and stack: bad lists") {
    Variable a(iota({2, 3})), b(iota({2, 4})), c(iota({2, 3}, float32)), d(iota({6}));
    auto m = message_of<ValueError>([&] { concat({}, 0); });
    CHECK(m.find("concat: needs at least one tensor") == 0);
    m = message_of<DTypeError>([&] { concat({a, a, c}, 0); });
    CHECK(m.find("concat: dtypes differ: input 0 is [2,3] float64, input 2 is [2,3] float32") == 0);
    m = message_of<ShapeError>([&] { concat({a, d}, 0); });
    CHECK(m.find("concat: ranks differ: input 0 is [2,3], input 1 is [6]") == 0);
    m = message_of<ShapeError>([&] { concat({a, b}, 0); });
    CHECK(m.find("concat: input 0 is [2,3], input 1 is [2,4]: sizes differ at axis 1 (joining "
                 "along axis 0)") == 0);
    CHECK(concat({a, b}, 1).shape() == Shape{2, 7});
    m = message_of<ShapeError>([&] { concat({a, b}, 2); });
    CHECK(m.find("concat: axis 2 is out of range for a tensor of rank 2") == 0);
    m = message_of<ValueError>([&] { concat({a, Variable()}, 0); });
    CHECK(m.find("concat: an input variable is undefined") == 0);

    m = message_of<ValueError>([&] { stack({}, 0); });
    CHECK(m.find("stack: needs at least one tensor") == 0);
    m = message_of<ShapeError>([&] { stack({a, b}, 0); });
    CHECK(m.find("stack: shapes differ: input 0 is [2,3], input 1 is [2,4]") == 0);
    m = message_of<DTypeError>([&] { stack({c, a}, 0); });
    CHECK(m.find("stack: dtypes differ: input 0 is [2,3] float32, input 1 is [2,3] float64") == 0);
    CHECK(stack({a, a}, 2).shape() == Shape{2, 3, 2});
    m = message_of<ShapeError>([&] { stack({a, a}, 3); });
    CHECK(m.find("stack: axis 3 is out of range for a tensor of rank 3") == 0);
}

TEST_CASE("split, chunk and unbind: bad sizes and axes") {
    Variable x(iota({4, 6}));
    auto m = message_of<ShapeError>([&] { split(x, {2, 3}, 1); });
    CHECK(m.find("split: sizes [2,3] add up to 5, but axis 1 of [4,6] has size 6") == 0);
    m = message_of<ShapeError>([&] { split(x, {}, 1); });
    CHECK(m.find("split: sizes [] add up to 0") == 0);
    m = message_of<ValueError>([&] { split(x, {8, -2}, 1); });
    CHECK(m.find("split: negative size -2 in [8,-2]") == 0);
    m = message_of<ShapeError>([&] { split(x, {4}, -3); });
    CHECK(m.find("split: axis -3 is out of range for a tensor of rank 2") == 0);
    m = message_of<ShapeError>([&] { chunk(x, 4, 1); });
    CHECK(m.find("chunk: axis 1 of [4,6] has size 6, not a multiple of 4") == 0);
    m = message_of<ValueError>([&] { chunk(x, 0, 1); });
    CHECK(m.find("chunk: needs n >= 1 chunks, got 0") == 0);
    m = message_of<ShapeError>([&] { chunk(x, 2, 2); });
    CHECK(m.find("chunk: axis 2 is out of range for a tensor of rank 2") == 0);
    m = message_of<ShapeError>([&] { unbind(Variable(Tensor::scalar(1.0, float64)), 0); });
    CHECK(m.find("unbind: axis 0 is out of range for a tensor of rank 0") == 0);
}

TEST_CASE("index_select and gather: indices out of range, bad index shapes") {
    Variable x(iota({4, 3}));
    auto m = message_of<ValueError>([&] { index_select(x, 0, {1, 3, 4}); });
    CHECK(m.find("index_select: index 4 (entry 2 of the list) is out of range for axis 0 of size "
                 "4 of [4,3]") == 0);
    m = message_of<ValueError>([&] { index_select(x, 1, {-1}); });
    CHECK(m.find("index_select: index -1 (entry 0 of the list) is out of range for axis 1 of "
                 "size 3") == 0);
    m = message_of<ShapeError>([&] { index_select(x, 2, {0}); });
    CHECK(m.find("index_select: axis 2 is out of range for a tensor of rank 2") == 0);

    m = message_of<ValueError>([&] { gather(x, 1, {0, 1, 3, 2}, {2, 2}); });
    CHECK(m.find("gather: index 3 at [1,0] is out of range for axis 1 of size 3 of [4,3]") == 0);
    m = message_of<ValueError>([&] { gather(x, 0, {-1}, {1, 1}); });
    CHECK(m.find("gather: index -1 at [0,0] is out of range for axis 0 of size 4") == 0);
    m = message_of<ShapeError>([&] { gather(x, 1, {0, 1, 2}, {2, 2}); });
    CHECK(m.find("gather: 3 index values for index_shape [2,2] (4 values)") == 0);
    m = message_of<ShapeError>([&] { gather(x, 1, {0, 1}, {2}); });
    CHECK(m.find("gather: index_shape [2] and x [4,3] float64 differ in rank") == 0);
    m = message_of<ShapeError>([&] { gather(x, 1, {0, 0, 0, 0, 0}, {5, 1}); });
    CHECK(m.find("gather: index_shape [5,1] exceeds x [4,3] at axis 0") == 0);
    m = message_of<ShapeError>([&] { gather(x, -3, {0}, {1, 1}); });
    CHECK(m.find("gather: axis -3 is out of range for a tensor of rank 2") == 0);
}

TEST_CASE("matmul: batched shape and dtype errors") {
    Variable a(iota({2, 3, 4})), b(iota({3, 4, 5})), c(iota({2, 5, 6})), v(iota({4}));
    auto m = message_of<ShapeError>([&] { matmul(a, b); });
    CHECK(m.find("matmul: [2,3,4] x [3,4,5]: batch dimensions [2] and [3] cannot be broadcast") ==
          0);
    m = message_of<ShapeError>([&] { matmul(a, c); });
    CHECK(m.find("matmul: [2,3,4] x [2,5,6]: inner dimensions 4 and 5 differ") == 0);
    m = message_of<ShapeError>([&] { matmul(a, c, false, true); });
    CHECK(m.find("matmul: [2,3,4] x [2,5,6]ᵀ: inner dimensions 4 and 6 differ") == 0);
    m = message_of<ShapeError>([&] { matmul(v, a); });
    CHECK(m.find("matmul: [4] x [2,3,4]: both operands need rank >= 2") == 0);
    m = message_of<DTypeError>([&] { matmul(a, Variable(iota({4, 2}, float32))); });
    CHECK(m.find("matmul: dtypes differ: [2,3,4] float64 and [4,2] float32") == 0);
    Variable p(iota({32, 64})), q(iota({128, 16}));
    m = message_of<ShapeError>([&] { matmul(p, q); });
    CHECK(m.find("matmul: [32,64] x [128,16]: inner dimensions 64 and 128 differ") == 0);
}

TEST_CASE("linear: an input of 0 features on 3 dimensions gives the bias, no division by zero") {
    const Variable x(Tensor::zeros({3, 2, 0}, float64), true);
    const Variable w(Tensor::zeros({4, 0}, float64), true), b(Tensor::ones({4}, float64), true);
    const Variable y = linear(x, w, b);
    CHECK(y.shape() == Shape{3, 2, 4});
    CHECK(y.value().to_vector() == std::vector<double>(24, 1.0));
    sum(y).backward();
    CHECK(w.grad().shape() == Shape{4, 0});
    CHECK(b.grad().to_vector() == std::vector<double>(4, 6.0));
}
