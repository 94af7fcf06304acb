#include "ops/support.hpp"

namespace tapegrad::ops {

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b,
                       const std::source_location& loc) {
    if (a == b) return a;
    const std::size_t n = std::max(a.size(), b.size());
    Shape out(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        if (da != db && da != 1 && db != 1)
            fail<ShapeError>(op,
                             fmt::format("shapes {} and {} cannot be broadcast (axis {}: {} vs "
                                         "{})",
                                         to_string(a), to_string(b), i, da, db),
                             loc);
        out[i] = da == 1 ? db : da;
    }
    return out;
}

std::vector<std::int64_t> int64_values(const char* op, const char* what, const Tensor& t, int rank,
                                       const std::source_location& loc) {
    if (!t.defined()) fail<ValueError>(op, fmt::format("the {} tensor is undefined", what), loc);
    if (t.dtype() != int64)
        fail<DTypeError>(op, fmt::format("{} must be an int64 tensor, got {}", what, describe(t)),
                         loc);
    if (rank >= 0 && t.dim() != static_cast<std::size_t>(rank))
        fail<ShapeError>(op,
                         fmt::format("{} must have {} dimension{}, got {}", what, rank,
                                     rank == 1 ? "" : "s", to_string(t.shape())),
                         loc);
    return t.values<std::int64_t>();
}

std::size_t normalize_axis(const char* op, long axis, std::size_t dim,
                           const std::source_location& loc) {
    const long d = static_cast<long>(dim);
    if (axis < -d || axis >= d || (d == 0))
        fail<ShapeError>(
            op, fmt::format("axis {} is out of range for a tensor of rank {}", axis, dim), loc);
    return static_cast<std::size_t>(axis < 0 ? axis + d : axis);
}

}  // namespace tapegrad::ops
