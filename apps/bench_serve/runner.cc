#include "bench_serve/runner.h"

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "base/clock.h"
#include "bench_serve/http_client.h"

namespace vlserve::bench_serve {
namespace {

using Clock = std::chrono::steady_clock;

class Runner {
 public:
  Runner(const BenchConfig& config, Endpoint endpoint, Dataset dataset)
      : config_(config), dataset_(std::move(dataset)), endpoint_(endpoint), pool_(endpoint) {
    turns_ = dataset_.turns_per_conversation();
    conversations_ = (config.requests + turns_ - 1) / turns_;
    records_.resize(config.requests);
    if (config.rate > 0)
      schedule_ = PoissonSchedule(config.requests, config.rate, config.dataset.seed);
  }

  BenchResult Run() {
    start_ = Clock::now();
    last_print_ = start_;
    std::vector<std::thread> threads;
    if (config_.rate > 0) {
      // Open loop: a thread per conversation, started at its first turn's arrival time,
      // whether or not earlier requests have finished.
      for (int c = 0; c < conversations_; ++c) {
        std::this_thread::sleep_until(At(schedule_[c * turns_]));
        threads.emplace_back([this, c] { RunWithPooledConnection(c); });
      }
    } else {
      // Closed loop: each client sends its next conversation when the last one ended.
      const int clients = std::min(config_.concurrency, conversations_);
      for (int i = 0; i < clients; ++i) {
        threads.emplace_back([this] {
          HttpConnection connection(endpoint_);
          for (int c = next_.fetch_add(1); c < conversations_; c = next_.fetch_add(1)) {
            RunConversation(c, &connection);
          }
        });
      }
    }
    for (std::thread& t : threads) t.join();
    BenchResult result;
    result.duration_s = std::chrono::duration<double>(Clock::now() - start_).count();
    result.config = config_;
    result.records = std::move(records_);
    if (config_.progress) std::fputc('\n', stderr);
    return result;
  }

 private:
  Clock::time_point At(double seconds) const {
    return start_ +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }
  double Now() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  void RunWithPooledConnection(int c) {
    std::unique_ptr<HttpConnection> connection = pool_.Acquire();
    RunConversation(c, connection.get());
    pool_.Release(std::move(connection));
  }

  // The turns of conversation `c`, in order; a turn after a failed one is not sent.
  void RunConversation(int c, HttpConnection* connection) {
    StatusOr<Conversation> conversation = dataset_.MakeConversation(c);
    std::vector<std::string> answers;
    std::string failed;
    const int turns = std::min(turns_, config_.requests - c * turns_);
    for (int t = 0; t < turns; ++t) {
      RequestRecord& r = records_[c * turns_ + t];
      r.index = c * turns_ + t;
      r.conversation = c;
      r.turn = t;
      if (!conversation.ok()) {
        r.error = "dataset: " + conversation.status().ToString();
      } else if (!failed.empty()) {
        r.error = "skipped: " + failed;
      } else {
        if (config_.rate > 0) std::this_thread::sleep_until(At(schedule_[r.index]));
        r.scheduled_s = config_.rate > 0 ? schedule_[r.index] : Now();
        const std::string body = dataset_.Body(*conversation, t, answers);
        r.start_s = Now();
        HttpResult response = connection->Post(
            body, config_.api_key,
            std::chrono::milliseconds(static_cast<int64_t>(config_.timeout_s * 1000)));
        FillFromResponse(response, &r);
        answers.push_back(r.answer);
        if (!r.ok) failed = "turn " + std::to_string(t + 1) + " failed";
      }
      Finished(r.ok);
    }
  }

