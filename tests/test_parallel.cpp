// Data parallelism over the batch (train/parallel.hpp): shard boundaries, gradients equal to
// the whole batch's, errors, and bitwise determinism across thread counts.
#include <doctest/doctest.h>

#include <cblas.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/core/counters.hpp>
#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

// Restores the default thread count however a test ends.
struct Threads {
    explicit Threads(std::size_t n, bool pin = false) { set_num_threads(n, {.pin = pin}); }
    ~Threads() { set_num_threads(0); }
};

// Hidden size 40: the LSTM's 4H = 160 rows of weight gradient, the GRU's 2H = 80 of its r,z
// slice, are cut into blocks (SharedProductsScope) when there are several shards.
constexpr std::size_t hidden = 40;

struct Model {
    Generator gen;
    std::shared_ptr<Recurrent> rnn;
    std::shared_ptr<Linear> head;
    Model(const std::string& kind, DType dtype) : gen(11) {
        const RecurrentOptions options{.dtype = dtype};
        if (kind == "lstm") rnn = std::make_shared<LSTM>(3, hidden, options, gen);
        else rnn = std::make_shared<GRU>(3, hidden, options, gen);
        head = std::make_shared<Linear>(hidden, 2, gen, dtype);
    }
    std::vector<Variable> parameters() const {
        auto p = rnn->parameters();
        for (const auto& q : head->parameters()) p.push_back(q);
        return p;
    }
    // mean over the rows of x [T, b, 3] of the MSE of the head on the last hidden state
    Variable loss(const Variable& x, const Variable& y) {
        const RecurrentOutput out = rnn->forward(x);
        const Variable h = reshape(out.states[0], Shape{x.shape()[1], hidden});
        return mse_loss(head->forward(h), y);
    }
};

struct Data {
    Variable x, y;
    Data(std::size_t T, std::size_t B, DType dtype, std::uint64_t seed) {
        Generator g(seed);
        x = Variable(g.normal({T, B, 3}, 0, 1, dtype));
        y = Variable(g.normal({B, 2}, 0, 1, dtype));
    }
};

Variable rows(const Variable& v, long axis, const Shard& s) {
    return narrow(v, axis, static_cast<long>(s.begin), static_cast<long>(s.size()));
}

// Losses of `steps` Adam steps and the parameters after them, with `threads` threads, on one
// batch of `batch` sequences of length T cut into shards of `shard_rows`.
std::pair<std::vector<double>, std::vector<std::vector<double>>> train(
    const std::string& kind, std::size_t threads, int steps, std::size_t T = 6,
    std::size_t batch = 20, std::size_t shard_rows = 4, bool pin = false) {
    Threads scope(threads, pin);
    Model m(kind, float32);
    const auto params = m.parameters();
    Adam opt(params, {.lr = 1e-2});
    std::vector<double> losses;
    for (int step = 0; step < steps; ++step) {
        const Data d(T, batch, float32, 100);  // one batch, so the loss must fall
        opt.zero_grad();
        losses.push_back(parallel_backward(
            params, batch, [&](const Shard& s) { return m.loss(rows(d.x, 1, s), rows(d.y, 0, s)); },
            {.rows = shard_rows}));
        opt.step();
    }
    std::vector<std::vector<double>> values;
    for (const auto& p : params) values.push_back(p.value().to_vector());
    return {losses, values};
}

// False where the process may not bind threads to CPUs (set_num_threads says so).
bool pinning_possible() {
    try {
        Threads probe(1, true);
        return true;
    } catch (const Error&) {
        return false;
    }
}

}  // namespace

TEST_CASE("make_shards: fixed rows, the last shard takes the rest") {
    const auto s = make_shards(10, {.rows = 4});
    REQUIRE(s.size() == 3);
    CHECK((s[0].begin == 0 && s[0].end == 4 && s[0].index == 0));
    CHECK((s[1].begin == 4 && s[1].end == 8 && s[1].index == 1));
    CHECK((s[2].begin == 8 && s[2].end == 10 && s[2].size() == 2));
    CHECK(make_shards(3, {.rows = 32}).size() == 1);
    CHECK_THROWS_AS(make_shards(3, {.rows = 0}), ValueError);
}

