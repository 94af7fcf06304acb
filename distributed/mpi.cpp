#include "distributed/mpi.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <mpi.h>

#include "core/error.hpp"
#include "layers/module.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedule.hpp"

namespace tapegrad::distributed {

namespace {

using Clock = std::chrono::steady_clock;

CommStats stats;

// MPI counts are ints: larger transfers go in pieces of this many elements at most.
constexpr std::size_t max_count = std::size_t{1} << 30;

void require_ready(const char* op) {
    if (!initialized())
        throw Error(fmt::format(
            "distributed::{}: MPI is not initialised: create a tapegrad::distributed::Environment "
            "at the start of main (it must live until main returns)",
            op));
    int main_thread = 0;
    MPI_Is_thread_main(&main_thread);
    if (!main_thread)
        throw Error(
            fmt::format("distributed::{}: called from a thread other than the one that created the "
                        "Environment; MPI runs with MPI_THREAD_FUNNELED",
                        op));
}

void check(int rc, const char* op, const char* call) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(fmt::format("distributed::{}: {} failed: {}", op, call,
                            std::string(text, static_cast<std::size_t>(len))));
}

int world_rank() {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int world_size() {
    int s = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

template <class T>
MPI_Datatype mpi_type() {
    return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

// FNV-1a over 64-bit words.
struct Hash {
    std::uint64_t value = 1469598103934665603ULL;
    void add(std::uint64_t word) {
        for (int i = 0; i < 8; ++i) {
            value ^= (word >> (8 * i)) & 0xFF;
            value *= 1099511628211ULL;
        }
    }
    void add(std::string_view text) {
        add(text.size());
        for (const char c : text) add(static_cast<unsigned char>(c));
    }
};

// The dtype and shape of every parameter, hashed.
std::uint64_t layout_hash(const std::vector<Variable>& params) {
    Hash h;
    for (const Variable& p : params) {
        h.add(static_cast<std::uint64_t>(p.dtype()));
        h.add(p.dim());
        for (const std::size_t d : p.shape()) h.add(d);
    }
    return h.value;
}

// ---- Failures agreed on by all ranks ----

enum class Kind : int { error, shape, dtype, value, graph, anomaly, io };

std::pair<Kind, std::string> describe(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const ShapeError& x) {
        return {Kind::shape, x.what()};
    } catch (const DTypeError& x) {
        return {Kind::dtype, x.what()};
    } catch (const ValueError& x) {
        return {Kind::value, x.what()};
    } catch (const GraphError& x) {
        return {Kind::graph, x.what()};
    } catch (const AnomalyError& x) {
        return {Kind::anomaly, x.what()};
    } catch (const IOError& x) {
        return {Kind::io, x.what()};
    } catch (const std::exception& x) {
        return {Kind::error, x.what()};
    } catch (...) {
        return {Kind::error, "an exception that is not a std::exception"};
    }
}

[[noreturn]] void throw_kind(Kind kind, const std::string& message) {
    switch (kind) {
        case Kind::shape: throw ShapeError(message);
        case Kind::dtype: throw DTypeError(message);
        case Kind::value: throw ValueError(message);
        case Kind::graph: throw GraphError(message);
        case Kind::anomaly: throw AnomalyError(message);
        case Kind::io: throw IOError(message);
        case Kind::error: break;
    }
    throw Error(message);
}

void bcast_bytes(char* data, std::size_t n, int root, const char* op) {
    for (std::size_t off = 0; off < n; off += max_count) {
        const auto count = static_cast<int>(std::min(max_count, n - off));
        check(MPI_Bcast(data + off, count, MPI_CHAR, root, MPI_COMM_WORLD), op, "MPI_Bcast");
    }
}

// Rank `first` failed with `local` (null on the others): every rank throws its error. That
// rank rethrows its own exception; the others throw one of the same type whose message ends
// "(raised on rank F)", or the same message when `verbatim` (messages that name the ranks).
[[noreturn]] void raise_from(int first, const std::exception_ptr& local, bool verbatim,
                             const char* op) {
    const int me = world_rank();
    int kind = 0;
    std::string message;
    if (me == first) {
        auto [k, m] = describe(local);
        kind = static_cast<int>(k);
        message = std::move(m);
    }
    check(MPI_Bcast(&kind, 1, MPI_INT, first, MPI_COMM_WORLD), op, "MPI_Bcast");
    std::uint64_t len = message.size();
    check(MPI_Bcast(&len, 1, MPI_UINT64_T, first, MPI_COMM_WORLD), op, "MPI_Bcast");
    message.resize(len);
    bcast_bytes(message.data(), len, first, op);
    if (me == first) std::rethrow_exception(local);
    throw_kind(static_cast<Kind>(kind),
               verbatim ? message : fmt::format("{} (raised on rank {})", message, first));
}

// Collective: returns when no rank passed a failure, else every rank throws the failure of
// the lowest failing rank (see raise_from).
void agree(const char* op, const std::exception_ptr& local, bool verbatim = false) {
    int mine = local ? world_rank() : world_size();
    int first = 0;
    check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), op, "MPI_Allreduce");
    stats.control_bytes += sizeof(int);
    if (first < world_size()) raise_from(first, local, verbatim, op);
}

// Collective: agree() on local failures, then on a (count, hash) signature, in one small
// allreduce. Returns {smallest, largest} count when the signatures differ on some rank.
std::optional<std::pair<std::uint64_t, std::uint64_t>> compare_signatures(
    const char* op, const std::exception_ptr& local, std::uint64_t count, std::uint64_t hash) {
    const int me = world_rank(), n = world_size();
    // MAX of x and of ~x gives the largest and the smallest x; the failure slot holds
    // size - rank, so its MAX names the lowest failing rank.
    std::uint64_t v[5] = {count, ~count, hash, ~hash,
                          local ? static_cast<std::uint64_t>(n - me) : 0};
    check(MPI_Allreduce(MPI_IN_PLACE, v, 5, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), op,
          "MPI_Allreduce");
    stats.control_bytes += sizeof v;
    if (v[4] != 0) raise_from(n - static_cast<int>(v[4]), local, false, op);
    if (v[0] == ~v[1] && v[2] == ~v[3]) return std::nullopt;
    return std::pair{~v[1], v[0]};
}

// The same for a parameter list's layout: different layouts throw ValueError on every rank.
void agree_layout(const char* op, const std::exception_ptr& local, std::uint64_t count,
                  std::uint64_t hash) {
    const auto differ = compare_signatures(op, local, count, hash);
    if (!differ) return;
    const auto [least, most] = *differ;
    if (most != least)
        throw ValueError(fmt::format(
            "distributed::{}: the ranks pass different parameter lists ({} to {} "
            "parameters); call check_same_model(model) after building the model to find "
            "the first difference",
            op, least, most));
    throw ValueError(fmt::format(
        "distributed::{}: the ranks pass {} parameters each, but their shapes or dtypes "
        "differ; call check_same_model(model) after building the model to find the "
        "first difference",
        op, count));
}

// ---- average_gradients ----

template <class T>
std::vector<T>& flat_buffer() {
    static std::vector<T> buffer;  // kept between calls: one allocation for the whole run
    return buffer;
}

template <class T>
void reduce_dtype(const char* op, const std::vector<Variable>& params,
                  const std::vector<std::uint8_t>& mask, const AverageOptions& options,
                  AverageReport& report) {
    std::vector<std::size_t> which;
    std::size_t total = 0;
    for (std::size_t k = 0; k < params.size(); ++k)
        if (mask[k] && params[k].dtype() == dtype_of<T>()) {
            which.push_back(k);
            total += params[k].numel();
        }
    if (which.empty()) return;
    std::vector<T>& buffer = flat_buffer<T>();
    buffer.resize(total);

    // Pack: [grad of which[0] | grad of which[1] | ...], zeros for a missing gradient.
    const T pre = options.share ? static_cast<T>(*options.share) : T(1);
    std::size_t offset = 0;
    for (const std::size_t k : which) {
        const std::size_t n = params[k].numel();
        const Tensor& g = params[k].grad();
        if (!g.defined()) {
            std::fill_n(buffer.data() + offset, n, T(0));
            ++report.filled;
        } else if (pre == T(1)) {
            std::copy_n(g.xt<T>().data(), n, buffer.data() + offset);
        } else {
            const T* src = g.xt<T>().data();
            for (std::size_t i = 0; i < n; ++i) buffer[offset + i] = pre * src[i];
        }
        offset += n;
    }

    // One MPI_Allreduce per bucket of at most bucket_bytes.
    const std::size_t chunk =
        std::min(max_count, std::max<std::size_t>(1, options.bucket_bytes / sizeof(T)));
    for (std::size_t off = 0; off < total; off += chunk) {
        const auto count = static_cast<int>(std::min(chunk, total - off));
        check(MPI_Allreduce(MPI_IN_PLACE, buffer.data() + off, count, mpi_type<T>(), MPI_SUM,
                            MPI_COMM_WORLD),
              op, "MPI_Allreduce");
        ++report.buckets;
    }
    report.bytes += total * sizeof(T);
    report.reduced += which.size();

    // Unpack: sum / size (or the share-weighted sum as it is).
    const T post = options.share ? T(1) : static_cast<T>(1.0 / world_size());
    offset = 0;
    for (const std::size_t k : which) {
        Variable p = params[k];
        auto values = xt::xarray<T>::from_shape(p.shape());
        const std::size_t n = p.numel();
        T* dst = values.data();
        if (post == T(1)) std::copy_n(buffer.data() + offset, n, dst);
        else
            for (std::size_t i = 0; i < n; ++i) dst[i] = post * buffer[offset + i];
        p.set_grad(Tensor(std::move(values)));
        offset += n;
    }
}

// ---- broadcast_parameters ----

template <class T>
void broadcast_dtype(const char* op, const std::vector<Variable>& params, int root,
                     std::size_t bucket_bytes) {
    std::vector<std::size_t> which;
    std::size_t total = 0;
    for (std::size_t k = 0; k < params.size(); ++k)
        if (params[k].dtype() == dtype_of<T>()) {
            which.push_back(k);
            total += params[k].numel();
        }
    if (which.empty()) return;
    const bool sending = world_rank() == root;
    std::vector<T> buffer(total);
    std::size_t offset = 0;
    if (sending)
        for (const std::size_t k : which) {
            std::copy_n(params[k].value().xt<T>().data(), params[k].numel(),
                        buffer.data() + offset);
            offset += params[k].numel();
        }
    const std::size_t chunk =
        std::min(max_count, std::max<std::size_t>(1, bucket_bytes / sizeof(T)));
    for (std::size_t off = 0; off < total; off += chunk) {
        const auto count = static_cast<int>(std::min(chunk, total - off));
        check(MPI_Bcast(buffer.data() + off, count, mpi_type<T>(), root, MPI_COMM_WORLD), op,
              "MPI_Bcast");
    }
    stats.broadcast_bytes += total * sizeof(T);
    if (sending) return;
    offset = 0;
    for (const std::size_t k : which) {
        Variable p = params[k];
        std::copy_n(buffer.data() + offset, p.numel(), p.mutable_value().mutable_xt<T>().data());
        offset += p.numel();
    }
}

void require_root(const char* op, int root) {
    if (root < 0 || root >= world_size())
        throw ValueError(fmt::format("distributed::{}: root {} is not a rank (there are {} ranks)",
                                     op, root, world_size()));
}

// ---- Optimizer state as bytes ----

void put_u64(std::string& out, std::uint64_t v) {
    char b[8];
    std::memcpy(b, &v, 8);
    out.append(b, 8);
}

void put_text(std::string& out, const std::string& s) {
    put_u64(out, s.size());
    out += s;
}

struct Reader {
    std::string_view data;
    std::size_t pos = 0;
    const char* need(std::size_t n) {
        if (n > data.size() - pos)
            throw IOError(fmt::format(
                "distributed: a received message is truncated ({} bytes, needed {} at {})",
                data.size(), n, pos));
        const char* p = data.data() + pos;
        pos += n;
        return p;
    }
    std::uint64_t u64() {
        std::uint64_t v = 0;
        std::memcpy(&v, need(8), 8);
        return v;
    }
    std::string text() {
        const std::uint64_t n = u64();
        return std::string(need(n), n);
    }
};

// Native byte order: every rank runs the same build on the same kind of machine.
std::string encode(const TensorFile& file) {
    std::string out;
    put_u64(out, file.tensors.size());
    for (const auto& [name, t] : file.tensors) {
        put_text(out, name);
        put_u64(out, static_cast<std::uint64_t>(t.dtype()));
        put_u64(out, t.dim());
        for (const std::size_t d : t.shape()) put_u64(out, d);
        dispatch(t.dtype(), [&]<class T>() {
            out.append(reinterpret_cast<const char*>(t.xt<T>().data()), t.nbytes());
        });
    }
    put_u64(out, file.metadata.size());
    for (const auto& [key, value] : file.metadata) {
        put_text(out, key);
        put_text(out, value);
    }
    return out;
}

TensorFile decode(std::string_view bytes) {
    Reader in{bytes};
    TensorFile file;
    const std::uint64_t n = in.u64();
    for (std::uint64_t i = 0; i < n; ++i) {
        std::string name = in.text();
        const auto dtype = static_cast<DType>(in.u64());
        Shape shape(in.u64());
        for (auto& d : shape) d = in.u64();
        Tensor t = dispatch(dtype, [&]<class T>() {
            auto values = xt::xarray<T>::from_shape(shape);
            std::memcpy(values.data(), in.need(values.size() * sizeof(T)),
                        values.size() * sizeof(T));
            return Tensor(std::move(values));
        });
        file.tensors.emplace_back(std::move(name), std::move(t));
    }
    const std::uint64_t m = in.u64();
    for (std::uint64_t i = 0; i < m; ++i) {
        std::string key = in.text();
        file.metadata[key] = in.text();
    }
    return file;
}

}  // namespace

