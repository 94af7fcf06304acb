// Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay,
// as torch.optim.SGD:
//   g = grad + weight_decay * p
//   b = g (first step),  b = momentum * b + (1 - dampening) * g (after)
//   g = g + momentum * b (nesterov)  or  g = b
//   p = p - lr * g
#pragma once

#include <limits>

#include "optim/optimizer.hpp"

namespace tapegrad {

struct SGDOptions {
    double lr = std::numeric_limits<double>::quiet_NaN();  // required, as in PyTorch
    double momentum = 0;
    double dampening = 0;
    double weight_decay = 0;
    bool nesterov = false;      // needs momentum > 0 and dampening == 0
    bool check_finite = false;  // NaN/Inf gradients throw in step()
};

class SGD : public Optimizer {
public:
    SGD(Params params, SGDOptions options);
    const SGDOptions& options() const { return options_; }

private:
    void update(const Group& group, Variable& param, const Tensor& grad,
                ParamState& state) override;
    SGDOptions options_;
};

}  // namespace tapegrad
