// bench-glyph's pieces: the two request bodies and llama-mtmd-cli's verbose log read back
// (the log below is the shape llama.cpp d32676d prints with -v; the expected numbers are
// worked out by hand from its timestamps).
#include "bench_serve/glyph.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace vlserve::bench_serve {
namespace {

namespace json = boost::json;

constexpr char kLog[] =
    "0.00.405.584 I main: loading model: /m/text.gguf\n"
    "0.00.406.705 W WARN: This is an experimental CLI for testing multimodal capability.\n"
    "0.00.406.809 W       For normal use cases, please use the standard llama-cli\n"
    "0.00.415.391 I encoding mtmd batch, n_chunks = 1 (done = 1, total = 5)\n"
    "0.00.446.768 I mtmd batch encoding done in 31 ms\n"
    "0.00.446.855 I decoding image batch 1/1, n_tokens_batch = 231\n"
    "0.00.450.017 I image decoded (batch 1/1) in 3 ms\n"
    "0.00.450.611 I encoding mtmd batch, n_chunks = 1 (done = 3, total = 5)\n"
    "0.00.462.968 I mtmd batch encoding done in 12 ms\n"
    "0.00.465.219 I image decoded (batch 1/1) in 2 ms\n"
    "\n"
    " steel\n"
    "1.02.475.875 I llama_perf_context_print:        load time =      84.67 ms\n"
    "1.02.475.984 I llama_perf_context_print: prompt eval time =      56.98 ms /   476 tokens "
    "(    0.12 ms per token,  8354.25 tokens per second)\n"
    "1.02.476.030 I llama_perf_context_print:        eval time =       2.51 ms /     1 runs   "
    "(    2.51 ms per token,   398.41 tokens per second)\n"
    "1.02.476.075 I llama_perf_context_print:       total time =     200.42 ms /   477 tokens\n";

TEST(GlyphBench, ReadsLlamaMtmdCliLog) {
  auto t = ParseLlamaMtmdLog(kLog);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->images, 2);
  EXPECT_DOUBLE_EQ(t->encode_ms, 43);
  EXPECT_DOUBLE_EQ(t->image_decode_ms, 5);
  EXPECT_EQ(t->prompt_tokens, 476);
  EXPECT_DOUBLE_EQ(t->prompt_eval_ms, 56.98);
  EXPECT_DOUBLE_EQ(t->eval_ms, 2.51);
  // 1 min 2.475875 s (first perf line) - 0.406705 s (the warning) - 2.51 ms of decode.
  EXPECT_NEAR(t->ttft_ms, 62475.875 - 406.705 - 2.51, 1e-6);
}

TEST(GlyphBench, RejectsALogWithoutTimestampsOrPerfLines) {
  EXPECT_FALSE(ParseLlamaMtmdLog("WARN: This is an experimental CLI\n").ok());
  EXPECT_FALSE(ParseLlamaMtmdLog("").ok());
  // Without -v the lines carry no timestamps.
  EXPECT_FALSE(ParseLlamaMtmdLog(
                   "WARN: This is an experimental CLI for testing\n"
                   "llama_perf_context_print: prompt eval time = 5 ms / 4 tokens\n"
                   "llama_perf_context_print:        eval time = 1 ms / 1 runs\n")
                   .ok());
}

TEST(GlyphBench, TextAndPagesBodiesAskTheSameQuestion) {
  GlyphRequest r;
  r.document = "Once upon a time.";
  r.question = "Who?";
  r.max_tokens = 8;
  r.cache_salt = "s1";
  r.banned_ids = {7, 9};
  const json::object text = json::parse(GlyphTextBody(r)).as_object();
  const json::object pages = json::parse(GlyphPagesBody(r)).as_object();
  for (const json::object* b : {&text, &pages}) {
    EXPECT_EQ(b->at("max_tokens").as_int64(), 8);
    EXPECT_EQ(b->at("temperature").to_number<double>(), 0);
    EXPECT_TRUE(b->at("stream").as_bool());
    EXPECT_EQ(b->at("cache_salt").as_string(), "s1");
    EXPECT_EQ(b->at("logit_bias").as_object().at("7").to_number<double>(), -100);
    EXPECT_EQ(b->at("logit_bias").as_object().at("9").to_number<double>(), -100);
  }
  const json::array& tc = text.at("messages").as_array()[0].as_object().at("content").as_array();
  ASSERT_EQ(tc.size(), 1u);
  EXPECT_EQ(tc[0].as_object().at("text").as_string(), "Once upon a time.\n\nWho?");
  const json::array& pc = pages.at("messages").as_array()[0].as_object().at("content").as_array();
  ASSERT_EQ(pc.size(), 2u);  // the document first, then the question (Glyph's order)
  EXPECT_EQ(pc[0].as_object().at("type").as_string(), "document");
  EXPECT_EQ(pc[0].as_object().at("text").as_string(), "Once upon a time.");
  EXPECT_EQ(pc[0].as_object().at("render").as_object().at("preset").as_string(), "glyph");
  EXPECT_EQ(pc[1].as_object().at("text").as_string(), "Who?");
}

TEST(GlyphBench, ParsesSizeLists) {
  auto s = ParseSizes("4096,8192,16384");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (std::vector<int>{4096, 8192, 16384}));
  EXPECT_FALSE(ParseSizes("").ok());
  EXPECT_FALSE(ParseSizes("4k").ok());
  EXPECT_FALSE(ParseSizes("0").ok());
  EXPECT_FALSE(ParseSizes("10,").ok());
}

}  // namespace
}  // namespace vlserve::bench_serve
