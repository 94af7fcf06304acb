// Module: a named tree of parameters and submodules, as PyTorch's nn.Module.
//
//   struct Mlp : Module {
//       std::shared_ptr<Linear> fc1, fc2;
//       Mlp(Generator& g) : Module("Mlp") {
//           fc1 = register_module("fc1", std::make_shared<Linear>(4, 8, g));
//           fc2 = register_module("fc2", std::make_shared<Linear>(8, 1, g));
//       }
//       Variable forward(const Variable& x) { return (*fc2)(tanh((*fc1)(x))); }
//   };
//
// Parameters are leaf Variables; a module keeps handles to them, so to(dtype) and loading
// replace values in place and every handle sees the change.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/variable.hpp"
#include "train/gradcheck.hpp"

namespace tapegrad {

class Module {
public:
    explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
    virtual ~Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;

    const std::string& type_name() const { return type_name_; }

    // Parameters of this module and its submodules, depth-first in registration order.
    std::vector<Variable> parameters() const;
    // The same with hierarchical names: "encoder.weight_ih_l0".
    std::vector<std::pair<std::string, Variable>> named_parameters() const;
    // The parameter with that hierarchical name, as named_parameters gives it ("bias_ih_l0",
    // "rnn.weight_hh_l0"): a handle to it, so writing its value writes the module's parameter.
    // An unknown name throws ValueError listing some of the names that exist.
    Variable parameter(const std::string& name) const;
    struct Child {
        std::string name;
        std::shared_ptr<Module> module;
        bool flat = false;  // parameters named "<param><name>" at this level (see register_flat)
    };
    const std::vector<Child>& children() const { return children_; }
    std::size_t parameter_count() const;  // number of scalars

    void zero_grad();
    void train(bool on = true);  // recursive
    void eval() { train(false); }
    bool is_training() const { return training_; }

    // Converts every parameter to `dtype` in place (gradients are dropped).
    void to(DType dtype);
    // The dtype of the parameters (float32 for a module without parameters).
    DType dtype() const;

    // Name -> value of every parameter, and the reverse. load_state_dict checks names, shapes
    // and dtypes (values are converted to each parameter's dtype); see LoadReport.
    std::vector<std::pair<std::string, Tensor>> state_dict() const;
    struct LoadReport {
        std::vector<std::string> missing;     // parameters the source lacks
        std::vector<std::string> unexpected;  // source entries with no parameter
        // "w: [4,3] in the source, [3,4] here", "w: I64 in the source, a float32 parameter here"
        std::vector<std::string> mismatched;
        bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
        std::string str() const;
    };
    // strict: any problem throws (nothing is loaded). Not strict: loads the matching entries
    // and returns the report of the rest.
    LoadReport load_state_dict(const std::vector<std::pair<std::string, Tensor>>& state,
                               bool strict = true);

    // A printable tree: type, parameter names and shapes, counts.
    std::string summary() const;

protected:
    Variable register_parameter(std::string name, Tensor value);
    template <class M>
    std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
        add_child(std::move(name), module, false);
        return module;
    }
    // Registers a submodule whose parameters appear at this level with a suffix, as PyTorch
    // names a recurrent layer's cells: the cell's "weight_ih" becomes "weight_ih_l0_reverse".
    template <class M>
    std::shared_ptr<M> register_flat(std::string suffix, std::shared_ptr<M> module) {
        add_child(std::move(suffix), module, true);
        return module;
    }

private:
    void add_child(std::string name, std::shared_ptr<Module> module, bool flat);
    void collect(const std::string& prefix,
                 std::vector<std::pair<std::string, Variable>>& out) const;
    void summarise(const std::string& name, int depth, std::string& out) const;

    std::string type_name_;
    std::vector<std::pair<std::string, Variable>> params_;
    std::vector<Child> children_;
    bool training_ = true;
};

// A module with one input and one output, so modules can be chained.
class UnaryModule : public Module {
public:
    using Module::Module;
    virtual Variable forward(const Variable& x) = 0;
    Variable operator()(const Variable& x) { return forward(x); }
};

// Applies its modules in order.
class Sequential : public UnaryModule {
public:
    Sequential() : UnaryModule("Sequential") {}
    Sequential(std::initializer_list<std::shared_ptr<UnaryModule>> modules);
    Sequential& add(std::shared_ptr<UnaryModule> module);
    Variable forward(const Variable& x) override;
    std::size_t size() const { return layers_.size(); }

private:
    std::vector<std::shared_ptr<UnaryModule>> layers_;
};

// gradcheck / gradgradcheck over a module's parameters as well as the inputs. f must use the
// module; a float32 module is checked in float64 and restored bit for bit afterwards.
GradcheckReport gradcheck(Module& module, const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});
GradcheckReport gradgradcheck(Module& module, const GradcheckFn& f,
                              const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

// Module checkpoints as safetensors, named by parameter name. load takes a parameter's value
// from any floating-point tensor of the file (F16 and BF16 too, converted to the parameter's
// dtype); integer and BOOL tensors (buffers such as num_batches_tracked) are no parameter's:
// reported as unexpected, or mismatched if one has a parameter's name. Strict, any problem
// throws an IOError and the module is unchanged; not strict, the matching parameters load.
void save(const Module& module, const std::string& path);
Module::LoadReport load(Module& module, const std::string& path, bool strict = true);

}  // namespace tapegrad
