#include "core/parallel.hpp"

#include <memory>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "core/blas.hpp"
#include "core/tape.hpp"
#include "ops/arith.hpp"

namespace tapegrad {

namespace {
std::mutex control_mutex;
std::unique_ptr<tbb::global_control> control;  // guarded by control_mutex
}  // namespace

void set_num_threads(std::size_t n) {
    use_single_threaded_blas();
    std::lock_guard lock(control_mutex);
    control.reset();
    if (n > 0) control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
}

std::size_t num_threads() {
    return tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
}

std::vector<Shard> make_shards(std::size_t batch, ShardOptions options) {
    if (options.rows == 0) throw ValueError("make_shards: ShardOptions::rows must be positive");
    std::vector<Shard> out;
    for (std::size_t b = 0; b < batch; b += options.rows)
        out.push_back({out.size(), b, std::min(batch, b + options.rows)});
    return out;
}

double parallel_backward(const std::vector<Variable>& params, std::size_t batch,
                         const std::function<Variable(const Shard&)>& loss_of, ShardOptions options) {
    const char* op = "parallel_backward";
    if (batch == 0) throw ValueError(fmt::format("{}: the batch is empty", op));
    for (std::size_t k = 0; k < params.size(); ++k)
        if (!params[k].defined() || !params[k].is_leaf() || !params[k].requires_grad())
            throw GraphError(fmt::format("{}: parameter {} is not a leaf that requires grad", op, k));
    const std::vector<Shard> shards = make_shards(batch, options);
    struct Result {
        double loss = 0;
        std::vector<Variable> grads;
    };
    std::vector<Result> results(shards.size());
    const bool anomaly = anomaly_enabled();  // the caller's mode holds in every task

    auto run = [&](std::size_t s) {
        const Shard& shard = shards[s];
        Tape tape;
        TapeScope scope(tape);
        AnomalyGuard mode(anomaly);
        Variable loss = loss_of(shard);
        if (!loss.defined() || loss.numel() != 1)
            throw ShapeError(fmt::format("{}: shard {} (rows {}..{}) returned {}, not a scalar loss", op,
                                         s, shard.begin, shard.end,
                                         loss.defined() ? to_string(loss.shape()) : "an undefined variable"));
        if (!loss.requires_grad())
            throw GraphError(fmt::format("{}: shard {}'s loss does not depend on any parameter", op, s));
        results[s].loss = loss.item();
        if (shards.size() > 1)  // the shard's share of the batch mean
            loss = loss * (static_cast<double>(shard.size()) / static_cast<double>(batch));
        // more than one shard: the one that finishes first helps with the others' weight
        // gradients, the last products of their sweeps
        std::optional<SharedProductsScope> share;
        if (shards.size() > 1) share.emplace();
        results[s].grads = grad(loss, params);
    };
    if (shards.size() == 1) {
        run(0);
    } else {
        use_single_threaded_blas();
        // one task per shard; the grain keeps TBB from merging shards
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, shards.size(), 1),
                          [&](const tbb::blocked_range<std::size_t>& r) {
                              for (std::size_t s = r.begin(); s < r.end(); ++s) run(s);
                          });
    }

    // Reduce in shard order, whatever order the tasks finished in.
    double loss = 0;
    for (std::size_t s = 0; s < shards.size(); ++s)
        loss += results[s].loss * (static_cast<double>(shards[s].size()) / static_cast<double>(batch));
    // The first two shards' gradients are added in one pass into a new tensor, the later ones
    // into that tensor in place.
    for (std::size_t k = 0; k < params.size(); ++k) {
        Tensor sum;
        bool owned = false;  // sum is a tensor of this loop's own, not a shard's gradient
        for (const Result& r : results) {
            const Variable& g = r.grads[k];
            if (!g.defined()) continue;
            if (!sum.defined()) {
                sum = g.value();
            } else if (!owned) {
                sum = add(Variable(sum), g).value();
                owned = true;
            } else {
                sum.add_(g.value());
            }
        }
        if (!sum.defined()) continue;
        Variable p = params[k];
        p.set_grad(p.grad().defined() ? add(Variable(p.grad()), Variable(sum)).value() : sum);
    }
    return loss;
}

}  // namespace tapegrad
