#include "server/http_error.h"

#include <fmt/format.h>

#include <boost/json.hpp>

namespace vlserve::server {

HttpError HttpErrorFromStatus(const Status& status) {
  HttpError e;
  e.message = status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kUnimplemented:
      e.http_status = 400;
      e.type = "invalid_request_error";
      break;
    case StatusCode::kNotFound:
      e.http_status = 404;
      e.type = "not_found_error";
      break;
    case StatusCode::kResourceExhausted:
      e.http_status = 503;
      e.type = "overloaded_error";
      e.retry_after = true;
      break;
    case StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "unavailable_error";
      break;
    case StatusCode::kDeadlineExceeded:
      e.http_status = 504;
      e.type = "timeout_error";
      break;
    case StatusCode::kCancelled:
      e.http_status = 499;
      e.type = "cancelled_error";
      break;
    case StatusCode::kOk:
      e.message = "internal error: an OK status reached the error path";
      [[fallthrough]];
    default:
      e.http_status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

HttpError PayloadTooLargeError(size_t limit_bytes) {
  return {413, "invalid_request_error",
          fmt::format("request body exceeds the limit of {} bytes; send smaller images or "
                      "raise --max-body-mb",
                      limit_bytes)};
}

HttpError UnauthorizedError() {
  return {401, "authentication_error",
          "missing or incorrect API key; send 'Authorization: Bearer <key>'"};
}

HttpError RouteNotFoundError(std::string_view target) {
  return {404, "not_found_error", fmt::format("no route for '{}'; see docs/api.md", target)};
}

HttpError MethodNotAllowedError(std::string_view method, std::string_view target) {
  return {405, "invalid_request_error",
          fmt::format("method {} is not allowed on '{}'", method, target)};
}

std::string ErrorJson(const HttpError& error) {
  boost::json::object inner;
  inner["message"] = error.message;
  inner["type"] = error.type;
  inner["code"] = error.http_status;
  boost::json::object outer;
  outer["error"] = std::move(inner);
  return boost::json::serialize(outer);
}

}  // namespace vlserve::server
