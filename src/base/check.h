// CHECK: for broken invariants (bugs), never for anything a user or a file can cause.
#pragma once

#include <sstream>

namespace vlserve::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Swallows the stream in the passing branch so `CHECK(x) << msg` costs nothing then.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace vlserve::internal

#define CHECK(condition)                 \
  (condition) ? (void)0                  \
              : ::vlserve::internal::Voidify() & \
                    ::vlserve::internal::CheckFailure(__FILE__, __LINE__, #condition).stream()

#define CHECK_EQ(a, b) CHECK((a) == (b)) << #a " = " << (a) << ", " #b " = " << (b) << " "
#define CHECK_NE(a, b) CHECK((a) != (b))
#define CHECK_LT(a, b) CHECK((a) < (b)) << #a " = " << (a) << ", " #b " = " << (b) << " "
#define CHECK_LE(a, b) CHECK((a) <= (b)) << #a " = " << (a) << ", " #b " = " << (b) << " "
#define CHECK_GT(a, b) CHECK((a) > (b)) << #a " = " << (a) << ", " #b " = " << (b) << " "
#define CHECK_GE(a, b) CHECK((a) >= (b)) << #a " = " << (a) << ", " #b " = " << (b) << " "

#ifdef NDEBUG
#define DCHECK(condition) \
  while (false) CHECK(condition)
#else
#define DCHECK(condition) CHECK(condition)
#endif
