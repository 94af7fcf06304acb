// RMSprop, as torch.optim.RMSprop:
//   g = grad + weight_decay * p
//   s = alpha s + (1 - alpha) g^2
//   a = alpha a + (1 - alpha) g,  d = sqrt(s - a^2) + eps   (centered)
//   d = sqrt(s) + eps                                       (otherwise)
//   b = momentum b + g / d,  p = p - lr b                   (momentum > 0)
//   p = p - lr g / d                                        (otherwise)
#pragma once

#include "optim/optimizer.hpp"

namespace tapegrad {

struct RMSpropOptions {
    double lr = 1e-2;
    double alpha = 0.99;
    double eps = 1e-8;
    double weight_decay = 0;
    double momentum = 0;
    bool centered = false;
    bool check_finite = false;  // NaN/Inf gradients throw in step()
};

class RMSprop : public Optimizer {
public:
    RMSprop(Params params, RMSpropOptions options = {});
    const RMSpropOptions& options() const { return options_; }

private:
    void update(const Group& group, Variable& param, const Tensor& grad,
                ParamState& state) override;
    RMSpropOptions options_;
};

}  // namespace tapegrad