TEST_CASE("set_num_threads governs TBB's parallelism") {
    {
        Threads scope(1);
        CHECK(num_threads() == 1);
        set_num_threads(2);
        CHECK(num_threads() == 2);
    }
    CHECK(num_threads() >= 1);
}

TEST_CASE(
    "set_num_threads(n, {.pin = true}): each shard's thread on one CPU, the caller's CPUs "
    "restored") {
    auto cpus_of_this_thread = [] {
        cpu_set_t mask;
        REQUIRE(sched_getaffinity(0, sizeof mask, &mask) == 0);
        std::vector<int> out;
        for (int k = 0; k < CPU_SETSIZE; ++k)
            if (CPU_ISSET(k, &mask)) out.push_back(k);
        return out;
    };
    const std::vector<int> before = cpus_of_this_thread();
    if (!pinning_possible()) {  // a sandbox that forbids sched_setaffinity: an Error, not a crash
        MESSAGE("this process may not bind threads to CPUs; not tested here");
        return;
    }
    Threads scope(2, true);
    CHECK(threads_pinned());
    CHECK(num_threads() == 2);
    Model m("gru", float64);
    const auto params = m.parameters();
    const Data d(4, 8, float64, 5);
    std::mutex mutex;
    std::vector<std::vector<int>> seen(4);  // by shard: the CPUs its thread may run on
    const double loss = parallel_backward(params, 8,
                                          [&](const Shard& s) {
                                              {
                                                  std::lock_guard lock(mutex);
                                                  seen[s.index] = cpus_of_this_thread();
                                              }
                                              return m.loss(rows(d.x, 1, s), rows(d.y, 0, s));
                                          },
                                          {.rows = 2});
    CHECK(std::isfinite(loss));
    for (const auto& cpus : seen) {
        REQUIRE(cpus.size() == 1);  // one CPU, and one of the caller's
        CHECK(std::find(before.begin(), before.end(), cpus[0]) != before.end());
    }
    CHECK(cpus_of_this_thread() == before);  // the caller's own mask is back
    // and back too when a shard throws
    CHECK_THROWS_WITH(parallel_backward(params, 8,
                                        [&](const Shard& s) -> Variable {
                                            if (s.index == 1)
                                                throw std::runtime_error("shard 1 failed");
                                            return m.loss(rows(d.x, 1, s), rows(d.y, 0, s));
                                        },
                                        {.rows = 2}),
                      "shard 1 failed");
    CHECK(cpus_of_this_thread() == before);
    set_num_threads(2);
    CHECK_FALSE(threads_pinned());
    parallel_backward(params, 8,
                      [&](const Shard& s) {
                          {
                              std::lock_guard lock(mutex);
                              seen[s.index] = cpus_of_this_thread();
                          }
                          return m.loss(rows(d.x, 1, s), rows(d.y, 0, s));
                      },
                      {.rows = 2});
    for (const auto& cpus : seen) CHECK(cpus == before);  // not pinned: as the caller
}

TEST_CASE("set_num_threads leaves no idle OpenBLAS thread spinning beside TBB's workers") {
    // A product on two OpenBLAS threads wakes its worker, which then spins on sched_yield
    // for ~0.1 s when nothing else comes. set_num_threads must leave OpenBLAS on one thread
    // with that worker stopped: the process then burns no CPU while it sleeps.
    openblas_set_num_threads(2);
    const int n = 512;
    std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a.data(), n, b.data(), n, 0,
                c.data(), n);
    CHECK(c[0] == doctest::Approx(0.125 * n));
    Threads scope(2);
    CHECK(openblas_get_num_threads() == 1);
    auto cpu_ms = [] {
        timespec t{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
    };
    const double before = cpu_ms();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(cpu_ms() - before < 25);
}

