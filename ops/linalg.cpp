#include "ops/linalg.hpp"

#include <xtensor-blas/xblas.hpp>

#include "core/tape.hpp"
#include "ops/kernels.hpp"

namespace tapegrad {

Variable matmul(const Variable& a, const Variable& b, const Loc& loc) {
    return matmul(a, b, false, false, loc);
}

Variable matmul(const Variable& a, const Variable& b, bool ta, bool tb, const Loc& loc) {
    kernels::check_binary("matmul", a, b, loc);
    if (a.dim() != 2 || b.dim() != 2)
        fail<ShapeError>("matmul", fmt::format("{} x {}: both operands must be 2-D",
                                               to_string(a.shape()), to_string(b.shape())), loc);
    const std::size_t m = a.shape()[ta ? 1 : 0], k = a.shape()[ta ? 0 : 1];
    const std::size_t k2 = b.shape()[tb ? 1 : 0], n = b.shape()[tb ? 0 : 1];
    if (k != k2)
        fail<ShapeError>("matmul", fmt::format("{}{} x {}{}: inner dimensions {} and {} differ",
                                               to_string(a.shape()), ta ? "ᵀ" : "",
                                               to_string(b.shape()), tb ? "ᵀ" : "", k, k2), loc);
    Tensor out = dispatch(a.dtype(), [&]<class T>() {
        auto c = xt::xarray<T>::from_shape({m, n});
        if (k == 0) c.fill(T(0));
        else if (m > 0 && n > 0) xt::blas::gemm(a.value().xt<T>(), b.value().xt<T>(), c, ta, tb);
        return Tensor(std::move(c));
    });
    return record("matmul", std::move(out), {a, b}, [ta, tb](Backward& bw) {
        const Variable& g = bw.grad_out();
        const Variable &A = bw.input(0), &B = bw.input(1);
        // C = op(A) op(B):  d op(A) = G op(B)ᵀ,  d op(B) = op(A)ᵀ G
        if (bw.needs(0)) bw.add(0, ta ? matmul(B, g, tb, true) : matmul(g, B, false, !tb));
        if (bw.needs(1)) bw.add(1, tb ? matmul(g, A, true, ta) : matmul(A, g, !ta, false));
    }, loc);
}

}  // namespace tapegrad
