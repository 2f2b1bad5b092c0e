// Status / StatusOr: how every error a user or a file can cause travels upward.
// No exceptions cross module boundaries; only the server maps a Status to HTTP.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/check.h"

namespace vlserve {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // the caller's input is malformed (bad JSON, bad image, bad flag)
  kNotFound,          // a file, model, key or tensor does not exist
  kOutOfRange,        // a value past a limit (context length, pixel count, body size)
  kFailedPrecondition,// the request is well-formed but cannot run in this state
  kUnimplemented,     // a format or feature we do not support (yet)
  kResourceExhausted, // a queue, cache or memory bound is full
  kUnavailable,       // not ready yet or overloaded; retry later
  kDeadlineExceeded,
  kCancelled,
  kDataLoss,          // a file is truncated or corrupt
  kInternal,          // a bug: an invariant did not hold
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: what was wrong"
  std::string ToString() const;

  // Prefixes context, e.g. "loading text.gguf: " + message.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status OutOfRangeError(std::string message);
Status FailedPreconditionError(std::string message);
Status UnimplementedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status UnavailableError(std::string message);
Status DeadlineExceededError(std::string message);
Status CancelledError(std::string message);
Status DataLossError(std::string message);
Status InternalError(std::string message);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : value_(status) {  // NOLINT: implicit by design
    CHECK(!status.ok()) << "StatusOr constructed from an OK status without a value";
  }
  StatusOr(Status&& status) : value_(std::move(status)) {  // NOLINT
    CHECK(!std::get<Status>(value_).ok()) << "StatusOr constructed from an OK status";
  }
  StatusOr(const T& value) : value_(value) {}  // NOLINT
  StatusOr(T&& value) : value_(std::move(value)) {}  // NOLINT
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::decay_t<U>, Status> &&
                                        !std::is_same_v<std::decay_t<U>, StatusOr<T>>>>
  StatusOr(U&& value) : value_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(value_); }
  Status status() const { return ok() ? OkStatus() : std::get<Status>(value_); }

  T& value() & {
    CHECK(ok()) << std::get<Status>(value_).ToString();
    return std::get<T>(value_);
  }
  const T& value() const& {
    CHECK(ok()) << std::get<Status>(value_).ToString();
    return std::get<T>(value_);
  }
  T&& value() && {
    CHECK(ok()) << std::get<Status>(value_).ToString();
    return std::get<T>(std::move(value_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> value_;
};

}  // namespace vlserve

#define VLS_CONCAT_INNER(a, b) a##b
#define VLS_CONCAT(a, b) VLS_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::vlserve::Status vls_status_ = (expr);          \
    if (!vls_status_.ok()) return vls_status_;       \
  } while (0)

#define VLS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// ASSIGN_OR_RETURN(auto x, MaybeX());
#define ASSIGN_OR_RETURN(lhs, expr) \
  VLS_ASSIGN_OR_RETURN_IMPL(VLS_CONCAT(vls_statusor_, __LINE__), lhs, expr)