TEST_CASE("parallel_backward: one shard is exactly backward; shards give the batch's gradient") {
    for (const char* kind : {"lstm", "gru"}) {
        CAPTURE(kind);
        Model m(kind, float64);
        const auto params = m.parameters();
        const Data d(5, 12, float64, 3);

        const Variable whole = m.loss(d.x, d.y);
        whole.backward();
        std::vector<Tensor> expected;
        for (const auto& p : params) expected.push_back(p.grad());
        for (auto p : params) p.zero_grad();

        // one shard: the same sweep, bitwise the same gradient and loss
        const double one = parallel_backward(
            params, 12, [&](const Shard& s) { return m.loss(rows(d.x, 1, s), rows(d.y, 0, s)); },
            {.rows = 12});
        CHECK(one == whole.item());
        for (std::size_t k = 0; k < params.size(); ++k)
            CHECK(params[k].grad().to_vector() == expected[k].to_vector());
        for (auto p : params) p.zero_grad();

        // uneven shards (5, 5, 2 rows), two threads: the batch mean's gradient up to rounding
        Threads scope(2);
        const double sharded = parallel_backward(
            params, 12, [&](const Shard& s) { return m.loss(rows(d.x, 1, s), rows(d.y, 0, s)); },
            {.rows = 5});
        CHECK(sharded == doctest::Approx(whole.item()).epsilon(1e-12));
        for (std::size_t k = 0; k < params.size(); ++k) {
            CAPTURE(k);
            CHECK(max_abs_diff(params[k].grad(), expected[k]) < 1e-12);
        }
        // a second call accumulates, as backward does
        parallel_backward(params, 12,
                          [&](const Shard& s) { return m.loss(rows(d.x, 1, s), rows(d.y, 0, s)); },
                          {.rows = 5});
        CHECK(max_abs_diff(params[0].grad(), (Variable(expected[0]) * 2.0).value()) < 1e-12);
    }
}

TEST_CASE("parallel_backward: losses and parameters are bitwise equal with 1, 2 and 4 threads") {
    for (const char* kind : {"lstm", "gru"}) {
        CAPTURE(kind);
        const auto one = train(kind, 1, 10);
        const auto two = train(kind, 2, 10);
        const auto four = train(kind, 4, 10);
        CHECK(one.first == two.first);
        CHECK(one.first == four.first);
        CHECK(one.second == two.second);
        CHECK(one.second == four.second);
        if (pinning_possible()) {  // threads bound to CPUs
            const auto pinned = train(kind, 2, 10, 6, 20, 4, true);
            CHECK(one.first == pinned.first);
            CHECK(one.second == pinned.second);
        }
        CHECK(one.first.back() < one.first.front());  // and it trains
    }
    // Long enough (40 steps of 16 rows per shard) that W_hh's products are summed in parts
    // started during the sweep, which either thread may run.
    for (const char* kind : {"lstm", "gru"}) {
        CAPTURE(kind);
        const std::size_t before = detail::products_started_early();
        const auto one = train(kind, 1, 3, 40, 48, 16);
        CHECK(detail::products_started_early() > before);
        const auto two = train(kind, 2, 3, 40, 48, 16);
        const auto four = train(kind, 4, 3, 40, 48, 16);
        CHECK(one.first == two.first);
        CHECK(one.first == four.first);
        CHECK(one.second == two.second);
        CHECK(one.second == four.second);
    }
}

