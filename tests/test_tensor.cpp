#include <doctest/doctest.h>

#include <tbb/parallel_for.h>

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

TEST_CASE(
    "tensor: a view reads its base in place, copies only for xt(), and never aliases a write") {
    // base [2, 6]: 0..11; the view is its columns 2..4 (2 runs of 3 elements, 6 apart)
    std::vector<double> v(12);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
    Tensor base = Tensor::from(v, {2, 6}, float32);
    Tensor w = Tensor::view(base, {2, 3}, 2, 2, 3, 6);
    CHECK(w.is_view());
    CHECK(w.shape() == Shape{2, 3});
    CHECK(w.numel() == 6);
    CHECK(w.dtype() == float32);
    CHECK(w.shares_storage_with(base));
    CHECK_FALSE(w.unique());
    CHECK(w.to_vector() == std::vector<double>{2, 3, 4, 8, 9, 10});
    CHECK(w.flat(4) == 9.0);
    const auto runs = w.rows<float>();
    CHECK(runs.data == base.xt<float>().data() + 2);  // in place: no copy
    CHECK((runs.rows == 2 && runs.cols == 3 && runs.stride == 6 && !runs.contiguous()));
    CHECK(w.xt<float>() == xt::xarray<float>({{2, 3, 4}, {8, 9, 10}}));
    CHECK_THROWS_AS(w.rows<double>(), DTypeError);
    // a view of a contiguous view reads the first base; of a strided one, the copy
    Tensor row1 = Tensor::view(base, {6}, 6, 1, 6, 6);
    Tensor inner = Tensor::view(row1, {2}, 1, 1, 2, 2);
    CHECK(inner.rows<float>().data == base.xt<float>().data() + 7);
    CHECK(inner.to_vector() == std::vector<double>{7, 8});
    Tensor col = Tensor::view(w, {2}, 1, 2, 1, 3);
    CHECK(col.to_vector() == std::vector<double>{3, 9});
    // writes copy first, in either direction
    Tensor w2 = w;
    w2.set_flat(0, -1.0);
    CHECK_FALSE(w2.is_view());
    CHECK(w2.to_vector() == std::vector<double>{-1, 3, 4, 8, 9, 10});
    CHECK(base.flat(2) == 2.0);
    CHECK(w.flat(0) == 2.0);
    base.set_flat(3, 100.0);
    CHECK(w.flat(1) == 3.0);
    CHECK(w.clone().to_vector() == std::vector<double>{2, 3, 4, 8, 9, 10});
    // a layout that does not fit the base is refused, naming the shapes
    CHECK_THROWS_AS(Tensor::view(base, {2, 3}, 4, 2, 3, 6), ShapeError);  // runs past the end
    CHECK_THROWS_AS(Tensor::view(base, {2, 2}, 0, 2, 3, 6), ShapeError);  // shape of 4, layout of 6
    CHECK_THROWS_AS(Tensor::view(base, {2, 3}, 0, 2, 3, 2), ShapeError);  // runs overlap
    CHECK_THROWS_AS(Tensor::view(Tensor(), {1}, 0, 1, 1, 1), ValueError);
    // views of an empty tensor (whose storage may have no data pointer) read nothing
    Tensor none = Tensor::zeros({3, 0}, float32);
    Tensor piece = Tensor::view(none, {0}, 0, 1, 0, 0);
    CHECK(piece.numel() == 0);
    CHECK(piece.xt<float>().size() == 0);
    CHECK(piece.rows<float>().rows == 0);
    for (const auto& p : unbind(Variable(none, true), 0)) {
        CHECK(p.shape() == Shape{0});
        CHECK(tanh(p * p).numel() == 0);
    }
}

TEST_CASE("tensor: add_ adds in place, from a view too, and never writes through shared storage") {
    // base [2, 4]: 0..7; the view is its columns 1..2 (2 runs of 2 elements, 4 apart)
    Tensor base = Tensor::from({0, 1, 2, 3, 4, 5, 6, 7}, {2, 4}, float32);
    Tensor cols = Tensor::view(base, {2, 2}, 1, 2, 2, 4);
    Tensor sum = Tensor::from({10, 20, 30, 40}, {2, 2}, float32);
    const float* before = sum.xt<float>().data();
    sum.add_(cols);
    CHECK(sum.to_vector() == std::vector<double>{11, 22, 35, 46});
    CHECK(sum.xt<float>().data() == before);  // the same storage: no new array
    // a sum that shares its storage gets its own first; the sharer keeps its values
    Tensor shared = sum;
    shared.add_(Tensor::ones({2, 2}, float32));
    CHECK(shared.to_vector() == std::vector<double>{12, 23, 36, 47});
    CHECK(sum.to_vector() == std::vector<double>{11, 22, 35, 46});
    // adding a view to its own base: the base is copied before it is written
    Tensor row = Tensor::view(base, {4}, 4, 1, 4, 4);
    Tensor first = Tensor::view(base, {4}, 0, 1, 4, 4);
    first.add_(row);
    CHECK(first.to_vector() == std::vector<double>{4, 6, 8, 10});
    CHECK(base.to_vector() == std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7});
    // float64, and the errors
    Tensor d = Tensor::full({3}, 0.5, float64);
    d.add_(Tensor::full({3}, 0.25, float64));
    CHECK(d.to_vector() == std::vector<double>{0.75, 0.75, 0.75});
    CHECK_THROWS_AS(d.add_(Tensor::ones({3}, float32)), DTypeError);
    CHECK_THROWS_AS(d.add_(Tensor::ones({1, 3}, float64)), ShapeError);
    CHECK_THROWS_AS(d.add_(Tensor()), ValueError);
    CHECK_THROWS_AS(Tensor().add_(d), ValueError);
}

TEST_CASE("tensor: threads reading one view at once all see its values") {
    Tensor base = Generator(3).normal({64, 256}, 0, 1, float32);
    for (int trial = 0; trial < 20; ++trial) {
        Tensor w = Tensor::view(base, {64, 64}, 64, 64, 64, 256);
        std::vector<double> sums(8, 0.0);
        tbb::parallel_for(0, 8, [&](int k) {
            double s = 0;
            for (float x : w.xt<float>()) s += x;
            sums[static_cast<std::size_t>(k)] = s;
        });
        double expected = 0;
        for (std::size_t r = 0; r < 64; ++r)
            for (std::size_t c = 64; c < 128; ++c) expected += base.flat(r * 256 + c);
        for (double s : sums) CHECK(s == doctest::Approx(expected).epsilon(1e-9));
    }
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
    CHECK(classify_blas("Haswell", true, true).slow_path);  // AVX2 kernels on an AVX-512 CPU
    CHECK_FALSE(classify_blas("Haswell", true, false).slow_path);
    CHECK_FALSE(classify_blas("SkylakeX", true, true).slow_path);
    CHECK_FALSE(classify_blas("Prescott", false, false).slow_path);  // nothing better to pick
    CHECK(blas_warning(classify_blas("Prescott", true, true)).find("OPENBLAS_CORETYPE=SkylakeX") !=
          std::string::npos);
    CHECK(blas_warning(classify_blas("Prescott", true, false)).find("OPENBLAS_CORETYPE=Haswell") !=
          std::string::npos);
    CHECK(blas_warning(classify_blas("Haswell", true, true)).find("AVX2 'Haswell' kernels") !=
          std::string::npos);
    CHECK(blas_warning(classify_blas("SkylakeX", true, true)).empty());
    CHECK(!blas_info().corename.empty());
}
