#include "optim/optimizer.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>
#include <unordered_set>

#include <fmt/format.h>

#include "layers/module.hpp"
#include "optim/schedule.hpp"

namespace tapegrad {

namespace detail {

void require_option(bool ok, const std::string& who, const std::string& what, double value) {
    if (!ok) throw ValueError(fmt::format("{}: {} (got {})", who, what, value));
}

std::string format_double(double value) { return fmt::format("{}", value); }

double parse_double(const std::string& text, const std::string& key) {
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno == ERANGE)
        throw IOError(fmt::format("optimizer state: '{}' = '{}' is not a number", key, text));
    return value;
}

}  // namespace detail

namespace {

std::int64_t parse_int(const std::string& text, const std::string& key) {
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE)
        throw IOError(fmt::format("optimizer state: '{}' = '{}' is not an integer", key, text));
    return value;
}

const std::string& meta(const TensorFile& file, const std::string& key) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end())
        throw IOError(fmt::format("optimizer state: the entry '{}' is missing", key));
    return it->second;
}

std::string describe(const Tensor& t) {
    return to_string(t.shape()) + " " + std::string(name(t.dtype()));
}

}  // namespace

ParamGroup param_group(const Module& module) {
    ParamGroup group;
    for (auto& [name, p] : module.named_parameters()) {
        group.params.push_back(p);
        group.names.push_back(name);
    }
    return group;
}

Tensor& Optimizer::ParamState::buffer(const std::string& name, const Tensor& like, double fill) {
    auto it = buffers.find(name);
    if (it == buffers.end())
        it = buffers.emplace(name, Tensor::full(like.shape(), fill, like.dtype())).first;
    return it->second;
}

Params::Params(const Module& module) : groups{param_group(module)} {}
Params::Params(std::vector<Variable> params) { groups.push_back(ParamGroup{std::move(params)}); }
Params::Params(std::initializer_list<Variable> params) { groups.push_back(ParamGroup{params}); }

Optimizer::Optimizer(std::string type_name, Params params, double lr, double weight_decay,
                     bool check_finite)
    : type_name_(std::move(type_name)),
      default_lr_(lr),
      default_weight_decay_(weight_decay),
      check_finite_(check_finite) {
    detail::require_option(lr >= 0, type_name_, "lr must be >= 0", lr);
    detail::require_option(weight_decay >= 0, type_name_, "weight_decay must be >= 0",
                           weight_decay);
    if (params.groups.empty()) throw ValueError(type_name_ + ": no parameter groups were given");
    for (auto& g : params.groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
    const std::size_t n = group.params.size();
    if (!group.names.empty() && group.names.size() != n)
        throw ValueError(fmt::format("{}: a parameter group has {} parameters but {} names",
                                     type_name_, n, group.names.size()));
    std::unordered_set<const detail::VarImpl*> seen;
    for (const auto& g : groups_)
        for (const auto& p : g.params) seen.insert(p.impl());
    std::size_t index = parameters().size();
    Group out;
    out.lr = group.lr.value_or(default_lr_);
    out.weight_decay = group.weight_decay.value_or(default_weight_decay_);
    detail::require_option(out.lr >= 0, type_name_, "a group's lr must be >= 0", out.lr);
    detail::require_option(out.weight_decay >= 0, type_name_, "a group's weight_decay must be >= 0",
                           out.weight_decay);
    for (std::size_t i = 0; i < n; ++i, ++index) {
        const Variable& p = group.params[i];
        std::string name = !group.names.empty()               ? group.names[i]
                           : p.defined() && !p.name().empty() ? p.name()
                                                              : fmt::format("#{}", index);
        if (!p.defined())
            throw ValueError(
                fmt::format("{}: parameter '{}' is an undefined variable", type_name_, name));
        if (!p.is_leaf())
            throw ValueError(
                fmt::format("{}: parameter '{}' is the result of an op; only leaf "
                            "variables can be optimized",
                            type_name_, name));
        if (!seen.insert(p.impl()).second)
            throw ValueError(
                fmt::format("{}: parameter '{}' appears more than once in the "
                            "parameter groups",
                            type_name_, name));
        out.params.push_back(p);
        out.names.push_back(std::move(name));
    }
    state_.emplace_back(n);
    groups_.push_back(std::move(out));
}

std::vector<Variable> Optimizer::parameters() const {
    std::vector<Variable> out;
    for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
    return out;
}

void Optimizer::set_lr(double lr) {
    detail::require_option(lr >= 0, type_name_, "lr must be >= 0", lr);
    for (auto& g : groups_) g.lr = lr;
}

const Optimizer::ParamState& Optimizer::state(std::size_t index) const {
    std::size_t k = index;
    for (const auto& s : state_) {
        if (k < s.size()) return s[k];
        k -= s.size();
    }
    throw ValueError(fmt::format("{}: state: no parameter {} (the optimizer has {})", type_name_,
                                 index, parameters().size()));
}

void Optimizer::zero_grad(bool set_to_none) {
    for (auto& g : groups_)
        for (auto& p : g.params) {
            if (set_to_none) p.zero_grad();
            else if (p.grad().defined()) p.set_grad(Tensor::zeros(p.shape(), p.dtype()));
        }
}

void Optimizer::step(const std::source_location& loc) {
    const std::string op = type_name_ + ".step";
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
        const Group& g = groups_[gi];
        if (g.params.size() != state_[gi].size() || g.names.size() != g.params.size())
            fail<ValueError>(op,
                             fmt::format("group {} now holds {} parameters, it was built with {}; "
                                         "add parameters with add_param_group",
                                         gi, g.params.size(), state_[gi].size()),
                             loc);
        for (std::size_t i = 0; i < g.params.size(); ++i) {
            const Tensor& grad = g.params[i].grad();
            if (!grad.defined()) continue;
            if (grad.dtype() != g.params[i].dtype() || grad.shape() != g.params[i].shape())
                fail<ShapeError>(
                    op,
                    fmt::format("the gradient of parameter '{}' is {}, the parameter is {}",
                                g.names[i], describe(grad), describe(g.params[i].value())),
                    loc);
            if (check_finite_ && !all_finite(grad)) {
                std::size_t bad = 0;
                for (double v : grad.to_vector()) bad += !std::isfinite(v);
                fail<ValueError>(op,
                                 fmt::format("the gradient of parameter '{}' ({}) has {} NaN/Inf "
                                             "value(s); no parameter was updated",
                                             g.names[i], describe(grad), bad),
                                 loc);
            }
        }
    }
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
        Group& g = groups_[gi];
        for (std::size_t i = 0; i < g.params.size(); ++i) {
            const Tensor grad = g.params[i].grad();
            if (grad.defined()) update(g, g.params[i], grad, state_[gi][i]);
        }
    }
    ++step_count_;
}

