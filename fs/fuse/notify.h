// fs/fuse/notify.h: telling a service manager (systemd, Type=notify) how
// the daemon is doing, through libsystemd's sd_notify.
//
// Owns: nothing but these two messages. Without $NOTIFY_SOCKET (not started
// by systemd, or by mount(8)) they do nothing. The protocol is libsystemd's;
// no copy of it lives here.
#pragma once

#include <string>

namespace pkfs::fuse {

// READY=1 with a STATUS= line: the mount is up and the kernel queues
// requests to it, so a unit ordered after this one finds the files.
void notify_ready(const std::string& status);

// STOPPING=1: the session loop has ended (umount or SIGTERM) and the
// daemon is unmounting and marking the region clean.
void notify_stopping();

}  // namespace pkfs::fuse
