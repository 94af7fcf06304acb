// fuzz/ops: every op, with its shapes, axes, dtype, options and values decoded from the
// input, run forward and then backward (sometimes twice, with create_graph). A result or a
// tapegrad::Error is fine; any other exception, a crash, a hang or a sanitizer report is a
// finding. So is a broken invariant, checked on every run:
//  - the result has the inputs' dtype, and an elementwise binary op the broadcast shape;
//  - the same op without recording (NoGradGuard) gives the same values, bit for bit;
//  - every gradient has its input's shape and dtype.
//
// Input layout (read front to back; missing bytes read as 0):
//   the op's row name, ended by a NUL byte (or by the input's end), then flags (dtype, anomaly
//   mode, second order, y of the other dtype...), x's shape and values, y's shape and values,
//   more inputs, a mask, the op's own parameters, grad_outs.
// An input naming no row is rejected (returns -1: libFuzzer keeps it out of the corpus). Rows
// are found by name, so adding or reordering rows leaves every seed on its op. The seed of row
// "pow scalar" is fuzz/corpus/ops/pow_scalar (spaces as '_'); tests/test_op_coverage.cpp checks
// that every row has one and that it starts with the row's name. A new row's seed: its name, a
// NUL and another seed's bytes after its name, as lerp's was made from add's:
//   { printf 'lerp\0'; tail -c +5 fuzz/corpus/ops/add; } > fuzz/corpus/ops/lerp
// Shapes are small (rank <= 4, sizes <= 4), so one input runs in microseconds.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

// Bytes read in order; past the end every read gives 0.
class Bytes {
public:
    Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
    // An integer in [lo, hi].
    long range(long lo, long hi) {
        return lo + static_cast<long>(u8() % static_cast<unsigned>(hi - lo + 1));
    }
    bool flag() { return u8() & 1; }

    // Mostly moderate values on a grid of 1/25, sometimes the ones that break kernels.
    double value() {
        static constexpr double special[] = {
            0.0,    -0.0,    1.0,     -1.0,  INFINITY,   -INFINITY, NAN,    1e30,   -1e30,  1e-30,
            1e-45,  88.8,    -88.8,   710.0, -710.0,     1e308,     4e-324, 0.5,    2.0,    3.0,
            1e7,    -1e7,    65504.0, 1e-7,  16777217.0, -3.0,      100.0,  -100.0, 1e-300, 0.1,
            -0.5,   20.0,    -20.0,   1e15,  0.25,       4.0,       -4.0,   0.001,  1e-10,  300.0,
            -300.0, 0.0,     1.0,     -1.0,  2.5,        -2.5,      7.0,    -7.0,   1e38,   -1e38,
            3.4e38, 1.2e-38, 30.0,    -30.0, 6.0,        -6.0};
        const std::uint8_t b = u8();
        if (b < 200) return (static_cast<double>(b) - 100.0) / 25.0;
        return special[b - 200];
    }

    Shape shape(std::size_t max_rank = 4) {
        static constexpr std::size_t sizes[] = {1, 2, 3, 4, 2, 3, 1, 0};
        Shape s(static_cast<std::size_t>(range(0, static_cast<long>(max_rank))));
        for (auto& d : s) d = sizes[u8() % 8];
        return s;
    }

    // A shape that usually broadcasts against `base` (or equals it), sometimes anything.
    Shape shape_like(const Shape& base) {
        switch (u8() % 5) {
            case 0:
            case 1: return base;
            case 2: {  // leading axes dropped, some sizes set to 1
                Shape s(base.begin() + range(0, static_cast<long>(base.size())), base.end());
                for (auto& d : s)
                    if (flag()) d = 1;
                return s;
            }
            case 3: {  // matmul's partner: [..., K, N] for base [..., M, K]
                Shape s = base;
                if (s.size() < 2) return shape();
                std::swap(s[s.size() - 1], s[s.size() - 2]);
                s.back() = static_cast<std::size_t>(range(0, 4));
                return s;
            }
            default: return shape();
        }
    }

    Tensor tensor(const Shape& shape, DType dtype) {
        std::vector<double> v(numel(shape));
        for (auto& x : v) x = value();
        return Tensor::from(v, shape, dtype);
    }

