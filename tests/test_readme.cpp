// The "From PyTorch" lines of docs/from_pytorch.md (linked from the README), compiled as they
// stand (tests/CMakeLists.txt copies them into readme_from_pytorch.inc) and run on small data,
// with each line's result checked.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

TEST_CASE("from PyTorch: the lines of docs/from_pytorch.md compile and do what they say") {
    // What the lines assume: data, a model's pieces, a parameter and a direction.
    Generator gen(7);
    const std::size_t n = 10, T = 5, B = 3, dim = 4, H = 6;
    std::vector<float> pixels(n * 64);
    std::iota(pixels.begin(), pixels.end(), 0.0f);
    const std::vector<std::int64_t> tokens{1, 2, 3, 4, 0, 1, 2, 2, 2, 3, 3, 3, 0, 0, 0};
    const Tensor lengths = Tensor::from(std::vector<std::int64_t>{5, 2, 4}, {B});
    const Tensor labels = Tensor::from(std::vector<std::int64_t>{1, 0, 1}, {B});
    const Tensor y = Tensor::from(std::vector<std::int64_t>{0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, {n});
    Embedding embed(5, dim, gen);
    Linear head(H, 2, gen);
    LSTM lstm(dim, H, {}, gen);
    Variable w(Tensor::from({0.5, -0.25}, {2}, float64), true);
    const Tensor w0 = w.value().clone();
    const Tensor d = Tensor::from({1.0, 2.0}, {2}, float64);
    const GradcheckFn f = [](const std::vector<Variable>& v) { return sum(tanh(v[0])); };
    std::size_t seen = 0;
    auto train_step = [&](const Tensor& bx, const Tensor& by) {
        CHECK(bx.shape()[0] == by.shape()[0]);
        seen += by.numel();
    };

#include "readme_from_pytorch.inc"

    CHECK(x.dtype() == float32);
    CHECK(x.shape() == Shape{n, 8, 8});
    CHECK(x.xt<float>()(3, 2, 1) == pixels[3 * 64 + 2 * 8 + 1]);
    CHECK(ids.dtype() == int64);
    CHECK(e.shape() == Shape{T, B, dim});
    CHECK(out.shape() == Shape{T, B, H});
    CHECK(h.shape() == Shape{B, H});
    // h is each sequence's state at its own last step: sequence 1 (length 2) ends at t = 1.
    for (std::size_t j = 0; j < H; ++j)
        CHECK(h.value().flat(H + j) == out.value().flat((B + 1) * H + j));
    CHECK(std::isfinite(loss.item()));
    CHECK(pred.shape() == Shape{B});
    double hits = 0;
    for (std::size_t i = 0; i < B; ++i) hits += pred.value().flat(i) == labels.flat(i);
    CHECK(acc == doctest::Approx(hits / B));
    std::vector<std::int64_t> sorted = order.values<std::int64_t>();
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == Tensor::arange(n).values<std::int64_t>());
    CHECK(loader.batches() == n / 4);
    CHECK(seen == 8);  // drop_last: two full batches of 4
    for (std::size_t i = 0; i < 4 * H; ++i)
        CHECK((lstm.parameter("bias_ih_l0").value().flat(i) == 1.0) == (i >= H && i < 2 * H));
    const Tensor wh = gru.parameter("weight_hh_l0").value().to(float64);  // [3H, H]
    for (std::size_t a = 0; a < H; ++a)
        for (std::size_t b = 0; b < H; ++b) {
            double dot = 0;
            for (std::size_t r = 0; r < 3 * H; ++r) dot += wh.flat(r * H + a) * wh.flat(r * H + b);
            CHECK(dot == doctest::Approx(a == b ? 1.0 : 0.0).epsilon(1e-5).scale(1));
        }
    CHECK(w.value().to_vector() == std::vector<double>{0.5 + 1e-3, -0.25 + 2e-3});
    CHECK(mid.to_vector() == std::vector<double>{0.5 + 0.5e-3, -0.25 + 1e-3});
    REQUIRE(report.worst() != nullptr);
    CHECK(report.worst()->name == "input 0");
    CHECK(report.ok());
    CHECK(num_threads() == 1);
    set_num_threads(0);
}
