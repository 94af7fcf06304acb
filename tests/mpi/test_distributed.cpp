// Data-parallel training over MPI (distributed/mpi.hpp), run by ctest under mpirun:
//   test_distributed train     10 steps with the batch split over the ranks give the parameters
//                              of one process on the whole batch (computed here on rank 0), to
//                              1e-6 relative; a checkpoint written by rank 0 (model, optimizer,
//                              schedule) resumes on the ranks and in one process; gradients
//                              missing on some ranks; buckets
//   test_distributed mismatch  different models on rank 1 are reported on every rank
//   test_distributed abort     rank 1 throws while rank 0 waits in an allreduce: the job ends
//   test_distributed single    without mpirun: one rank, misuse errors, shard_range
#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <mpi.h>

#include <tapegrad/distributed/mpi.hpp>
#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;
namespace dist = tapegrad::distributed;
namespace fs = std::filesystem;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
    if (ok) return;
    ++failures;
    const int r = dist::initialized() ? dist::rank() : 0;
    fmt::print(stderr, "rank {}: FAILED: {}\n", r, what);
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

constexpr std::size_t T = 5, B = 8, F = 3, H = 6, O = 2;

// LSTM over [T, b, F], a linear head on the last hidden state: MSE against y [b, O].
struct Net : Module {
    std::shared_ptr<LSTM> rnn;
    std::shared_ptr<Linear> head;
    Net(std::uint64_t seed, DType dtype, std::size_t hidden = H, std::size_t layers = 1)
        : Module("Net") {
        Generator gen(seed);
        const RecurrentOptions options{.num_layers = layers, .dtype = dtype};
        rnn = register_module("rnn", std::make_shared<LSTM>(F, hidden, options, gen));
        head = register_module("head", std::make_shared<Linear>(hidden, O, gen, dtype));
    }
    Variable loss(const Variable& x, const Variable& y) {
        const Variable h =
            squeeze(narrow(rnn->forward(x).states[0], 0, -1, 1), 0);  // last layer [b, H]
        return mse_loss(head->forward(h), y);
    }
};

// The global batch of a step: the same on every rank.
struct Batch {
    Variable x, y;
    Batch(int step, DType dtype) {
        Generator g(1000 + static_cast<std::uint64_t>(step));
        x = Variable(g.normal({T, B, F}, 0, 1, dtype));
        y = Variable(g.normal({B, O}, 0, 1, dtype));
    }
};

Variable rows(const Variable& v, long axis, std::size_t begin, std::size_t n) {
    return narrow(v, axis, static_cast<long>(begin), static_cast<long>(n));
}

std::unique_ptr<Optimizer> make_optimizer(Net& net, DType dtype) {
    if (dtype == float64) return std::make_unique<Adam>(Params(net), AdamOptions{.lr = 1e-2});
    return std::make_unique<SGD>(Params(net), SGDOptions{.lr = 0.1, .momentum = 0.9});
}

// One step on this rank's rows of the batch (parallel_backward over shards of 2 rows), the
// gradients averaged over the ranks.
void distributed_step(Net& net, Optimizer& opt, LRScheduler& schedule, int step, DType dtype) {
    const Batch batch(step, dtype);
    const Shard mine = dist::shard_range(B);
    const Variable x = rows(batch.x, 1, mine.begin, mine.size()),
                   y = rows(batch.y, 0, mine.begin, mine.size());
    opt.zero_grad();
    parallel_backward(net.parameters(), mine.size(),
                      [&](const Shard& s) {
                          return net.loss(rows(x, 1, s.begin, s.size()),
                                          rows(y, 0, s.begin, s.size()));
                      },
                      {.rows = 2});
    // Equal shards: each rank's gradient counts 1/size; otherwise by its share of the rows.
    dist::AverageOptions options;
    if (B % static_cast<std::size_t>(dist::size()) != 0)
        options.share = static_cast<double>(mine.size()) / static_cast<double>(B);
    const dist::AverageReport report = dist::average_gradients(opt.parameters(), options);
    std::size_t bytes = 0;
    for (const Variable& p : net.parameters()) bytes += p.value().nbytes();
    expect(dist::size() == 1 || report.bytes == bytes,
           fmt::format("average_gradients reduced {} bytes, the gradients hold {}", report.bytes,
                       bytes));
    opt.step();
    schedule.step();
}

// One process, the whole batch, plain backward.
void reference_step(Net& net, Optimizer& opt, LRScheduler& schedule, int step, DType dtype) {
    const Batch batch(step, dtype);
    opt.zero_grad();
    net.loss(batch.x, batch.y).backward();
    opt.step();
    schedule.step();
}

