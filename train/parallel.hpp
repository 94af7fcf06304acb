// Data parallelism over the batch with TBB: the batch is cut into shards of fixed rows, each
// shard runs forward and backward as a TBB task recording on a tape of its own, and the
// shards' parameter gradients are summed in shard order. Shard boundaries depend only on the
// batch size and ShardOptions::rows, never on the thread count, so a run gives bitwise the
// same losses and parameters with 1, 2 or 4 threads.
//
//   set_num_threads(2);
//   double loss = parallel_backward(model.parameters(), B, [&](const Shard& s) {
//       Variable x = narrow(xs, 1, s.begin, s.size());     // this shard's rows
//       return mse_loss(model(x), narrow(ys, 0, s.begin, s.size()));  // mean over its rows
//   });
//   opt.step();
//
// Inside the shards OpenBLAS runs single-threaded: TBB's workers are the only threads.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "core/variable.hpp"

namespace tapegrad {

struct ThreadOptions {
    // Each thread working on parallel_backward's shards runs on one CPU of its own: the k-th
    // thread in (the calling thread is the first) on the k-th CPU this thread may run on when
    // set_num_threads is called, for as long as it works on them; the calling thread gets its
    // own CPU mask back when the call returns. Left to themselves, the scheduler now and then
    // puts the two threads of a 2-core machine on one CPU, or moves them, in the middle of a
    // step. Off by default: on a machine busy with other work, a pinned thread cannot move
    // away from a loaded CPU. Where the process may not bind threads to CPUs (a sandbox that
    // forbids sched_setaffinity), set_num_threads throws Error.
    bool pin = false;
};

// How many threads tapegrad's parallel work may use (TBB's max_allowed_parallelism); lasts
// until the next call. 0 restores the default (every core, not pinned). OpenBLAS is set to
// one thread. Not to be called while a parallel_backward runs.
void set_num_threads(std::size_t n, ThreadOptions options = {});
std::size_t num_threads();
bool threads_pinned();  // set_num_threads(n, {.pin = true}) is in force

struct Shard {
    std::size_t index = 0;  // 0, 1, ... in batch order
    std::size_t begin = 0;  // first row of the batch
    std::size_t end = 0;    // one past the last row
    std::size_t size() const { return end - begin; }
};

struct ShardOptions {
    std::size_t rows = 32;  // rows per shard (the last one may be smaller)
};

// [0, batch) cut into shards of `rows` rows.
std::vector<Shard> make_shards(std::size_t batch, ShardOptions options = {});

// Runs loss_of(shard) for every shard in parallel, each on its own tape; loss_of returns the
// shard's loss as a scalar MEAN over its rows. Accumulates into each parameter's grad the
// gradient of the batch mean, Σ_s (rows_s / batch) · loss_s, summing shards in order, and
// returns that batch loss. Parameters must not change during the call; modules that draw
// random numbers in forward (dropout) must not share a generator between shards.
double parallel_backward(const std::vector<Variable>& params, std::size_t batch,
                         const std::function<Variable(const Shard&)>& loss_of,
                         ShardOptions options = {});

}  // namespace tapegrad
