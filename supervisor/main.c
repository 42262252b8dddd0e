/*  vz-supervisor - start the whole mesh on one machine and keep it running
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  vz-supervisor [--config FILE]   (default configs/mesh.cfg)
 *  Foreground only; exit 0 after a clean shutdown, 100 on a bad
 *  configuration, 111 when the state directory or socket is unusable.
 */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor.h"
#include "vz_common.h"
#include "vz_log.h"

#ifndef VZ_VERSION_STRING
#define VZ_VERSION_STRING "unknown"
#endif

static void s_usage(FILE *out)
{
    fprintf(out, "usage: vz-supervisor [--config FILE] | --help | --version\n"
                 "  --config FILE  mesh configuration (ZPL), default configs/mesh.cfg\n"
                 "  VZ_LOG_LEVEL   debug|info|warn|error (default info)\n"
                 "See docs/services/supervisor.md.\n");
}

int main(int argc, char **argv)
{
    const char *config = "configs/mesh.cfg";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return VZ_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("vz-supervisor (vizmesh) %s\n", VZ_VERSION_STRING);
            return VZ_EXIT_OK;
        } else {
            fprintf(stderr, "vz-supervisor: unknown argument \"%s\"\n", argv[i]);
            s_usage(stderr);
            return VZ_EXIT_PERMANENT;
        }
    }
    vz_log_level_t level = VZ_LOG_INFO;
    const char *text = getenv("VZ_LOG_LEVEL");
    if (text && *text && vz_log_level_parse(text, &level) < 0) {
        fprintf(stderr, "vz-supervisor: VZ_LOG_LEVEL=\"%s\": expected debug|info|warn|error\n",
                text);
        return VZ_EXIT_PERMANENT;
    }
    vz_log_init("supervisor", level);

    //  Commands without a slash are looked up beside this binary first.
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *exe_dir = n > 0 ? dirname(exe) : ".";

    int code = VZ_EXIT_OK;
    sup_supervisor_t *sup = sup_supervisor_new(config, exe_dir, &code);
    if (!sup)
        return code;
    code = sup_supervisor_run(sup);
    sup_supervisor_destroy(&sup);
    return code;
}
