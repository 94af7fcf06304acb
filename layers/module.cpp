#include "layers/module.hpp"

#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "train/safetensors.hpp"

namespace tapegrad {

Variable Module::register_parameter(std::string name, Tensor value) {
    for (const auto& [n, p] : params_)
        if (n == name)
            throw ValueError(
                fmt::format("{}: parameter '{}' is registered twice", type_name_, name));
    Variable p(std::move(value), true, name);
    params_.emplace_back(std::move(name), p);
    return p;
}

void Module::add_child(std::string name, std::shared_ptr<Module> module, bool flat) {
    if (!module) throw ValueError(fmt::format("{}: submodule '{}' is null", type_name_, name));
    for (const auto& c : children_)
        if (c.name == name)
            throw ValueError(
                fmt::format("{}: submodule '{}' is registered twice", type_name_, name));
    children_.push_back({std::move(name), std::move(module), flat});
}

void Module::collect(const std::string& prefix,
                     std::vector<std::pair<std::string, Variable>>& out) const {
    for (const auto& [n, p] : params_) out.emplace_back(prefix + n, p);
    for (const auto& c : children_) {
        if (!c.flat) {
            c.module->collect(prefix + c.name + ".", out);
            continue;
        }
        for (auto& [n, p] : c.module->named_parameters()) out.emplace_back(prefix + n + c.name, p);
    }
}

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
    std::vector<std::pair<std::string, Variable>> out;
    collect("", out);
    return out;
}

Variable Module::parameter(const std::string& name) const {
    const auto named = named_parameters();
    for (const auto& [n, p] : named)
        if (n == name) return p;
    if (named.empty())
        throw ValueError(
            fmt::format("{}::parameter: no parameter named '{}'; the module has no "
                        "parameters",
                        type_name_, name));
    constexpr std::size_t shown = 8;
    std::vector<std::string_view> names;
    for (std::size_t i = 0; i < named.size() && i < shown; ++i) names.push_back(named[i].first);
    const std::string more =
        named.size() > shown ? fmt::format(", ... ({} in all)", named.size()) : std::string();
    throw ValueError(fmt::format("{}::parameter: no parameter named '{}'; its parameters: {}{}",
                                 type_name_, name, fmt::join(names, ", "), more));
}

std::vector<Variable> Module::parameters() const {
    std::vector<Variable> out;
    for (auto& [n, p] : named_parameters()) out.push_back(p);
    return out;
}

std::size_t Module::parameter_count() const {
    std::size_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
}

void Module::zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
}

void Module::train(bool on) {
    training_ = on;
    for (auto& c : children_) c.module->train(on);
}

void Module::to(DType dtype) {
    for (auto& p : parameters()) {
        p.mutable_value() = p.value().to(dtype);
        p.zero_grad();
    }
}

DType Module::dtype() const {
    const auto ps = parameters();
    return ps.empty() ? float32 : ps.front().dtype();
}

std::vector<std::pair<std::string, Tensor>> Module::state_dict() const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& [n, p] : named_parameters()) out.emplace_back(n, p.value());
    return out;
}

