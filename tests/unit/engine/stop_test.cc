#include "engine/stop.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/sampling.h"  // Xoshiro256 for the randomized test

namespace vlserve {
namespace {

// Feeds pieces in order; returns every Feed's released text and the total.
struct FeedLog {
  std::vector<std::string> released;
  std::string total;
  bool stopped = false;
  int stop_index = -1;
};

FeedLog FeedAll(StopMatcher& m, const std::vector<std::string>& pieces) {
  FeedLog run;
  for (const std::string& p : pieces) {
    StopMatcher::Result r = m.Feed(p);
    run.released.push_back(r.text);
    run.total += r.text;
    if (r.stopped) {
      run.stopped = true;
      run.stop_index = r.stop_index;
    }
  }
  return run;
}

TEST(StopMatcherTest, NoStopsReleasesEverythingAtOnce) {
  StopMatcher m({});
  FeedLog run = FeedAll(m, {"Hello", ", ", "world"});
  EXPECT_EQ(run.released, (std::vector<std::string>{"Hello", ", ", "world"}));
  EXPECT_FALSE(run.stopped);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopInsideOnePieceDropsStopAndRest) {
  StopMatcher m({"###"});
  StopMatcher::Result r = m.Feed("answer: 42###trailing");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "answer: 42");
  EXPECT_EQ(r.stop_index, 0);
  EXPECT_TRUE(m.Feed("more").text.empty());  // nothing after a stop
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopSplitOverFourPieces) {
  StopMatcher m({"<|end|>"});
  FeedLog run = FeedAll(m, {"a<", "|e", "nd", "|>", "zzz"});
  EXPECT_EQ(run.released, (std::vector<std::string>{"a", "", "", "", ""}));
  EXPECT_TRUE(run.stopped);
  EXPECT_EQ(run.total, "a");
}

TEST(StopMatcherTest, FalseStartIsReleasedOnceItDiverges) {
  StopMatcher m({"abc"});
  FeedLog run = FeedAll(m, {"xa", "b", "x", "ab"});
  EXPECT_EQ(run.released, (std::vector<std::string>{"x", "", "abx", ""}));
  EXPECT_FALSE(run.stopped);
  EXPECT_EQ(m.held(), 2u);
  EXPECT_EQ(m.Flush(), "ab");  // end of generation: the held tail is real text
}

TEST(StopMatcherTest, OverlappingSelfPrefix) {
  // "aab": after "aaa" only "aa" can still start the stop string, so one 'a' is released.
  StopMatcher m({"aab"});
  FeedLog run = FeedAll(m, {"a", "a", "a", "b"});
  EXPECT_EQ(run.released, (std::vector<std::string>{"", "", "a", ""}));
  EXPECT_TRUE(run.stopped);
  EXPECT_EQ(run.total, "a");
}

TEST(StopMatcherTest, SeveralStopsEarliestWinsAndHoldIsLongest) {
  StopMatcher m({"bar", "foo"});
  StopMatcher::Result r = m.Feed("xfoobar");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "x");
  EXPECT_EQ(r.stop_index, 1);

  StopMatcher n({"abcd", "cx"});
  StopMatcher::Result h = n.Feed("zabc");
  EXPECT_EQ(h.text, "z");  // "abc" may become "abcd"; "c" alone would hold less
  EXPECT_EQ(n.held(), 3u);
  StopMatcher::Result s = n.Feed("x");  // "cx" completes first
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.stop_index, 1);
  EXPECT_EQ(s.text, "ab");
}

TEST(StopMatcherTest, EmptyPiecesAndEmptyStops) {
  StopMatcher m({"", "END"});  // the empty stop string is ignored, not an instant match
  FeedLog run = FeedAll(m, {"", "E", "", "N", "", "D"});
  EXPECT_EQ(run.total, "");
  EXPECT_TRUE(run.stopped);
  EXPECT_EQ(run.stop_index, 1);  // index in the caller's list
  StopMatcher e({"x"});
  StopMatcher::Result r = e.Feed("");
  EXPECT_FALSE(r.stopped);
  EXPECT_TRUE(r.text.empty());
}

TEST(StopMatcherTest, Utf8StopSplitByBytes) {
  const std::string stop = "\xE3\x80\x82";  // U+3002 IDEOGRAPHIC FULL STOP
  StopMatcher m({stop});
  FeedLog run = FeedAll(m, {"\xE4\xBD\xA0\xE5\xA5\xBD", "\xE3", "\x80", "\x82"});
  EXPECT_EQ(run.total, "\xE4\xBD\xA0\xE5\xA5\xBD");
  EXPECT_TRUE(run.stopped);
}

// Reference: stop at the first piece after which some stop string occurs in the text;
// keep the text before the earliest occurrence.
std::string Reference(const std::vector<std::string>& pieces, const std::vector<std::string>& stops,
                      bool* stopped) {
  std::string text;
  for (const std::string& p : pieces) {
    text += p;
    size_t best = std::string::npos;
    for (const std::string& s : stops) best = std::min(best, text.find(s));
    if (best != std::string::npos) {
      *stopped = true;
      return text.substr(0, best);
    }
  }
  *stopped = false;
  return text;
}

TEST(StopMatcherTest, RandomizedAgainstReference) {
  Xoshiro256 rng(12345);
  auto rand_string = [&](size_t max_len) {
    std::string s;
    const size_t len = rng.Next() % (max_len + 1);
    for (size_t i = 0; i < len; ++i) s += static_cast<char>('a' + rng.Next() % 3);
    return s;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::string> stops;
    const int num_stops = 1 + static_cast<int>(rng.Next() % 3);
    for (int i = 0; i < num_stops; ++i) {
      std::string s = rand_string(5);
      if (s.empty()) s = "c";
      stops.push_back(s);
    }
    std::vector<std::string> pieces;
    const int num_pieces = static_cast<int>(rng.Next() % 12);
    for (int i = 0; i < num_pieces; ++i) pieces.push_back(rand_string(4));

    bool want_stopped = false;
    const std::string want = Reference(pieces, stops, &want_stopped);
    StopMatcher m(stops);
    FeedLog run = FeedAll(m, pieces);
    std::string got = run.total;
    if (!run.stopped) got += m.Flush();
    ASSERT_EQ(run.stopped, want_stopped) << "trial " << trial;
    ASSERT_EQ(got, want) << "trial " << trial;
  }
}

}  // namespace
}  // namespace vlserve