// max |a - b| <= tol * max |b|, for every parameter.
void expect_close(const Net& a, const Net& b, double tol, const std::string& what) {
    const auto pa = a.named_parameters(), pb = b.named_parameters();
    double worst = 0;
    for (std::size_t k = 0; k < pa.size(); ++k) {
        const Tensor& va = pa[k].second.value();
        const Tensor& vb = pb[k].second.value();
        double scale = 0;
        for (const double v : vb.to_vector()) scale = std::max(scale, std::abs(v));
        const double diff = max_abs_diff(va, vb);
        worst = std::max(worst, diff / scale);
        expect(diff <= tol * scale, fmt::format("{}: {} differs by {:.3g}, {:.3g} relative", what,
                                                pa[k].first, diff, diff / scale));
    }
    fmt::print("{}: largest difference {:.2g} relative\n", what, worst);
}

// Every rank holds bitwise the same parameters.
void expect_same_on_all_ranks(const Net& net, const std::string& what) {
    std::vector<double> values;
    for (const Variable& p : net.parameters())
        for (const double v : p.value().to_vector()) values.push_back(v);
    std::vector<double> lo(values), hi(values);
    MPI_Allreduce(MPI_IN_PLACE, lo.data(), static_cast<int>(lo.size()), MPI_DOUBLE, MPI_MIN,
                  MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, hi.data(), static_cast<int>(hi.size()), MPI_DOUBLE, MPI_MAX,
                  MPI_COMM_WORLD);
    expect(lo == hi, what + ": the ranks hold different parameters");
}

void train_case(DType dtype, const fs::path& dir) {
    const std::string tag(name(dtype));
    const int me = dist::rank();
    // Each rank initialises differently; broadcast_parameters gives all of them rank 0's values.
    Net net(100 + static_cast<std::uint64_t>(me), dtype);
    dist::check_same_model(net);
    dist::broadcast_parameters(net);
    Net initial(100, dtype);
    auto opt = make_optimizer(net, dtype);
    StepLR schedule(*opt, 3, 0.5);  // halves the lr at steps 3, 6, 9
    const auto model_file = (dir / (tag + "_model.safetensors")).string();
    const auto optim_file = (dir / (tag + "_optim.safetensors")).string();
    for (int step = 0; step < 10; ++step) {
        distributed_step(net, *opt, schedule, step, dtype);
        if (step == 4)
            dist::on_root([&] {  // a checkpoint after 5 steps, written by rank 0
                save(net, model_file);
                save(*opt, optim_file, {&schedule});
            });
    }
    expect_same_on_all_ranks(net, tag + " training");

    // Resumed on all ranks from rank 0's checkpoint: rank 0 reads it, the others receive it.
    Net resumed(500 + static_cast<std::uint64_t>(me), dtype);
    auto resumed_opt = make_optimizer(resumed, dtype);
    StepLR resumed_schedule(*resumed_opt, 3, 0.5);
    dist::on_root([&] {
        load(resumed, model_file);
        load(*resumed_opt, optim_file, {&resumed_schedule});
    });
    dist::broadcast_parameters(resumed);
    dist::broadcast_optimizer_state(*resumed_opt, {&resumed_schedule});
    expect(resumed_opt->step_count() == 5,
           fmt::format("{}: the resumed optimizer is at step {}, not 5", tag,
                       resumed_opt->step_count()));
    expect(resumed_schedule.last_epoch() == 5,
           fmt::format("{}: the resumed schedule is at epoch {}, not 5", tag,
                       resumed_schedule.last_epoch()));
    for (int step = 5; step < 10; ++step)
        distributed_step(resumed, *resumed_opt, resumed_schedule, step, dtype);
    expect_same_on_all_ranks(resumed, tag + " resumed training");

    if (me == 0) {  // the same 10 steps in one process with the whole batch
        Net single(100, dtype);
        auto single_opt = make_optimizer(single, dtype);
        StepLR single_schedule(*single_opt, 3, 0.5);
        for (int step = 0; step < 10; ++step)
            reference_step(single, *single_opt, single_schedule, step, dtype);
        expect_close(net, single, 1e-6,
                     tag + " " + std::to_string(dist::size()) + " ranks vs 1 process");
        expect_close(resumed, single, 1e-6, tag + " resumed on the ranks vs 1 process");
        // Resumed in one process from the checkpoint the ranks wrote.
        Net one(7, dtype);
        auto one_opt = make_optimizer(one, dtype);
        StepLR one_schedule(*one_opt, 3, 0.5);
        load(one, model_file);
        load(*one_opt, optim_file, {&one_schedule});
        for (int step = 5; step < 10; ++step)
            reference_step(one, *one_opt, one_schedule, step, dtype);
        expect_close(one, single, 1e-6, tag + " resumed in 1 process vs 1 process");
        double moved = 0;  // the test means something only if training moved the parameters
        for (std::size_t k = 0; k < net.parameters().size(); ++k)
            moved = std::max(
                moved, max_abs_diff(net.parameters()[k].value(), initial.parameters()[k].value()));
        expect(moved > 1e-2,
               fmt::format("{}: training moved the parameters by only {}", tag, moved));
    }
}

