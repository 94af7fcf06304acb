#include "layers/recurrent.hpp"

#include <fmt/format.h>

#include "ops/arith.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/linalg.hpp"
#include "ops/nn.hpp"
#include "ops/shape.hpp"

namespace tapegrad {

Recurrent::Recurrent(std::string type, const CellFactory& make_cell, std::size_t input_size,
                     RecurrentOptions options, Generator& gen)
    : Module(std::move(type)),
      options_(options),
      input_size_(input_size),
      dropout_gen_(options.dropout_seed) {
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
}

RecurrentOutput Recurrent::forward(const Variable& x_in, const std::vector<Variable>& initial,
                                   const std::vector<std::size_t>& lengths) {
    const char* op = "Recurrent::forward";
    if (!x_in.defined() || x_in.dim() != 3)
        throw ShapeError(fmt::format("{} ({}): input must be [T, B, F]{}, got {}", op, type_name(),
                                     options_.batch_first ? " ([B, T, F] with batch_first)" : "",
                                     x_in.defined() ? to_string(x_in.shape()) : "undefined"));
    const Variable x = options_.batch_first ? transpose(x_in, 0, 1) : x_in;
    const std::size_t T = x.shape()[0], B = x.shape()[1], H = hidden_size(), D = directions();
    const std::size_t L = options_.num_layers, S = cells_.front()->state_count();
    if (x.shape()[2] != input_size_)
        throw ShapeError(fmt::format("{} ({}): input {} has {} features, the layer expects {}", op,
                                     type_name(), to_string(x_in.shape()), x.shape()[2],
                                     input_size_));
    if (x.dtype() != dtype())
        throw DTypeError(fmt::format("{} ({}): input is {}, parameters are {}", op, type_name(),
                                     name(x.dtype()), name(dtype())));
    if (T == 0 || B == 0)
        throw ShapeError(
            fmt::format("{} ({}): empty input {}", op, type_name(), to_string(x.shape())));
    if (!initial.empty()) {
        if (initial.size() != S)
            throw ShapeError(fmt::format("{} ({}): {} initial state tensors given, the cell has {}",
                                         op, type_name(), initial.size(), S));
        for (const auto& s : initial)
            if (!s.defined() || s.shape() != Shape{L * D, B, H} || s.dtype() != x.dtype())
                throw ShapeError(fmt::format("{} ({}): initial state must be [{},{},{}] {}, got {}",
                                             op, type_name(), L * D, B, H, name(x.dtype()),
                                             s.defined() ? to_string(s.shape()) : "undefined"));
    }
    // Masks for variable lengths: keep[t] is 1 for the sequences still running at step t.
    std::vector<Tensor> keep;
    if (!lengths.empty()) {
        if (lengths.size() != B)
            throw ShapeError(fmt::format("{} ({}): {} lengths for a batch of {}", op, type_name(),
                                         lengths.size(), B));
        bool ragged = false;
        for (std::size_t b = 0; b < B; ++b) {
            if (lengths[b] < 1 || lengths[b] > T)
                throw ValueError(fmt::format("{} ({}): length {} of sequence {} is outside [1, {}]",
                                             op, type_name(), lengths[b], b, T));
            ragged = ragged || lengths[b] != T;
        }
        if (ragged)
            for (std::size_t t = 0; t < T; ++t) {
                Tensor m = Tensor::empty({B, 1}, x.dtype());
                for (std::size_t b = 0; b < B; ++b) m.set_flat(b, t < lengths[b] ? 1.0 : 0.0);
                keep.push_back(m);
            }
    }

    std::vector<std::vector<Variable>> finals(S);  // [state kind][layer * D + direction]
    Variable layer_input = x;
    for (std::size_t l = 0; l < L; ++l) {
        std::vector<std::vector<Variable>> outputs(D, std::vector<Variable>(T));
        for (std::size_t d = 0; d < D; ++d) {
            Cell& cell = *cells_[l * D + d];
            State state(S);
            for (std::size_t k = 0; k < S; ++k)
                state[k] = initial.empty()
                               ? constant(Tensor::zeros({B, H}, x.dtype()))
                               : reshape(narrow(initial[k], 0, static_cast<long>(l * D + d), 1),
                                         Shape{B, H});
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
                State next = step(x_t[t], state);
                if (keep.empty()) {
                    state = std::move(next);
                    outputs[d][t] = state[0];
                } else {
                    // padded steps leave the state unchanged and output zeros
                    for (std::size_t k = 0; k < S; ++k)
                        state[k] = where(keep[t], next[k], state[k]);
                    outputs[d][t] = next[0] * constant(keep[t]);
                }
            }
            for (std::size_t k = 0; k < S; ++k) finals[k].push_back(state[k]);
        }
        std::vector<Variable> per_step(T);
        for (std::size_t t = 0; t < T; ++t)
            per_step[t] = D == 1 ? outputs[0][t] : concat({outputs[0][t], outputs[1][t]}, 1);
        layer_input = stack(per_step, 0);  // [T, B, D*H]
        if (l + 1 < L && options_.dropout > 0 && is_training())
            layer_input = dropout(layer_input, options_.dropout, true, dropout_gen_);
    }
    RecurrentOutput out;
    out.output = options_.batch_first ? transpose(layer_input, 0, 1) : layer_input;
    for (auto& f : finals) out.states.push_back(stack(f, 0));
    return out;
}

std::vector<Variable> detach(const std::vector<Variable>& states) {
    std::vector<Variable> out;
    for (const auto& s : states) out.push_back(s.detach());
    return out;
}

namespace {
// A built-in layer's cells: C(input size, hidden_size, generator, args...).
template <class C, class... Args>
CellFactory cells_of(std::size_t hidden_size, Args... args) {
    return [=](std::size_t in, Generator& g) {
        return std::make_shared<C>(in, hidden_size, g, args...);
    };
}
}  // namespace

RNN::RNN(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen,
         DType dtype, Nonlinearity nonlinearity)
    : Recurrent("RNN", cells_of<RNNCell>(hidden_size, dtype, nonlinearity), input_size, options,
                gen) {}

LSTM::LSTM(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options,
           Generator& gen, DType dtype, LSTMInit init)
    : Recurrent("LSTM", cells_of<LSTMCell>(hidden_size, dtype, init), input_size, options, gen) {}

GRU::GRU(std::size_t input_size, std::size_t hidden_size, RecurrentOptions options, Generator& gen,
         DType dtype, GRUVariant variant)
    : Recurrent("GRU", cells_of<GRUCell>(hidden_size, dtype, variant), input_size, options, gen) {}

}  // namespace tapegrad
