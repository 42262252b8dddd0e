/*  vzctl_telemetry - `vzctl telemetry replay FILE.csv`: the sink's anomaly detector, offline
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  vzctl telemetry replay FILE.csv [--period N] [--z Z] [--step S] [--shift-run N]
 *  [--allow-negative]
 *  prints timestamp,value,forecast,lower,upper,score,anomaly per point
 *  (vz_telemetry_anomaly.h); data-quality flags go to stderr as comments,
 *  and a labelled file (timestamp,value,label) gets its precision and
 *  recall on stderr. "-" reads stdin. Exit 0, 1 on a bad file, 2 usage.
 *
 *  vzctl slo | alerts [--url http://HOST:PORT] [--token T] [--json] read
 *  GET /v1/telemetry/slo or /alerts through the gateway (the supervisor's
 *  gateway port unless --url; the token from --token or VZ_TOKEN, a JWT or
 *  an API key of a caller with admin or telemetry:read) and print a table.
 *  Plain HTTP/1.1 on a blocking socket with a 10 s timeout.
 */
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "vz_json.h"

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

#define S_RESPONSE_MAX (4 * 1024 * 1024)

//  GET base+path with the credential: the body (caller frees) and *status,
//  or NULL with a message on stderr.
static char *s_get(const char *base, const char *path, const char *token, int *status)
{
    char host[256], port[16] = "80";
    if (sscanf(base, "http://%255[^:/]:%15[0-9]", host, port) < 1) {
        fprintf(stderr, "vzctl: --url must be http://HOST[:PORT]\n");
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        fprintf(stderr, "vzctl: cannot resolve %s\n", host);
        return NULL;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    struct timeval tv = {.tv_sec = 10};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        fprintf(stderr, "vzctl: cannot connect to %s\n", base);
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    freeaddrinfo(ai);
    //  A JWT has dots; an API key does not; no token, no credential (an admin port).
    bool jwt = token && strchr(token, '.') != NULL;
    char req[8192], cred[4096] = "";
    if (token)
        snprintf(cred, sizeof cred, "%s%s\r\n",
                 jwt ? "Authorization: Bearer " : "X-API-Key: ", token);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n",
                     path, host, cred);
    char *buf = NULL;
    if (n > 0 && n < (int)sizeof req && write(fd, req, (size_t)n) == n) {
        buf = (char *)malloc(S_RESPONSE_MAX + 1);
        size_t len = 0;
        ssize_t got;
        while (len < S_RESPONSE_MAX && (got = read(fd, buf + len, S_RESPONSE_MAX - len)) > 0)
            len += (size_t)got;
        buf[len] = '\0';
    }
    close(fd);
    char *body = buf ? strstr(buf, "\r\n\r\n") : NULL;
    if (!body || sscanf(buf, "HTTP/1.%*d %d", status) != 1) {
        fprintf(stderr, "vzctl: no HTTP answer from %s\n", base);
        free(buf);
        return NULL;
    }
    char *copy = strdup(body + 4);
    free(buf);
    return copy;
}

char *vzctl_http_get(const char *base, const char *path, const char *token, int *status)
{
    return s_get(base, path, token, status);
}

static double s_num(const vz_json_value_t *v, const char *key)
{
    double d = 0;
    vz_json_double(vz_json_get(v, key), &d);
    return d;
}

