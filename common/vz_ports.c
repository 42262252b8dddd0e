/*  vz_ports - the default port of every daemon, in one table
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_ports.h"

#include <errno.h>
#include <string.h>

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
