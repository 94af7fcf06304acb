#include "layers/recurrent.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>

#include "core/graph.hpp"
#include "core/tape.hpp"

#include "ops/arith.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/linalg.hpp"
#include "ops/nn.hpp"
#include "ops/shape.hpp"

namespace tapegrad {

struct detail::StateGradientLog {
    std::size_t layers = 0, directions = 0, states = 0;
    std::vector<std::vector<double>> norms;  // [(layer * D + direction) * S + state][t]
};

Recurrent::Recurrent(std::string type, const CellFactory& make_cell, std::size_t input_size,
                     RecurrentOptions options, Generator& gen)
    : Recurrent(std::move(type), make_cell, input_size, options, gen, OwnOption::none) {}

Recurrent::Recurrent(std::string type, const CellFactory& make_cell, std::size_t input_size,
                     RecurrentOptions options, Generator& gen, OwnOption own)
    : Module(std::move(type)),
      options_(options),
      input_size_(input_size),
      dropout_gen_(options.dropout_seed) {
    // A layer-specific option on another layer is an error, never silently ignored.
    auto not_for = [&](const char* option, const char* layer) {
        throw ValueError(
            fmt::format("{}: option {} applies to {} only", type_name(), option, layer));
    };
    if (own != OwnOption::nonlinearity && options.nonlinearity != Nonlinearity::tanh)
        not_for("nonlinearity", "RNN");
    if (own != OwnOption::init && options.init != LSTMInit{}) not_for("init", "LSTM");
    if (own != OwnOption::variant && options.variant != GRUVariant::cho) not_for("variant", "GRU");
    if (options.num_layers == 0) throw ValueError(type_name() + ": num_layers must be at least 1");
    if (!(options.dropout >= 0.0 && options.dropout < 1.0))
        throw ValueError(
            fmt::format("{}: dropout must be in [0, 1), got {}", type_name(), options.dropout));
    std::size_t layer_input = input_size;
    for (std::size_t l = 0; l < options.num_layers; ++l) {
        for (std::size_t d = 0; d < directions(); ++d) {
            auto cell = make_cell(layer_input, gen);
            if (!cell || cell->input_size() != layer_input)
                throw ValueError(
                    fmt::format("{}: the cell factory must return a cell with input size {}",
                                type_name(), layer_input));
            if (!cells_.empty() && (cell->hidden_size() != cells_.front()->hidden_size() ||
                                    cell->state_count() != cells_.front()->state_count()))
                throw ValueError(type_name() +
                                 ": every cell must have the same hidden size and state");
            register_flat(fmt::format("_l{}{}", l, d ? "_reverse" : ""), cell);
            cells_.push_back(std::move(cell));
        }
        layer_input = cells_.front()->hidden_size() * directions();
    }
    // A user's cells are built in their own dtype; the built-in layers' already are in this one.
    if (options.dtype && std::ranges::any_of(parameters(), [&](const Variable& p) {
            return p.dtype() != *options.dtype;
        }))
        to(*options.dtype);
}

namespace {
// 1 where a step holds data, 0 in the padding: [T, B, 1], or [B, T, 1] with batch_first.
Tensor padding_mask(const std::vector<std::size_t>& lengths, std::size_t T, std::size_t B,
                    bool batch_first, DType dtype) {
    Tensor m = Tensor::empty(batch_first ? Shape{B, T, 1} : Shape{T, B, 1}, dtype);
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t b = 0; b < B; ++b)
            m.set_flat(batch_first ? b * T + t : t * B + b, t < lengths[b] ? 1.0 : 0.0);
    return m;
}

// Anomaly mode: a NaN or Inf in the data (outside the padding) is the caller's, and is
// reported at the caller's line rather than by the first op inside the layer that reads it.
void check_finite_input(const std::string& op, const Variable& x, bool batch_first,
                        const std::vector<Variable>& initial,
                        const std::vector<std::size_t>& lengths, const std::source_location& loc) {
    const Shape& s = x.shape();
    const std::size_t F = s[2];
    for (std::size_t i = 0; i < x.numel(); ++i) {
        const double v = x.value().flat(i);
        if (std::isfinite(v)) continue;
        const std::size_t outer = i / (s[1] * F), inner = i / F % s[1];
        const std::size_t t = batch_first ? inner : outer, b = batch_first ? outer : inner;
        if (!lengths.empty() && t >= lengths[b]) continue;  // padding, never read
        fail<AnomalyError>(op,
                           fmt::format("the input {} holds {} at step {} of sequence {} "
                                       "(feature {})",
                                       to_string(s), v, t, b, i % F),
                           loc);
    }
    for (std::size_t k = 0; k < initial.size(); ++k)
        if (!all_finite(initial[k].value()))
            fail<AnomalyError>(op, fmt::format("initial state {} holds NaN or Inf", k), loc);
}
}  // namespace

