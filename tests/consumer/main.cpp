// Builds f(x, y) = x*y + tanh(x) against the installed library and checks the gradient:
//   df/dx = y + 1 - tanh(x)^2,   df/dy = x.
#include <cmath>
#include <cstdio>

#include <tapegrad/tapegrad.hpp>

int main() {
    using namespace tapegrad;
    const double x0 = 0.5, y0 = 3.0;
    Variable x(Tensor::scalar(x0, float64), true);
    Variable y(Tensor::scalar(y0, float64), true);
    Variable f = x * y + tanh(x);
    f.backward();

    const double t = std::tanh(x0);
    const double want_f = x0 * y0 + t, want_dx = y0 + 1.0 - t * t, want_dy = x0;
    const bool ok = std::abs(f.item() - want_f) < 1e-12 &&
                    std::abs(x.grad().item() - want_dx) < 1e-12 &&
                    std::abs(y.grad().item() - want_dy) < 1e-12 &&
                    !blas_info().corename.empty();  // links OpenBLAS through the package
    std::printf("f = %.15g  df/dx = %.15g (want %.15g)  df/dy = %.15g (want %.15g)  %s\n", f.item(),
                x.grad().item(), want_dx, y.grad().item(), want_dy, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