    long axis() { return range(-5, 4); }
    std::vector<long> axes() {
        std::vector<long> a(static_cast<std::size_t>(range(0, 3)));
        for (auto& x : a) x = axis();
        return a;
    }
    std::vector<long> longs(long lo, long hi, std::size_t max_count = 5) {
        std::vector<long> v(static_cast<std::size_t>(range(0, static_cast<long>(max_count))));
        for (auto& x : v) x = range(lo, hi);
        return v;
    }
    std::vector<std::int64_t> indices(std::size_t count, long lo = -2, long hi = 5) {
        std::vector<std::int64_t> v(count);
        for (auto& x : v) x = range(lo, hi);
        return v;
    }
    Reduction reduction() { return static_cast<Reduction>(u8() % 3); }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "fuzz/ops: %s\n", what.c_str());
    std::fflush(stderr);
    __builtin_trap();
}

// The inputs of one run: x and y require grad, `extra` are more inputs of x's shape (concat,
// stack), `mask` a constant of y's shape for where().
struct Inputs {
    Variable x, y;
    std::vector<Variable> extra;
    Tensor mask;
    DType dtype;
};

// Runs the op on the inputs with parameters read from `p`; returns its results.
using OpFn = std::function<std::vector<Variable>(const Inputs&, Bytes&)>;

struct Op {
    const char* name;
    OpFn run;
    bool broadcast_binary = false;  // result shape = broadcast of x and y
};

std::optional<double> maybe(Bytes& p) {
    if (p.flag()) return p.value();
    return std::nullopt;
}

