// fs/base/result.h: errors as values for every pkfs layer.
//
// Owns: Error (an errno value plus a human message), Result<T> and
// errno_text, the one errno-to-text of pkfs. Modelled on
// LevelDB's Status and SerenityOS's ErrorOr. Must not depend on anything in
// pkfs; every layer may include it.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace pkfs {

// The text of an errno value ("No such file or directory"), or "unknown
// error N". strerrordesc_np, unlike strerror, is safe in the daemon's
// threads, and its text does not depend on the locale.
inline std::string errno_text(int code) {
  const char* text = strerrordesc_np(code);
  return text != nullptr ? text : "unknown error " + std::to_string(code);
}

// An errno value with context. `code` is always a positive errno (EUCLEAN for
// corrupt region data, ENOSPC, ...); `message` is a full sentence fragment for
// humans, e.g. "inode 12: checksum mismatch".
class [[nodiscard]] Error {
 public:
  Error(int code, std::string message) : m_code(code), m_message(std::move(message)) {}
  static Error from_errno(int code, const std::string& context) {
    return Error(code, context + ": " + errno_text(code));
  }

  int code() const { return m_code; }
  const std::string& message() const { return m_message; }

  // Adds context in front: "opening region: <old message>".
  Error with_context(const std::string& context) const { return Error(m_code, context + ": " + m_message); }

 private:
  int m_code;
  std::string m_message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : m_value(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : m_value(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(m_value); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(m_value); }
  const T& value() const& { return std::get<T>(m_value); }
  T&& value() && { return std::get<T>(std::move(m_value)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const Error& error() const& { return std::get<Error>(m_value); }
  Error&& error() && { return std::get<Error>(std::move(m_value)); }

 private:
  std::variant<T, Error> m_value;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : m_error(std::move(error)), m_failed(true) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return !m_failed; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { return m_error; }
  Error&& error() && { return std::move(m_error); }

 private:
  Error m_error{0, ""};
  bool m_failed = false;
};

inline Result<void> success() { return {}; }

}  // namespace pkfs

#define PKFS_CONCAT_INNER(a, b) a##b
#define PKFS_CONCAT(a, b) PKFS_CONCAT_INNER(a, b)

// TRY(expr): evaluates a Result<void> (or any Result whose value is unused)
// and returns its error from the enclosing function.
#define TRY(expr)                                                           \
  do {                                                                      \
    auto&& pkfs_try_result_ = (expr);                                       \
    if (!pkfs_try_result_.ok()) return std::move(pkfs_try_result_).error(); \
  } while (0)

// TRY_ASSIGN(decl, expr): `decl = value of expr`, or return its error.
//   TRY_ASSIGN(auto region, region::open(path, options));
#define TRY_ASSIGN(decl, expr) TRY_ASSIGN_IMPL(PKFS_CONCAT(pkfs_result_, __LINE__), decl, expr)
// NOLINTBEGIN(bugprone-macro-parentheses): `decl` is a declaration
// (`auto x`), which parentheses would break.
#define TRY_ASSIGN_IMPL(tmp, decl, expr)        \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  decl = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