// Parameters with a gradient on some ranks only count as zeros on the others; one with no
// gradient anywhere keeps none. Small buckets split the gradients into several messages.
void missing_gradients_case() {
    const int me = dist::rank(), n = dist::size();
    Variable a(Tensor::full({3}, 1.0 + me, float64), true),
        b(Tensor::full({2, 2}, 0.0, float32), true), c(Tensor::full({4}, 0.0, float64), true),
        d(Tensor::full({300}, 0.0, float64), true);
    if (me == 0) b.set_grad(Tensor::full({2, 2}, 4.0, float32));
    a.set_grad(Tensor::full({3}, 2.0 * (me + 1), float64));  // mean over ranks: n + 1
    d.set_grad(Tensor::full({300}, 1.0, float64));
    const dist::AverageReport r = dist::average_gradients({a, b, c, d}, {.bucket_bytes = 512});
    expect(a.grad().to_vector() == std::vector<double>(3, n + 1.0),
           "a: not the mean of 2 (rank + 1)");
    expect(b.grad().defined() && std::abs(b.grad().flat(3) - 4.0 / n) < 1e-6,  // float32
           "b: a gradient on rank 0 only is not averaged with zeros");
    expect(!c.grad().defined(), "c: no rank has a gradient, yet it has one");
    expect(d.grad().to_vector() == std::vector<double>(300, 1.0), "d: not 1 everywhere");
    if (n > 1) {
        // float32: 4 elements in one bucket; float64: 3 + 300 elements = 2424 bytes in 5 buckets of 512
        expect(r.bytes == 16 + 2424, fmt::format("reduced {} bytes, expected 2440", r.bytes));
        expect(r.buckets == 1 + 5, fmt::format("{} buckets, expected 6", r.buckets));
        expect(r.reduced == 3 && r.filled == (me == 0 ? 0u : 1u),
               fmt::format("reduced {} filled {}", r.reduced, r.filled));
    }
    // Shares: rank r counts (r + 1) / (n (n + 1) / 2) of the batch.
    const double share = (me + 1.0) / (n * (n + 1) / 2.0);
    a.set_grad(Tensor::full({3}, 6.0, float64));
    dist::average_gradients({a}, {.share = share});
    expect(std::abs(a.grad().flat(0) - 6.0) < 1e-12,
           fmt::format("share-weighted mean {} instead of 6", a.grad().flat(0)));
}

