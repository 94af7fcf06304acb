#include "layers/init.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"

namespace tapegrad::init {

namespace {

// The block's elements of a parameter of shape `shape`: `outer` runs, each of `len * inner`
// contiguous elements starting at o * axis_size * inner + start * inner. In that order they
// are the block's elements in row-major order.
struct Block {
    Shape shape;       // the block's own shape
    std::string desc;  // "rows [4, 8)": the part as the caller wrote it (empty: the whole)
    std::size_t outer = 1, len = 0, inner = 1, axis_size = 0, start = 0;
    std::size_t numel() const { return outer * len * inner; }
    // Calls f(element index in the parameter, element index in the block) for every element.
    template <class F>
    void for_each(F&& f) const {
        std::size_t k = 0;
        for (std::size_t o = 0; o < outer; ++o) {
            const std::size_t base = (o * axis_size + start) * inner;
            for (std::size_t i = 0; i < len * inner; ++i) f(base + i, k++);
        }
    }
};

std::string op_name(const char* fn) { return std::string("init::") + fn; }

// "rows [4, 8)", "cols [-3, end)", "axis 2 [0, 5)": the part as the caller wrote it.
std::string describe(const Part& part, long axis) {
    std::string where = axis == 0 ? "rows" : axis == 1 ? "cols" : fmt::format("axis {}", axis);
    return fmt::format("{} [{}, {})", where, part.start,
                       part.stop ? std::to_string(*part.stop) : std::string("end"));
}

// Checks that p is a parameter the init functions may write: a defined leaf requiring grad.
void check_parameter(const char* fn, const Variable& p) {
    if (!p.defined())
        fail<ValueError>(op_name(fn),
                         "the parameter is undefined (a default-constructed Variable)");
    if (!p.is_leaf())
        fail<ValueError>(
            op_name(fn),
            fmt::format("the parameter{} of shape {} is the result of an op, not a "
                        "leaf; only a leaf's value may be written in place",
                        p.name().empty() ? "" : " '" + p.name() + "'", to_string(p.shape())));
    if (!p.requires_grad())
        fail<ValueError>(
            op_name(fn),
            fmt::format("the variable{} of shape {} does not require grad, so it is "
                        "no parameter (call set_requires_grad() on it first)",
                        p.name().empty() ? "" : " '" + p.name() + "'", to_string(p.shape())));
}

// The block `part` selects of a parameter of shape `shape` (ShapeError when it does not fit).
Block block_of(const char* fn, const Shape& shape, const Part& part) {
    Block b;
    const bool whole = part.axis == 0 && part.start == 0 && !part.stop;
    if (whole) {  // the whole tensor, 0-d ones too
        b.shape = shape;
        b.outer = 1;
        b.len = 1;
        b.inner = numel(shape);
        b.axis_size = 1;
        b.start = 0;
        return b;
    }
    const long dims = static_cast<long>(shape.size());
    const long axis = part.axis < 0 ? part.axis + dims : part.axis;
    if (axis < 0 || axis >= dims)
        fail<ShapeError>(op_name(fn), fmt::format("axis {} out of range for a parameter of shape "
                                                  "{} ({} dimensions)",
                                                  part.axis, to_string(shape), dims));
    const long size = static_cast<long>(shape[static_cast<std::size_t>(axis)]);
    const long start = part.start < 0 ? part.start + size : part.start;
    const long stop_given = part.stop.value_or(size);
    const long stop = stop_given < 0 ? stop_given + size : stop_given;
    if (start < 0 || stop > size || start > stop)
        fail<ShapeError>(op_name(fn), fmt::format("{} outside a parameter of shape {}",
                                                  describe(part, axis), to_string(shape)));
    const auto a = static_cast<std::size_t>(axis);
    for (std::size_t d = 0; d < a; ++d) b.outer *= shape[d];
    for (std::size_t d = a + 1; d < shape.size(); ++d) b.inner *= shape[d];
    b.axis_size = shape[a];
    b.start = static_cast<std::size_t>(start);
    b.len = static_cast<std::size_t>(stop - start);
    b.shape = shape;
    b.shape[a] = b.len;
    b.desc = describe(part, axis);
    return b;
}

// Checks p, finds the block and returns it.
Block prepare(const char* fn, const Variable& p, const Part& part) {
    check_parameter(fn, p);
    return block_of(fn, p.shape(), part);
}

// Writes value(k) (a double) to the block's element k, for every k, in the parameter's dtype.
template <class F>
void write_block(const Variable& p, const Block& b, F&& value) {
    Variable handle = p;  // a shared handle: writing through it writes the parameter
    Tensor& t = handle.mutable_value();
    dispatch(t.dtype(), [&]<class T>() {
        T* data = t.mutable_xt<T>().data();
        b.for_each([&](std::size_t i, std::size_t k) { data[i] = static_cast<T>(value(k)); });
    });
}

// Values drawn from U(low, high) in the block's row-major order, written in the parameter's
// dtype; a float32 value that rounds up to `high` is moved to the largest float below it.
void fill_uniform(const Variable& p, const Block& b, double low, double high, Generator& gen) {
    Variable handle = p;
    Tensor& t = handle.mutable_value();
    dispatch(t.dtype(), [&]<class T>() {
        T* data = t.mutable_xt<T>().data();
        const T lo = static_cast<T>(low), hi = static_cast<T>(high);
        const T below_hi = lo < hi ? std::max(lo, std::nextafter(hi, lo)) : lo;
        b.for_each([&](std::size_t i, std::size_t) {
            T v = static_cast<T>(gen.uniform(low, high));
            if (v >= hi) v = below_hi;
            data[i] = v;
        });
    });
}

// The block as a matrix, as PyTorch sees a parameter: [size(0), product of the other dims].
struct Matrix {
    std::size_t rows, cols;
};
Matrix as_matrix(const char* fn, const Variable& p, const Block& b) {
    if (b.shape.size() < 2)  // a block has as many dimensions as its parameter
        fail<ShapeError>(
            op_name(fn),
            fmt::format("needs at least 2 dimensions, but the parameter{} has shape {}",
                        b.desc.empty() ? "" : " (block " + b.desc + ")", to_string(p.shape())));
    const std::size_t rows = b.shape[0];
    return {rows, rows == 0 ? 0 : b.numel() / rows};
}

void check_gain(const char* fn, double gain) {
    if (!std::isfinite(gain))
        fail<ValueError>(op_name(fn), fmt::format("gain must be finite, got {}", gain));
}

// The reduced QR of a [m, n] matrix a (row-major, m >= n) by Householder reflections in double:
// returns Q [m, n] (row-major) with orthonormal columns, and sets diag to R's diagonal.
std::vector<double> householder_q(std::vector<double> a, std::size_t m, std::size_t n,
                                  std::vector<double>& diag) {
    std::vector<std::vector<double>> vs(n);  // v_k over rows k..m-1, unit length (or all zero)
    diag.assign(n, 0.0);
    for (std::size_t k = 0; k < n; ++k) {
        double norm2 = 0;
        for (std::size_t i = k; i < m; ++i) norm2 += a[i * n + k] * a[i * n + k];
        const double norm = std::sqrt(norm2);
        const double x0 = a[k * n + k];
        const double alpha = x0 >= 0 ? -norm : norm;  // H x = alpha e_1, no cancellation
        std::vector<double>& v = vs[k];
        v.assign(m - k, 0.0);
        for (std::size_t i = k; i < m; ++i) v[i - k] = a[i * n + k];
        v[0] -= alpha;
        double vnorm2 = 0;
        for (double e : v) vnorm2 += e * e;
        if (vnorm2 == 0) {  // the column is already zero below and on the diagonal
            std::fill(v.begin(), v.end(), 0.0);
            diag[k] = x0;
            continue;
        }
        const double inv = 1.0 / std::sqrt(vnorm2);
        for (double& e : v) e *= inv;
        // A[k:, k:] -= 2 v (v^T A[k:, k:])
        for (std::size_t j = k; j < n; ++j) {
            double dot = 0;
            for (std::size_t i = k; i < m; ++i) dot += v[i - k] * a[i * n + j];
            for (std::size_t i = k; i < m; ++i) a[i * n + j] -= 2 * dot * v[i - k];
        }
        diag[k] = a[k * n + k];
    }
    // Q = H_0 H_1 ... H_{n-1} I[:, :n], applied from the last reflection to the first.
    std::vector<double> q(m * n, 0.0);
    for (std::size_t j = 0; j < n; ++j) q[j * n + j] = 1.0;
    for (std::size_t kk = n; kk-- > 0;) {
        const std::vector<double>& v = vs[kk];
        for (std::size_t j = 0; j < n; ++j) {
            double dot = 0;
            for (std::size_t i = kk; i < m; ++i) dot += v[i - kk] * q[i * n + j];
            if (dot == 0) continue;
            for (std::size_t i = kk; i < m; ++i) q[i * n + j] -= 2 * dot * v[i - kk];
        }
    }
    return q;
}

}  // namespace

void uniform_(const Variable& p, double low, double high, Generator& gen, Part part) {
    const Block b = prepare("uniform_", p, part);
    if (!std::isfinite(low) || !std::isfinite(high))
        fail<ValueError>("init::uniform_",
                         fmt::format("low ({}) and high ({}) must be finite", low, high));
    if (low > high)
        fail<ValueError>("init::uniform_",
                         fmt::format("low ({}) must not exceed high ({})", low, high));
    fill_uniform(p, b, low, high, gen);
}

void normal_(const Variable& p, double mean, double stddev, Generator& gen, Part part) {
    const Block b = prepare("normal_", p, part);
    if (!std::isfinite(mean) || !std::isfinite(stddev))
        fail<ValueError>("init::normal_",
                         fmt::format("mean ({}) and stddev ({}) must be finite", mean, stddev));
    if (stddev < 0)
        fail<ValueError>("init::normal_",
                         fmt::format("stddev must not be negative, got {}", stddev));
    write_block(p, b, [&](std::size_t) { return mean + stddev * gen.normal(); });
}

void constant_(const Variable& p, double value, Part part) {
    const Block b = prepare("constant_", p, part);
    write_block(p, b, [&](std::size_t) { return value; });
}

void zeros_(const Variable& p, Part part) {
    const Block b = prepare("zeros_", p, part);
    write_block(p, b, [](std::size_t) { return 0.0; });
}

void ones_(const Variable& p, Part part) {
    const Block b = prepare("ones_", p, part);
    write_block(p, b, [](std::size_t) { return 1.0; });
}

void xavier_uniform_(const Variable& p, Generator& gen, double gain, Part part) {
    const Block b = prepare("xavier_uniform_", p, part);
    check_gain("xavier_uniform_", gain);
    as_matrix("xavier_uniform_", p, b);
    std::size_t receptive = 1;
    for (std::size_t d = 2; d < b.shape.size(); ++d) receptive *= b.shape[d];
    const double fan_in = static_cast<double>(b.shape[1] * receptive);
    const double fan_out = static_cast<double>(b.shape[0] * receptive);
    if (b.numel() == 0) return;  // nothing to fill (and no fans to divide by)
    const double bound = std::abs(gain) * std::sqrt(6.0 / (fan_in + fan_out));
    fill_uniform(p, b, -bound, bound, gen);
}

void orthogonal_(const Variable& p, Generator& gen, double gain, Part part) {
    const Block b = prepare("orthogonal_", p, part);
    check_gain("orthogonal_", gain);
    const Matrix mat = as_matrix("orthogonal_", p, b);
    if (b.numel() == 0) return;  // as PyTorch: an empty tensor stays as it is
    const std::size_t rows = mat.rows, cols = mat.cols;
    std::vector<double> flat(rows * cols);
    for (double& v : flat) v = gen.normal();
    const bool transposed = rows < cols;
    const std::size_t m = transposed ? cols : rows, n = transposed ? rows : cols;
    std::vector<double> a(m * n);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j)
            (transposed ? a[j * n + i] : a[i * n + j]) = flat[i * cols + j];
    std::vector<double> diag;
    std::vector<double> q = householder_q(std::move(a), m, n, diag);
    // Column j times sign(R_jj), so that Q is the one of the QR with a positive diagonal
    for (std::size_t j = 0; j < n; ++j)
        if (diag[j] < 0)
            for (std::size_t i = 0; i < m; ++i) q[i * n + j] = -q[i * n + j];
    // Block element (r, c) in row-major order: Q[r, c], or Q^T's when transposed
    write_block(p, b, [&](std::size_t k) {
        const std::size_t r = k / cols, c = k % cols;
        return gain * (transposed ? q[c * n + r] : q[r * n + c]);
    });
}

double calculate_gain(std::string_view nonlinearity, double param) {
    const std::string_view n = nonlinearity;
    if (n == "linear" || n == "conv1d" || n == "conv2d" || n == "conv3d" ||
        n == "conv_transpose1d" || n == "conv_transpose2d" || n == "conv_transpose3d" ||
        n == "sigmoid")
        return 1.0;
    if (n == "tanh") return 5.0 / 3.0;
    if (n == "relu") return std::sqrt(2.0);
    if (n == "leaky_relu") {
        if (!std::isfinite(param))
            fail<ValueError>(
                "init::calculate_gain",
                fmt::format("leaky_relu's negative slope must be finite, got {}", param));
        return std::sqrt(2.0 / (1.0 + param * param));
    }
    if (n == "selu") return 3.0 / 4.0;
    fail<ValueError>("init::calculate_gain",
                     fmt::format("unsupported nonlinearity '{}' (linear, sigmoid, tanh, relu, "
                                 "leaky_relu, selu, conv1d/2d/3d, conv_transpose1d/2d/3d)",
                                 nonlinearity));
}

}  // namespace tapegrad::init
