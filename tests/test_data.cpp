// randperm, take and DataLoader: every sample once per epoch, in order or shuffled by seed,
// partial or dropped last batches, sample axes other than 0, int64 labels, and batches that
// parallel_backward's shards cut as the whole batch would be computed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::has;
using tapegrad::test::message_of;

namespace {
using Ints = std::vector<std::int64_t>;

Ints sorted(Ints v) {
    std::sort(v.begin(), v.end());
    return v;
}

Ints iota(std::size_t n) {
    Ints v(n);
    std::iota(v.begin(), v.end(), 0);
    return v;
}
}  // namespace

TEST_CASE("randperm: a permutation, the same for the same generator state") {
    Generator a(11), b(11);
    const Tensor p = randperm(50, a);
    CHECK(p.dtype() == int64);
    CHECK(p.shape() == Shape{50});
    CHECK(sorted(p.values<std::int64_t>()) == iota(50));
    CHECK(p.values<std::int64_t>() != iota(50));  // shuffled (1 in 50! to fail by chance)
    CHECK(randperm(50, b).values<std::int64_t>() == p.values<std::int64_t>());
    CHECK(randperm(50, a).values<std::int64_t>() != p.values<std::int64_t>());  // state moved
    CHECK(randperm(0, a).numel() == 0);
    CHECK(randperm(1, a).values<std::int64_t>() == Ints{0});
}

TEST_CASE("take: entries of an axis in a given order, any dtype") {
    const Tensor x = Tensor::arange(0, 24, 1, float32);
    Tensor x3 = Tensor::zeros({2, 3, 4}, float32);
    x3.copy_(Tensor::from(x.to_vector(), {2, 3, 4}, float32));
    const Tensor t = take(x3, 1, {2, 0});
    CHECK(t.shape() == Shape{2, 2, 4});
    CHECK(t.to_vector() == std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3,  //
                                               20, 21, 22, 23, 12, 13, 14, 15});
    CHECK(take(Tensor::from(Ints{5, 6, 7}, {3}), 0, {2, 2}).values<std::int64_t>() == Ints{7, 7});
    CHECK(message_of<ValueError>([&] {
              (void)take(x3, 1, {0, 3});
          }) == "take: index 3 (entry 1) is out of range for axis 1 of shape [2,3,4]");
    CHECK(has(message_of<ShapeError>([&] { (void)take(x3, 3, {0}); }), "take: axis 3"));
}

TEST_CASE("DataLoader: index batches in order, partial or dropped last batch") {
    DataLoader loader(10, {.batch_size = 4});
    CHECK(loader.batches() == 3);
    std::vector<Ints> got;
    for (const Batch& b : loader.epoch()) got.push_back(b.indices.values<std::int64_t>());
    CHECK(got == std::vector<Ints>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});

    DataLoader dropping(10, {.batch_size = 4, .drop_last = true});
    CHECK(dropping.batches() == 2);
    std::size_t n = 0;
    for (const Batch& b : dropping.epoch()) {
        CHECK(b.size() == 4);
        CHECK_FALSE(b.x.defined());
        ++n;
    }
    CHECK(n == 2);
    CHECK(DataLoader(8, {.batch_size = 4, .drop_last = true}).batches() == 2);
    CHECK(message_of<ValueError>([] { DataLoader(3, {.batch_size = 0}); }) ==
          "DataLoader: batch_size must be positive");
}

TEST_CASE("DataLoader: shuffled, every sample once per epoch, a new order each epoch, by seed") {
    auto epoch_of = [](DataLoader& l) {
        Ints all;
        for (const Batch& b : l.epoch())
            for (auto i : b.indices.values<std::int64_t>()) all.push_back(i);
        return all;
    };
    DataLoader a(37, {.batch_size = 8, .shuffle = true, .seed = 3});
    DataLoader b(37, {.batch_size = 8, .shuffle = true, .seed = 3});
    DataLoader c(37, {.batch_size = 8, .shuffle = true, .seed = 4});
    const Ints first = epoch_of(a), second = epoch_of(a);
    CHECK(sorted(first) == iota(37));
    CHECK(sorted(second) == iota(37));
    CHECK(first != second);
    CHECK(first != iota(37));
    CHECK(epoch_of(b) == first);  // same seed, same batches
    CHECK(epoch_of(b) == second);
    CHECK(epoch_of(c) != first);
}

