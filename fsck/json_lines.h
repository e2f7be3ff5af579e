// fsck/json_lines.h: fsck.pkfs --json-lines FD, what fsck found and did as
// JSON lines for scripts, one object per line (schema in fsck.pkfs(8),
// fsck/fsck.pkfs.8.scd):
//
//   {"type":"problem","pass":3,"code":"INODE_CHECKSUM","message":"..."}
//   {"type":"repair","pass":4,"code":"LINK_COUNT","message":"...","done":true}
//   {"type":"summary","region":"...","exit_status":4,"problems":1,"repairs":0}
//
// Problems come from fsck::check_region, repairs from fsck::repair_region;
// the summary line is always the last and always written, whatever the
// outcome (also for a region skipped as clean, and on operational errors).
// FD 1 means stdout: the text meant for people is then not printed.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

#include "fs/base/json.h"
#include "fs/fsck/fsck.h"

namespace pkfs::fsck {

class JsonLines {
 public:
  // fd < 0: off. fd 1: takes stdout for itself and sends stdio's stdout to
  // /dev/null.
  void open(int fd) {
    if (fd == STDOUT_FILENO) {
      std::fflush(stdout);
      fd = ::dup(STDOUT_FILENO);
      if (std::freopen("/dev/null", "w", stdout) == nullptr) fd = STDOUT_FILENO;
    }
    m_fd = fd;
  }
  void problem(const std::string& code, const std::string& message) {
    m_problems++;
    json::Writer out;
    line(out.begin_object().key("type").string("problem"), code, message);
    write(out.end_object());
  }
  void repair(const std::string& code, const std::string& message, bool done) {
    m_repairs++;
    json::Writer out;
    line(out.begin_object().key("type").string("repair"), code, message).key("done").boolean(done);
    write(out.end_object());
  }
  void summary(const std::string& region, int exit_status) {
    json::Writer out;
    out.begin_object().key("type").string("summary").text_field("region", region);
    out.key("exit_status").number(exit_status).key("problems").number(m_problems);
    write(out.key("repairs").number(m_repairs).end_object());
  }

 private:
  json::Writer& line(json::Writer& out, const std::string& code, const std::string& message) {
    out.key("pass").number(fsck::check_pass_of(code)).key("code").string(code);
    return out.text_field("message", message);
  }
  void write(const json::Writer& out) {
    if (m_fd >= 0) dprintf(m_fd, "%s\n", out.str().c_str());
  }

  int m_fd = -1;
  uint64_t m_problems = 0, m_repairs = 0;
};

}  // namespace pkfs::fsck