int train_mode() {
    // The checkpoint folder is rank 0's choice.
    std::string dir;
    if (dist::rank() == 0) {
        std::string pattern = (fs::temp_directory_path() / "tapegrad_mpi_XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw IOError("test_distributed: mkdtemp failed");
        dir = pattern;
    }
    dist::broadcast_string(dir);
    missing_gradients_case();
    train_case(float64, dir);
    train_case(float32, dir);
    dist::on_root([&] { fs::remove_all(dir); });
    return 0;
}

// The error must arrive on every rank, with the message naming what differs.
template <class F>
void expect_error_everywhere(F&& f, const std::vector<std::string>& parts,
                             const std::string& what) {
    std::string message;
    try {
        f();
    } catch (const ValueError& e) {
        message = e.what();
    }
    expect(!message.empty(), what + ": no ValueError");
    for (const auto& part : parts)
        expect(contains(message, part),
               fmt::format("{}: '{}' does not say '{}'", what, message, part));
}

int mismatch_mode() {
    const int me = dist::rank();
    Net same(1, float32);
    dist::check_same_model(same);  // no error: every rank builds the same model
    {
        Net net(1, float32, me == 1 ? H + 1 : H);  // rank 1: hidden size 7
        expect_error_everywhere([&] { dist::check_same_model(net); },
                                {"check_same_model: parameter 0 differs",
                                 "rank 0 has 'rnn.weight_ih_l0' [24,3] float32",
                                 "rank 1 has 'rnn.weight_ih_l0' [28,3] float32"},
                                "a different hidden size");
    }
    {
        Net net(1, float32, H, me == 1 ? 2 : 1);  // rank 1: two layers
        expect_error_everywhere(
            [&] { dist::check_same_model(net); },
            {"check_same_model: parameter 4 differs", "rank 0 has 'head.weight' [2,6] float32",
             "rank 1 has 'rnn.weight_ih_l1' [24,6] float32"},
            "a different layer count");
        // Without the start-up check, average_gradients says the lists differ instead of hanging.
        for (const Variable& p : net.parameters())
            Variable(p).set_grad(Tensor::zeros(p.shape(), p.dtype()));
        expect_error_everywhere(
            [&] { dist::average_gradients(net.parameters()); },
            {"average_gradients: the ranks pass different parameter lists (6 to 10 parameters)"},
            "average_gradients over different lists");
    }
    {
        Net net(1, me == 1 ? float64 : float32);  // rank 1: float64
        expect_error_everywhere([&] { dist::broadcast_parameters(net); },
                                {"broadcast_parameters: the ranks pass 6 parameters each, but "
                                 "their shapes or dtypes differ"},
                                "broadcast_parameters over different dtypes");
    }
    // A failure on one rank inside on_all reaches the others with its rank.
    std::string message;
    try {
        dist::on_all([&] {
            if (me == 1) throw IOError("cannot read the checkpoint");
        });
    } catch (const IOError& e) {
        message = e.what();
    }
    expect(me == 1 ? message == "cannot read the checkpoint"
                   : message == "cannot read the checkpoint (raised on rank 1)",
           "on_all: got '" + message + "'");
    return 0;
}

int abort_mode() {
    const int me = dist::rank();
    Net net(1, float32);
    Adam opt(net, {.lr = 1e-2});
    StepLR schedule(opt, 3, 0.5);
    for (int step = 0; step < 10; ++step) {
        if (me == 1 && step == 3) throw ValueError("deliberate failure on rank 1 at step 3");
        distributed_step(net, opt, schedule, step,
                         float32);  // rank 0 waits here for rank 1 at step 3
    }
    fmt::print(stderr, "rank {}: FAILED: training finished although rank 1 threw\n", me);
    return 0;
}

int single_mode() {
    expect(dist::size() == 1, "not one rank");
    const Shard all = dist::shard_range(B);
    expect(all.begin == 0 && all.end == B, "one rank does not get the whole batch");
    // Parts cover [0, n) in order and differ in size by at most one.
    for (std::size_t n : {0, 1, 7, 8, 100})
        for (int size = 1; size <= 5; ++size) {
            std::size_t next = 0, lo = n, hi = 0;
            for (int r = 0; r < size; ++r) {
                const Shard s = dist::shard_range(n, r, size);
                expect(s.begin == next && s.index == static_cast<std::size_t>(r),
                       fmt::format("shard_range({}, {}, {}) starts at {}", n, r, size, s.begin));
                next = s.end;
                lo = std::min(lo, s.size());
                hi = std::max(hi, s.size());
            }
            expect(next == n && hi - lo <= 1,
                   fmt::format("shard_range over {} rows and {} ranks", n, size));
        }
    bool threw = false;
    try {
        dist::shard_range(10, 2, 2);
    } catch (const ValueError& e) {
        threw = contains(e.what(), "rank 2 of 2 ranks");
    }
    expect(threw, "shard_range(10, 2, 2) does not throw ValueError");
    // One rank: gradients stay as they are, nothing is sent.
    Net net(3, float64);
    const Batch batch(0, float64);
    net.loss(batch.x, batch.y).backward();
    std::vector<Tensor> before;
    for (const Variable& p : net.parameters()) before.push_back(p.grad().clone());
    const auto report = dist::average_gradients(net.parameters());
    for (std::size_t k = 0; k < before.size(); ++k)
        expect(max_abs_diff(before[k], net.parameters()[k].grad()) == 0,
               "one rank changed a gradient");
    expect(report.bytes == 0 && report.reduced == before.size(), "one rank sent gradients");
    dist::check_same_model(net);
    dist::broadcast_parameters(net);
    bool ran = false;
    dist::on_root([&] { ran = true; });
    expect(ran, "on_root did not run on rank 0");
    // One rank: run_guarded prints the error and returns 1.
    expect(dist::run_guarded(
               [] { throw ValueError("a failure in one process (expected by the test)"); }) == 1,
           "run_guarded did not return 1");
    expect(dist::run_guarded([] { return 7; }) == 7, "run_guarded did not return fn's result");
    missing_gradients_case();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "train";
    // Before the Environment exists, MPI calls are misuse.
    bool threw = false;
    try {
        dist::rank();
    } catch (const Error& e) {
        threw = contains(e.what(), "create a tapegrad::distributed::Environment");
    }
    expect(threw, "rank() before the Environment does not say to create one");

    dist::Environment env(argc, argv);
    set_num_threads(1);  // the ranks share the cores
    const int rc = dist::run_guarded([&] {
        if (mode == "train") return train_mode();
        if (mode == "mismatch") return mismatch_mode();
        if (mode == "abort") return abort_mode();
        if (mode == "single") return single_mode();
        throw ValueError("test_distributed: unknown mode '" + mode +
                         "' (train, mismatch, abort, single)");
    });
    int all = failures;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (env.rank() == 0)
        fmt::print("test_distributed {}: {} ranks, {} failure(s)\n", mode, env.size(), all);
    return rc != 0 ? rc : all == 0 ? 0 : 1;
}