const std::vector<Op>& ops() {
    using V = std::vector<Variable>;
    using I = const Inputs&;
    static const std::vector<Op> table{
        // arith and elementwise
        {"add", [](I in, Bytes&) { return V{in.x + in.y}; }, true},
        {"sub", [](I in, Bytes&) { return V{in.x - in.y}; }, true},
        {"mul", [](I in, Bytes&) { return V{in.x * in.y}; }, true},
        {"div", [](I in, Bytes&) { return V{in.x / in.y}; }, true},
        {"neg", [](I in, Bytes&) { return V{-in.x}; }},
        {"scalar ops",
         [](I in, Bytes& p) {
             const double s = p.value();
             return V{in.x + s, s - in.x, in.x * s, s / in.x, in.x / s};
         }},
        {"pow", [](I in, Bytes&) { return V{pow(in.x, in.y)}; }, true},
        {"pow scalar", [](I in, Bytes& p) { return V{pow(in.x, p.value())}; }},
        {"sqrt", [](I in, Bytes&) { return V{sqrt(in.x)}; }},
        {"abs", [](I in, Bytes&) { return V{abs(in.x)}; }},
        {"log1p", [](I in, Bytes&) { return V{log1p(in.x)}; }},
        {"leaky_relu", [](I in, Bytes& p) { return V{leaky_relu(in.x, p.value())}; }},
        {"softplus",
         [](I in, Bytes& p) {
             const double beta = p.value();
             return V{softplus(in.x, beta, p.value())};
         }},
        {"silu", [](I in, Bytes&) { return V{silu(in.x)}; }},
        {"gelu", [](I in, Bytes& p) { return V{gelu(in.x, p.flag())}; }},
        {"clamp",
         [](I in, Bytes& p) {
             const auto lo = maybe(p);
             return V{clamp(in.x, lo, maybe(p))};
         }},
        {"maximum", [](I in, Bytes&) { return V{maximum(in.x, in.y)}; }, true},
        {"minimum", [](I in, Bytes&) { return V{minimum(in.x, in.y)}; }, true},
        {"lerp",
         [](I in, Bytes& p) {
             // weight: a third input, usually broadcasting with x, sometimes a constant
             const Shape ws = p.shape_like(in.x.shape());
             const bool grad = p.flag();
             return V{lerp(in.x, in.y, Variable(p.tensor(ws, in.dtype), grad))};
         }},
        {"where", [](I in, Bytes&) { return V{where(in.mask, in.x, in.y)}; }},
        {"exp", [](I in, Bytes&) { return V{exp(in.x)}; }},
        {"log", [](I in, Bytes&) { return V{log(in.x)}; }},
        {"tanh", [](I in, Bytes&) { return V{tanh(in.x)}; }},
        {"sigmoid", [](I in, Bytes&) { return V{sigmoid(in.x)}; }},
        {"relu", [](I in, Bytes&) { return V{relu(in.x)}; }},
        // reductions
        {"sum",
         [](I in, Bytes& p) {
             const auto axes = p.axes();
             return V{sum(in.x), sum(in.x, axes, p.flag())};
         }},
        {"mean",
         [](I in, Bytes& p) {
             const auto axes = p.axes();
             return V{mean(in.x), mean(in.x, axes, p.flag())};
         }},
        {"max",
         [](I in, Bytes& p) {
             const auto axes = p.axes();
             return V{max(in.x), max(in.x, axes, p.flag())};
         }},
        {"min",
         [](I in, Bytes& p) {
             const auto axes = p.axes();
             return V{min(in.x), min(in.x, axes, p.flag())};
         }},
        {"argmax",
         [](I in, Bytes& p) {
             const long axis = p.axis();
             return V{argmax(in.x, axis, p.flag())};
         }},
        {"argmin",
         [](I in, Bytes& p) {
             const long axis = p.axis();
             return V{argmin(in.x, axis, p.flag())};
         }},
        {"logsumexp",
         [](I in, Bytes& p) {
             const auto axes = p.axes();
             return V{logsumexp(in.x), logsumexp(in.x, axes, p.flag())};
         }},
        {"cumsum",
         [](I in, Bytes& p) {
             const long axis = p.axis();
             return V{cumsum(in.x, axis, p.flag())};
         }},
        {"logcumsumexp", [](I in, Bytes& p) { return V{logcumsumexp(in.x, p.axis())}; }},
        {"linear_scan",
         [](I in, Bytes& p) {
             // a = x, b = y (often of x's shape); h0 usually x's shape without its first axis
             Shape h0 = in.x.shape();
             if (!h0.empty()) h0.erase(h0.begin());
             if (p.u8() % 8 == 0) h0 = p.shape();
             const bool grad = p.flag();
             return V{linear_scan(in.x, in.y, Variable(p.tensor(h0, in.dtype), grad), p.flag())};
         }},
        {"var",
         [](I in, Bytes& p) {
             const auto axes = p.axes();
             const double correction = static_cast<double>(p.range(-1, 3));
             return V{var(in.x), var(in.x, axes, correction, p.flag())};
         }},
        // shape
        {"reshape", [](I in, Bytes& p) { return V{reshape(in.x, p.longs(-2, 6))}; }},
        {"reshape shape", [](I in, Bytes& p) { return V{reshape(in.x, p.shape())}; }},
        {"squeeze",
         [](I in, Bytes& p) {
             return V{squeeze(in.x), squeeze(in.x, p.axis())};
         }},
        {"unsqueeze", [](I in, Bytes& p) { return V{unsqueeze(in.x, p.axis())}; }},
        {"permute",
         [](I in, Bytes& p) {
             std::vector<long> dims;
             if (p.flag()) {  // a permutation of x's axes, sometimes with negative entries
                 for (long d = 0; d < static_cast<long>(in.x.dim()); ++d) dims.push_back(d);
                 for (std::size_t i = dims.size(); i > 1; --i)
                     std::swap(
                         dims[i - 1],
                         dims[static_cast<std::size_t>(p.range(0, static_cast<long>(i) - 1))]);
                 for (auto& d : dims)
                     if (p.flag()) d -= static_cast<long>(in.x.dim());
             } else {
                 dims = p.longs(-5, 4);
             }
             return V{permute(in.x, dims)};
         }},
        {"transpose",
         [](I in, Bytes& p) {
             const long a = p.axis();
             return V{transpose(in.x), transpose(in.x, a, p.axis())};
         }},
        {"broadcast_to", [](I in, Bytes&) { return V{broadcast_to(in.x, in.y.shape())}; }},
        {"sum_to", [](I in, Bytes&) { return V{sum_to(in.x, in.y.shape())}; }},
        // indexing
        {"slice",
         [](I in, Bytes& p) {
             const long axis = p.axis(), start = p.range(-6, 6), stop = p.range(-6, 6);
             return V{slice(in.x, axis, start, stop, p.range(-1, 3))};
         }},
        {"narrow",
         [](I in, Bytes& p) {
             const long axis = p.axis(), start = p.range(-5, 5);
             return V{narrow(in.x, axis, start, p.range(-1, 5))};
         }},
        {"concat",
         [](I in, Bytes& p) {
             std::vector<Variable> xs{in.x, in.y};
             xs.insert(xs.end(), in.extra.begin(), in.extra.end());
             xs.resize(static_cast<std::size_t>(p.range(0, static_cast<long>(xs.size()))));
             return V{concat(xs, p.axis())};
         }},
        {"stack",
         [](I in, Bytes& p) {
             std::vector<Variable> xs{in.x};
             xs.insert(xs.end(), in.extra.begin(), in.extra.end());
             if (p.flag()) xs.push_back(in.y);
             return V{stack(xs, p.axis())};
         }},
        {"split",
         [](I in, Bytes& p) {
             const auto sizes = p.longs(-1, 4);
             return split(in.x, sizes, p.axis());
         }},
        {"chunk",
         [](I in, Bytes& p) {
             const long n = p.range(-1, 5);
             return chunk(in.x, n, p.axis());
         }},
        {"unbind", [](I in, Bytes& p) { return unbind(in.x, p.axis()); }},
        {"select",
         [](I in, Bytes& p) {
             const long axis = p.axis();
             return V{select(in.x, axis, p.range(-5, 4))};
         }},
        {"index_select",
         [](I in, Bytes& p) {
             const long axis = p.axis();
             return V{index_select(in.x, axis, p.indices(static_cast<std::size_t>(p.range(0, 6))))};
         }},
        {"gather",
         [](I in, Bytes& p) {
             const long axis = p.axis();
             Shape index_shape = in.x.shape();
             for (auto& d : index_shape)
                 d = static_cast<std::size_t>(p.range(0, static_cast<long>(d)));
             if (p.u8() % 8 == 0) index_shape = p.shape();
             const auto index = p.indices(numel(index_shape));
             if (!p.flag()) return V{gather(in.x, axis, index, index_shape)};
             return V{gather(in.x, axis, Tensor::from(index, index_shape))};  // int64 tensor
         }},
        // linalg
        {"matmul", [](I in, Bytes&) { return V{matmul(in.x, in.y)}; }},
        {"matmul transposed",
         [](I in, Bytes& p) {
             const bool ta = p.flag();
             return V{matmul(in.x, in.y, ta, p.flag())};
         }},
        {"addmm",
         [](I in, Bytes& p) {
             const bool ta = p.flag(), tb = p.flag();
             // c: a bias [N], a full [M, N], or any shape
             const std::size_t m = in.x.dim() ? in.x.shape()[ta ? in.x.dim() - 1 : 0] : 1;
             const std::size_t n = in.y.dim() ? in.y.shape()[tb ? 0 : in.y.dim() - 1] : 1;
             const std::uint8_t kind = p.u8() % 3;
             const Shape cs = kind == 0 ? Shape{n} : kind == 1 ? Shape{m, n} : p.shape();
             const Variable c(p.tensor(cs, in.dtype), true);
             return V{addmm(c, in.x, in.y, ta, tb)};
         }},
        {"linear",
         [](I in, Bytes& p) {
             // y as the weight [out, in]; the bias [out], another shape, or none
             const std::size_t out = in.y.dim() ? in.y.shape()[0] : 1;
             const std::uint8_t kind = p.u8() % 3;
             if (kind == 2) return V{linear(in.x, in.y)};
             const Variable b(p.tensor(kind == 0 ? Shape{out} : p.shape(), in.dtype), true);
             return V{linear(in.x, in.y, b)};
         }},
        // nn
        {"softmax", [](I in, Bytes& p) { return V{softmax(in.x, p.axis())}; }},
        {"log_softmax", [](I in, Bytes& p) { return V{log_softmax(in.x, p.axis())}; }},
        {"layer_norm",
         [](I in, Bytes& p) {
             const auto dims = static_cast<std::size_t>(p.range(0, 5));
             Variable w, b;
             if (p.flag()) w = in.y;
             if (p.flag()) b = in.y;
             const double eps = p.flag() ? p.value() : 1e-5;
             return V{layer_norm(in.x, dims, w, b, eps)};
         }},
        {"dropout",
         [](I in, Bytes& p) {
             Generator gen(p.u8());
             const double prob = p.flag() ? p.value() : static_cast<double>(p.u8()) / 255.0;
             return V{dropout(in.x, prob, p.flag(), gen)};
         }},
        // losses
        {"mse_loss", [](I in, Bytes& p) { return V{mse_loss(in.x, in.y, p.reduction())}; }},
        {"nll_loss",
         [](I in, Bytes& p) {
             const std::size_t n = in.x.dim() ? in.x.shape()[0] + (p.u8() % 8 == 0) : p.range(0, 2);
             const auto targets = p.indices(n);
             const std::int64_t ignore = p.flag() ? p.range(-2, 4) : -100;
             return V{nll_loss(in.x, targets, ignore, p.reduction())};
         }},
        {"cross_entropy",
         [](I in, Bytes& p) {
             const std::size_t n = in.x.dim() ? in.x.shape()[0] + (p.u8() % 8 == 0) : p.range(0, 2);
             const auto targets = p.indices(n);
             const std::int64_t ignore = p.flag() ? p.range(-2, 4) : -100;
             if (!p.flag()) return V{cross_entropy(in.x, targets, ignore, p.reduction())};
             // as an int64 tensor, now and then of another rank
             const Shape shape = p.u8() % 8 == 0 ? Shape{n, 1} : Shape{n};
             return V{cross_entropy(in.x, Tensor::from(targets, shape), ignore, p.reduction())};
         }},
        {"accuracy",
         [](I in, Bytes& p) {
             // a label per row of x (now and then another count), some out of range; as a
             // vector, an int64 tensor, or a tensor of either float dtype, now and then not
             // integer-valued
             Shape rows = in.x.shape();
             if (!rows.empty()) rows.pop_back();
             if (p.u8() % 8 == 0) rows = p.shape();
             const auto labels = p.indices(numel(rows), -1, 4);
             if (!p.flag()) return V{accuracy(in.x, labels)};
             if (p.flag()) return V{accuracy(in.x, Tensor::from(labels, rows))};
             std::vector<double> v(labels.begin(), labels.end());
             if (!v.empty() && p.u8() % 8 == 0) v[0] += 0.5;
             const DType dt = p.flag() ? float64 : float32;
             return V{accuracy(in.x, Variable(Tensor::from(v, rows, dt)))};
         }},
        {"binary_cross_entropy_with_logits",
         [](I in, Bytes& p) {
             return V{binary_cross_entropy_with_logits(in.x, in.y, p.reduction())};
         }},
    };
    return table;
}

