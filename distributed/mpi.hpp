// Data-parallel training across processes with MPI (the optional library tapegrad::mpi).
// Every rank holds the same model and draws the same global batch, trains on its shard of it,
// and averages the gradients with MPI_Allreduce before the optimizer step: N ranks with
// batch B take the steps one process takes with batch B. Within a rank, parallel_backward
// (train/parallel.hpp) still spreads the local shard over threads.
//
//   int main(int argc, char** argv) {
//       distributed::Environment mpi(argc, argv);  // 1 rank when not started by mpirun
//       return distributed::run_guarded([&] {      // a throwing rank ends the whole job
//           Model model(gen);
//           distributed::check_same_model(model);   // names, shapes, dtypes agree on all ranks
//           distributed::broadcast_parameters(model);  // rank 0's initial values everywhere
//           Adam opt(model, {.lr = 1e-3});
//           for (int step = 0; step < steps; ++step) {
//               Batch batch = draw(B, data_gen);    // the same global batch on every rank
//               Shard mine = distributed::shard_range(B);  // this rank's rows of it
//               opt.zero_grad();
//               loss(model, rows(batch, mine)).backward();
//               distributed::average_gradients(opt.parameters());
//               opt.step();
//               if (step % 1000 == 0) distributed::on_root([&] { save(model, "model.safetensors"); });
//           }
//           return 0;
//       });
//   }
//
// Every function here is collective: all ranks call it, in the same order. MPI is called
// from the thread that created the Environment only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/variable.hpp"
#include "train/parallel.hpp"