std::string Module::LoadReport::str() const {
    std::string s;
    auto list = [&](const char* what, const std::vector<std::string>& names) {
        if (names.empty()) return;
        s += fmt::format("{}{}: {}", s.empty() ? "" : "; ", what, fmt::join(names, ", "));
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("mismatched", mismatched);
    return s.empty() ? "all parameters matched" : s;
}

namespace {
// One entry of a state to load: a value, or why the entry cannot be a parameter's value (an
// integer tensor of a checkpoint, or one the reader skipped).
struct Source {
    const std::string* name;
    const Tensor* value;      // null when not_a_value is set
    std::string not_a_value;  // "I64 in the source", "U64 in the source (element 3 is ...)"
};

// Checks every parameter against `state`, then assigns all or (not strict) the matching ones.
// Throws ValueError, before changing anything, when strict and anything does not match.
Module::LoadReport load_sources(Module& module, const std::vector<Source>& state, bool strict) {
    Module::LoadReport report;
    const auto params = module.named_parameters();
    std::unordered_map<std::string_view, const Source*> by_name;
    for (const auto& s : state) by_name[*s.name] = &s;  // a repeated name: the last one counts
    std::vector<std::pair<Variable, Tensor>> assignments;
    for (const auto& [name, p] : params) {
        const auto it = by_name.find(name);
        if (it == by_name.end()) {
            report.missing.push_back(name);
            continue;
        }
        const Source& src = *it->second;
        if (!src.value) {
            report.mismatched.push_back(fmt::format("{}: {}, a {} parameter here", name,
                                                    src.not_a_value, tapegrad::name(p.dtype())));
        } else if (src.value->shape() != p.shape()) {
            report.mismatched.push_back(fmt::format("{}: {} in the source, {} here", name,
                                                    to_string(src.value->shape()),
                                                    to_string(p.shape())));
        } else {
            assignments.emplace_back(p, src.value->to(p.dtype()));
        }
    }
    std::unordered_set<std::string_view> known;
    for (const auto& [name, p] : params) known.insert(name);
    for (const auto& s : state)
        if (!known.contains(*s.name)) report.unexpected.push_back(*s.name);
    if (strict && !report.ok())
        throw ValueError(fmt::format("{}::load_state_dict: {}", module.type_name(), report.str()));
    for (auto& [p, value] : assignments) {
        p.mutable_value() = value.clone();
        p.zero_grad();
    }
    return report;
}
}  // namespace

Module::LoadReport Module::load_state_dict(const std::vector<std::pair<std::string, Tensor>>& state,
                                           bool strict) {
    std::vector<Source> sources;
    sources.reserve(state.size());
    for (const auto& [name, t] : state) {
        if (t.defined() && t.dtype() == int64)  // ids or a count: no parameter's value
            sources.push_back({&name, nullptr, "an int64 tensor in the source"});
        else sources.push_back({&name, &t, {}});
    }
    return load_sources(*this, sources, strict);
}

void Module::summarise(const std::string& name, int depth, std::string& out) const {
    out += fmt::format("{:{}}{}{}{} ({} parameters)\n", "", 2 * depth, name,
                       name.empty() ? "" : ": ", type_name_, parameter_count());
    for (const auto& [n, p] : params_)
        out += fmt::format("{:{}}{} {} {}\n", "", 2 * depth + 2, n, to_string(p.shape()),
                           tapegrad::name(p.dtype()));
    for (const auto& c : children_)
        c.module->summarise(c.flat ? "*" + c.name : c.name, depth + 1, out);
}

std::string Module::summary() const {
    std::string out;
    summarise("", 0, out);
    return out;
}

Sequential::Sequential(std::initializer_list<std::shared_ptr<UnaryModule>> modules) : Sequential() {
    for (const auto& m : modules) add(m);
}

Sequential& Sequential::add(std::shared_ptr<UnaryModule> module) {
    register_module(std::to_string(layers_.size()), module);
    layers_.push_back(std::move(module));
    return *this;
}

Variable Sequential::forward(const Variable& x) {
    Variable y = x;
    for (auto& layer : layers_) y = layer->forward(y);
    return y;
}

namespace {
// Holds a module in float64 for a check and puts back its exact values and dtype after.
class Float64Scope {
public:
    explicit Float64Scope(Module& m) : m_(m), saved_(m.state_dict()), dtype_(m.dtype()) {
        m.to(float64);
    }
    ~Float64Scope() {
        m_.to(dtype_);
        m_.load_state_dict(saved_);
    }
    Float64Scope(const Float64Scope&) = delete;
    Float64Scope& operator=(const Float64Scope&) = delete;

private:
    Module& m_;
    std::vector<std::pair<std::string, Tensor>> saved_;
    DType dtype_;
};

std::vector<Variable> named_leaves(const Module& m) {
    std::vector<Variable> out;
    for (auto& [n, p] : m.named_parameters()) {
        Variable v = p;
        v.set_name(n);  // the hierarchical name, for the report
        out.push_back(v);
    }
    return out;
}
}  // namespace

GradcheckReport gradcheck(Module& module, const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
    Float64Scope scope(module);
    return gradcheck(f, inputs, options, named_leaves(module));
}

GradcheckReport gradgradcheck(Module& module, const GradcheckFn& f,
                              const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
    Float64Scope scope(module);
    return gradgradcheck(f, inputs, options, named_leaves(module));
}

void save(const Module& module, const std::string& path) {
    save_safetensors(path, module.state_dict(), {{"format", "pt"}, {"writer", "tapegrad"}});
}

Module::LoadReport load(Module& module, const std::string& path, bool strict) {
    const TensorFile file = load_safetensors(path);
    // Parameters are floating-point: an integer or BOOL tensor (a buffer such as
    // num_batches_tracked) is no parameter's value, nor is a tensor the reader skipped.
    // Either is "unexpected", or "mismatched" under a parameter's name.
    std::vector<Source> sources;
    for (const auto& [name, t] : file.tensors) {
        const std::string dtype = file.dtype(name);
        if (is_floating_dtype(dtype)) sources.push_back({&name, &t, {}});
        else sources.push_back({&name, nullptr, fmt::format("{} in the source", dtype)});
    }
    for (const auto& s : file.skipped)
        sources.push_back(
            {&s.name, nullptr, fmt::format("{} in the source ({})", s.dtype, s.reason)});
    try {
        return load_sources(module, sources, strict);
    } catch (const ValueError& e) {
        throw IOError(
            fmt::format("checkpoint '{}' does not fit {}: {}", path, module.type_name(), e.what()));
    }
}

}  // namespace tapegrad