// NumPy's broadcast shape, or nothing when the shapes do not broadcast.
std::optional<Shape> broadcast(const Shape& a, const Shape& b) {
    const std::size_t dim = std::max(a.size(), b.size());
    Shape out(dim);
    for (std::size_t i = 0; i < dim; ++i) {
        const std::size_t da = i < dim - a.size() ? 1 : a[i - (dim - a.size())];
        const std::size_t db = i < dim - b.size() ? 1 : b[i - (dim - b.size())];
        if (da != db && da != 1 && db != 1) return std::nullopt;
        out[i] = da == 1 ? db : da;
    }
    return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    for (std::size_t i = 0; i < a.numel(); ++i) {
        const double u = a.flat(i), v = b.flat(i);
        if (!(u == v || (std::isnan(u) && std::isnan(v)))) return false;
    }
    return true;
}

void check_grad(const char* op, const char* which, const Variable& input) {
    const Tensor& g = input.grad();
    if (!g.defined()) return;
    if (g.shape() != input.shape() || g.dtype() != input.dtype())
        finding(std::string(op) + ": the gradient of " + which + " is " + to_string(g.shape()) +
                " " + std::string(name(g.dtype())) + ", the input " + to_string(input.shape()) +
                " " + std::string(name(input.dtype())));
}