  void Finished(bool ok) {
    const int done = done_.fetch_add(1) + 1;
    const int errors = errors_.fetch_add(ok ? 0 : 1) + (ok ? 0 : 1);
    if (!config_.progress) return;
    std::lock_guard<std::mutex> lock(progress_mu_);
    const Clock::time_point now = Clock::now();
    if (done < config_.requests && now - last_print_ < std::chrono::milliseconds(100)) return;
    last_print_ = now;
    const int width = static_cast<int>(std::to_string(config_.requests).size());
    std::fprintf(stderr, "\r[%*d/%d] ok %d err %d  %.1f s", width, done, config_.requests,
                 done - errors, errors, Now());
    std::fflush(stderr);
  }

  const BenchConfig& config_;
  Dataset dataset_;
  Endpoint endpoint_;
  ConnectionPool pool_;  // --rate: connections shared by the per-conversation threads
  int turns_ = 1;
  int conversations_ = 0;
  std::vector<double> schedule_;
  std::vector<RequestRecord> records_;  // each written by the one thread running it
  Clock::time_point start_;
  std::atomic<int> next_{0};
  std::atomic<int> done_{0};
  std::atomic<int> errors_{0};
  std::mutex progress_mu_;
  Clock::time_point last_print_;
};

bool ParseMs(std::string_view text, double* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && *out > 0;
}

}  // namespace

StatusOr<Slo> ParseSlo(std::string_view text) {
  Slo slo;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view term = text.substr(0, comma);
    text = comma == std::string_view::npos ? "" : text.substr(comma + 1);
    const size_t colon = term.find(':');
    double ms = 0;
    if (colon == std::string_view::npos || !ParseMs(term.substr(colon + 1), &ms)) {
      return InvalidArgumentError("--slo term '" + std::string(term) +
                                  "': expected NAME:MILLISECONDS, e.g. ttft:500,tpot:50");
    }
    std::string_view name = term.substr(0, colon);
    if (name == "ttft") {
      slo.ttft_ms = ms;
    } else if (name == "tpot") {
      slo.tpot_ms = ms;
    } else if (name == "e2e") {
      slo.e2e_ms = ms;
    } else {
      return InvalidArgumentError("--slo: unknown term '" + std::string(name) +
                                  "'; use ttft, tpot or e2e");
    }
  }
  return slo;
}

bool MeetsSlo(const Slo& slo, const RequestRecord& r) {
  if (!r.ok) return false;
  if (slo.ttft_ms > 0 && (r.ttft_ms < 0 || r.ttft_ms > slo.ttft_ms)) return false;
  // One output token has no time per output token: nothing to violate.
  if (slo.tpot_ms > 0 && r.tpot_ms > slo.tpot_ms) return false;
  if (slo.e2e_ms > 0 && r.e2e_ms > slo.e2e_ms) return false;
  return true;
}

std::vector<double> PoissonSchedule(int n, double rate, uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5deece66dull);
  std::vector<double> times(std::max(n, 0));
  double t = 0;
  for (int i = 0; i < n; ++i) {
    times[i] = t;
    // Exponential gap by inversion; u in (0, 1] from the top 53 bits.
    const double u = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;
    t += -std::log(u) / rate;
  }
  return times;
}

StatusOr<BenchResult> RunBench(const BenchConfig& config) {
  ASSIGN_OR_RETURN(Endpoint endpoint, ParseUrl(config.url));
  if (config.requests < 1) return InvalidArgumentError("--requests must be >= 1");
  if (config.rate < 0 || !std::isfinite(config.rate)) {
    return InvalidArgumentError("--rate must be a positive number of requests per second");
  }
  if (config.rate == 0 && config.concurrency < 1) {
    return InvalidArgumentError("--concurrency must be >= 1");
  }
  if (config.dataset.max_tokens < 1) return InvalidArgumentError("--max-tokens must be >= 1");
  if (config.timeout_s <= 0) return InvalidArgumentError("--timeout must be > 0 seconds");
  ASSIGN_OR_RETURN(Dataset dataset, Dataset::Create(config.dataset));
  Runner runner(config, std::move(endpoint), std::move(dataset));
  return runner.Run();
}

}  // namespace vlserve::bench_serve