namespace tapegrad {

class Module;
class Optimizer;
class Scheduler;

namespace distributed {

// Initialises MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) for the program's lifetime and
// finalises it on destruction. Run without mpirun, the program is one rank. Create one, at
// the top of main: MPI cannot be initialised again once finalised.
class Environment {
public:
    Environment();
    Environment(int& argc, char**& argv);
    ~Environment();
    Environment(const Environment&) = delete;
    Environment& operator=(const Environment&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }
    bool is_root() const { return rank_ == 0; }

private:
    void init(int* argc, char*** argv);
    int rank_ = 0, size_ = 1;
    bool owns_ = false;  // false when MPI was already initialised by someone else
};

bool initialized();  // MPI initialised and not yet finalised
int rank();          // this process's rank in MPI_COMM_WORLD
int size();          // the number of ranks
inline bool is_root() { return rank() == 0; }
void barrier();

// The sum and the maximum of `value` over the ranks (a batch loss, the slowest rank's time).
double all_sum(double value);
double all_max(double value);

// This rank's part of [0, n): ranks 0..n%size-1 get one row more than the rest, so the
// parts differ by at most one and depend only on n, rank and size (with n < size some parts
// are empty). Shard::index is the rank. Unequal parts need AverageOptions::share.
Shard shard_range(std::size_t n, int rank, int size);
Shard shard_range(std::size_t n);  // for this process

struct AverageOptions {
    std::size_t bucket_bytes = std::size_t{4} << 20;  // largest message per MPI_Allreduce
    // This rank's share of the global batch (its rows / all rows). Unset: each rank's
    // gradient counts 1/size, right when every rank has as many rows. Set: the result is
    // Σ_r share_r · grad_r, the gradient of the batch mean for shards of any size (the shares
    // must add up to 1).
    std::optional<double> share = std::nullopt;
};

// What one average_gradients call moved (the same numbers on every rank).
struct AverageReport {
    std::size_t bytes = 0;    // gradient bytes given to MPI_Allreduce
    std::size_t buckets = 0;  // MPI_Allreduce calls for them
    std::size_t reduced = 0;  // parameters with a gradient on at least one rank
    std::size_t filled = 0;   // of those, parameters with no gradient here (sent as zeros)
    double seconds = 0;       // wall time of the call
};

// Replaces every parameter's gradient with its average over the ranks. The gradients are
// packed into contiguous buckets of at most bucket_bytes, float32 and float64 apart, and each
// bucket is summed by one MPI_Allreduce. A parameter without a gradient on some ranks counts
// as zeros there and ends with the average on all; one without a gradient on every rank
// keeps none (the optimizer skips it, as in one process). Throws ValueError on every rank
// when the ranks pass different parameter lists (count, shapes or dtypes).
AverageReport average_gradients(const std::vector<Variable>& params,
                                const AverageOptions& options = {});

// Totals since the start (or reset_comm_stats), on this rank.
struct CommStats {
    std::uint64_t average_calls = 0;
    std::uint64_t allreduce_calls = 0;  // bucket allreduces
    std::uint64_t allreduce_bytes = 0;  // gradient payload given to them
    std::uint64_t control_bytes = 0;    // small agreement messages (layouts, gradient masks)
    std::uint64_t broadcast_bytes = 0;  // parameters and optimizer state
    double average_seconds = 0;         // wall time inside average_gradients
};
const CommStats& comm_stats();
void reset_comm_stats();

// Bytes each rank sends to reduce `bytes` over `ranks` with a bandwidth-optimal (ring)
// allreduce: 2 (ranks - 1) / ranks · bytes.
double ring_allreduce_bytes(std::size_t bytes, int ranks);

// Copies the root's parameter values to every rank (MPI_Bcast, bucketed as above). Throws
// ValueError on every rank when the parameter lists differ in count, shapes or dtypes.
void broadcast_parameters(const std::vector<Variable>& params, int root = 0);
void broadcast_parameters(const Module& module, int root = 0);

// Copies the root's optimizer state (moments, step counts, group lrs) and the state of the
// schedulers given to every rank, through Optimizer::state_dict / load_state_dict. Broadcast
// the parameters as well: the state does not hold them. A rank where loading fails makes
// every rank throw its error.
void broadcast_optimizer_state(Optimizer& optimizer,
                               std::initializer_list<Scheduler*> schedulers = {}, int root = 0);

// Copies the root's bytes to every rank (small run state: step counters, generator states).
void broadcast_string(std::string& data, int root = 0);

// Start-up check that every rank built the same model: compares the parameters' names,
// shapes and dtypes with rank 0's (a hash, then the full list only when they differ) and
// throws ValueError on every rank naming the first difference:
//   check_same_model: parameter 2 differs: rank 0 has 'head.weight' [2,8] float32, rank 1 has
//   'head.weight' [3,8] float32
void check_same_model(const std::vector<std::pair<std::string, Variable>>& named_params);
void check_same_model(const Module& module);

// Runs fn on the root only (writing checkpoints, printing), then on every rank returns or
// throws what fn threw there (same error type; the message ends "(raised on rank 0)" on the
// others). Every rank waits until fn has finished: a barrier. fn must not call the
// collective functions here (the other ranks are not calling them).
void on_root(const std::function<void()>& fn, int root = 0);

// Runs fn on every rank (each loading a checkpoint, say); if it throws on any rank, every
// rank throws the error of the lowest such rank. Resuming on any number of ranks: all ranks
// load the files (on_all), or the root loads them (on_root) and broadcast_parameters and
// broadcast_optimizer_state copy them.
void on_all(const std::function<void()>& fn);

namespace detail {
int run_guarded(const std::function<int()>& fn);
}

// Runs fn (returning int, or void for 0) and returns its result. If it throws, prints
// "rank R: <what>" to stderr and, with more than one rank, ends the whole job with MPI_Abort
// (exit code 1) so that no rank waits forever in a collective; with one rank returns 1.
template <class F>
int run_guarded(F&& fn) {
    return detail::run_guarded([&]() -> int {
        if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
            fn();
            return 0;
        } else {
            return static_cast<int>(fn());
        }
    });
}

}  // namespace distributed
}  // namespace tapegrad