// ---- Environment ----

Environment::Environment() { init(nullptr, nullptr); }
Environment::Environment(int& argc, char**& argv) { init(&argc, &argv); }

void Environment::init(int* argc, char*** argv) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        throw Error(
            "distributed::Environment: MPI was finalised by an earlier Environment and cannot "
            "start again; "
            "create one Environment at the start of main");
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            throw Error("distributed::Environment: MPI_Init_thread failed");
        owns_ = true;
        // Errors come back as codes, which check() turns into tapegrad errors.
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    rank_ = world_rank();
    size_ = world_size();
}

Environment::~Environment() {
    if (!owns_) return;
    // Leaving by an exception while other ranks may wait in a collective: MPI_Finalize would
    // wait for them forever, so end the job instead.
    if (std::uncaught_exceptions() > 0 && size_ > 1) {
        std::fprintf(
            stderr,
            "rank %d: an exception left the scope of distributed::Environment; aborting the job "
            "(wrap main's body in distributed::run_guarded to see its message)\n",
            rank_);
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Finalize();
}

bool initialized() {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

int rank() {
    require_ready("rank");
    return world_rank();
}

int size() {
    require_ready("size");
    return world_size();
}

void barrier() {
    require_ready("barrier");
    check(MPI_Barrier(MPI_COMM_WORLD), "barrier", "MPI_Barrier");
}

double all_sum(double value) {
    require_ready("all_sum");
    check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "all_sum",
          "MPI_Allreduce");
    return value;
}

double all_max(double value) {
    require_ready("all_max");
    check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "all_max",
          "MPI_Allreduce");
    return value;
}

