// tests/fuzz/fuzz_control.cpp: libFuzzer target for the control protocol's
// parsers: what the daemon makes of a request from any local user
// (control::parse_request) and what libpkfs makes of a map reply from
// whatever answers on the socket (control::parse_map_reply).
//
// Input: byte 0 chooses the parser (bit 0: 0 request, 1 map reply) and, for
// a request, whether a descriptor came with it (bit 1); the rest is the
// message (a request) or the payload after the Reply header (a map reply).
// Both parsers must return 0 or a positive errno with a message, never
// crash, and on success hand back only what the bytes hold.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fs/client/protocol.h"

using namespace pkfs;

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "fuzz_control: %s\n", what);
  std::abort();
}

void check_status(int status, const std::string& error) {
  if (status < 0) violated("a parser returned a negative status");
  if (status != 0 && error.empty()) violated("a parser failed without a message");
}

// A descriptor to attach to requests: /dev/null, opened once and never
// closed (the parser must not close what it did not take).
int attached_descriptor() {
  static const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  const auto* begin = reinterpret_cast<const std::byte*>(data + 1);
  std::vector<std::byte> bytes(begin, begin + (size - 1));
  std::string error;
  if ((selector & 1) == 0) {
    control::Message message;
    message.bytes = std::move(bytes);
    message.fd = (selector & 2) ? attached_descriptor() : -1;
    control::Request request;
    check_status(control::parse_request(message, request, error), error);
    return 0;
  }
  control::MapReply head;
  std::vector<control::ExtentRecord> extents;
  std::string region_path;
  int status = control::parse_map_reply(bytes, head, extents, region_path, error);
  check_status(status, error);
  if (status == 0) {
    uint64_t carried =
        sizeof(control::MapReply) + extents.size() * sizeof(control::ExtentRecord) + region_path.size();
    if (extents.size() != head.extent_count)
      violated("parse_map_reply: extent count differs from the records");
    if (carried > bytes.size()) violated("parse_map_reply: more came back than the payload holds");
  }
  return 0;
}