TensorFile Optimizer::state_dict() const {
    TensorFile out;
    auto& m = out.metadata;
    m["format"] = "tapegrad.optimizer/1";
    m["optimizer"] = type_name_;
    m["step_count"] = std::to_string(step_count_);
    m["groups"] = std::to_string(groups_.size());
    std::size_t k = 0;
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
        const Group& g = groups_[gi];
        const std::string gk = fmt::format("group.{}.", gi);
        m[gk + "params"] = std::to_string(g.params.size());
        m[gk + "lr"] = detail::format_double(g.lr);
        m[gk + "weight_decay"] = detail::format_double(g.weight_decay);
        if (g.initial_lr) m[gk + "initial_lr"] = detail::format_double(*g.initial_lr);
        for (std::size_t i = 0; i < g.params.size(); ++i, ++k) {
            const ParamState& s = state_[gi][i];
            m[fmt::format("param.{}.name", k)] = g.names[i];
            m[fmt::format("param.{}.step", k)] = std::to_string(s.step);
            for (const auto& [name, t] : s.buffers)
                out.tensors.emplace_back(fmt::format("state.{}.{}", k, name), t);
        }
    }
    return out;
}

void Optimizer::load_state_dict(const TensorFile& file) {
    if (meta(file, "format") != "tapegrad.optimizer/1")
        throw IOError("optimizer state: unknown format '" + meta(file, "format") + "'");
    if (meta(file, "optimizer") != type_name_)
        throw IOError(fmt::format("optimizer state: saved by {}, loading into {}",
                                  meta(file, "optimizer"), type_name_));
    const auto ngroups = parse_int(meta(file, "groups"), "groups");
    if (ngroups != static_cast<std::int64_t>(groups_.size()))
        throw IOError(fmt::format("optimizer state: {} parameter groups saved, this {} has {}",
                                  ngroups, type_name_, groups_.size()));
    // Parse and check everything first; commit only when all of it fits.
    std::vector<Group> groups = groups_;
    std::vector<std::vector<ParamState>> state(groups_.size());
    std::set<std::string> used;
    std::size_t k = 0;
    for (std::size_t gi = 0; gi < groups.size(); ++gi) {
        Group& g = groups[gi];
        const std::string gk = fmt::format("group.{}.", gi);
        const auto n = parse_int(meta(file, gk + "params"), gk + "params");
        if (n != static_cast<std::int64_t>(g.params.size()))
            throw IOError(fmt::format("optimizer state: group {} has {} parameters saved, {} here",
                                      gi, n, g.params.size()));
        g.lr = detail::parse_double(meta(file, gk + "lr"), gk + "lr");
        g.weight_decay = detail::parse_double(meta(file, gk + "weight_decay"), gk + "weight_decay");
        g.initial_lr.reset();
        if (file.metadata.count(gk + "initial_lr"))
            g.initial_lr = detail::parse_double(meta(file, gk + "initial_lr"), gk + "initial_lr");
        for (std::size_t i = 0; i < g.params.size(); ++i, ++k) {
            const std::string pk = fmt::format("param.{}.", k);
            if (meta(file, pk + "name") != g.names[i])
                throw IOError(
                    fmt::format("optimizer state: parameter {} is '{}' in the file, '{}' here", k,
                                meta(file, pk + "name"), g.names[i]));
            ParamState s;
            s.step = parse_int(meta(file, pk + "step"), pk + "step");
            const std::string prefix = fmt::format("state.{}.", k);
            for (const auto& [name, t] : file.tensors) {
                if (name.rfind(prefix, 0) != 0) continue;
                if (t.shape() != g.params[i].shape())
                    throw IOError(fmt::format("optimizer state: '{}' is {}, parameter '{}' is {}",
                                              name, to_string(t.shape()), g.names[i],
                                              to_string(g.params[i].shape())));
                s.buffers[name.substr(prefix.size())] = t.to(g.params[i].dtype()).clone();
                used.insert(name);
            }
            state[gi].push_back(std::move(s));
        }
    }
    for (const auto& [name, t] : file.tensors)
        if (!used.count(name))
            throw IOError(
                fmt::format("optimizer state: the tensor '{}' belongs to no parameter", name));
    step_count_ = parse_int(meta(file, "step_count"), "step_count");
    groups_ = std::move(groups);
    state_ = std::move(state);
}