Shard shard_range(std::size_t n, int rank, int size) {
    if (size <= 0 || rank < 0 || rank >= size)
        throw ValueError(fmt::format(
            "distributed::shard_range: rank {} of {} ranks: the rank must be in [0, size)", rank,
            size));
    const auto r = static_cast<std::size_t>(rank), s = static_cast<std::size_t>(size);
    const std::size_t base = n / s, extra = n % s;
    const std::size_t begin = r * base + std::min(r, extra);
    return {r, begin, begin + base + (r < extra ? 1 : 0)};
}

Shard shard_range(std::size_t n) { return shard_range(n, rank(), size()); }

AverageReport average_gradients(const std::vector<Variable>& params,
                                const AverageOptions& options) {
    const char* op = "average_gradients";
    const auto t0 = Clock::now();
    require_ready(op);
    AverageReport report;
    std::exception_ptr local;
    std::uint64_t hash = 0;
    try {
        if (options.share && !(*options.share >= 0 && *options.share <= 1))
            throw ValueError(fmt::format(
                "distributed::{}: share {} is not in [0, 1]: it is this rank's rows over "
                "the batch's",
                op, *options.share));
        for (std::size_t k = 0; k < params.size(); ++k) {
            const Variable& p = params[k];
            if (!p.defined())
                throw ValueError(fmt::format("distributed::{}: parameter {} is undefined", op, k));
            const Tensor& g = p.grad();
            if (g.defined() && (g.shape() != p.shape() || g.dtype() != p.dtype()))
                throw ShapeError(
                    fmt::format("distributed::{}: parameter {} '{}' {} {} has a gradient {} {}", op,
                                k, p.name(), to_string(p.shape()), name(p.dtype()),
                                to_string(g.shape()), name(g.dtype())));
        }
        hash = layout_hash(params);
    } catch (...) {
        local = std::current_exception();
    }
    const int n = world_size();
    if (n == 1) {  // nothing to exchange
        if (local) std::rethrow_exception(local);
        for (const Variable& p : params) {
            if (!p.grad().defined()) continue;
            ++report.reduced;
            if (options.share && *options.share != 1) {
                Variable q = p;
                Tensor g = p.grad().clone();
                dispatch(g.dtype(),
                         [&]<class T>() { g.mutable_xt<T>() *= static_cast<T>(*options.share); });
                q.set_grad(g);
            }
        }
    } else {
        agree_layout(op, local, params.size(), hash);
        // Which parameters have a gradient on some rank: those are reduced on all ranks.
        std::vector<std::uint8_t> mask(params.size());
        for (std::size_t k = 0; k < params.size(); ++k)
            mask[k] = params[k].grad().defined() ? 1 : 0;
        if (!mask.empty())
            check(MPI_Allreduce(MPI_IN_PLACE, mask.data(), static_cast<int>(mask.size()),
                                MPI_UINT8_T, MPI_MAX, MPI_COMM_WORLD),
                  op, "MPI_Allreduce");
        stats.control_bytes += mask.size();
        reduce_dtype<float>(op, params, mask, options, report);
        reduce_dtype<double>(op, params, mask, options, report);
    }
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    stats.average_calls += 1;
    stats.allreduce_calls += report.buckets;
    stats.allreduce_bytes += report.bytes;
    stats.average_seconds += report.seconds;
    return report;
}

