// tests/unit/support/result_checks.h: checks on Result values shared by the
// unit tests: REQUIRE_OK (fails with the error's message) and the errno or
// message of a result.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "fs/base/result.h"

#define REQUIRE_OK(expr)                                                                                \
  do {                                                                                                  \
    auto&& require_ok_result_ = (expr);                                                                 \
    INFO(#expr << ": " << (require_ok_result_ ? std::string() : require_ok_result_.error().message())); \
    REQUIRE(require_ok_result_);                                                                        \
  } while (0)

namespace pkfs::test {

// 0 for success, else the error's errno.
template <typename T>
int code_of(const Result<T>& result) {
  return result.ok() ? 0 : result.error().code();
}

// "" for success, else the error's message.
template <typename T>
std::string message_of(const Result<T>& result) {
  return result.ok() ? std::string() : result.error().message();
}

}  // namespace pkfs::test
