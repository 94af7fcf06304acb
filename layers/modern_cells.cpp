#include "layers/modern_cells.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include <xtensor/xoperation.hpp>

#include "ops/arith.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/linalg.hpp"
#include "ops/reduce.hpp"
#include "ops/shape.hpp"
#include "ops/unary.hpp"

namespace tapegrad {

namespace {
constexpr double inf = std::numeric_limits<double>::infinity();

// softplus(v) = log(1 + e^v) without PyTorch's linear cut-off at v > 20, so that
// −softplus(k) is log(1 − σ(k)) to the last bit, as the step form computes it.
Variable softplus_exact(const Variable& v) { return softplus(v, 1, inf); }

// 1 where v >= 0, else 0 (a mask for where: no gradient).
Tensor nonnegative(const Tensor& v) {
    return dispatch(v.dtype(), [&]<class T>() { return Tensor(xt::cast<T>(v.xt<T>() >= T(0))); });
}

// x with its time axis (0) reversed.
Variable flip_time(const Variable& x) {
    std::vector<std::int64_t> rev(x.shape()[0]);
    std::iota(rev.rbegin(), rev.rend(), std::int64_t{0});
    return index_select(x, 0, rev);
}
}  // namespace

ProjectedCell::ProjectedCell(std::string type, std::size_t input_size, std::size_t hidden_size)
    : Cell(std::move(type)), input_size_(input_size), hidden_size_(hidden_size) {
    if (input_size == 0 || hidden_size == 0)
        throw ValueError(fmt::format("{}: input_size ({}) and hidden_size ({}) must be positive",
                                     type_name(), input_size, hidden_size));
}

Tensor ProjectedCell::draw(const Shape& shape, Generator& gen, DType dtype) const {
    const double k = 1.0 / std::sqrt(static_cast<double>(hidden_size_));
    return gen.uniform(shape, -k, k, dtype);
}

// P = x W_ih^T + b_ih for every time step at once.
Variable ProjectedCell::project_input(const Variable& x) { return linear(x, weight_ih, bias_ih); }

// ---- minGRU

MinGRUCell::MinGRUCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype,
                       MinGRUOptions options)
    : ProjectedCell("MinGRUCell", input_size, hidden_size), options_(options) {
    const std::size_t H = hidden_size;
    weight_ih = register_parameter("weight_ih", draw({2 * H, input_size}, gen, dtype));
    bias_ih = register_parameter("bias_ih", draw({2 * H}, gen, dtype));
}

namespace {
// The log-space candidate g(v) = v + 0.5 for v >= 0, σ(v) for v < 0 (positive everywhere).
Variable g(const Variable& v) { return where(nonnegative(v.value()), relu(v) + 0.5, sigmoid(v)); }
// log g(v): log(relu(v) + 0.5) for v >= 0, −softplus(−v) = log σ(v) for v < 0.
Variable log_g(const Variable& v) {
    return where(nonnegative(v.value()), log(relu(v) + 0.5), -softplus_exact(-v));
}
}  // namespace

// x_t arrives projected: [k_t, ĥ_t].
State MinGRUCell::step(const Variable& x_t, const State& state) {
    const auto p = chunk(x_t, 2, -1);
    const Variable z = name(sigmoid(p[0]), "update gate");         // z_t = σ(k_t)
    const Variable h_tilde = options_.log_space ? g(p[1]) : p[1];  // h̃_t = ĥ_t (or g(ĥ_t))
    return {name(lerp(state[0], name(h_tilde, "candidate h̃"), z), "h_t")};  // (1−z) h + z h̃
}

// h = scan(1 − z, z ⊙ h̃): the steps' recurrence for all steps at once.
Cell::SequenceResult MinGRUCell::sequence(const Variable& x, const State& state,
                                          const Steps& steps) {
    if (options_.log_space) return log_space_sequence(x, state[0], steps);
    const auto p = chunk(x, 2, -1);
    const Variable z = name(sigmoid(p[0]), "update gate");      // z_t = σ(k_t)
    const Variable a = 1.0 - z;                                 // a_t = 1 − z_t
    const Variable b = z * p[1];                                // b_t = z_t ⊙ h̃_t
    const Variable h = name(scan(a, b, state[0], steps), "h");  // h_t = a_t ⊙ h_{t−1} + b_t
    return {h, {last_state(h, steps)}};
}