namespace {
// One layer and direction of a cell that runs whole sequences (Cell::sequence), its results
// checked: outputs [T, B, H] and a state of the cell's own count and shapes.
Cell::SequenceResult run_sequence(const std::string& op, Cell& cell, const Variable& input,
                                  const State& state, const Tensor& keep, bool reverse,
                                  const std::source_location& loc) {
    const std::size_t T = input.shape()[0], B = input.shape()[1], H = cell.hidden_size();
    Variable x = input;
    if (cell.projects_input()) {
        const Variable rows = cell.project_input(reshape(input, Shape{T * B, input.shape()[2]}));
        x = reshape(rows, Shape{T, B, rows.shape()[1]});
    }
    Cell::SequenceResult r = cell.sequence(x, state, {keep, reverse});
    if (!r.outputs.defined() || r.outputs.shape() != Shape{T, B, H})
        fail<ShapeError>(
            op,
            fmt::format("{}::sequence must return outputs [{},{},{}], got {}", cell.type_name(), T,
                        B, H,
                        r.outputs.defined() ? to_string(r.outputs.shape()) : std::string("none")),
            loc);
    if (r.state.size() != state.size())
        fail<ShapeError>(op,
                         fmt::format("{}::sequence returned {} state tensors, the cell has {}",
                                     cell.type_name(), r.state.size(), state.size()),
                         loc);
    for (const Variable& s : r.state)
        if (!s.defined() || s.shape() != Shape{B, H})
            fail<ShapeError>(
                op, fmt::format("{}::sequence must return states [{},{}]", cell.type_name(), B, H),
                loc);
    return r;
}
}  // namespace

RecurrentOutput Recurrent::forward(const Variable& x, const std::vector<Variable>& initial,
                                   const Tensor& lengths, const std::source_location& loc) {
    const std::string op = type_name() + ".forward";
    if (!lengths.defined() || lengths.dtype() != int64 || lengths.dim() != 1)
        fail<DTypeError>(op,
                         fmt::format("lengths must be a 1-d int64 tensor, got {}",
                                     lengths.defined() ? to_string(lengths.shape()) + " " +
                                                             std::string(name(lengths.dtype()))
                                                       : std::string("an undefined tensor")),
                         loc);
    std::vector<std::size_t> values;
    values.reserve(lengths.numel());
    for (const std::int64_t v : lengths.values<std::int64_t>()) {
        if (v < 1)  // the vector form checks the upper bound; it cannot see a negative length
            fail<ValueError>(
                op, fmt::format("length {} of sequence {} is below 1", v, values.size()), loc);
        values.push_back(static_cast<std::size_t>(v));
    }
    return forward(x, initial, values, loc);
}

