// The cell interface: one time step from an input and a state to the new state. Any type that
// implements it — the built-in RNN, LSTM and GRU cells or a user's own — gets everything the
// recurrent driver (layers/recurrent.hpp) offers: stacking, bidirectional, variable lengths,
// initial states, dropout between layers and truncated BPTT.
#pragma once

#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "layers/module.hpp"
#include "ops/linalg.hpp"

namespace tapegrad {

using State = std::vector<Variable>;  // e.g. {h} or {h, c}, each [B, hidden_size]

class Cell : public Module {
public:
    using Module::Module;
    virtual std::size_t input_size() const = 0;
    virtual std::size_t hidden_size() const = 0;
    // How many tensors the state holds (1 for RNN and GRU, 2 for LSTM). The first one is the
    // cell's output at each step.
    virtual std::size_t state_count() const { return 1; }

    // A cell may declare an input projection, computed for all time steps at once as one
    // matmul before the time loop: project_input([N, input_size]) -> [N, P]; step() then gets
    // the projected rows instead of raw inputs. Cells that do not, get x_t [B, input_size].
    virtual bool projects_input() const { return false; }
    virtual Variable project_input(const Variable& x) { return x; }
    // One step: x_t [B, input_size] (or its projection), state -> new state.
    virtual State step(const Variable& x_t, const State& state) = 0;

    // A cell whose step uses its projection in column parts (a GRU's r,z columns and its n
    // columns) may project the parts apart: project_input_parts returns one [N, P_k] tensor
    // per part, and the driver calls step_parts with each part's rows for the step. Each
    // part's gradient is then whole at every step, instead of cut from and joined into one
    // [B, P] gradient. The defaults are the one projection and step().
    virtual std::vector<Variable> project_input_parts(const Variable& x) { return {project_input(x)}; }
    virtual State step_parts(const std::vector<Variable>& x_t, const State& state) {
        if (x_t.size() != 1)
            throw ValueError(fmt::format("{}: step_parts got {} input parts; this cell's projection is one",
                                         type_name(), x_t.size()));
        return step(x_t.front(), state);
    }

    // The driver brackets each sequence's steps (per layer and direction) with these, so a
    // cell can compute once what every step shares — slices of its weights, say — and have
    // that work and its gradient happen once per sequence instead of once per step. The
    // driver opens the bracket before it projects the inputs. step() must still work on its
    // own, outside a bracket. Use SequenceScope, which ends the bracket however the steps
    // end; it also opens a WeightPackScope (ops/linalg.hpp), so the weights a cell
    // multiplies by at every step are packed once per sequence.
    virtual void begin_sequence() {}
    virtual void end_sequence() {}
};

// begin_sequence now, end_sequence however the scope ends.
class SequenceBracket {
public:
    explicit SequenceBracket(Cell& cell) : cell_(cell) { cell_.begin_sequence(); }
    ~SequenceBracket() { cell_.end_sequence(); }
    SequenceBracket(const SequenceBracket&) = delete;
    SequenceBracket& operator=(const SequenceBracket&) = delete;

private:
    Cell& cell_;
};

// A bracket inside a WeightPackScope: what a loop over a cell's steps opens.
class SequenceScope {
public:
    explicit SequenceScope(Cell& cell) : bracket_(cell) {}

private:
    WeightPackScope packs_;  // declared first: open before begin_sequence, closed after end
    SequenceBracket bracket_;
};

}  // namespace tapegrad