const CommStats& comm_stats() { return stats; }
void reset_comm_stats() { stats = {}; }

double ring_allreduce_bytes(std::size_t bytes, int ranks) {
    if (ranks <= 1) return 0;
    return 2.0 * (ranks - 1) / ranks * static_cast<double>(bytes);
}

void broadcast_parameters(const std::vector<Variable>& params, int root) {
    const char* op = "broadcast_parameters";
    require_ready(op);
    std::exception_ptr local;
    std::uint64_t hash = 0;
    try {
        require_root(op, root);
        for (std::size_t k = 0; k < params.size(); ++k)
            if (!params[k].defined() || !params[k].is_leaf())
                throw ValueError(fmt::format("distributed::{}: parameter {} is {}", op, k,
                                             params[k].defined() ? "not a leaf" : "undefined"));
        hash = layout_hash(params);
    } catch (...) {
        local = std::current_exception();
    }
    if (world_size() == 1) {
        if (local) std::rethrow_exception(local);
        return;
    }
    agree_layout(op, local, params.size(), hash);
    const std::size_t bucket = AverageOptions{}.bucket_bytes;
    broadcast_dtype<float>(op, params, root, bucket);
    broadcast_dtype<double>(op, params, root, bucket);
}

void broadcast_parameters(const Module& module, int root) {
    broadcast_parameters(module.parameters(), root);
}

