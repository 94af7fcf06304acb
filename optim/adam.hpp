// Adam and AdamW, as torch.optim.Adam and torch.optim.AdamW. At step t:
//   g = grad + weight_decay * p             (Adam: L2 penalty in the gradient)
//   p = p * (1 - lr * weight_decay)         (AdamW: decoupled decay, instead)
//   m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
//   v_max = max(v_max, v), used for v      (amsgrad)
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
#pragma once

#include "optim/optimizer.hpp"

namespace tapegrad {

struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0;
    bool amsgrad = false;
    bool check_finite = false;  // NaN/Inf gradients throw in step()
};

// The same options; only the default weight decay differs (PyTorch's 1e-2).
struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;
    bool amsgrad = false;
    bool check_finite = false;
};

class Adam : public Optimizer {
public:
    Adam(Params params, AdamOptions options = {});
    const AdamOptions& options() const { return options_; }

protected:
    Adam(std::string type_name, Params params, AdamOptions options, bool decoupled);

private:
    void update(const Group& group, Variable& param, const Tensor& grad,
                ParamState& state) override;
    AdamOptions options_;
    bool decoupled_;
};

class AdamW : public Adam {
public:
    AdamW(Params params, AdamWOptions options = {});
};

}  // namespace tapegrad