TensorFile training_state_dict(const Optimizer& optimizer,
                               const std::vector<const Scheduler*>& schedulers) {
    TensorFile file = optimizer.state_dict();
    file.metadata["schedulers"] = std::to_string(schedulers.size());
    std::size_t i = 0;
    for (const Scheduler* s : schedulers) {
        for (auto& [key, value] : s->state_dict())
            file.metadata[fmt::format("scheduler.{}.{}", i, key)] = value;
        ++i;
    }
    return file;
}

void load_training_state_dict(Optimizer& optimizer, const TensorFile& file,
                              std::initializer_list<Scheduler*> schedulers,
                              const std::string& source) {
    const auto n = parse_int(meta(file, "schedulers"), "schedulers");
    if (n != static_cast<std::int64_t>(schedulers.size()))
        throw IOError(fmt::format("optimizer state {}: {} scheduler(s) saved, {} given to load",
                                  source, n, schedulers.size()));
    std::vector<std::map<std::string, std::string>> states(schedulers.size());
    std::size_t i = 0;
    for (const Scheduler* s : schedulers) {
        const std::string prefix = fmt::format("scheduler.{}.", i);
        for (const auto& [key, value] : file.metadata)
            if (key.rfind(prefix, 0) == 0) states[i][key.substr(prefix.size())] = value;
        if (states[i]["type"] != s->type_name())
            throw IOError(
                fmt::format("optimizer state {}: scheduler {} was a {}, loading into a {}", source,
                            i, states[i]["type"], s->type_name()));
        ++i;
    }
    optimizer.load_state_dict(file);
    i = 0;
    for (Scheduler* s : schedulers) s->load_state_dict(states[i++]);
}

void save(const Optimizer& optimizer, const std::string& path,
          std::initializer_list<const Scheduler*> schedulers) {
    const TensorFile file = training_state_dict(optimizer, {schedulers.begin(), schedulers.end()});
    save_safetensors(path, file.tensors, file.metadata);
}

void load(Optimizer& optimizer, const std::string& path,
          std::initializer_list<Scheduler*> schedulers) {
    load_training_state_dict(optimizer, load_safetensors(path), schedulers, path);
}

}  // namespace tapegrad
