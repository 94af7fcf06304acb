// Every public op has a gradcheck row (op_table(), tests/op_rows_*.cpp) and a fuzz row
// (fuzz/ops.cpp), and every fuzz row has its seed. Both are read from the source tree:
//  - the public ops: every function returning Variable or std::vector<Variable> declared at the
//    start of a line in ops/*.hpp, except in headers whose name marks them internal and the
//    names in not_ops (operators do not match);
//  - the fuzz rows: every `{"name", [](` in fuzz/ops.cpp.
// A row covers op f when its name is "f" or starts with "f " ("sum axis" covers sum).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "op_table.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path root(TAPEGRAD_SOURCE_DIR);

// Declared like ops in a public op header, but not ops (none today).
const std::set<std::string> not_ops{};

// Headers of helpers for writing ops, not ops: support.hpp, detail_x.hpp, x_impl.hpp...
bool internal_header(const std::string& stem) {
    static const std::regex word("(^|_)(support|detail|internal|kernels?|impl)(_|$)");
    return std::regex_search(stem, word);
}

std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot read ", path.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::set<std::string> public_ops() {
    static const std::regex decl(
        R"(^(?:\[\[\w+\]\]\s*)?(?:inline\s+)?(?:Variable|std::vector<Variable>)\s+(\w+)\s*\()");
    std::set<std::string> ops;
    for (const auto& entry : fs::directory_iterator(root / "ops")) {
        const fs::path& path = entry.path();
        if (path.extension() != ".hpp" || internal_header(path.stem().string())) continue;
        std::istringstream lines(read(path));
        std::smatch m;
        for (std::string line; std::getline(lines, line);)
            if (std::regex_search(line, m, decl) && !not_ops.contains(m[1].str()))
                ops.insert(m[1].str());
    }
    // The parsing still finds what it must.
    REQUIRE(ops.contains("add"));
    REQUIRE(ops.contains("matmul"));
    REQUIRE(ops.contains("split"));
    return ops;
}

std::vector<std::string> fuzz_rows() {
    static const std::regex row(R"re(\{"([^"]+)",\s*\[\]\()re");
    const std::string text = read(root / "fuzz" / "ops.cpp");
    std::vector<std::string> rows;
    for (std::sregex_iterator it(text.begin(), text.end(), row), end; it != end; ++it)
        rows.push_back((*it)[1].str());
    REQUIRE(rows.size() > 10);
    return rows;
}

// The ops no row covers, joined with ", ".
std::string uncovered(const std::set<std::string>& ops, const std::vector<std::string>& rows) {
    std::string missing;
    for (const auto& op : ops) {
        bool covered = false;
        for (const auto& row : rows) covered = covered || row == op || row.starts_with(op + " ");
        if (!covered) missing += (missing.empty() ? "" : ", ") + op;
    }
    return missing;
}

}  // namespace

TEST_CASE("op coverage: every public op has a gradcheck row") {
    std::vector<std::string> rows;
    for (const auto& row : tapegrad::testing::op_table()) rows.push_back(row.name);
    const std::string missing = uncovered(public_ops(), rows);
    CHECK_MESSAGE(missing.empty(),
                  "ops with no row in op_table() (tests/op_rows_*.cpp): ", missing);
}

TEST_CASE("op coverage: every public op has a fuzz row") {
    const std::string missing = uncovered(public_ops(), fuzz_rows());
    CHECK_MESSAGE(missing.empty(), "ops with no row in fuzz/ops.cpp: ", missing);
}

// fuzz/ops.cpp finds its op by the name the input starts with; row "pow scalar"'s seed is
// fuzz/corpus/ops/pow_scalar.
TEST_CASE("op coverage: each fuzz row has a seed, and each seed names its row") {
    const fs::path dir = root / "fuzz" / "corpus" / "ops";
    std::set<std::string> files;
    for (const auto& row : fuzz_rows()) {
        std::string file = row;
        for (auto& c : file)
            if (c == ' ') c = '_';
        files.insert(file);
        CAPTURE(row);
        if (fs::exists(dir / file)) CHECK(read(dir / file).starts_with(row + '\0'));
        else FAIL_CHECK("no seed ", (dir / file).string());
    }
    for (const auto& entry : fs::directory_iterator(dir))
        CHECK_MESSAGE(files.contains(entry.path().filename().string()),
                      "a seed for no fuzz row: ", entry.path().string());
}