TEST_CASE("SharedProductsScope: a weight's gradient summed in blocks of rows is the one product") {
    // W [m, n] used at 5 steps, y_t = x_t Wᵀ: its gradient Σ c_tᵀ x_t is one deferred product,
    // cut into blocks of 64 rows (the last one partial) inside the scope, on TBB's threads.
    struct Case {
        DType dtype;
        std::size_t m, n;
        double tol;
    };
    // float32 [200, 40]: the packed kernel where the CPU has it; [300, 100]: OpenBLAS; float64
    for (const Case& c : {Case{float32, 200, 40, 1e-5}, Case{float32, 300, 100, 1e-5},
                          Case{float64, 300, 100, 1e-12}}) {
        CAPTURE(c.m);
        CAPTURE(c.n);
        Generator gen(21);
        Variable w(gen.normal({c.m, c.n}, 0, 1, c.dtype), true);
        std::vector<Variable> xs, cs;
        for (int t = 0; t < 5; ++t) {
            xs.emplace_back(gen.normal({7, c.n}, 0, 1, c.dtype));
            cs.emplace_back(gen.normal({7, c.m}, 0, 1, c.dtype));
        }
        auto gradient = [&] {
            Variable loss;
            for (std::size_t t = 0; t < xs.size(); ++t) {
                const Variable term = sum(matmul(xs[t], w, false, true) * cs[t]);
                loss = loss.defined() ? loss + term : term;
            }
            return tapegrad::grad(loss, {w})[0].value();
        };
        const Tensor whole = gradient();
        Tensor blocks;
        {
            SharedProductsScope share;
            blocks = gradient();
        }
        // Σ_t c_tᵀ x_t, computed here element by element
        Tensor expected = Tensor::zeros({c.m, c.n}, float64);
        for (std::size_t t = 0; t < xs.size(); ++t)
            for (std::size_t i = 0; i < c.m; ++i)
                for (std::size_t j = 0; j < c.n; ++j) {
                    double v = expected.flat(i * c.n + j);
                    for (std::size_t r = 0; r < 7; ++r)
                        v += cs[t].value().flat(r * c.m + i) * xs[t].value().flat(r * c.n + j);
                    expected.set_flat(i * c.n + j, v);
                }
        CHECK(max_abs_diff(blocks.to(float64), expected) < c.tol * 10);
        CHECK(max_abs_diff(blocks, whole) < c.tol);
    }
}

TEST_CASE("SharedProductsScope: a weight's products are summed in parts started during the sweep") {
    // W [m, n] used at 45 steps of 16 rows, y_t = x_t Wᵀ: 720 rows of products, summed inside
    // the scope as a part of 512 rows (32 steps), started as a task while the sweep goes on,
    // plus the last 208 at its end.
    const std::size_t m = 96, n = 40, steps = 45, b = 16;
    for (const DType dtype : {float32, float64}) {
        CAPTURE(name(dtype));
        const double tol = dtype == float32 ? 1e-4 : 1e-11;
        Generator gen(8);
        Variable w(gen.normal({m, n}, 0, 1, dtype), true);
        std::vector<Variable> xs, cs;
        for (std::size_t t = 0; t < steps; ++t) {
            xs.emplace_back(gen.normal({b, n}, 0, 1, dtype));
            cs.emplace_back(gen.normal({b, m}, 0, 1, dtype));
        }
        auto loss = [&] {
            Variable l;
            for (std::size_t t = 0; t < steps; ++t) {
                const Variable term = sum(matmul(xs[t], w, false, true) * cs[t]);
                l = l.defined() ? l + term : term;
            }
            return l;
        };
        const Tensor whole = tapegrad::grad(loss(), {w})[0].value();
        auto in_parts = [&](std::size_t threads) {
            Threads scope(threads);
            SharedProductsScope share;
            const std::size_t before = detail::products_started_early();
            const Tensor g = tapegrad::grad(loss(), {w})[0].value();
            CHECK(detail::products_started_early() == before + 1);
            return g;
        };
        const Tensor one = in_parts(1), two = in_parts(2);
        // Σ_t c_tᵀ x_t, computed here element by element
        Tensor expected = Tensor::zeros({m, n}, float64);
        for (std::size_t t = 0; t < steps; ++t)
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < n; ++j) {
                    double v = expected.flat(i * n + j);
                    for (std::size_t r = 0; r < b; ++r)
                        v += cs[t].value().flat(r * m + i) * xs[t].value().flat(r * n + j);
                    expected.set_flat(i * n + j, v);
                }
        CHECK(max_abs_diff(one.to(float64), expected) < tol);
        CHECK(max_abs_diff(one, whole) < tol);
        CHECK(one.to_vector() == two.to_vector());  // whichever thread ran the part

        // A sweep that fails after a part was started waits for it and leaves nothing behind.
        {
            SharedProductsScope share;
            Threads scope(2);
            // recorded first, so its rule runs last, after the part has started
            const Variable boom = record("boom", Tensor::scalar(0.0, dtype), {w}, [](Backward&) {
                throw ValueError("boom: backward failed on purpose");
            });
            CHECK_THROWS_AS(tapegrad::grad(boom + loss(), {w}), ValueError);
            CHECK(tapegrad::grad(loss(), {w})[0].value().to_vector() == two.to_vector());
        }
        current_tape().clear();
    }
}

