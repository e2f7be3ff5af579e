/* fs/client/pkfs.h: libpkfs, direct mappings of pkfs files.
 *
 * A VMM maps a guest-RAM file that lives on a pkfs mount straight from the
 * region's hugepages: the pages it gets are the file's own pages in the
 * region (no FUSE page cache in between), so they can be long-term pinned
 * (VFIO, io_uring) and they survive a restart of the pkfs daemon.
 *
 *   struct pkfs_mapping m;
 *   if (pkfs_map("/srv/vm1/ram", PROT_READ | PROT_WRITE, &m) != 0) {
 *     fprintf(stderr, "%s\n", pkfs_last_error());
 *     return 1;
 *   }
 *   ... use m.addr [0, m.length) ...
 *   pkfs_unmap(&m);
 *
 * pkfs_map opens PATH through the mount (O_RDWR when PROT_WRITE is asked,
 * else O_RDONLY: the kernel checks the caller's permissions), hands the
 * descriptor to the daemon, which checks it again, takes a hold on the
 * file (while held, the file's extents stay where they are: unlink defers
 * freeing, shrinking and punching fail with EBUSY) and passes back the
 * region's descriptor and the file's extents. The file is mapped MAP_SHARED
 * at an address aligned to the region's page size (2 MiB on hugetlbfs and
 * device-dax, 4 KiB on tmpfs), `length` = the file size rounded up to that
 * page size. The mapping cannot grow; bytes past file_size are the file's
 * tail page and are not part of the file.
 *
 * The hold belongs to the calling process (pid and start time). It is
 * released by pkfs_unmap, and by the daemon when the process exits or was
 * found gone at mount. The mapping stays valid while the daemon restarts.
 *
 * Who libpkfs trusts. The file's descriptor reaches only the daemon of the
 * mount the file is on, and what comes back is checked before anything is
 * mapped, so that a file anyone can make (a user.pkfs.control xattr on
 * tmpfs or ext4 names any socket) never gets a privileged VMM to run a
 * guest on memory someone else controls. Before sending anything,
 * pkfs_map checks that the file is on FUSE (fstatfs) and that the mount of
 * its device in /proc/self/mountinfo is of type fuse.pkfs, and reads the
 * mount's owner (user_id=); it reads the control socket and the file's
 * generation from the virtual xattrs user.pkfs.control and
 * user.pkfs.generation, which only the mount's server answers; after
 * connecting, the socket's server (SO_PEERCRED) must be root or the
 * mount's owner. The reply must describe that very file (inode number and
 * generation), its extents must be page aligned, inside the region and
 * cover the mapping exactly, and the region descriptor must be a region
 * backing pkfs uses: a linked regular file on hugetlbfs or tmpfs that is
 * the file at the region path the daemon names (a caller that may not
 * search that path's directories gets the other checks alone), or a
 * device-dax character device. A mount set up by an unprivileged user
 * (fusermount3) is trusted as far as that user: its server may hand out
 * any region file of its own, as it could serve any data through the
 * mount.
 *
 * Errors: -1 with errno set and a message for pkfs_last_error(); nothing
 * is mapped:
 *   ENOTSUP   PATH is not on a pkfs mount (not FUSE, not of type
 *             fuse.pkfs, or no user.pkfs.control); nothing was sent
 *   EPERM     the server or its reply is not genuine: the control socket
 *             is served by neither root nor the mount's owner (nothing was
 *             sent), the reply describes another inode or generation, the
 *             region descriptor is not a region backing (a memfd, say), or
 *             the daemon does not answer user.pkfs.generation
 *   EACCES    not allowed the requested access
 *   EINVAL    bad prot or mapping, or not a regular file
 *   ENOSPC    the hold table is full
 *   ECONNREFUSED, ENOENT   the daemon's control socket is not answering
 *   EPROTO    the daemon speaks another protocol version, or its reply is
 *             malformed (bad extents, page size, region path)
 *   anything open(2) or mmap(2) return
 *
 * Thread safety: every function may be called from any thread; a mapping
 * must not be unmapped twice.
 *
 * Link with `pkg-config --cflags --libs pkfs`.
 */
#ifndef PKFS_CLIENT_PKFS_H
#define PKFS_CLIENT_PKFS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PKFS_API __attribute__((visibility("default")))

struct pkfs_mapping {
  void* addr;         /* start, aligned to page_size */
  size_t length;      /* mapped bytes, a multiple of page_size */
  uint64_t file_size; /* the file's size when mapped */
  uint64_t page_size; /* the region's page size */
  uint64_t hold_id;   /* the daemon's hold, for pkfsctl */
  int prot;           /* as passed to pkfs_map */
  /* Private: for pkfs_unmap. */
  uint64_t private_ino;
  uint64_t private_generation;
  char private_control[108];    /* the daemon's control socket */
  uint64_t private_reserved[4]; /* [0]: who may serve it (pkfs.cpp) */
};

/* Maps the whole file at PATH with PROT (PROT_READ, optionally PROT_WRITE).
 * Returns 0, or -1 with errno set. */
PKFS_API int pkfs_map(const char* path, int prot, struct pkfs_mapping* mapping);

/* Unmaps MAPPING and asks the daemon to release its hold. Returns 0, or -1
 * with errno set (EINVAL for a mapping pkfs_map did not fill; EPERM when the
 * control socket is now served by neither root nor the mount's owner: no
 * request is sent, the mapping is gone, and the hold is released once this
 * process exits). If the daemon cannot be reached the mapping is still gone
 * and 0 is returned: the hold is released as stale once the daemon is back
 * and this process has exited. */
PKFS_API int pkfs_unmap(struct pkfs_mapping* mapping);

/* A message for the last failure in this thread ("" if none). */
PKFS_API const char* pkfs_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PKFS_CLIENT_PKFS_H */
