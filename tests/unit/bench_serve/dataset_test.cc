#include "bench_serve/dataset.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>

#include "media/image.h"

namespace vlserve::bench_serve {
namespace {

namespace json = boost::json;

// An independent decoder (no padding checks) for the tests.
std::vector<uint8_t> Unbase64(std::string_view s) {
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  return out;
}

Dataset Make(DatasetKind kind, uint64_t seed) {
  DatasetOptions o;
  o.kind = kind;
  o.seed = seed;
  o.max_tokens = 16;
  return Dataset::Create(o).value();
}

std::string FirstBody(const Dataset& d, int index) {
  auto c = d.MakeConversation(index);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? d.Body(*c, 0, {}) : "";
}

json::object Parse(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  EXPECT_FALSE(ec) << body.substr(0, 200);
  return v.is_object() ? v.as_object() : json::object{};
}

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(Dataset, NamesRoundTrip) {
  for (const char* name : {"text", "random-mm", "repeat-image", "multi-turn", "document"}) {
    auto kind = ParseDatasetKind(name);
    ASSERT_TRUE(kind.ok()) << name;
    EXPECT_EQ(DatasetKindName(*kind), name);
  }
  EXPECT_FALSE(ParseDatasetKind("sharegpt").ok());
}

TEST(Dataset, SameSeedSameBodies) {
  for (DatasetKind kind : {DatasetKind::kText, DatasetKind::kRandomMm, DatasetKind::kDocument,
                           DatasetKind::kMultiTurn, DatasetKind::kRepeatImage}) {
    const Dataset a = Make(kind, 11), b = Make(kind, 11), other = Make(kind, 12);
    for (int i = 0; i < 3; ++i) {
      const std::string body = FirstBody(a, i);
      EXPECT_EQ(body, FirstBody(b, i)) << DatasetKindName(kind) << " " << i;
      EXPECT_NE(body, FirstBody(other, i)) << DatasetKindName(kind) << " " << i;
      const json::object o = Parse(body);
      EXPECT_EQ(o.at("stream"), true);
      EXPECT_EQ(o.at("stream_options").at("include_usage"), true);
      EXPECT_EQ(o.at("max_tokens"), 16);
      EXPECT_FALSE(o.contains("model"));
    }
    EXPECT_NE(FirstBody(a, 0), FirstBody(a, 1));
  }
}

// The image part is a decodable JPEG of the size the conversation says, in range.
TEST(Dataset, RandomImagesAreValidJpegs) {
  const Dataset d = Make(DatasetKind::kRandomMm, 3);
  std::set<std::pair<int, int>> sizes;
  for (int i = 0; i < 4; ++i) {
    auto c = d.MakeConversation(i);
    ASSERT_TRUE(c.ok());
    const json::object o = Parse(d.Body(*c, 0, {}));
    const json::array& parts = o.at("messages").at(0).at("content").as_array();
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[0].at("type"), "image_url");  // image first: its KV is a shared prefix
    EXPECT_EQ(parts[1].at("type"), "text");
    const std::string url(parts[0].at("image_url").at("url").as_string());
    const std::string prefix = "data:image/jpeg;base64,";
    ASSERT_EQ(url.substr(0, prefix.size()), prefix);
    const std::vector<uint8_t> jpeg = Unbase64(url.substr(prefix.size()));
    auto image = media::Decode(jpeg);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(image->width, c->image_width);
    EXPECT_EQ(image->height, c->image_height);
    EXPECT_GE(image->width, 64);
    EXPECT_LE(image->width, 640);
    EXPECT_GE(image->height, 64);
    EXPECT_LE(image->height, 480);
    sizes.insert({image->width, image->height});
  }
  EXPECT_GT(sizes.size(), 1u);
}

TEST(Dataset, RepeatImageSharesTheImage) {
  const Dataset d = Make(DatasetKind::kRepeatImage, 5);
  auto first = d.MakeConversation(0);
  ASSERT_TRUE(first.ok());
  std::set<std::string> questions;
  for (int i = 0; i < 10; ++i) {
    auto c = d.MakeConversation(i);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->image_url, first->image_url);
    questions.insert(c->questions[0]);
  }
  EXPECT_GT(questions.size(), 1u);
}

TEST(Dataset, MultiTurnCarriesHistory) {
  const Dataset d = Make(DatasetKind::kMultiTurn, 9);
  EXPECT_EQ(d.turns_per_conversation(), 3);
  auto c = d.MakeConversation(2);
  ASSERT_TRUE(c.ok());
  const json::object o = Parse(d.Body(*c, 2, {"first answer", "second answer"}));
  const json::array& m = o.at("messages").as_array();
  ASSERT_EQ(m.size(), 5u);
  const char* roles[] = {"user", "assistant", "user", "assistant", "user"};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(m[i].at("role"), roles[i]) << i;
  EXPECT_EQ(m[0].at("content").at(0).at("type"), "image_url");
  EXPECT_EQ(m[0].at("content").at(0).at("image_url").at("url").as_string(), c->image_url);
  EXPECT_EQ(m[1].at("content"), "first answer");
  EXPECT_EQ(m[3].at("content"), "second answer");
  EXPECT_EQ(m[4].at("content").as_string(), c->questions[2]);
  // Turn 2's prompt starts like turn 3's: the prefix cache can reuse it.
  const json::object t2 = Parse(d.Body(*c, 1, {"first answer"}));
  EXPECT_EQ(t2.at("messages").as_array().size(), 3u);
  EXPECT_EQ(t2.at("messages").at(0), m[0]);
}

TEST(Dataset, DocumentPart) {
  const Dataset d = Make(DatasetKind::kDocument, 1);
  for (int i = 0; i < 5; ++i) {
    const json::object o = Parse(FirstBody(d, i));
    const json::array& parts = o.at("messages").at(0).at("content").as_array();
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[0].at("type"), "document");
    const size_t n = parts[0].at("text").as_string().size();
    EXPECT_GE(n, 3072u);
    EXPECT_LE(n, 6144u + 200);  // the last sentence may overshoot a little
    EXPECT_EQ(parts[1].at("type"), "text");
  }
}

TEST(Dataset, ModelFieldWhenGiven) {
  DatasetOptions o;
  o.model = "m1";
  const Dataset d = Dataset::Create(o).value();
  EXPECT_EQ(Parse(FirstBody(d, 0)).at("model"), "m1");
}

TEST(Dataset, ExtraBodyOverrides) {
  DatasetOptions o;
  o.extra_body = R"({"temperature": 0, "max_tokens": 3, "logit_bias": {"5": -100}})";
  const Dataset d = Dataset::Create(o).value();
  const json::object body = Parse(FirstBody(d, 0));
  EXPECT_EQ(body.at("temperature"), 0);
  EXPECT_EQ(body.at("max_tokens"), 3);
  EXPECT_EQ(body.at("logit_bias").at("5"), -100);
  EXPECT_EQ(body.at("stream"), true);
  for (const char* bad : {"[1]", "{", "3"}) {
    o.extra_body = bad;
    EXPECT_FALSE(Dataset::Create(o).ok()) << bad;
  }
}

}  // namespace
}  // namespace vlserve::bench_serve
