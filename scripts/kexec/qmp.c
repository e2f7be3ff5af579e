/* scripts/kexec/qmp.c: a minimal QMP client for the kexec lab's vm variant
 * (scripts/kexec-test), the C twin of scripts/vmm/qmp.py. The lab's guest
 * has only busybox: Python is tens of MiB with its library, socat is not on
 * every host and would still need a wait loop around it; this is ~20 KiB
 * linked statically like guest-tool and holder.
 *
 *   qmp SOCKET STEP...
 *
 * Connects to QEMU's QMP socket (retrying for 30 s while QEMU starts),
 * negotiates, and runs each STEP in order:
 *   NAME                  a command without arguments (stop, cont, quit)
 *   NAME=JSON             a command with arguments (JSON passed verbatim)
 *   wait-migration        polls query-migrate until "completed" (fails on
 *                         "failed" or "cancelled", or after 120 s)
 * Prints one line per step (the reply, as QEMU sent it) and exits 1 on the
 * first error. Asynchronous events are skipped. QEMU sends one JSON object
 * per line and a reply always starts with {"return" or {"error", so no JSON
 * parser is needed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static char buffer[1 << 16];
static size_t filled = 0;

static void die(const char* what, const char* detail) {
  fprintf(stderr, "qmp: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* One line from QEMU, without its newline, in a static buffer. */
static const char* read_line(void) {
  static char line[sizeof buffer];
  for (;;) {
    char* end = memchr(buffer, '\n', filled);
    if (end) {
      size_t n = (size_t)(end - buffer);
      memcpy(line, buffer, n);
      line[n] = 0;
      if (n > 0 && line[n - 1] == '\r') line[n - 1] = 0;
      memmove(buffer, end + 1, filled - n - 1);
      filled -= n + 1;
      return line;
    }
    if (filled == sizeof buffer) die("a line longer than 64 KiB", NULL);
    ssize_t got = read(fd, buffer + filled, sizeof buffer - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) die("QEMU closed the connection", NULL);
    filled += (size_t)got;
  }
}

/* The next reply, skipping events ({"timestamp": ..., "event": ...}). */
static const char* reply(void) {
  for (;;) {
    const char* line = read_line();
    if (strncmp(line, "{\"return\"", 9) == 0 || strncmp(line, "{\"error\"", 8) == 0) return line;
  }
}

static void send_all(const char* text) {
  size_t n = strlen(text);
  while (n > 0) {
    ssize_t put = write(fd, text, n);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) die("write to QEMU", strerror(errno));
    text += put;
    n -= (size_t)put;
  }
}

/* Runs NAME with ARGUMENTS (JSON, or NULL); exits on an error reply. */
static const char* execute(const char* name, const char* arguments) {
  static char request[8192];
  int n = arguments
              ? snprintf(request, sizeof request, "{\"execute\":\"%s\",\"arguments\":%s}\n", name, arguments)
              : snprintf(request, sizeof request, "{\"execute\":\"%s\"}\n", name);
  if (n < 0 || (size_t)n >= sizeof request) die("request too long", name);
  send_all(request);
  const char* line = reply();
  if (strncmp(line, "{\"error\"", 8) == 0) {
    fprintf(stderr, "qmp: %s: %s\n", name, line);
    exit(1);
  }
  return line;
}

/* The value of "status" in a query-migrate reply ("none" when absent). */
static void migration_status(const char* line, char* status, size_t size) {
  const char* p = strstr(line, "\"status\"");
  snprintf(status, size, "none");
  if (!p) return;
  p += 8;
  while (*p == ' ' || *p == ':') p++;
  if (*p++ != '"') return;
  size_t n = 0;
  while (p[n] && p[n] != '"' && n + 1 < size) n++;
  memcpy(status, p, n);
  status[n] = 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: qmp SOCKET STEP...\n");
    return 2;
  }
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof address.sun_path) die("socket path too long", argv[1]);
  strcpy(address.sun_path, argv[1]);
  double deadline = now() + 30;
  for (;;) {
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) die("socket", strerror(errno));
    if (connect(fd, (struct sockaddr*)&address, sizeof address) == 0) break;
    close(fd);
    if (now() > deadline) die("cannot connect", argv[1]);
    usleep(100000);
  }
  read_line(); /* the greeting */
  execute("qmp_capabilities", NULL);
  for (int i = 2; i < argc; i++) {
    const char* step = argv[i];
    if (strcmp(step, "wait-migration") == 0) {
      char status[64];
      double until = now() + 120;
      for (;;) {
        migration_status(execute("query-migrate", NULL), status, sizeof status);
        if (strcmp(status, "completed") == 0) break;
        if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0 || now() > until) {
          fprintf(stderr, "qmp: migration %s\n", status);
          return 1;
        }
        usleep(50000);
      }
      printf("wait-migration: completed\n");
      fflush(stdout);
      continue;
    }
    char name[256];
    const char* equals = strchr(step, '=');
    size_t n = equals ? (size_t)(equals - step) : strlen(step);
    if (n >= sizeof name) die("command name too long", step);
    memcpy(name, step, n);
    name[n] = 0;
    printf("%s: %s\n", name, execute(name, equals ? equals + 1 : NULL));
    fflush(stdout);
    if (strcmp(name, "quit") == 0) break;
  }
  return 0;
}
