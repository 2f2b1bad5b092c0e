#include "cache/response_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace vlserve {
namespace {

CachedResponse Answer(const std::string& text, const std::string& finish = "stop") {
  CachedResponse r;
  r.text = text;
  r.finish_reason = finish;
  r.prompt_tokens = 10;
  r.completion_tokens = 3;
  r.cached_tokens = 0;
  return r;
}

std::string Key(int i) { return ResponseCacheKey("{\"i\":" + std::to_string(i) + "}", "m"); }

TEST(CanonicalRequestJson, SortsKeysDropsWhitespaceAndIgnoredFields) {
  auto c = CanonicalRequestJson(R"( { "b" : [ 1, {"z": true, "a": null} ], "a": "x",
      "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
      "priority": 3, "timeout": 5 } )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, R"({"a":"x","b":[1,{"a":null,"z":true}]})");
}

TEST(CanonicalRequestJson, OnlyTopLevelFieldsAreIgnored) {
  auto c = CanonicalRequestJson(R"({"m":{"stream":1,"user":2}})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, R"({"m":{"stream":1,"user":2}})");
}

TEST(CanonicalRequestJson, EqualNumbersAgree) {
  auto a = CanonicalRequestJson(R"({"t":0,"n":1,"p":0.5})");
  auto b = CanonicalRequestJson(R"({"t":-0.0,"n":1.0,"p":5e-1})");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->substr(0, 11), R"({"n":1,"p":)");
}

TEST(CanonicalRequestJson, StringsAreEscapedAndKeptExactly) {
  auto c = CanonicalRequestJson("{\"s\":\"a\\\"b\\u00e9\\n\"}");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, "{\"s\":\"a\\\"b\xc3\xa9\\n\"}");
}

TEST(CanonicalRequestJson, RejectsNonObjects) {
  EXPECT_EQ(CanonicalRequestJson("[1]").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CanonicalRequestJson("{bad").status().code(), StatusCode::kInvalidArgument);
}

TEST(ResponseCacheKey, MatchesIndependentSha256) {
  // hashlib.sha256(f("vlserve.response.v1") + f('{"a":1}') + f("model-x")), where f(s) is
  // the 8-byte little-endian length followed by the bytes.
  EXPECT_EQ(ResponseCacheKey(R"({"a":1})", "model-x"),
            "5be74f7d27da6752428503837c267f5ac11e1a61b6b27c2c89768af51537b976");
}

TEST(ResponseCacheKey, DependsOnRequestAndModelButNotOnFormatting) {
  auto a = ResponseCacheKeyForBody(R"({"messages":[{"role":"user","content":"hi"}],
                                      "temperature":0,"stream":false})",
                                   "m1");
  auto b = ResponseCacheKeyForBody(
      R"({"stream":true,"temperature":0,"messages":[{"content":"hi","role":"user"}]})", "m1");
  auto other_model = ResponseCacheKeyForBody(R"({"temperature":0})", "m2");
  auto other_text = ResponseCacheKeyForBody(
      R"({"messages":[{"role":"user","content":"hi!"}],"temperature":0})", "m1");
  ASSERT_TRUE(a.ok() && b.ok() && other_model.ok() && other_text.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *other_text);
  EXPECT_NE(*ResponseCacheKeyForBody(R"({"temperature":0})", "m1"), *other_model);
  // Length prefixes: moving bytes between the two fields changes the key.
  EXPECT_NE(ResponseCacheKey("ab", "c"), ResponseCacheKey("a", "bc"));
}

TEST(ResponseCache, HitReturnsStoredValueAndCounts) {
  ResponseCache cache(1 << 20);
  EXPECT_FALSE(cache.Lookup(Key(1)).has_value());
  cache.Insert(Key(1), Answer("hello", "length"));
  auto hit = cache.Lookup(Key(1));
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->text, "hello");
  EXPECT_EQ(hit->finish_reason, "length");
  EXPECT_EQ(hit->prompt_tokens, 10);
  EXPECT_EQ(hit->completion_tokens, 3);
  const ResponseCacheStats s = cache.Stats();
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 1);
  EXPECT_EQ(s.insertions, 1);
  EXPECT_EQ(s.entries, 1);
  // 5 text + 4 finish_reason + 256 overhead + 64 key characters.
  EXPECT_EQ(s.bytes, 5 + 6 + 256 + 64);
}

TEST(ResponseCache, EvictsLeastRecentlyUsedByBytes) {
  // Each entry: 100 text + 4 "stop" + 256 + 64 key = 424 bytes; room for two.
  ResponseCache cache(2 * 424 + 100);
  cache.Insert(Key(1), Answer(std::string(100, 'a')));
  cache.Insert(Key(2), Answer(std::string(100, 'b')));
  ASSERT_TRUE(cache.Lookup(Key(1)).has_value());  // 1 is now the most recent
  cache.Insert(Key(3), Answer(std::string(100, 'c')));
  EXPECT_TRUE(cache.Lookup(Key(1)).has_value());
  EXPECT_FALSE(cache.Lookup(Key(2)).has_value());
  EXPECT_TRUE(cache.Lookup(Key(3)).has_value());
  const ResponseCacheStats s = cache.Stats();
  EXPECT_EQ(s.evictions, 1);
  EXPECT_EQ(s.entries, 2);
  EXPECT_EQ(s.bytes, 2 * 424);
}

TEST(ResponseCache, ReplacingAKeyDoesNotDoubleCount) {
  ResponseCache cache(1 << 20);
  cache.Insert(Key(1), Answer("one"));
  cache.Insert(Key(1), Answer("three"));
  EXPECT_EQ(cache.Lookup(Key(1))->text, "three");
  EXPECT_EQ(cache.Stats().entries, 1);
  EXPECT_EQ(cache.Stats().bytes, 5 + 4 + 256 + 64);
}

TEST(ResponseCache, OversizedEntryIsNotStored) {
  ResponseCache cache(1000);
  cache.Insert(Key(1), Answer(std::string(2000, 'x')));
  EXPECT_FALSE(cache.Lookup(Key(1)).has_value());
  EXPECT_EQ(cache.Stats().entries, 0);
  EXPECT_EQ(cache.Stats().bytes, 0);
}

TEST(ResponseCache, DisabledStoresAndCountsNothing) {
  ResponseCache cache(0);
  EXPECT_FALSE(cache.enabled());
  cache.Insert(Key(1), Answer("x"));
  EXPECT_FALSE(cache.Lookup(Key(1)).has_value());
  const ResponseCacheStats s = cache.Stats();
  EXPECT_EQ(s.misses, 0);
  EXPECT_EQ(s.entries, 0);
}

TEST(ResponseCache, ClearEmpties) {
  ResponseCache cache(1 << 20);
  cache.Insert(Key(1), Answer("x"));
  cache.Clear();
  EXPECT_FALSE(cache.Lookup(Key(1)).has_value());
  EXPECT_EQ(cache.Stats().bytes, 0);
}

}  // namespace
}  // namespace vlserve