// Heinsen's parallel scan in log space, for positive h: log h_t = a*_t + log(h0 + Σ_{s≤t}
// b_s e^{−a*_s}) with a*_t = Σ_{s≤t} log a_s, the sum as a logcumsumexp. The reverse direction
// runs the same on the time-reversed sequence.
Cell::SequenceResult MinGRUCell::log_space_sequence(const Variable& x, const Variable& h0,
                                                    const Steps& steps) {
    const std::vector<double> start = h0.value().to_vector();
    for (const double e : start)
        if (!(e >= 0))
            throw ValueError(fmt::format(
                "{}: the log-space form needs an initial state >= 0, got {}", type_name(), e));
    const DType dt = x.dtype();
    const long T = static_cast<long>(x.shape()[0]);
    const auto p = chunk(x, 2, -1);
    Variable log_a = -softplus_exact(p[0]);  // log a_t = log(1 − z_t) = −softplus(k_t)
    Variable log_b = -softplus_exact(-p[0]) + log_g(p[1]);  // log b_t = log z_t + log h̃_t
    if (steps.keep.defined()) {                             // padded steps: a = 1, b = 0
        log_a = where(steps.keep, log_a, constant(0.0, dt));
        log_b = where(steps.keep, log_b, constant(-inf, dt));
    }
    if (steps.reverse) {
        log_a = flip_time(log_a);
        log_b = flip_time(log_b);
    }
    const Variable a_star = cumsum(log_a, 0);  // a*_t = Σ_{s≤t} log a_s
    // log h0 first, then log b_s − a*_s: their running logsumexp is log(h0 + Σ b_s e^{−a*_s})
    const Variable terms = concat({unsqueeze(log(h0), 0), log_b - a_star}, 0);
    const Variable log_h = a_star + narrow(logcumsumexp(terms, 0), 0, 1, T);  // log h_t
    Variable h = exp(log_h);                                                  // h_t
    if (steps.reverse) h = flip_time(h);
    h = name(h, "h");
    return {h, {last_state(h, steps)}};
}

// ---- minLSTM

MinLSTMCell::MinLSTMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen,
                         DType dtype)
    : ProjectedCell("MinLSTMCell", input_size, hidden_size) {
    const std::size_t H = hidden_size;
    weight_ih = register_parameter("weight_ih", draw({3 * H, input_size}, gen, dtype));
    bias_ih = register_parameter("bias_ih", draw({3 * H}, gen, dtype));
}

namespace {
// The normalised gates of minLSTM from P = [f, i, ĥ]: {f'_t, i'_t ⊙ h̃_t}.
std::pair<Variable, Variable> min_lstm_terms(const Variable& x) {
    const auto p = chunk(x, 3, -1);
    const Variable f = name(sigmoid(p[0]), "forget gate");  // f_t = σ(f)
    const Variable i = name(sigmoid(p[1]), "input gate");   // i_t = σ(i)
    const Variable total = f + i;
    const Variable f_norm = f / total;  // f'_t = f_t / (f_t + i_t)
    const Variable i_norm = i / total;  // i'_t = i_t / (f_t + i_t)
    return {f_norm, i_norm * p[2]};     // f'_t, i'_t ⊙ h̃_t (h̃_t = ĥ_t)
}
}  // namespace

State MinLSTMCell::step(const Variable& x_t, const State& state) {
    const auto [f_norm, input] = min_lstm_terms(x_t);
    return {name(f_norm * state[0] + input, "h_t")};  // h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ h̃_t
}

Cell::SequenceResult MinLSTMCell::sequence(const Variable& x, const State& state,
                                           const Steps& steps) {
    const auto [a, b] = min_lstm_terms(x);                      // a = f', b = i' ⊙ h̃
    const Variable h = name(scan(a, b, state[0], steps), "h");  // h_t = a_t ⊙ h_{t−1} + b_t
    return {h, {last_state(h, steps)}};
}

// ---- IndRNN

