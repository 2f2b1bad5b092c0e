// Errors as HTTP: the ONE place that maps a Status to an HTTP status code
// (docs/architecture.md "Layers"), and the OpenAI-shaped JSON body every error response
// carries:
//   {"error": {"message": "...", "type": "invalid_request_error", "code": 400}}
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace vlserve::server {

struct HttpError {
  int http_status = 500;
  std::string type;     // OpenAI-style error type, e.g. "invalid_request_error"
  std::string message;  // what was wrong and what to do
  bool retry_after = false;  // add "Retry-After: 1" (overload)
};

// Status -> HTTP:
//   InvalidArgument, OutOfRange, FailedPrecondition, Unimplemented -> 400
//   NotFound -> 404   ResourceExhausted -> 503 + Retry-After   Unavailable -> 503
//   DeadlineExceeded -> 504   Cancelled -> 499   DataLoss, Internal (and OK: a bug) -> 500
HttpError HttpErrorFromStatus(const Status& status);

// Transport-level errors that have no Status (they never leave the HTTP layer).
HttpError PayloadTooLargeError(size_t limit_bytes);
HttpError UnauthorizedError();
HttpError RouteNotFoundError(std::string_view target);
HttpError MethodNotAllowedError(std::string_view method, std::string_view target);

// {"error": {...}} (no trailing newline).
std::string ErrorJson(const HttpError& error);

}  // namespace vlserve::server
