/*  vz-ratelimit - token bucket and sliding window decisions, atomic in Redis
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "ratelimit.h"
#include "vz_ports.h"

int main(int argc, char **argv)
{
    rl_config_t config;
    vz_daemon_spec_t spec = {
        .service = "ratelimit",
        .admin_port = VZ_PORT_ADMIN_RATELIMIT,
        .needs_broker = true,
        .needs_redis = true,
        .items = rl_items,
        .count = rl_items_count,
        .config = &config,
    };
    int code = VZ_EXIT_OK;
    vz_daemon_t *daemon = vz_daemon_new(&spec, argc, argv, &code);
    if (!daemon)
        return code;
    code = rl_run(daemon, &config);
    vz_daemon_destroy(&daemon);
    return code;
}
