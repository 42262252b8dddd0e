/*  vz_ports - the default port of every daemon, in one table
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_ports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const struct {
    const char *service; //  service name, as in configs/mesh.cfg
    int admin;           //  its default admin port
} s_admin[] = {
    {"broker", VZ_PORT_ADMIN_BROKER},       {"gateway", VZ_PORT_ADMIN_GATEWAY},
    {"echo", VZ_PORT_ADMIN_ECHO},           {"auth", VZ_PORT_ADMIN_AUTH},
    {"ratelimit", VZ_PORT_ADMIN_RATELIMIT}, {"billing", VZ_PORT_ADMIN_BILLING},
    {"notifier", VZ_PORT_ADMIN_NOTIFIER},   {"github", VZ_PORT_ADMIN_GITHUB},
    {"reporter", VZ_PORT_ADMIN_REPORTER},   {"telemetry", VZ_PORT_ADMIN_TELEMETRY},
};

int vz_ports_admin(const char *service)
{
    for (size_t i = 0; service && i < sizeof s_admin / sizeof s_admin[0]; i++)
        if (strcmp(service, s_admin[i].service) == 0)
            return s_admin[i].admin;
    return -ENOENT;
}

//  Bind a loopback TCP socket to port (0 = the kernel's choice) and return
//  the port bound, or -errno.
static int s_try_bind(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
        rc = -errno;
    close(fd);
    return rc < 0 ? rc : ntohs(addr.sin_port);
}

//  The low end of the kernel's ephemeral range (32768 when unreadable).
static int s_ephemeral_low(void)
{
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2 || low < 1024 || low > 65535)
            low = 32768;
        fclose(f);
    }
    return low;
}

int vz_ports_free(void)
{
    enum { S_FLOOR = 10000, S_DRAWS = 64 };
    int low = s_ephemeral_low();
    if (low > S_FLOOR + 1000) {
        //  A per-call seed: parallel processes and successive calls draw apart.
        struct timeval tv;
        gettimeofday(&tv, NULL);
        static atomic_uint calls;
        unsigned seed = (unsigned)tv.tv_usec ^ (unsigned)tv.tv_sec ^ ((unsigned)getpid() << 16) ^
                        (atomic_fetch_add(&calls, 1) * 2654435761u);
        for (int i = 0; i < S_DRAWS; i++) {
            int port = S_FLOOR + (int)(rand_r(&seed) % (unsigned)(low - S_FLOOR));
            int rc = s_try_bind(port);
            if (rc > 0)
                return rc;
            if (rc != -EADDRINUSE && rc != -EACCES)
                return rc;
        }
    }
    return s_try_bind(0);
}
