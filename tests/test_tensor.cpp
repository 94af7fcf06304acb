#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

TEST_CASE("tensor: construction, dtype and conversion") {
    Tensor a = Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, float32);
    CHECK(a.dtype() == float32);
    CHECK(a.shape() == Shape{2, 3});
    CHECK(a.numel() == 6);
    CHECK(a.flat(4) == 5.0);
    Tensor b = a.to(float64);
    CHECK(b.dtype() == float64);
    CHECK(b.flat(5) == 6.0);
    CHECK_THROWS_AS(a.xt<double>(), DTypeError);
    CHECK_THROWS_AS(Tensor::from({1, 2, 3}, {2, 2}, float64), ShapeError);
    CHECK_THROWS_AS(a.item(), ShapeError);
    CHECK(Tensor::scalar(2.5, float64).item() == 2.5);
}

TEST_CASE("tensor: copies share storage, mutation copies first") {
    Tensor a = Tensor::zeros({3}, float64);
    Tensor b = a;
    CHECK(a.shares_storage_with(b));
    b.set_flat(0, 7.0);
    CHECK(b.flat(0) == 7.0);
    CHECK(a.flat(0) == 0.0);  // a is untouched
}

TEST_CASE("generator: the same seed gives the same numbers") {
    Generator g1(42), g2(42), g3(43);
    Tensor a = g1.normal({4, 5}, 0, 1, float32);
    Tensor b = g2.normal({4, 5}, 0, 1, float32);
    Tensor c = g3.normal({4, 5}, 0, 1, float32);
    CHECK(max_abs_diff(a, b) == 0.0);
    CHECK(max_abs_diff(a, c) > 0.0);
    // uniform() lies in [0, 1) and its mean is near 1/2
    Generator g(7);
    double total = 0;
    for (int i = 0; i < 10000; ++i) {
        double u = g.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        total += u;
    }
    CHECK(total / 10000 == doctest::Approx(0.5).epsilon(0.02));
}

TEST_CASE("blas: the slow OpenBLAS kernels are recognised and the warning names the fix") {
    CHECK(classify_blas("Prescott", true, false).slow_path);
    CHECK(classify_blas("Haswell", true, true).slow_path);   // AVX2 kernels on an AVX-512 CPU
    CHECK_FALSE(classify_blas("Haswell", true, false).slow_path);
    CHECK_FALSE(classify_blas("SkylakeX", true, true).slow_path);
    CHECK_FALSE(classify_blas("Prescott", false, false).slow_path);  // nothing better to pick
    CHECK(blas_warning(classify_blas("Prescott", true, true)).find("OPENBLAS_CORETYPE=SkylakeX") != std::string::npos);
    CHECK(blas_warning(classify_blas("Prescott", true, false)).find("OPENBLAS_CORETYPE=Haswell") != std::string::npos);
    CHECK(blas_warning(classify_blas("Haswell", true, true)).find("AVX2 'Haswell' kernels") != std::string::npos);
    CHECK(blas_warning(classify_blas("SkylakeX", true, true)).empty());
    CHECK(!blas_info().corename.empty());
}
