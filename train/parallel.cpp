#include "train/parallel.hpp"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_scheduler_observer.h>

#include "core/tape.hpp"
#include "kernels/blas.hpp"
#include "ops/arith.hpp"

namespace tapegrad {

namespace {
// A task arena whose threads are each bound to one CPU while they work in it
// (ThreadOptions::pin): the thread in slot k runs on cpus[k % cpus.size()]. A thread gets back
// the mask it came in with when it leaves, or when the arena goes (a worker still in it then
// gets no exit notification): TBB's workers are free again for other arenas, and the caller
// of parallel_backward for the rest of its program.
class PinnedArena {
public:
    PinnedArena(std::size_t n, std::vector<int> cpus)
        : arena_(static_cast<int>(n)), binder_(arena_, std::move(cpus)) {
        arena_.initialize();
        binder_.observe(true);
    }
    PinnedArena(const PinnedArena&) = delete;
    PinnedArena& operator=(const PinnedArena&) = delete;
    ~PinnedArena() {
        binder_.observe(false);
        binder_.release_all();
    }
    template <class F>
    void execute(F&& f) {
        arena_.execute(std::forward<F>(f));
    }

private:
    class Binder : public tbb::task_scheduler_observer {
    public:
        Binder(tbb::task_arena& arena, std::vector<int> cpus)
            : tbb::task_scheduler_observer(arena), cpus_(std::move(cpus)) {}
        void on_scheduler_entry(bool) override {
            const int slot = tbb::this_task_arena::current_thread_index();
            cpu_set_t mask;
            if (slot < 0 || sched_getaffinity(0, sizeof mask, &mask) != 0) return;
            {
                std::lock_guard lock(mutex_);
                held_.try_emplace(gettid(), mask);  // the mask it came in with, kept on a re-entry
            }
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpus_[static_cast<std::size_t>(slot) % cpus_.size()], &one);
            sched_setaffinity(0, sizeof one, &one);
        }
        void on_scheduler_exit(bool) override {
            std::lock_guard lock(mutex_);
            if (auto it = held_.find(gettid()); it != held_.end()) {
                sched_setaffinity(0, sizeof it->second, &it->second);
                held_.erase(it);
            }
        }
        void release_all() {
            std::lock_guard lock(mutex_);
            for (const auto& [tid, mask] : held_) sched_setaffinity(tid, sizeof mask, &mask);
            held_.clear();
        }

    private:
        std::vector<int> cpus_;  // not empty
        std::mutex mutex_;
        std::map<pid_t, cpu_set_t> held_;  // by thread: its mask before it entered
    };

    tbb::task_arena arena_;
    Binder binder_;
};

std::mutex control_mutex;
std::unique_ptr<tbb::global_control> control;  // guarded by control_mutex
std::shared_ptr<PinnedArena> pinned;           // guarded by control_mutex

std::shared_ptr<PinnedArena> pinned_arena() {
    std::lock_guard lock(control_mutex);
    return pinned;
}
}  // namespace

void set_num_threads(std::size_t n, ThreadOptions options) {
    use_single_threaded_blas();
    std::vector<int> cpus;
    if (options.pin && n > 0) {
        cpu_set_t mask;
        if (sched_getaffinity(0, sizeof mask, &mask) != 0)
            throw Error(
                fmt::format("set_num_threads({}, {{.pin = true}}): cannot read this thread's CPUs "
                            "(sched_getaffinity: {})",
                            n, std::strerror(errno)));
        // setting the mask it already has: fails only where this process may not pin threads
        if (sched_setaffinity(0, sizeof mask, &mask) != 0)
            throw Error(fmt::format(
                "set_num_threads({}, {{.pin = true}}): this process may not bind threads "
                "to CPUs (sched_setaffinity: {}); call it without pin",
                n, std::strerror(errno)));
        for (int k = 0; k < CPU_SETSIZE; ++k)
            if (CPU_ISSET(k, &mask)) cpus.push_back(k);
    }
    std::lock_guard lock(control_mutex);
    pinned.reset();
    control.reset();
    if (n > 0)
        control =
            std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
    if (!cpus.empty()) pinned = std::make_shared<PinnedArena>(n, std::move(cpus));
}

bool threads_pinned() { return pinned_arena() != nullptr; }

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
                         const std::function<Variable(const Shard&)>& loss_of,
                         ShardOptions options) {
    const char* op = "parallel_backward";
    if (batch == 0) throw ValueError(fmt::format("{}: the batch is empty", op));
    for (std::size_t k = 0; k < params.size(); ++k)
        if (!params[k].defined() || !params[k].is_leaf() || !params[k].requires_grad())
            throw GraphError(
                fmt::format("{}: parameter {} is not a leaf that requires grad", op, k));
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
            throw ShapeError(fmt::format(
                "{}: shard {} (rows {}..{}) returned {}, not a scalar loss", op, s, shard.begin,
                shard.end, loss.defined() ? to_string(loss.shape()) : "an undefined variable"));
        if (!loss.requires_grad())
            throw GraphError(
                fmt::format("{}: shard {}'s loss does not depend on any parameter", op, s));
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
        auto all = [&] {
            tbb::parallel_for(tbb::blocked_range<std::size_t>(0, shards.size(), 1),
                              [&](const tbb::blocked_range<std::size_t>& r) {
                                  for (std::size_t s = r.begin(); s < r.end(); ++s) run(s);
                              });
        };
        if (const std::shared_ptr<PinnedArena> arena = pinned_arena()) arena->execute(all);
        else all();
    }

    // Reduce in shard order, whatever order the tasks finished in.
    double loss = 0;
    for (std::size_t s = 0; s < shards.size(); ++s)
        loss +=
            results[s].loss * (static_cast<double>(shards[s].size()) / static_cast<double>(batch));
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
