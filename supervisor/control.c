/*  control - the supervisor's unix control socket, both ends
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "control.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vz_common.h"

static int s_address(const char *path, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    return vz_strlcpy(addr->sun_path, path, sizeof addr->sun_path) < 0 ? -ENAMETOOLONG : 0;
}

int sup_control_connect(const char *path)
{
    struct sockaddr_un addr;
    if (s_address(path, &addr) < 0)
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int sup_control_listen(const char *path)
{
    struct sockaddr_un addr;
    if (s_address(path, &addr) < 0)
        return -ENAMETOOLONG;
    //  A file that still accepts connections belongs to a running supervisor.
    int probe = sup_control_connect(path);
    if (probe >= 0) {
        close(probe);
        return -EADDRINUSE;
    }
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    //  umask closes the window between bind and chmod.
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    umask(old);
    if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int sup_control_write(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        off += (size_t)n;
    }
    return 0;
}

char *sup_control_request(const char *path, const char *line, int timeout_ms, int *rc)
{
    assert(path && line && rc);
    int fd = sup_control_connect(path);
    if (fd < 0) {
        *rc = fd;
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert(buf);
    snprintf(buf, cap, "%s\n", line);
    *rc = sup_control_write(fd, buf);
    while (*rc == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *rc = n == 0 ? -ETIMEDOUT : -errno;
            break;
        }
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert(buf);
        }
        ssize_t got = recv(fd, buf + len, cap - len - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            *rc = -EPROTO;
            break;
        }
        len += (size_t)got;
        buf[len] = '\0';
        //  The response ends with an empty line: "...\n\n", or just "\n" if empty.
        if (len >= 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n') {
            buf[len - 1] = '\0';
            break;
        }
    }
    close(fd);
    if (*rc < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
