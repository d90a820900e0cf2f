#pragma once
// A small SentencePiece model trained once per test process on FOLDOC text
// (Debian's dict-foldoc), plus the corpus it was trained on.

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt::testing {

struct TestTokenizer {
  std::string model;                   // path to the .model
  std::vector<std::string> documents;  // one line of text each, no newlines
};

inline const TestTokenizer& test_tokenizer() {
  static TempDir dir;
  static TestTokenizer tokenizer = [] {
    TestTokenizer t;
    const std::string corpus = dir.file("corpus.txt");
    // Entries' body lines, joined in groups of three into one-line documents.
    const std::string extract =
        "zcat /usr/share/dictd/foldoc.dict.dz | head -c 1500000 | grep '^ ' | sed 's/^ *//' | grep -v '^$' "
        "| paste -d' ' - - - > " + corpus;
    if (std::system(extract.c_str()) != 0) throw std::runtime_error("cannot extract FOLDOC text (dict-foldoc)");
    const std::string train = "spm_train --input=" + corpus + " --model_prefix=" + dir.file("spm") +
                              " --vocab_size=2000 --model_type=unigram --byte_fallback=true --minloglevel=2 "
                              "--num_threads=2 >/dev/null 2>&1";
    if (std::system(train.c_str()) != 0) throw std::runtime_error("spm_train failed (sentencepiece package)");
    t.model = dir.file("spm.model");
    std::string text = read_file(corpus);
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) t.documents.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    return t;
  }();
  return tokenizer;
}

}  // namespace cpt::testing