IndRNNCell::IndRNNCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype)
    : ProjectedCell("IndRNNCell", input_size, hidden_size) {
    const std::size_t H = hidden_size;
    weight_ih = register_parameter("weight_ih", draw({H, input_size}, gen, dtype));
    weight_hh = register_parameter("weight_hh", gen.uniform({H}, 0.0, 1.0, dtype));  // U(0, 1)
    bias_ih = register_parameter("bias_ih", draw({H}, gen, dtype));
}

// x_t arrives projected: x_t W^T + b.
State IndRNNCell::step(const Variable& x_t, const State& state) {
    return {name(relu(x_t + weight_hh * state[0]), "h_t")};  // h_t = relu(x_t W^T + b + u ⊙ h)
}

// ---- selective state space

SelectiveSSMCell::SelectiveSSMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen,
                                   DType dtype)
    : ProjectedCell("SelectiveSSMCell", input_size, hidden_size) {
    const std::size_t H = hidden_size;
    weight_ih = register_parameter("weight_ih", draw({2 * H, input_size}, gen, dtype));
    bias_ih = register_parameter("bias_ih", draw({2 * H}, gen, dtype));
    Tensor a_log = Tensor::zeros({H}, dtype);  // S4D-real: A_log_j = log(j + 1)
    for (std::size_t j = 0; j < H; ++j) a_log.set_flat(j, std::log(static_cast<double>(j + 1)));
    A_log = register_parameter("A_log", a_log);
}

// a_t and b_t from P_t = [δ_t, u_t] (one step [B, 2H] or all, [T, B, 2H]).
std::pair<Variable, Variable> SelectiveSSMCell::coefficients(const Variable& x) {
    const auto p = chunk(x, 2, -1);
    const Variable delta = name(softplus_exact(p[0]), "Δ");  // Δ_t = softplus(δ_t)
    const Variable A = softplus_exact(A_log);                // A = softplus(A_log) > 0
    return {exp(-(delta * A)), delta * p[1]};  // a_t = e^{−Δ_t ⊙ A}, b_t = Δ_t ⊙ u_t
}

State SelectiveSSMCell::step(const Variable& x_t, const State& state) {
    const auto [a, b] = coefficients(x_t);
    return {name(a * state[0] + b, "h_t")};  // h_t = a_t ⊙ h_{t−1} + b_t
}

Cell::SequenceResult SelectiveSSMCell::sequence(const Variable& x, const State& state,
                                                const Steps& steps) {
    const auto [a, b] = coefficients(x);
    const Variable h = name(scan(a, b, state[0], steps), "h");  // h_t = a_t ⊙ h_{t−1} + b_t
    return {h, {last_state(h, steps)}};
}

// ---- sLSTM

SLSTMCell::SLSTMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype)
    : ProjectedCell("SLSTMCell", input_size, hidden_size) {
    const std::size_t H = hidden_size;
    weight_ih = register_parameter("weight_ih", draw({4 * H, input_size}, gen, dtype));
    bias_ih = register_parameter("bias_ih", draw({4 * H}, gen, dtype));
    weight_hh = register_parameter("weight_hh", draw({4 * H, H}, gen, dtype));
}

// x_t arrives projected: P_t = x_t W_ih^T + b_ih.
State SLSTMCell::step(const Variable& x_t, const State& state) {
    const Variable &h = state[0], &c = state[1], &n = state[2], &m = state[3];
    const auto p = chunk(linear(h, weight_hh, x_t), 4, 1);  // P_t + h_{t−1} W_hh^T: ĩ, f̃, z̃, õ
    const Variable m_t = name(maximum(p[1] + m, p[0]), "m_t");  // m_t = max(f̃_t + m_{t−1}, ĩ_t)
    const Variable i = name(exp(p[0] - m_t), "input gate");     // i'_t = exp(ĩ_t − m_t)
    const Variable f = name(exp(p[1] + m - m_t), "forget gate");  // f'_t = exp(f̃_t + m_{t−1} − m_t)
    const Variable c_t =
        name(f * c + i * tanh(p[2]), "c_t");      // c_t = f'_t c_{t−1} + i'_t tanh(z̃_t)
    const Variable n_t = name(f * n + i, "n_t");  // n_t = f'_t n_{t−1} + i'_t
    return {name(sigmoid(p[3]) * (c_t / n_t), "h_t"), c_t, n_t, m_t};  // h_t = σ(õ_t) c_t / n_t
}

}  // namespace tapegrad