RecurrentOutput Recurrent::forward(const Variable& x_in, const std::vector<Variable>& initial,
                                   const std::vector<std::size_t>& lengths,
                                   const std::source_location& loc) {
    const std::string op = type_name() + ".forward";
    if (!x_in.defined()) fail<ValueError>(op, "the input is undefined", loc);
    const bool bf = options_.batch_first;
    if (x_in.dim() != 3)
        fail<ShapeError>(
            op,
            fmt::format("input must be [T, B, F]{}, got {}",
                        bf ? " ([B, T, F] with batch_first)" : "", to_string(x_in.shape())),
            loc);
    const std::size_t T = x_in.shape()[bf ? 1 : 0], B = x_in.shape()[bf ? 0 : 1];
    const std::size_t H = hidden_size(), D = directions();
    const std::size_t L = options_.num_layers, S = cells_.front()->state_count();
    if (x_in.shape()[2] != input_size_)
        fail<ShapeError>(op,
                         fmt::format("input {} has {} features, the layer expects {}",
                                     to_string(x_in.shape()), x_in.shape()[2], input_size_),
                         loc);
    if (x_in.dtype() != dtype())
        fail<DTypeError>(
            op, fmt::format("input is {}, parameters are {}", name(x_in.dtype()), name(dtype())),
            loc);
    if (T == 0 || B == 0)
        fail<ShapeError>(op, fmt::format("empty input {}", to_string(x_in.shape())), loc);
    if (!initial.empty()) {
        if (initial.size() != S)
            fail<ShapeError>(
                op,
                fmt::format("{} initial state tensors given, the cell has {}", initial.size(), S),
                loc);
        for (std::size_t k = 0; k < S; ++k) {
            if (!initial[k].defined())
                fail<ValueError>(op, fmt::format("initial state {} is undefined", k), loc);
            if (initial[k].shape() != Shape{L * D, B, H} || initial[k].dtype() != x_in.dtype())
                fail<ShapeError>(
                    op,
                    fmt::format("initial state {} must be [{},{},{}] {}, got {} {}", k, L * D, B, H,
                                name(x_in.dtype()), to_string(initial[k].shape()),
                                name(initial[k].dtype())),
                    loc);
        }
    }
    // Variable lengths: keep[t] [B, 1] is 1 for the sequences still running at step t.
    std::vector<Tensor> keep;
    if (!lengths.empty()) {
        if (lengths.size() != B)
            fail<ShapeError>(op, fmt::format("{} lengths for a batch of {}", lengths.size(), B),
                             loc);
        bool ragged = false;
        for (std::size_t b = 0; b < B; ++b) {
            if (lengths[b] < 1 || lengths[b] > T)
                fail<ValueError>(
                    op,
                    fmt::format("length {} of sequence {} is outside [1, {}]", lengths[b], b, T),
                    loc);
            ragged = ragged || lengths[b] != T;
        }
        if (ragged)
            for (std::size_t t = 0; t < T; ++t) {
                Tensor m = Tensor::empty({B, 1}, x_in.dtype());
                for (std::size_t b = 0; b < B; ++b) m.set_flat(b, t < lengths[b] ? 1.0 : 0.0);
                keep.push_back(m);
            }
    }
    if (anomaly_enabled()) check_finite_input(op, x_in, bf, initial, lengths, loc);
    // Padding is never read: padded inputs are replaced by zeros (by selection, so NaN and Inf
    // go too) before any op sees them, and padded steps select the old state below.
    Variable x = keep.empty() ? x_in
                              : where(padding_mask(lengths, T, B, bf, x_in.dtype()), x_in,
                                      constant(0.0, x_in.dtype()));
    if (bf) x = transpose(x, 0, 1);
    const Variable zero = constant(0.0, x.dtype());
    // For cells that run whole sequences: every step's keep at once, [T, B, 1].
    const bool any_sequence_cell =
        std::ranges::any_of(cells_, [](const auto& c) { return c->runs_sequences(); });
    const Tensor sequence_keep = keep.empty() || !any_sequence_cell
                                     ? Tensor()
                                     : padding_mask(lengths, T, B, false, x.dtype());

    const std::shared_ptr<detail::StateGradientLog> watch = watch_;
    if (watch)
        *watch = {L, D, S, std::vector<std::vector<double>>(L * D * S, std::vector<double>(T))};

    const GraphScope module_scope(type_name());    // ops grouped by layer, direction and step
    std::vector<std::vector<Variable>> finals(S);  // [state kind][layer * D + direction]
    Variable layer_input = x;
    for (std::size_t l = 0; l < L; ++l) {
        const GraphScope layer_scope(fmt::format("layer {}", l));
        std::vector<std::vector<Variable>> outputs(D, std::vector<Variable>(T));
        std::vector<Variable> whole(D);  // [T, B, H] from a cell that ran the whole sequence
        for (std::size_t d = 0; d < D; ++d) {
            const GraphScope direction_scope(d ? "reverse" : "forward");
            Cell& cell = *cells_[l * D + d];
            State state(S);
            for (std::size_t k = 0; k < S; ++k)
                state[k] = initial.empty()
                               ? constant(Tensor::zeros({B, H}, x.dtype()))
                               : reshape(narrow(initial[k], 0, static_cast<long>(l * D + d), 1),
                                         Shape{B, H});
            if (cell.runs_sequences()) {
                auto [outs, last] =
                    run_sequence(op, cell, layer_input, state, sequence_keep, d == 1, loc);
                whole[d] = sequence_keep.defined() ? where(sequence_keep, outs, zero) : outs;
                for (std::size_t k = 0; k < S; ++k) finals[k].push_back(last[k]);
                continue;
            }
            // Before the projection: what the cell records once per sequence (a GRU's weight
            // slices) then runs backward after the projection's gradient is joined, so the
            // slices' per-step products read that gradient in place (core/products.hpp).
            const Cell::StepFn step = cell.sequence_step();
            // The inputs of every step: projected for all steps in one matmul when the cell can.
            std::vector<Variable> x_t;
            if (cell.projects_input()) {
                const Variable rows = reshape(layer_input, Shape{T * B, layer_input.shape()[2]});
                x_t =
                    split(cell.project_input(rows), std::vector<long>(T, static_cast<long>(B)), 0);
            } else {
                x_t = unbind(layer_input, 0);
            }
            // The weights the steps multiply by are packed once per sequence (ops/linalg.hpp);
            // opened after the projection, whose weight is used once.
            const WeightPackScope packs;
            for (std::size_t n = 0; n < T; ++n) {
                const std::size_t t = d == 0 ? n : T - 1 - n;
                const GraphScope step_scope("", static_cast<long>(t));
                State next = step(x_t[t], state);
                if (keep.empty()) {
                    state = std::move(next);
                    outputs[d][t] = state[0];
                } else {
                    // padded steps leave the state unchanged and output zeros
                    for (std::size_t k = 0; k < S; ++k)
                        state[k] = where(keep[t], next[k], state[k]);
                    outputs[d][t] = where(keep[t], next[0], zero);
                }
                if (watch)
                    for (std::size_t k = 0; k < S; ++k)
                        if (state[k].requires_grad())
                            state[k].register_hook(
                                [watch, t, slot = (l * D + d) * S + k](const Variable& g) {
                                    watch->norms[slot][t] = norm_of(g.value());
                                });
            }
            for (std::size_t k = 0; k < S; ++k) finals[k].push_back(state[k]);
        }
        if (std::ranges::all_of(whole, [](const Variable& w) { return w.defined(); })) {
            layer_input = D == 1 ? whole[0] : concat(whole, 2);  // [T, B, D*H]
        } else {
            for (std::size_t d = 0; d < D; ++d)
                if (whole[d].defined()) outputs[d] = unbind(whole[d], 0);
            std::vector<Variable> per_step(T);
            for (std::size_t t = 0; t < T; ++t) {
                const GraphScope step_scope("", static_cast<long>(t));
                per_step[t] = D == 1 ? outputs[0][t] : concat({outputs[0][t], outputs[1][t]}, 1);
            }
            layer_input = stack(per_step, 0);  // [T, B, D*H]
        }
        if (l + 1 < L && options_.dropout > 0 && is_training())
            layer_input = dropout(layer_input, options_.dropout, true, dropout_gen_);
    }
    RecurrentOutput out;
    out.output = options_.batch_first ? transpose(layer_input, 0, 1) : layer_input;
    for (auto& f : finals) out.states.push_back(stack(f, 0));
    return out;
}

