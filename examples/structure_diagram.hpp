// The source article's structure comparison, drawn from the cells themselves: one time step of
// RNN, LSTM and GRU side by side, each run through the recurrent driver so the boxes and
// parameter names are those of a real layer. Header-only.
//   write_structure_diagram("out");  // out/structure.dot, .svg and .png
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace tapegrad {

// Writes dir/structure.dot and renders structure.png and structure.svg with Graphviz's dot.
// Returns false when dot is missing or fails (the .dot file is written either way).
inline bool write_structure_diagram(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    fs::create_directories(dir);
    Generator gen(0);
    // Small sizes keep the shape labels short: input 2, hidden 3, one sequence of one step.
    RNN rnn(2, 3, {}, gen);
    LSTM lstm(2, 3, {}, gen);
    GRU gru(2, 3, {}, gen);
    const Variable x(gen.normal({1, 1, 2}, 0, 1, float32));
    DotOptions options;
    for (Module* m : std::initializer_list<Module*>{&rnn, &lstm, &gru})
        for (auto& named : m->named_parameters()) options.names.push_back(named);
    // Titled with the article's structure row.
    const std::string dot = to_dot({{"RNN: one recurrent layer", rnn.forward(x).output},
                                    {"LSTM: 3 gates + cell state", lstm.forward(x).output},
                                    {"GRU: 2 gates", gru.forward(x).output}},
                                   options);
    const fs::path file = dir / "structure.dot";
    std::ofstream(file) << dot;

    if (std::system("command -v dot > /dev/null 2>&1") != 0) return false;
    auto quoted = [](const fs::path& p) {  // for the shell: 'it'\''s'
        std::string out = "'";
        for (char c : p.string()) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
        return out + "'";
    };
    for (const char* format : {"png", "svg"}) {
        const std::string cmd = fmt::format(
            "dot -T{} {} {} -o {}", format, std::string(format) == "png" ? "-Gdpi=110" : "",
            quoted(file), quoted(dir / (std::string("structure.") + format)));
        if (std::system(cmd.c_str()) != 0) return false;
    }
    return true;
}

}  // namespace tapegrad
