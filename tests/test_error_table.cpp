// The error table of docs/design.md, row by row: each example situation throws the class the table
// names, with the message it shows.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <type_traits>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {
// The message of the E that f throws; fails the test when f throws anything else.
template <class E, class F>
std::string thrown(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        FAIL("threw another exception: " << e.what());
    }
    FAIL("threw nothing");
    return {};
}
}  // namespace

TEST_CASE("error table: every class is a tapegrad::Error, which is a std::runtime_error") {
    static_assert(std::is_base_of_v<std::runtime_error, Error>);
    static_assert(std::is_base_of_v<Error, ShapeError>);
    static_assert(std::is_base_of_v<Error, DTypeError>);
    static_assert(std::is_base_of_v<Error, ValueError>);
    static_assert(std::is_base_of_v<Error, GraphError>);
    static_assert(std::is_base_of_v<Error, AnomalyError>);
    static_assert(std::is_base_of_v<Error, IOError>);
    // one catch clause handles any tapegrad failure
    CHECK_THROWS_AS(
        matmul(Variable(Tensor::zeros({2, 3}, float32)), Variable(Tensor::zeros({4, 2}, float32))),
        Error);
}

TEST_CASE("error table: ShapeError, matmul with inner dimensions that differ") {
    const std::string msg = thrown<ShapeError>([] {
        matmul(Variable(Tensor::zeros({32, 64}, float32)),
               Variable(Tensor::zeros({128, 16}, float32)));
    });
    CHECK(msg.find("matmul: [32,64] x [128,16]: inner dimensions 64 and 128 differ (at "
                   "test_error_table.cpp:") == 0);
}

TEST_CASE("error table: DTypeError, float32 and float64 mixed") {
    const std::string msg = thrown<DTypeError>(
        [] { mul(Variable(Tensor::zeros({3}, float32)), Variable(Tensor::zeros({3}, float64))); });
    CHECK(msg.find("mul: dtypes differ: [3] float32 and [3] float64 (at test_error_table.cpp:") ==
          0);
}

TEST_CASE("error table: ValueError, an undefined variable, in an op and in a layer") {
    CHECK(thrown<ValueError>([] {
              add(Variable(), Variable(Tensor::zeros({1}, float32)));
          }).find("add: an input variable is undefined (at test_error_table.cpp:") == 0);
    Generator gen(1);
    LSTM lstm(2, 3, {}, gen);
    const Variable x(Tensor::zeros({4, 1, 2}, float32));
    CHECK(thrown<ValueError>([&] {
              lstm.forward(Variable());
          }).find("LSTM.forward: the input is undefined") == 0);
    CHECK(thrown<ValueError>([&] {
              lstm.forward(x, {Variable(Tensor::zeros({1, 1, 3}, float32)), Variable()});
          }).find("LSTM.forward: initial state 1 is undefined") == 0);
}

TEST_CASE("error table: GraphError, misuse of the tape") {
    Variable w(Tensor::from({1.0, 2.0}, {2}, float64), true);
    Variable y = sum(w * w);
    y.backward();
    CHECK(thrown<GraphError>([&] { y.backward(); })
              .find("backward: the variable comes from a "
                    "cleared tape") == 0);
    CHECK(thrown<GraphError>([&] {
              (w * 2.0).backward();
          }).find("is not a scalar; pass grad_out of that shape") != std::string::npos);
    CHECK(thrown<GraphError>([] {
              sum(Variable(Tensor::zeros({2}, float64))).backward();
          }).find("does not require grad") != std::string::npos);
}

TEST_CASE("error table: AnomalyError, a NaN produced with anomaly mode on") {
    AnomalyGuard on;
    const std::string msg = thrown<AnomalyError>([] {
        log(Variable(Tensor::from({1.0, -1.0}, {2}, float64), true));
    });
    CHECK(msg.find(
              "log: produced NaN or Inf in its forward result [2] (at test_error_table.cpp:") == 0);
}

TEST_CASE("error table: IOError, a file that is missing") {
    const std::string msg =
        thrown<IOError>([] { load_safetensors("no_such_dir/model.safetensors"); });
    CHECK(msg.find("safetensors 'no_such_dir/model.safetensors': cannot open: No such file or "
                   "directory") == 0);
}