TEST_CASE("DataLoader: (x, y) batches along each one's sample axis, int64 labels") {
    // x: [T = 2, N = 5, F = 1] with x[t][n] = 10 t + n; y: int64 [5] with y[n] = 100 + n.
    std::vector<double> xv;
    for (int t = 0; t < 2; ++t)
        for (int n = 0; n < 5; ++n) xv.push_back(10 * t + n);
    const Tensor x = Tensor::from(xv, {2, 5, 1}, float64);
    const Tensor y = Tensor::from(Ints{100, 101, 102, 103, 104}, {5});
    DataLoader loader(x, y, {.batch_size = 2, .shuffle = true, .x_axis = 1, .seed = 1});
    CHECK(loader.samples() == 5);
    std::size_t seen = 0;
    for (const Batch& b : loader.epoch()) {
        const Ints idx = b.indices.values<std::int64_t>();
        REQUIRE(b.x.shape() == Shape{2, idx.size(), 1});
        REQUIRE(b.y.shape() == Shape{idx.size()});
        CHECK(b.y.dtype() == int64);
        for (std::size_t j = 0; j < idx.size(); ++j) {
            CHECK(b.y.values<std::int64_t>()[j] == 100 + idx[j]);
            CHECK(b.x.flat(j) == static_cast<double>(idx[j]));                      // t = 0
            CHECK(b.x.flat(idx.size() + j) == 10.0 + static_cast<double>(idx[j]));  // t = 1
        }
        seen += idx.size();
    }
    CHECK(seen == 5);
    CHECK(has(
        message_of<ShapeError>([&] { DataLoader(x, Tensor::zeros({4}, int64), {.x_axis = 1}); }),
        "DataLoader: x [2,5,1] holds 5 samples along axis 1, y [4] holds 4 along axis 0"));
    CHECK(has(message_of<ShapeError>([&] { DataLoader(x, y, {.x_axis = 3}); }),
              "x_axis 3 is out of range for x [2,5,1]"));
}

TEST_CASE("DataLoader batches feed parallel_backward's shards as one batch") {
    Generator gen(5);
    const Tensor x = gen.normal({40, 3}, 0, 1, float64);
    const Tensor y = gen.normal({40, 1}, 0, 1, float64);
    Linear model(3, 1, gen, float64);
    DataLoader loader(x, y, {.batch_size = 16, .shuffle = true, .seed = 2});
    set_num_threads(2);
    for (const Batch& b : loader.epoch()) {
        // The whole batch at once ...
        model.zero_grad();
        const double whole = mse_loss(model(Variable(b.x)), Variable(b.y)).value().item();
        mse_loss(model(Variable(b.x)), Variable(b.y)).backward();
        std::vector<Tensor> want;
        for (const auto& p : model.parameters()) want.push_back(p.grad());
        // ... and cut into shards of 5 rows.
        model.zero_grad();
        const double sharded = parallel_backward(
            model.parameters(), b.size(),
            [&](const Shard& s) {
                return mse_loss(model(narrow(Variable(b.x), 0, static_cast<long>(s.begin),
                                             static_cast<long>(s.size()))),
                                narrow(Variable(b.y), 0, static_cast<long>(s.begin),
                                       static_cast<long>(s.size())));
            },
            {.rows = 5});
        CHECK(sharded == doctest::Approx(whole).epsilon(1e-12));
        const auto params = model.parameters();
        for (std::size_t i = 0; i < params.size(); ++i)
            CHECK(max_abs_diff(params[i].grad(), want[i]) < 1e-12);
    }
    set_num_threads(0);  // the default again
}
