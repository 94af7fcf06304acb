// Adagrad, as torch.optim.Adagrad. At step t:
//   g = grad + weight_decay * p
//   clr = lr / (1 + (t - 1) lr_decay)
//   s = s + g^2          (s starts at initial_accumulator_value)
//   p = p - clr g / (sqrt(s) + eps)
#pragma once

#include "optim/optimizer.hpp"

namespace tapegrad {

struct AdagradOptions {
    double lr = 1e-2;
    double lr_decay = 0;
    double weight_decay = 0;
    double initial_accumulator_value = 0;
    double eps = 1e-10;
    bool check_finite = false;  // NaN/Inf gradients throw in step()
};

class Adagrad : public Optimizer {
public:
    Adagrad(Params params, AdagradOptions options = {});
    const AdagradOptions& options() const { return options_; }

private:
    void update(const Group& group, Variable& param, const Tensor& grad,
                ParamState& state) override;
    AdagradOptions options_;
};

}  // namespace tapegrad