StateGradients::StateGradients(Recurrent& layer)
    : layer_(layer), log_(std::make_shared<detail::StateGradientLog>()) {
    if (layer_.watch_)
        throw ValueError(layer.type_name() + ": StateGradients: the layer is already watched");
    layer_.watch_ = log_;
}

StateGradients::~StateGradients() {
    if (layer_.watch_ == log_) layer_.watch_.reset();
}

std::vector<double> StateGradients::norms(std::size_t layer, std::size_t direction,
                                          std::size_t state) const {
    const auto& log = *log_;
    if (log.norms.empty())
        throw ValueError(layer_.type_name() +
                         ": StateGradients::norms: no forward ran while it was watching");
    if (layer >= log.layers || direction >= log.directions || state >= log.states)
        throw ValueError(fmt::format(
            "{}: StateGradients::norms: layer {}, direction {}, state {} is outside the last "
            "forward's {} layers, {} directions and {} states",
            layer_.type_name(), layer, direction, state, log.layers, log.directions, log.states));
    return log.norms[(layer * log.directions + direction) * log.states + state];
}

std::vector<Variable> detach(const std::vector<Variable>& states) {
    std::vector<Variable> out;
    for (const auto& s : states) out.push_back(s.detach());
    return out;
}

namespace {
// A built-in layer's cells: C(input size, hidden_size, generator, dtype, option).
template <class C, class Option>
CellFactory cells_of(std::size_t hidden_size, const RecurrentOptions& options, Option option) {
    return [hidden_size, dtype = options.dtype.value_or(float32), option](std::size_t in,
                                                                          Generator& g) {
        return std::make_shared<C>(in, hidden_size, g, dtype, option);
    };
}
}  // namespace

RNN::RNN(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen)
    : Recurrent("RNN", cells_of<RNNCell>(hidden_size, options, options.nonlinearity), input_size,
                options, gen, OwnOption::nonlinearity) {}

LSTM::LSTM(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options,
           Generator& gen)
    : Recurrent("LSTM", cells_of<LSTMCell>(hidden_size, options, options.init), input_size, options,
                gen, OwnOption::init) {}

GRU::GRU(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen)
    : Recurrent("GRU", cells_of<GRUCell>(hidden_size, options, options.variant), input_size,
                options, gen, OwnOption::variant) {}

}  // namespace tapegrad
