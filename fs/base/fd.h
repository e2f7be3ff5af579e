// fs/base/fd.h: ownership of a file descriptor.
//
// Owns: UniqueFd, which closes the descriptor it holds when it goes out of
// scope, so that every early return of a function that opened one closes
// it. Must not depend on anything in pkfs; every layer (and libpkfs) may
// include it.
#pragma once

#include <unistd.h>

#include <utility>

namespace pkfs {

// Owns a file descriptor (or none: -1) until release() or reset().
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : m_fd(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : m_fd(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }

  int get() const { return m_fd; }
  // Gives the descriptor up without closing it; the caller owns it now.
  int release() { return std::exchange(m_fd, -1); }
  // Closes the descriptor held, if any, and holds `fd` instead.
  void reset(int fd = -1) {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = fd;
  }

 private:
  int m_fd = -1;
};

}  // namespace pkfs