// The row named by the input's leading bytes (up to a NUL), and the size of that prefix.
std::pair<const Op*, std::size_t> find_op(const std::uint8_t* data, std::size_t size) {
    const auto* end = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
    const std::size_t len = end ? static_cast<std::size_t>(end - data) : size;
    const std::string_view name(reinterpret_cast<const char*>(data), len);
    for (const Op& op : ops())
        if (name == op.name) return {&op, end ? len + 1 : len};
    return {nullptr, 0};
}

// Returns false when the input names no op.
bool run(const std::uint8_t* data, std::size_t size) {
    const auto [found, name_size] = find_op(data, size);
    if (!found) return false;
    const Op& op = *found;
    Bytes p(data + name_size, size - name_size);
    const std::uint8_t flags = p.u8();
    Inputs in;
    in.dtype = flags & 1 ? float64 : float32;
    const bool anomaly = flags & 2, second_order = flags & 4;

    const Shape xs = p.shape(), ys = p.shape_like(xs);
    in.x = Variable(p.tensor(xs, in.dtype), true, "x");
    // Now and then y has the other dtype: every binary op must refuse that with a DTypeError.
    const DType y_dtype =
        (flags & 0xe0) == 0xe0 ? (in.dtype == float32 ? float64 : float32) : in.dtype;
    in.y = Variable(p.tensor(ys, y_dtype), true, "y");
    for (long i = 0, n = p.range(0, 3); i < n; ++i)
        in.extra.push_back(Variable(p.tensor(flags & 8 ? p.shape_like(xs) : xs, in.dtype), true));
    {
        std::vector<double> m(numel(ys));
        for (auto& v : m) v = p.u8() & 1;
        in.mask = Tensor::from(m, ys, flags & 16 ? float64 : float32);
    }
    // The op's parameters are read by both runs from the same bytes.
    const Bytes params = p;

    Tape tape;
    TapeScope scope(tape);
    AnomalyGuard anomaly_mode(anomaly);
    std::vector<Variable> results;
    try {
        Bytes q = params;
        results = op.run(in, q);
        p = q;  // the grad_outs come after the parameters
    } catch (const Error&) {
        return true;
    }

    for (const auto& r : results) {
        if (!r.defined()) finding(std::string(op.name) + ": an undefined result");
        if (r.dtype() != in.dtype)
            finding(std::string(op.name) + ": result dtype differs from the input's");
    }
    if (op.broadcast_binary) {
        const auto expected = broadcast(xs, ys);
        if (!expected || results[0].shape() != *expected)
            finding(std::string(op.name) + ": " + to_string(xs) + " with " + to_string(ys) +
                    " gave " + to_string(results[0].shape()));
    }
    // Unrecorded, the op computes the same values.
    {
        NoGradGuard no_grad;
        AnomalyGuard off(false);
        Bytes q = params;
        std::vector<Variable> again;
        try {
            again = op.run(in, q);
        } catch (const Error& e) {
            finding(std::string(op.name) + ": throws under NoGradGuard only: " + e.what());
        }
        if (again.size() != results.size())
            finding(std::string(op.name) + ": result count differs without grad");
        for (std::size_t i = 0; i < results.size(); ++i)
            if (!same_bits(results[i].value(), again[i].value()))
                finding(std::string(op.name) + ": result " + std::to_string(i) +
                        " differs without grad");
    }

    // Backward from each result with a grad_out read from the input, then, with
    // create_graph, once more through the gradients.
    try {
        for (const auto& r : results) {
            if (!r.requires_grad()) continue;
            const Tensor g = p.tensor(r.shape(), in.dtype);
            r.backward(g, {.retain_graph = true, .create_graph = second_order});
        }
        check_grad(op.name, "x", in.x);
        check_grad(op.name, "y", in.y);
        if (second_order) {
            const Variable gx = in.x.grad_variable();
            if (gx.defined() && gx.requires_grad()) {
                in.x.zero_grad();
                in.y.zero_grad();
                sum(gx * gx).backward();
                check_grad(op.name, "x (second order)", in.x);
                check_grad(op.name, "y (second order)", in.y);
            }
        }
    } catch (const Error&) {}
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return run(data, size) ? 0 : -1;
}
