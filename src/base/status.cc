#include "base/status.h"

namespace vlserve {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

#define VLS_DEFINE_ERROR(Name, code) \
  Status Name(std::string message) { return Status(StatusCode::code, std::move(message)); }
VLS_DEFINE_ERROR(InvalidArgumentError, kInvalidArgument)
VLS_DEFINE_ERROR(NotFoundError, kNotFound)
VLS_DEFINE_ERROR(OutOfRangeError, kOutOfRange)
VLS_DEFINE_ERROR(FailedPreconditionError, kFailedPrecondition)
VLS_DEFINE_ERROR(UnimplementedError, kUnimplemented)
VLS_DEFINE_ERROR(ResourceExhaustedError, kResourceExhausted)
VLS_DEFINE_ERROR(UnavailableError, kUnavailable)
VLS_DEFINE_ERROR(DeadlineExceededError, kDeadlineExceeded)
VLS_DEFINE_ERROR(CancelledError, kCancelled)
VLS_DEFINE_ERROR(DataLossError, kDataLoss)
VLS_DEFINE_ERROR(InternalError, kInternal)
#undef VLS_DEFINE_ERROR

}  // namespace vlserve
