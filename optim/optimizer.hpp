// Optimizer: the base of SGD, Adam, AdamW, RMSprop and Adagrad, as PyTorch's torch.optim.
//
//   Adam opt(model, AdamOptions{.lr = 1e-3});
//   for (...) {
//       opt.zero_grad();
//       loss(model).backward();
//       opt.step();
//   }
//   save(model, "model.safetensors");
//   save(opt, "optim.safetensors", {&scheduler});  // state, step counters, group lrs, schedules
//
// Parameters are split into groups, each with its own learning rate and weight decay (the rest
// of the options are the optimizer's). step() updates every parameter that has a gradient, in
// its own dtype, in place through mutable_value(); parameters without a gradient are skipped.
// Per-parameter state (moments, momentum buffers, step counts) is kept in Tensors of the
// parameter's dtype and saved with save(), so a run resumes exactly where it stopped.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include "core/variable.hpp"
#include "train/safetensors.hpp"

namespace tapegrad {

class Module;
class Scheduler;

// A group of parameters given to an optimizer; unset options take the optimizer's value.
struct ParamGroup {
    std::vector<Variable> params;
    std::optional<double> lr = std::nullopt;
    std::optional<double> weight_decay = std::nullopt;
    // Names used in error messages and checked on load; empty: each parameter's name().
    std::vector<std::string> names = {};
};

// All parameters of a module in one group, named by their hierarchical names ("fc1.weight").
ParamGroup param_group(const Module& module);

// What an optimizer is built over: a module or a list of variables (one group), or groups.
struct Params {
    Params(const Module& module);
    Params(std::vector<Variable> params);
    Params(std::initializer_list<Variable> params);
    Params(std::vector<ParamGroup> groups) : groups(std::move(groups)) {}
    Params(std::initializer_list<ParamGroup> groups) : groups(groups) {}
    std::vector<ParamGroup> groups;
};

class Optimizer {
public:
    // A group as the optimizer holds it. Schedulers (and users) change `lr` between steps.
    struct Group {
        std::vector<Variable> params;
        std::vector<std::string> names;
        double lr = 0;
        double weight_decay = 0;
        std::optional<double> initial_lr;  // the lr when the first scheduler was attached
    };
    // One parameter's state: its step count and named buffers of the parameter's shape and dtype.
    struct ParamState {
        std::int64_t step = 0;
        std::map<std::string, Tensor> buffers;
        bool has(const std::string& name) const { return buffers.count(name) != 0; }
        // The buffer `name`, created as a tensor like `like` filled with `fill` if missing.
        Tensor& buffer(const std::string& name, const Tensor& like, double fill = 0);
    };

    virtual ~Optimizer() = default;
    Optimizer(const Optimizer&) = delete;
    Optimizer& operator=(const Optimizer&) = delete;

    const std::string& type_name() const { return type_name_; }

    // Applies one update to every parameter with a gradient. With check_finite on, every
    // gradient is checked first and a NaN/Inf throws ValueError naming the parameter, before
    // any parameter changes.
    void step(const std::source_location& loc = std::source_location::current());
    // Forgets every gradient (set_to_none) or sets each existing gradient to zeros.
    void zero_grad(bool set_to_none = true);

    std::vector<Group>& groups() { return groups_; }
    const std::vector<Group>& groups() const { return groups_; }
    // Adds parameters after construction (each parameter may appear in one group only).
    void add_param_group(ParamGroup group);
    std::vector<Variable> parameters() const;  // all groups, in order
    void set_lr(double lr);                    // every group
    // Number of step() calls so far (restored by load).
    std::int64_t step_count() const { return step_count_; }
    bool check_finite() const { return check_finite_; }
    void set_check_finite(bool on) { check_finite_ = on; }

    // The state of parameter `index` (counted over all groups in order).
    const ParamState& state(std::size_t index) const;

    // Everything needed to resume: buffers as tensors "state.<k>.<buffer>", the rest (type,
    // step counts, group lrs and weight decays, parameter names) as metadata.
    TensorFile state_dict() const;
    // Checks the source against this optimizer (type, groups, parameter count, names, buffer
    // shapes) and throws IOError saying what differs; nothing changes unless all fit. Buffer
    // values are converted to each parameter's dtype.
    void load_state_dict(const TensorFile& state);

protected:
    Optimizer(std::string type_name, Params params, double lr, double weight_decay,
              bool check_finite);
    // Updates one parameter from its gradient (same shape and dtype, all finite when checked).
    // `state` starts empty (step 0, no buffers); the update creates its buffers on first use.
    virtual void update(const Group& group, Variable& param, const Tensor& grad,
                        ParamState& state) = 0;

private:
    std::string type_name_;
    std::vector<Group> groups_;
    std::vector<std::vector<ParamState>> state_;  // parallel to groups_
    double default_lr_, default_weight_decay_;
    bool check_finite_;
    std::int64_t step_count_ = 0;
};

// Optimizer checkpoints (safetensors, beside the model's): the optimizer's state_dict plus the
// state of each scheduler given, stored as metadata "scheduler.<i>.<key>". Load the model,
// then build the optimizer and schedulers as in the first run, then load() this file.
void save(const Optimizer& optimizer, const std::string& path,
          std::initializer_list<const Scheduler*> schedulers = {});
void load(Optimizer& optimizer, const std::string& path,
          std::initializer_list<Scheduler*> schedulers = {});

// What save() writes, in memory: the optimizer's state_dict plus the schedulers' states.
TensorFile training_state_dict(const Optimizer& optimizer,
                               const std::vector<const Scheduler*>& schedulers = {});
// What load() reads, from memory: the number of schedulers and their types must match what
// was saved (IOError naming `source`, e.g. the file), and nothing is changed when they don't.
void load_training_state_dict(Optimizer& optimizer, const TensorFile& file,
                              std::initializer_list<Scheduler*> schedulers,
                              const std::string& source);

namespace detail {
// Shared checks of optimizer and scheduler options: ValueError "<who>: <what> must be ..."
void require_option(bool ok, const std::string& who, const std::string& what, double value);
// Exact text for doubles in metadata (shortest round-trip form) and back.
std::string format_double(double value);
double parse_double(const std::string& text, const std::string& key);
}  // namespace detail

}  // namespace tapegrad
