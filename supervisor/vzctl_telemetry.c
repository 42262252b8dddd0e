/*  vzctl_telemetry - `vzctl telemetry replay FILE.csv`: the sink's anomaly detector, offline
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  vzctl telemetry replay FILE.csv [--period N] [--z Z] [--step S] [--shift-run N]
 *  [--allow-negative]
 *  prints timestamp,value,forecast,lower,upper,score,anomaly per point
 *  (vz_telemetry_anomaly.h); data-quality flags go to stderr as comments,
 *  and a labelled file (timestamp,value,label) gets its precision and
 *  recall on stderr. "-" reads stdin. Exit 0, 1 on a bad file, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_telemetry_anomaly.h"
#include "vzctl_telemetry.h"

static int s_usage(void)
{
    fputs("usage: vzctl telemetry replay FILE.csv [--period N] [--z Z] [--step S] "
          "[--shift-run N] [--allow-negative]\n",
          stderr);
    return 2;
}

int vzctl_telemetry(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[0], "replay") != 0)
        return s_usage();
    const char *file = argv[1];
    vz_tl_anomaly_config_t c = {.period = -1, .non_negative = true};
    for (int i = 2; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--period") == 0 && i + 1 < argc)
            c.period = (int)strtol(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--z") == 0 && i + 1 < argc)
            c.z = strtod(argv[++i], &end);
        else if (strcmp(argv[i], "--shift-run") == 0 && i + 1 < argc)
            c.shift_run = (int)strtol(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--step") == 0 && i + 1 < argc)
            c.step = strtoll(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--allow-negative") == 0)
            c.non_negative = false;
        else
            return s_usage();
        if (end && *end)
            return s_usage();
    }
    FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!in) {
        fprintf(stderr, "vzctl: cannot read %s\n", file);
        return 1;
    }
    vz_tl_replay_stats_t st;
    const char *why = NULL;
    int rc = vz_tl_anomaly_replay(in, stdout, stderr, &c, &st, &why);
    if (in != stdin)
        fclose(in);
    if (rc < 0) {
        fprintf(stderr, "vzctl: %s: %s\n", file, why);
        return 1;
    }
    fprintf(stderr, "# %zu points, %zu anomalies, season %d points\n", st.points, st.anomalies,
            st.period);
    if (st.labelled) {
        double p = st.tp + st.fp ? (double)st.tp / (double)(st.tp + st.fp) : 1;
        double r = st.tp + st.fn ? (double)st.tp / (double)(st.tp + st.fn) : 1;
        fprintf(stderr, "# labelled: tp %zu fp %zu fn %zu precision %.3f recall %.3f\n", st.tp,
                st.fp, st.fn, p, r);
    }
    return 0;
}