static void s_print_slo(const vz_json_value_t *root)
{
    const vz_json_value_t *slos = vz_json_get(root, "slos");
    printf("%-24s %-12s %8s %10s %8s %12s %9s  %s\n", "SLO", "OBJECTIVE", "TARGET", "REQUESTS",
           "BAD", "BUDGET_LEFT", "BURN_1H", "ALERTING");
    for (size_t i = 0; i < vz_json_size(slos); i++) {
        const vz_json_value_t *s = vz_json_at(slos, i);
        const vz_json_value_t *burns = vz_json_get(s, "burn_rates");
        char holding[64] = "";
        for (size_t r = 0; r < vz_json_size(burns); r++) {
            bool holds = false;
            vz_json_bool(vz_json_get(vz_json_at(burns, r), "holds"), &holds);
            if (holds && strlen(holding) < 40)
                snprintf(holding + strlen(holding), sizeof holding - strlen(holding), "%s%s",
                         *holding ? "," : "",
                         vz_json_get_string(vz_json_at(burns, r), "severity", NULL));
        }
        printf("%-24s %-12s %7.3f%% %10.0f %8.0f %11.1f%% %8.2fx  %s\n",
               vz_json_get_string(s, "name", NULL), vz_json_get_string(s, "objective", NULL),
               s_num(s, "target") * 100, s_num(s, "requests"), s_num(s, "bad"),
               s_num(s, "budget_remaining") * 100, s_num(vz_json_at(burns, 0), "burn_long"),
               *holding ? holding : "-");
    }
    bool freeze = false;
    vz_json_bool(vz_json_get(root, "deploy_freeze"), &freeze);
    printf("deploy freeze: %s\n", freeze ? "YES (an error budget is spent)" : "no");
}

static void s_print_alerts(const vz_json_value_t *root)
{
    const vz_json_value_t *alerts = vz_json_get(root, "alerts");
    printf("%-36s %-8s %-9s %9s %s\n", "ALERT", "SEVERITY", "STATE", "BURN", "SINCE");
    for (size_t i = 0; i < vz_json_size(alerts); i++) {
        const vz_json_value_t *a = vz_json_at(alerts, i);
        int64_t since = 0;
        vz_json_int(vz_json_get(a, "since"), &since);
        time_t t = (time_t)since;
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        printf("%-36s %-8s %-9s %8.2fx %s\n", vz_json_get_string(a, "key", NULL),
               vz_json_get_string(a, "severity", NULL), vz_json_get_string(a, "state", NULL),
               s_num(a, "burn_rate"), when);
    }
    if (!vz_json_size(alerts))
        printf("(no alert)\n");
    bool freeze = false;
    vz_json_bool(vz_json_get(root, "deploy_freeze"), &freeze);
    printf("deploy freeze: %s\n", freeze ? "YES" : "no");
}

int vzctl_telemetry_show(const char *what, int argc, char **argv, const char *ports)
{
    const char *url = NULL, *token = getenv("VZ_TOKEN");
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc)
            token = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "usage: vzctl %s [--url http://HOST:PORT] [--token T] [--json]\n",
                    what);
            return 2;
        }
    }
    char base[300];
    if (url)
        snprintf(base, sizeof base, "%s", url);
    else {
        //  The supervisor's "ports": "name<TAB or space>port" lines.
        const char *line = ports ? strstr(ports, "gateway") : NULL;
        int port = 0;
        if (!line || sscanf(line, "gateway %d", &port) != 1) {
            fprintf(stderr, "vzctl: gateway port unknown: pass --url\n");
            return 1;
        }
        snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    }
    if (!token || !*token) {
        fprintf(stderr, "vzctl: a credential is needed: --token or VZ_TOKEN (admin or "
                        "telemetry:read)\n");
        return 2;
    }
    char path[64];
    snprintf(path, sizeof path, "/v1/telemetry/%s", what);
    int status = 0;
    char *body = s_get(base, path, token, &status);
    if (!body)
        return 1;
    if (status != 200) {
        fprintf(stderr, "vzctl: %s answered %d: %s\n", path, status, body);
        free(body);
        return 1;
    }
    vz_json_t *doc = vz_json_parse(body, strlen(body), NULL, NULL);
    if (json || !doc)
        printf("%s\n", body);
    else if (strcmp(what, "slo") == 0)
        s_print_slo(vz_json_root(doc));
    else
        s_print_alerts(vz_json_root(doc));
    vz_json_destroy(&doc);
    free(body);
    return 0;
}
