// fs/fuse/notify.cpp: sd_notify for the daemon (see notify.h).
#include "fs/fuse/notify.h"

#include <systemd/sd-daemon.h>

namespace pkfs::fuse {

// unset_environment = 0: $NOTIFY_SOCKET must stay for the second message
// (STOPPING=1), and unsetenv beside running threads would not be safe.
void notify_ready(const std::string& status) {
  std::string message = "READY=1\nSTATUS=" + status;
  sd_notify(0, message.c_str());
}

void notify_stopping() { sd_notify(0, "STOPPING=1\nSTATUS=unmounting"); }

}  // namespace pkfs::fuse
