// Deterministic sample text for benchmarks, tests and docs (no data files needed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vlserve::render {

// English-like prose of about `bytes` bytes: sentences of common words with commas,
// paragraphs of 3-7 sentences separated by '\n' (or by ' ' when newlines is false, giving
// one long paragraph).
std::string SampleEnglish(size_t bytes, uint64_t seed = 1, bool newlines = true);
// Chinese prose (UTF-8) of about `bytes` bytes with full-width punctuation.
std::string SampleChinese(size_t bytes, uint64_t seed = 1);

}  // namespace vlserve::render