void broadcast_string(std::string& data, int root) {
    const char* op = "broadcast_string";
    require_ready(op);
    require_root(op, root);
    std::uint64_t len = data.size();
    check(MPI_Bcast(&len, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), op, "MPI_Bcast");
    data.resize(len);
    bcast_bytes(data.data(), len, root, op);
    stats.broadcast_bytes += len;
}

void broadcast_optimizer_state(Optimizer& optimizer, std::initializer_list<Scheduler*> schedulers,
                               int root) {
    const char* op = "broadcast_optimizer_state";
    require_ready(op);
    require_root(op, root);
    std::string bytes;
    std::exception_ptr local;
    if (world_rank() == root) {
        try {  // as save(optimizer, path, schedulers) writes it
            bytes = encode(training_state_dict(optimizer, {schedulers.begin(), schedulers.end()}));
        } catch (...) {
            local = std::current_exception();
        }
    }
    agree(op, local);
    broadcast_string(bytes, root);
    if (world_rank() != root) {
        try {
            load_training_state_dict(optimizer, decode(bytes), schedulers,
                                     fmt::format("sent by rank {} (distributed::{})", root, op));
        } catch (...) {
            local = std::current_exception();
        }
    }
    agree(op, local);
}

void check_same_model(const std::vector<std::pair<std::string, Variable>>& named_params) {
    const char* op = "check_same_model";
    require_ready(op);
    // One line per parameter: name, shape, dtype.
    struct Entry {
        std::string name, shape, dtype;
        bool operator==(const Entry&) const = default;
        std::string str() const { return fmt::format("'{}' {} {}", name, shape, dtype); }
    };
    std::vector<Entry> mine;
    Hash h;
    std::exception_ptr local;
    try {
        for (const auto& [name, p] : named_params) {
            if (!p.defined())
                throw ValueError(
                    fmt::format("distributed::{}: parameter '{}' is undefined", op, name));
            mine.push_back({name, to_string(p.shape()), std::string(tapegrad::name(p.dtype()))});
            h.add(mine.back().name);
            h.add(mine.back().shape);
            h.add(mine.back().dtype);
        }
    } catch (...) {
        local = std::current_exception();
    }
    if (world_size() == 1) {
        if (local) std::rethrow_exception(local);
        return;
    }
    if (!compare_signatures(op, local, mine.size(), h.value)) return;  // the same everywhere

    // They differ: every rank compares its list with rank 0's.
    std::string root_text;
    if (world_rank() == 0)
        for (const Entry& e : mine) {
            put_text(root_text, e.name);
            put_text(root_text, e.shape);
            put_text(root_text, e.dtype);
        }
    broadcast_string(root_text, 0);
    std::vector<Entry> root;
    for (Reader in{root_text}; in.pos < root_text.size();) {
        Entry e;
        e.name = in.text();
        e.shape = in.text();
        e.dtype = in.text();
        root.push_back(std::move(e));
    }
    const int me = world_rank();
    const std::size_t common = std::min(root.size(), mine.size());
    std::size_t k = 0;
    while (k < common && root[k] == mine[k]) ++k;
    try {
        if (k < common)
            throw ValueError(
                fmt::format("check_same_model: parameter {} differs: rank 0 has {}, rank {} has {}",
                            k, root[k].str(), me, mine[k].str()));
        if (root.size() != mine.size())
            throw ValueError(fmt::format(
                "check_same_model: rank 0 has {} parameters, rank {} has {}; the first one "
                "only rank {} has is {}",
                root.size(), me, mine.size(), root.size() > mine.size() ? 0 : me,
                root.size() > mine.size() ? root[k].str() : mine[k].str()));
    } catch (...) {
        local = std::current_exception();
    }
    agree(op, local, true);
}

void check_same_model(const Module& module) { check_same_model(module.named_parameters()); }

void on_root(const std::function<void()>& fn, int root) {
    const char* op = "on_root";
    require_ready(op);
    std::exception_ptr local;
    try {
        require_root(op, root);
        if (world_rank() == root) fn();
    } catch (...) {
        local = std::current_exception();
    }
    agree(op, local);
}

void on_all(const std::function<void()>& fn) {
    const char* op = "on_all";
    require_ready(op);
    std::exception_ptr local;
    try {
        fn();
    } catch (...) {
        local = std::current_exception();
    }
    agree(op, local);
}

int detail::run_guarded(const std::function<int()>& fn) {
    std::string what;
    try {
        return fn();
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "an exception that is not a std::exception";
    }
    const bool mpi = initialized();
    const int me = mpi ? world_rank() : 0, n = mpi ? world_size() : 1;
    std::fprintf(stderr, "rank %d: %s\n", me, what.c_str());
    std::fflush(stderr);
    if (n > 1) MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may wait in a collective
    return 1;
}

}  // namespace tapegrad::distributed
