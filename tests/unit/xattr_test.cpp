// tests/unit/xattr_test.cpp: extended attributes of core::Filesystem
// (fs/core/xattr.cpp): set, get, list, remove, the create and replace flags,
// and the limits on names and values.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "support/filesystem_fixture.h"
#include "support/result_checks.h"

namespace {

using namespace pkfs;
using namespace pkfs::test::fixture;
using pkfs::test::code_of;

}  // namespace

// ---------------------------------------------------------------------------
// Extended attributes.

TEST_CASE("xattrs can be set, read, listed and removed", "[xattr]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  const uint64_t blocks = attr_of(*m.fs, file).blocks;
  REQUIRE(m->setxattr(file, "user.a", "1", 0).ok());
  CHECK(attr_of(*m.fs, file).blocks == blocks + kSectorsPerBlock);
  REQUIRE(m->setxattr(file, "user.b", "twenty-two", 0).ok());
  REQUIRE(m->setxattr(file, "user.empty", "", 0).ok());
  CHECK(m->getxattr(file, "user.a").value() == "1");
  CHECK(m->getxattr(file, "user.b").value() == "twenty-two");
  CHECK(m->getxattr(file, "user.empty").value().empty());
  auto names = m->listxattr(file);
  REQUIRE(names.ok());
  std::vector<std::string> sorted = names.value();
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::string>{"user.a", "user.b", "user.empty"});
  REQUIRE(m->setxattr(file, "user.a", "replaced", 0).ok());
  CHECK(m->getxattr(file, "user.a").value() == "replaced");
  REQUIRE(m->removexattr(file, "user.a").ok());
  CHECK(code_of(m->getxattr(file, "user.a")) == ENODATA);
  REQUIRE(m->removexattr(file, "user.b").ok());
  REQUIRE(m->removexattr(file, "user.empty").ok());
  CHECK(m->listxattr(file)->empty());
  CHECK(attr_of(*m.fs, file).blocks == blocks);

  // Directories have them too, and they persist.
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  REQUIRE(m->setxattr(dir, "trusted.x", std::string("\0bin\xff", 5), 0).ok());
  m.close_and_remount();
  CHECK(m->getxattr(dir, "trusted.x").value() == std::string("\0bin\xff", 5));
}

TEST_CASE("xattr create and replace flags are enforced", "[xattr]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  CHECK(code_of(m->setxattr(file, "user.a", "v", XATTR_REPLACE)) == ENODATA);
  REQUIRE(m->setxattr(file, "user.a", "v", XATTR_CREATE).ok());
  CHECK(code_of(m->setxattr(file, "user.a", "w", XATTR_CREATE)) == EEXIST);
  REQUIRE(m->setxattr(file, "user.a", "w", XATTR_REPLACE).ok());
  CHECK(m->getxattr(file, "user.a").value() == "w");
  CHECK(code_of(m->removexattr(file, "user.none")) == ENODATA);
  CHECK(code_of(m->getxattr(file, "user.none")) == ENODATA);
  CHECK(code_of(m->setxattr(file, "user.a", "x", 0x100)) == EINVAL);
}

TEST_CASE("xattrs too large fail with E2BIG or ENOSPC", "[xattr]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  CHECK(code_of(m->setxattr(file, "user.big", std::string(format::kXattrPayloadBytes + 1, 'v'), 0)) == E2BIG);
  CHECK(code_of(m->setxattr(file, "", "v", 0)) == ERANGE);
  CHECK(code_of(m->setxattr(file, std::string(256, 'n'), "v", 0)) == ERANGE);
  CHECK(code_of(m->getxattr(file, std::string(256, 'n'))) == ERANGE);
  // The largest value that fits with a one-byte name fills the block exactly.
  const size_t largest = format::kXattrPayloadBytes - sizeof(format::XattrEntryHeader) - 1;
  REQUIRE(m->setxattr(file, "a", std::string(largest, 'v'), 0).ok());
  CHECK(code_of(m->setxattr(file, "b", "", 0)) == ENOSPC);
  REQUIRE(m->removexattr(file, "a").ok());
  for (int i = 0; i < 4; ++i)
    REQUIRE(m->setxattr(file, "user." + std::to_string(i), std::string(1000, 'x'), 0).ok());
  CHECK(code_of(m->setxattr(file, "user.4", std::string(1000, 'x'), 0)) == ENOSPC);
  CHECK(m->listxattr(file)->size() == 4);
  CHECK(m->getxattr(file, "user.3").value() == std::string(1000, 'x'));
}