TEST_CASE(
    "parallel_backward: parts of W_hh's products started during the sweep read its gates' "
    "gradients in place") {
    // 40 steps of 16 rows per shard: W_hh's 40 products are summed as a part of 32 (512 rows),
    // started mid-sweep, and the last 8 at the end. Both read the gate gradients where the
    // cell wrote them, in the joined gradient of the input projection, without stacking them.
    // (W_ih's one product of 640 rows is a part too, but one product is never stacked.)
    Threads scope(1);  // the shards on this thread, whose detail::products_read_in_place() counts
    Model m("lstm", float32);
    const auto params = m.parameters();
    const Data d(40, 32, float32, 7);
    const std::size_t started = detail::products_started_early(),
                      in_place = detail::products_read_in_place();
    parallel_backward(params, 32,
                      [&](const Shard& s) { return m.loss(rows(d.x, 1, s), rows(d.y, 0, s)); },
                      {.rows = 16});
    CHECK(detail::products_started_early() - started == 4);  // W_hh's and W_ih's, in each shard
    CHECK(detail::products_read_in_place() - in_place ==
          4);  // W_hh's part and the rest, in each shard
}

TEST_CASE("parallel_backward: bad shards and failing shards are reported") {
    // (with 2 threads either shard may fail first: messages are checked on their common part)
    Model m("lstm", float64);
    const auto params = m.parameters();
    const Data d(3, 8, float64, 5);
    Threads scope(2);
    CHECK_THROWS_WITH_AS(parallel_backward(params, 8,
                                           [&](const Shard& s) {
                                               return rows(d.y, 0, s) * 2.0;  // not a scalar
                                           },
                                           {.rows = 4}),
                         doctest::Contains("returned [4,2], not a scalar loss"), ShapeError);
    CHECK_THROWS_WITH_AS(parallel_backward(params, 8,
                                           [&](const Shard& s) {
                                               if (s.index == 1)
                                                   throw std::runtime_error("shard one failed");
                                               return m.loss(rows(d.x, 1, s), rows(d.y, 0, s));
                                           },
                                           {.rows = 4}),
                         "shard one failed", std::runtime_error);
    CHECK_THROWS_AS(parallel_backward(params, 0, [&](const Shard&) { return Variable(); }),
                    ValueError);
    CHECK_THROWS_WITH_AS(
        parallel_backward({Variable(Tensor::zeros({2}, float64))}, 8,
                          [&](const Shard& s) { return m.loss(rows(d.x, 1, s), rows(d.y, 0, s)); }),
        doctest::Contains("parameter 0 is not a leaf that requires grad"), GraphError);
    // after the failures the parameters are usable and the thread's tape is clean
    const Variable ok = m.loss(d.x, d.y);
    ok.backward();
    CHECK(params[0].grad().defined());
}
