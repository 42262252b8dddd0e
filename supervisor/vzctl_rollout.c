/*  vzctl_rollout - `vzctl rollout`: canary and blue/green releases through the broker's weights
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  vzctl rollout start S --version V [--bin PATH] [--env K=V]... [--replicas N]
 *      [--steps 1,10,25,50,100 | --blue-green] [--dwell D | D1,D2,...] [--max-error-rate R]
 *      [--max-p95-ms MS] [--min-requests N] [--sticky CTXKEY] [--check CMD]
 *      [--old V] [--telemetry URL] [--force --reason TEXT] [--weights FILE]
 *      [--k8s --broker URL [--namespace NS] [--kubectl PATH]]
 *  vzctl rollout status|pause|resume|promote|abort|clear S
 *
 *  The runner is the `start` process itself (or a `resume` that finds no
 *  runner alive): it asks the supervisor for N canary replicas of S with
 *  VZ_SERVICE_VERSION=V (control command `canary`), then for each step
 *  writes S's section of the broker's weights file (<state>/weights.cfg,
 *  the broker's VZ_BROKER_WEIGHTS), has the supervisor SIGHUP the broker,
 *  and for the dwell time reads the per-version counters telemetry keeps
 *  from the workers' snapshots (vz_telemetry_version_*, summed over the
 *  sink's replicas' admin ports): the new version's error rate and p95
 *  since the step began, against the old version's over the same window.
 *  Without a sink that has them (none running, an older one) the gates
 *  read the broker's per-version series instead (vz_broker_version_*), and
 *  say so. A gate crossed rolls back: weights to the old version, canaries
 *  stopped, an alert line.
 *  With --k8s the same loop runs kubectl instead of the supervisor: the
 *  Deployment S-canary scaled, the ConfigMap vizmesh-weights applied whole
 *  from a local copy of the weights, the broker read at --broker URL.
 *  State lives in <state>/rollout-S.state (key=value, rewritten atomically
 *  each tick) so `status` works from any shell and a new runner can take
 *  over; other commands reach the runner through <state>/rollout-S.request.
 *  Single-threaded; docs/operations/releases.md.
 */
#include "vzctl_rollout.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "control.h"
#include "vz_client.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_config.h"
#include "vz_curve.h"
#include "vz_json.h"
#include "vz_notifier_contract.h"
#include "vz_proto.h"
#include "vz_worker.h"
#include "vzctl_telemetry.h"

#define S_STEPS_MAX 16
#define S_BUCKETS_MAX 64            //  histogram buckets read per version
#define S_TICK_MS 200               //  how often the runner reads the counters
#define S_APPLY_WAIT_MS 15000       //  for the broker to show new weights
#define S_CANARY_WAIT_MS 60000      //  for the canaries to register
#define S_K8S_APPLY_WAIT_MS 180000  //  --k8s: the kubelet syncs a ConfigMap within about a minute
#define S_K8S_CANARY_WAIT_MS 300000 //  --k8s: pods scheduled, images pulled
#define S_ACK_WAIT_MS 10000         //  for the runner to take a request
#define S_P95_INFINITE 1e9          //  p95 past the largest bucket, in ms
#define S_REPLICAS_MAX 16           //  telemetry replicas read per tick
//  The marker of a sink with per-version series (on its /metrics from the start).
#define S_TL_MARKER "vz_telemetry_version_series"

//  One rollout, as the state file holds it.
typedef struct {
    char service[VZ_NAME_MAX];   //  S
    char old[VZ_VERSION_MAX];    //  the version being replaced
    char next[VZ_VERSION_MAX];   //  the version rolled out
    char phase[16];              //  running, paused, rolled_back, aborted, complete
    int step;                    //  index into steps
    int applied;                 //  step whose weights the broker has, -1 none
    int nsteps;                  //  entries in steps
    int steps[S_STEPS_MAX];      //  the new version's percent at each step
    int ndwell;                  //  entries in dwell: 1 (every step) or nsteps
    int dwell[S_STEPS_MAX];      //  time at each step, ms
    int waited_ms;               //  time spent at the current step (not while paused)
    double max_error;            //  error-rate gate, 0..1
    double max_p95_ms;           //  latency gate
    int min_requests;            //  the new version's requests a step needs before it passes
    int canaries;                //  canary replicas
    char sticky[VZ_NAME_MAX];    //  ctx key for stickiness, "" = none
    char check[VZ_PATH_MAX];     //  service-specific check command, "" = none
    char weights[VZ_PATH_MAX];   //  the broker's weights file
    char reason[256];            //  why it stopped, or a note
    long runner;                 //  pid of the runner, 0 = none
    double new_rate, old_rate;   //  error rates of the current window
    double new_p95, old_p95;     //  p95 in ms of the current window
    long new_requests;           //  the new version's requests in the window
    char gates[16];              //  where the gates read: "telemetry" or "broker"
    char telemetry[VZ_PATH_MAX]; //  --telemetry URL, "" = the supervisor's replicas
    char k8s_ns[64];             //  --k8s: the namespace, "" = the supervisor drives
    char kubectl[VZ_PATH_MAX];   //  --k8s: the kubectl command
    char broker[VZ_PATH_MAX];    //  --k8s: a broker's admin URL (its /metrics)
} s_rollout_t;

//  A version's counters at one moment.
typedef struct {
    double total, bad;         //  requests finished, and those failed
    size_t nb;                 //  buckets
    double le[S_BUCKETS_MAX];  //  upper bounds (s)
    double cum[S_BUCKETS_MAX]; //  cumulative counts
} s_reading_t;

typedef struct {
    const char *socket; //  supervisor control socket
    const char *state;  //  state directory
} s_ctx_t;

//  --------------------------------------------------------------------------
//  Files.

static void s_path(const s_ctx_t *c, const char *service, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/rollout-%s.%s", c->state, service, ext);
}

static int s_save(const s_ctx_t *c, const s_rollout_t *r)
{
    char path[VZ_PATH_MAX + 64], tmp[VZ_PATH_MAX + 80];
    s_path(c, r->service, "state", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "service=%s\nold=%s\nnew=%s\nphase=%s\nstep=%d\napplied=%d\nsteps=", r->service,
            r->old, r->next, r->phase, r->step, r->applied);
    for (int i = 0; i < r->nsteps; i++)
        fprintf(f, "%s%d", i ? "," : "", r->steps[i]);
    fprintf(f, "\ndwell_ms=");
    for (int i = 0; i < r->ndwell; i++)
        fprintf(f, "%s%d", i ? "," : "", r->dwell[i]);
    fprintf(f,
            "\nwaited_ms=%d\nmax_error_rate=%g\nmax_p95_ms=%g\nmin_requests=%d\n"
            "canaries=%d\nsticky=%s\ncheck=%s\nweights=%s\nreason=%s\nrunner=%ld\n"
            "new_error_rate=%g\nold_error_rate=%g\nnew_p95_ms=%g\nold_p95_ms=%g\n"
            "new_requests=%ld\nweight=%d\ngates=%s\ntelemetry=%s\nk8s_namespace=%s\n"
            "kubectl=%s\nbroker=%s\n",
            r->waited_ms, r->max_error, r->max_p95_ms, r->min_requests, r->canaries, r->sticky,
            r->check, r->weights, r->reason, r->runner, r->new_rate, r->old_rate, r->new_p95,
            r->old_p95, r->new_requests, r->steps[r->step], r->gates, r->telemetry, r->k8s_ns,
            r->kubectl, r->broker);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

//  Parse "1,10,25" into steps; -1 when malformed.
static int s_parse_steps(const char *text, s_rollout_t *r)
{
    r->nsteps = 0;
    for (const char *p = text; *p;) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 100 || r->nsteps == S_STEPS_MAX ||
            (r->nsteps && v <= r->steps[r->nsteps - 1]))
            return -1;
        r->steps[r->nsteps++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return r->nsteps && r->steps[r->nsteps - 1] == 100 ? 0 : -1;
}

static int s_load(const s_ctx_t *c, const char *service, s_rollout_t *r)
{
    char path[VZ_PATH_MAX + 64], line[VZ_PATH_MAX + 64];
    s_path(c, service, "state", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    memset(r, 0, sizeof *r);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *v = strchr(line, '=');
        if (!v)
            continue;
        *v++ = '\0';
#define S_STR(key, field)                                                                          \
    if (strcmp(line, key) == 0)                                                                    \
        vz_strlcpy(r->field, v, sizeof r->field);
        S_STR("service", service) S_STR("old", old) S_STR("new", next) S_STR("phase", phase);
        S_STR("sticky", sticky) S_STR("check", check) S_STR("weights", weights);
        S_STR("reason", reason) S_STR("gates", gates) S_STR("telemetry", telemetry);
        S_STR("k8s_namespace", k8s_ns) S_STR("kubectl", kubectl) S_STR("broker", broker);
#undef S_STR
        if (strcmp(line, "step") == 0)
            r->step = atoi(v);
        else if (strcmp(line, "applied") == 0)
            r->applied = atoi(v);
        else if (strcmp(line, "steps") == 0)
            s_parse_steps(v, r);
        else if (strcmp(line, "dwell_ms") == 0) {
            char *p = v, *end = NULL;
            while (*p && r->ndwell < S_STEPS_MAX) {
                r->dwell[r->ndwell++] = (int)strtol(p, &end, 10);
                if (end == p || (*end && *end != ','))
                    break;
                p = *end ? end + 1 : end;
            }
        } else if (strcmp(line, "waited_ms") == 0)
            r->waited_ms = atoi(v);
        else if (strcmp(line, "max_error_rate") == 0)
            r->max_error = atof(v);
        else if (strcmp(line, "max_p95_ms") == 0)
            r->max_p95_ms = atof(v);
        else if (strcmp(line, "min_requests") == 0)
            r->min_requests = atoi(v);
        else if (strcmp(line, "canaries") == 0)
            r->canaries = atoi(v);
        else if (strcmp(line, "runner") == 0)
            r->runner = atol(v);
    }
    fclose(f);
    if (!*r->service || r->nsteps == 0 || r->step < 0 || r->step >= r->nsteps)
        return -EINVAL;
    return 0;
}

//  One line to <state>/rollout.log and stderr: decisions an operator audits.
static void s_log(const s_ctx_t *c, const char *service, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_log(const s_ctx_t *c, const char *service, const char *fmt, ...)
{
    char text[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    char path[VZ_PATH_MAX + 32], when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(path, sizeof path, "%s/rollout.log", c->state);
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s %s user=%s %s\n", when, service, getenv("USER") ? getenv("USER") : "?",
                text);
        fclose(f);
    }
    fprintf(stderr, "vzctl rollout: %s: %s\n", service, text);
}

//  --------------------------------------------------------------------------
//  The supervisor and the broker.

//  Send line; the body after "ok" (heap) or NULL with the error on stderr.
static char *s_sup(const s_ctx_t *c, const char *line)
{
    int rc = 0;
    char *resp = sup_control_request(c->socket, line, 30000, &rc);
    if (!resp) {
        fprintf(stderr, "vzctl rollout: supervisor not reachable at %s: %s\n", c->socket,
                strerror(-rc));
        return NULL;
    }
    if (strncmp(resp, "ok", 2) != 0) {
        fprintf(stderr, "vzctl rollout: %s: %s", line, resp);
        free(resp);
        return NULL;
    }
    char *body = strdup(resp[2] ? resp + 3 : "");
    free(resp);
    return body;
}

//  The admin ports of service's replicas (status column 8), at most max:
//  how many.
static size_t s_admin_ports(const s_ctx_t *c, const char *service, int *ports, size_t max)
{
    char line[VZ_NAME_MAX + 16];
    snprintf(line, sizeof line, "status %s", service);
    int rc = 0;
    char *resp = sup_control_request(c->socket, line, 10000, &rc);
    size_t n = 0;
    for (const char *p = resp && strncmp(resp, "ok\n", 3) == 0 ? resp + 3 : NULL;
         p && *p && n < max; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        char name[VZ_NAME_MAX];
        int replica, pid, port;
        if (sscanf(p, "%63s %d %d %*s %*s %*s %*s %d", name, &replica, &pid, &port) == 4 &&
            port > 0)
            ports[n++] = port;
    }
    free(resp);
    return n;
}

//  The admin port of replica 0 of service, or -1.
static int s_admin_port(const s_ctx_t *c, const char *service)
{
    int port = -1;
    return s_admin_ports(c, service, &port, 1) ? port : -1;
}

//  The /metrics page at base (http://host:port), or NULL.
static char *s_get(const char *base)
{
    int status = 0;
    char *page = vzctl_http_get(base, "/metrics", NULL, &status);
    if (page && status != 200) {
        free(page);
        page = NULL;
    }
    return page;
}

//  The /metrics page of a local admin port, or NULL.
static char *s_page(int port)
{
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    return s_get(base);
}

//  The broker's /metrics: --k8s its --broker URL, else the supervisor's replica 0.
static char *s_broker_page(const s_ctx_t *c, const s_rollout_t *r)
{
    if (*r->k8s_ns)
        return s_get(r->broker);
    int port = s_admin_port(c, "broker");
    return port > 0 ? s_page(port) : NULL;
}

//  --k8s: run `kubectl -n NS args...` with input on its stdin (NULL = none),
//  its stdout to stderr; logged. 0 when it exits 0.
static int s_kubectl(const s_ctx_t *c, const s_rollout_t *r, const char *input,
                     const char *const *args)
{
    const char *argv[16] = {r->kubectl, "-n", r->k8s_ns};
    size_t n = 3;
    char line[512];
    int len = snprintf(line, sizeof line, "kubectl -n %s", r->k8s_ns);
    for (size_t i = 0; args[i] && n < 15; i++) {
        argv[n++] = args[i];
        if (len > 0 && (size_t)len < sizeof line)
            len += snprintf(line + len, sizeof line - (size_t)len, " %s", args[i]);
    }
    s_log(c, r->service, "%s", line);
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN); //  a kubectl that exits early fails the write, not vzctl
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[0], STDIN_FILENO);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[0]);
    for (size_t done = 0, size = input ? strlen(input) : 0; pid > 0 && done < size;) {
        ssize_t k = write(fds[1], input + done, size - done);
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    close(fds[1]);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

//  --k8s: the ConfigMap vizmesh-weights with the weights file as its
//  weights.cfg, applied whole.
static int s_kube_weights(const s_ctx_t *c, const s_rollout_t *r)
{
    FILE *f = fopen(r->weights, "r");
    if (!f)
        return -1;
    char *doc = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&doc, &size);
    fprintf(out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: vizmesh-weights\n"
                 "  labels:\n    app.kubernetes.io/part-of: vizmesh\n"
                 "data:\n  weights.cfg: |\n");
    char line[1024];
    while (fgets(line, sizeof line, f))
        fprintf(out, "    %s", line);
    fclose(f);
    fclose(out);
    static const char *const args[] = {"apply", "-f", "-", NULL};
    int rc = s_kubectl(c, r, doc, args);
    free(doc);
    return rc;
}

//  n canary replicas of the service: the supervisor's `canary` command
//  (line, made by start; NULL = "canary S n"), or --k8s the Deployment
//  <S>-canary scaled to n. 0 or -1.
static int s_canaries(const s_ctx_t *c, const s_rollout_t *r, int n, const char *line)
{
    if (*r->k8s_ns) {
        char deploy[VZ_NAME_MAX + 16], replicas[32];
        snprintf(deploy, sizeof deploy, "deploy/%s-canary", r->service);
        snprintf(replicas, sizeof replicas, "--replicas=%d", n);
        const char *const args[] = {"scale", deploy, replicas, NULL};
        return s_kubectl(c, r, NULL, args);
    }
    char stop[VZ_NAME_MAX + 32];
    snprintf(stop, sizeof stop, "canary %s %d", r->service, n);
    char *body = s_sup(c, line ? line : stop);
    free(body);
    return body ? 0 : -1;
}

//  The value of series (name{labels} exactly as rendered) in page; 0 when absent.
static double s_metric(const char *page, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return 0;
}

//  A version's counters on one page of the gates' source, added into out:
//  the broker's (outcomes replied, then the failures error, timeout,
//  worker_lost) or telemetry's (ok, then error). The histograms of both
//  have the mesh's latency buckets, so pages of several replicas add.
static void s_read(const char *page, bool telemetry, const char *service, const char *version,
                   s_reading_t *out)
{
    static const char *const broker[] = {"replied", "error", "timeout", "worker_lost", NULL};
    static const char *const sink[] = {"ok", "error", NULL};
    const char *const *outcomes = telemetry ? sink : broker;
    const char *family = telemetry ? "vz_telemetry_version" : "vz_broker_version";
    char series[256];
    for (int i = 0; outcomes[i]; i++) {
        snprintf(series, sizeof series,
                 "%s_requests_total{service=\"%s\",version=\"%s\",outcome=\"%s\"}", family, service,
                 version, outcomes[i]);
        double v = s_metric(page, series);
        out->total += v;
        if (i > 0)
            out->bad += v;
    }
    char prefix[256];
    int plen = snprintf(prefix, sizeof prefix,
                        "%s_request_duration_seconds_bucket{service=\"%s\",version=\"%s\",le=\"",
                        family, service, version);
    size_t nb = 0;
    for (const char *p = page; p && *p && nb < S_BUCKETS_MAX;
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, (size_t)plen) == 0) {
            const char *le = p + plen;
            out->le[nb] = strncmp(le, "+Inf", 4) == 0 ? INFINITY : strtod(le, NULL);
            const char *value = strstr(le, "} ");
            out->cum[nb++] += value ? strtod(value + 2, NULL) : 0;
        }
    if (nb > out->nb)
        out->nb = nb;
}

//  Both versions' counters now, from the gates' source (every replica of
//  the telemetry sink, its --telemetry URL, or the broker): 0, or -1 when
//  a page could not be read (the tick is skipped).
static int s_sample(const s_ctx_t *c, const s_rollout_t *r, s_reading_t *next, s_reading_t *old)
{
    memset(next, 0, sizeof *next);
    memset(old, 0, sizeof *old);
    bool telemetry = strcmp(r->gates, "telemetry") == 0;
    //  One URL (--telemetry, or --k8s's --broker), or every local replica.
    const char *url = telemetry && *r->telemetry ? r->telemetry
                      : !telemetry && *r->k8s_ns ? r->broker
                                                 : NULL;
    int ports[S_REPLICAS_MAX];
    size_t n =
        url ? 1 : s_admin_ports(c, telemetry ? "telemetry" : "broker", ports, S_REPLICAS_MAX);
    for (size_t i = 0; i < n; i++) {
        char *page = url ? s_get(url) : s_page(ports[i]);
        if (!page)
            return -1;
        s_read(page, telemetry, r->service, r->next, next);
        s_read(page, telemetry, r->service, r->old, old);
        free(page);
    }
    return n ? 0 : -1;
}

//  Choose where the gates read: telemetry when its sink (--telemetry URL,
//  else the supervisor's telemetry replica 0) has per-version series, else
//  the broker. Logged: the operator knows what judged the canary.
static void s_choose_gates(const s_ctx_t *c, s_rollout_t *r)
{
    char base[VZ_PATH_MAX] = "";
    int port = *r->telemetry || *r->k8s_ns ? 0 : s_admin_port(c, "telemetry");
    if (*r->telemetry)
        vz_strlcpy(base, r->telemetry, sizeof base);
    else if (port > 0)
        snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    char *page = *base ? s_get(base) : NULL;
    bool telemetry = page && strstr(page, S_TL_MARKER);
    free(page);
    vz_strlcpy(r->gates, telemetry ? "telemetry" : "broker", sizeof r->gates);
    if (telemetry)
        s_log(c, r->service, "gates read telemetry (%s%s)", base,
              *r->telemetry ? "" : " and the sink's other replicas");
    else
        s_log(c, r->service, "gates read the broker: %s",
              !*base  ? (*r->k8s_ns ? "no --telemetry URL" : "no telemetry sink runs")
              : !page ? "telemetry's metrics cannot be read"
                      : "telemetry has no per-version series (an older sink)");
}

//  Error rate and p95 (ms) of what happened between then and now.
static void s_window(const s_reading_t *then, const s_reading_t *now, double *rate, double *p95,
                     long *requests)
{
    double total = now->total - then->total;
    *requests = (long)total;
    *rate = total > 0 ? (now->bad - then->bad) / total : 0;
    *p95 = 0;
    //  A histogram that did not exist at the start (telemetry makes a
    //  version's on its first snapshot) started from zero.
    if (now->nb == 0 || (then->nb && now->nb != then->nb))
        return;
    double observed = now->cum[now->nb - 1] - then->cum[now->nb - 1];
    for (size_t i = 0; observed > 0 && i < now->nb; i++)
        if (now->cum[i] - then->cum[i] >= 0.95 * observed) {
            *p95 = isinf(now->le[i]) ? S_P95_INFINITE : now->le[i] * 1000;
            return;
        }
}

//  Rewrite the weights file with service's section as given (others kept);
//  old_weight < 0 removes the section.
static int s_write_weights(const s_rollout_t *r, int old_weight, int new_weight)
{
    char tmp[VZ_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->weights);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "#   written by vzctl rollout: the broker's VZ_BROKER_WEIGHTS\n");
    char why[256];
    zconfig_t *root =
        access(r->weights, R_OK) == 0 ? vz_config_read(r->weights, 0, why, sizeof why) : NULL;
    for (zconfig_t *s = root ? zconfig_child(root) : NULL; s; s = zconfig_next(s)) {
        if (strcmp(zconfig_name(s), r->service) == 0)
            continue;
        fprintf(f, "%s\n    versions = \"%s\"\n", zconfig_name(s), zconfig_get(s, "versions", ""));
        if (*zconfig_get(s, "sticky", ""))
            fprintf(f, "    sticky = \"%s\"\n", zconfig_get(s, "sticky", ""));
    }
    zconfig_destroy(&root);
    if (old_weight >= 0) {
        fprintf(f, "%s\n    versions = \"%s=%d %s=%d\"\n", r->service, r->old, old_weight, r->next,
                new_weight);
        if (*r->sticky)
            fprintf(f, "    sticky = \"%s\"\n", r->sticky);
    }
    if (fclose(f) != 0 || rename(tmp, r->weights) != 0)
        return -errno;
    return 0;
}

//  Weights to the broker: write, SIGHUP it (--k8s: the ConfigMap applied,
//  which every broker rereads once the kubelet synced it), wait until it
//  shows them.
static int s_apply(const s_ctx_t *c, const s_rollout_t *r, int old_weight, int new_weight)
{
    if (s_write_weights(r, old_weight, new_weight) < 0) {
        fprintf(stderr, "vzctl rollout: cannot write %s\n", r->weights);
        return -1;
    }
    char *body = *r->k8s_ns ? NULL : s_sup(c, "reload broker");
    if (*r->k8s_ns ? s_kube_weights(c, r) < 0 : !body)
        return -1;
    free(body);
    char series[256], old_series[256];
    snprintf(series, sizeof series, "vz_broker_version_weight{service=\"%s\",version=\"%s\"}",
             r->service, r->next);
    snprintf(old_series, sizeof old_series,
             "vz_broker_version_weight{service=\"%s\",version=\"%s\"}", r->service, r->old);
    int64_t until = vz_clock_mono_ms() + (*r->k8s_ns ? S_K8S_APPLY_WAIT_MS : S_APPLY_WAIT_MS);
    while (vz_clock_mono_ms() < until) {
        char *page = s_broker_page(c, r);
        bool done = page && strstr(page, series) && s_metric(page, series) == new_weight &&
                    (old_weight < 0 || s_metric(page, old_series) == old_weight);
        free(page);
        if (done)
            return 0;
        usleep(100 * 1000);
    }
    fprintf(stderr, "vzctl rollout: the broker did not take the new weights\n");
    return -1;
}

//  --------------------------------------------------------------------------
//  The runner.

static bool s_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

//  The broker's port from the supervisor's named ports, or -1.
static int s_broker_port(const s_ctx_t *c)
{
    char *ports = s_sup(c, "ports");
    int port = -1;
    for (char *line = ports; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, "broker\t", 7) == 0)
            port = atoi(line + 7);
    free(ports);
    return port;
}

//  An alert through the notifier (notifier.alert, severity error), as
//  identity "vzctl": its key pair is made in <state>/keys on first use, so
//  the broker (which re-reads the allow directory) knows it; the call
//  policy lets vzctl call notifier. 0, or -1 with the reason on stderr.
static int s_alert(const s_ctx_t *c, const s_rollout_t *r, const char *summary)
{
    char keys[VZ_PATH_MAX + 8], path[VZ_PATH_MAX + 32], err[256], broker_key[41];
    snprintf(keys, sizeof keys, "%s/keys", c->state);
    snprintf(path, sizeof path, "%s/secret/vzctl.key", keys);
    zcert_t *cert =
        vz_curve_keygen(keys, "vzctl") == 0 ? vz_curve_cert_load(path, err, sizeof err) : NULL;
    snprintf(path, sizeof path, "%s/public/broker.key", keys);
    int port = s_broker_port(c);
    if (!cert || vz_curve_server_key(path, broker_key) < 0 || port <= 0) {
        fprintf(stderr, "vzctl rollout: no alert sent: no key or no broker\n");
        zcert_destroy(&cert);
        return -1;
    }
    char endpoint[64], name[VZ_NAME_MAX + 16];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    snprintf(name, sizeof name, "rollout %s", r->service);
    vz_client_t *client = vz_client_new(
        &(vz_client_config_t){.endpoints = endpoint, .broker_key = broker_key, .cert = cert});
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "name", name);
    vz_json_write_kv_string(w, "severity", "error");
    vz_json_write_kv_string(w, "status", "firing");
    vz_json_write_kv_string(w, "summary", summary);
    vz_json_write_kv_string(w, "source", "vzctl rollout");
    char key[VZ_NAME_MAX + 16];
    snprintf(key, sizeof key, "rollout-%s", r->service);
    vz_json_write_kv_string(w, "key", key);
    vz_json_write_object_end(w);
    size_t len = 0;
    char *body = vz_json_writer_take(w, &len);
    vz_json_writer_destroy(&w);
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    vz_strlcpy(req.service, "notifier", sizeof req.service);
    vz_strlcpy(req.method, VZ_NT_METHOD_ALERT, sizeof req.method);
    req.body = (const uint8_t *)body;
    req.body_len = len;
    vz_response_t *resp = NULL;
    int rc = client && body ? vz_client_call(client, &req, 5000, &resp) : -EINVAL;
    if (rc == 0 && resp->env.kind != VZ_KIND_REPLY)
        fprintf(stderr, "vzctl rollout: the notifier refused the alert: %s %s\n",
                resp->env.error_code, resp->env.error_message);
    else if (rc < 0)
        fprintf(stderr, "vzctl rollout: no alert sent: %s\n", strerror(-rc));
    rc = rc == 0 && resp->env.kind == VZ_KIND_REPLY ? 0 : -1;
    vz_response_destroy(&resp);
    free(body);
    vz_client_destroy(&client);
    zcert_destroy(&cert);
    return rc;
}

//  Back to the old version: weights, canaries, alert. phase: rolled_back or aborted.
static void s_rollback(const s_ctx_t *c, s_rollout_t *r, const char *phase, const char *why)
{
    vz_strlcpy(r->phase, phase, sizeof r->phase);
    vz_strlcpy(r->reason, why, sizeof r->reason);
    int rc = s_apply(c, r, 100, 0);
    bool stopped = s_canaries(c, r, 0, NULL) == 0;
    r->runner = 0;
    s_save(c, r);
    //  The alert: the notifier, the operator's log and stderr.
    char summary[512];
    snprintf(summary, sizeof summary, "%s at %d %% (%s -> %s): %s%s", phase, r->steps[r->step],
             r->old, r->next, why,
             rc < 0 || !stopped ? " (the rollback itself failed: check by hand)" : "");
    int sent = s_alert(c, r, summary);
    s_log(c, r->service, "ALERT %s%s", summary, sent == 0 ? " (notifier alerted)" : "");
}

//  Take a request from another vzctl (pause, resume, promote, abort): 1 when
//  the rollout ended (abort), else 0.
static int s_take_request(const s_ctx_t *c, s_rollout_t *r)
{
    char path[VZ_PATH_MAX + 64], word[16] = "";
    s_path(c, r->service, "request", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(word, sizeof word, f))
        word[0] = '\0';
    fclose(f);
    unlink(path);
    word[strcspn(word, "\n")] = '\0';
    if (strcmp(word, "pause") == 0)
        vz_strlcpy(r->phase, "paused", sizeof r->phase);
    else if (strcmp(word, "resume") == 0)
        vz_strlcpy(r->phase, "running", sizeof r->phase);
    else if (strcmp(word, "promote") == 0) {
        r->step = r->nsteps - 1;
        vz_strlcpy(r->phase, "running", sizeof r->phase);
    } else if (strcmp(word, "abort") == 0) {
        s_rollback(c, r, "aborted", "aborted by the operator");
        return 1;
    }
    if (*word)
        s_log(c, r->service, "%s (now %s at step %d)", word, r->phase, r->step);
    return 0;
}

//  Run the service-specific check: 0 healthy.
static int s_check(const s_rollout_t *r)
{
    if (!*r->check)
        return 0;
    setenv("ROLLOUT_SERVICE", r->service, 1);
    setenv("ROLLOUT_VERSION", r->next, 1);
    char weight[16];
    snprintf(weight, sizeof weight, "%d", r->steps[r->step]);
    setenv("ROLLOUT_WEIGHT", weight, 1);
    int status = system(r->check);
    return status == 0 ? 0 : -1;
}

//  The dwell of the current step.
static int s_dwell(const s_rollout_t *r)
{
    return r->dwell[r->ndwell == r->nsteps ? r->step : 0];
}

//  Step through the weights until complete or rolled back. Exit code.
static int s_run(const s_ctx_t *c, s_rollout_t *r)
{
    r->runner = (long)getpid();
    if (!*r->gates) //  a state file from before the gates could read telemetry
        vz_strlcpy(r->gates, "broker", sizeof r->gates);
    s_reading_t base_new, base_old, now_new, now_old;
    bool based = false; //  a runner taking over starts its window now
    while (strcmp(r->phase, "running") == 0 || strcmp(r->phase, "paused") == 0) {
        if (s_take_request(c, r))
            return 1;
        if (s_sample(c, r, &now_new, &now_old) < 0) {
            //  The source restarts or moved: look again next tick.
            s_save(c, r);
            usleep(S_TICK_MS * 1000);
            continue;
        }
        if (r->applied != r->step) {
            int w = r->steps[r->step];
            if (s_apply(c, r, 100 - w, w) < 0) {
                s_rollback(c, r, "rolled_back", "the broker did not take the weights");
                return 1;
            }
            r->applied = r->step;
            r->waited_ms = 0;
            s_log(c, r->service, "step %d: %s at %d %%", r->step + 1, r->next, w);
            based = s_sample(c, r, &base_new, &base_old) == 0;
            s_save(c, r);
            continue;
        }
        //  No base yet, or a counter went back (a telemetry replica restarted):
        //  the window starts here.
        if (!based || now_new.total < base_new.total || now_old.total < base_old.total) {
            base_new = now_new;
            base_old = now_old;
            based = true;
        }
        long old_requests = 0;
        s_window(&base_new, &now_new, &r->new_rate, &r->new_p95, &r->new_requests);
        s_window(&base_old, &now_old, &r->old_rate, &r->old_p95, &old_requests);
        //  Gates: the new version against the thresholds and against the old one
        //  (a failure both share is not the canary's).
        char why[256] = "";
        if (r->new_requests >= r->min_requests && r->new_rate > r->max_error &&
            r->new_rate > r->old_rate)
            snprintf(why, sizeof why, "error rate %.2f %% > %.2f %% (old version %.2f %%)",
                     r->new_rate * 100, r->max_error * 100, r->old_rate * 100);
        else if (r->new_requests >= r->min_requests && r->new_p95 > r->max_p95_ms &&
                 r->new_p95 > r->old_p95)
            snprintf(why, sizeof why, "p95 %.0f ms > %.0f ms (old version %.0f ms)", r->new_p95,
                     r->max_p95_ms, r->old_p95);
        if (*why) {
            s_rollback(c, r, "rolled_back", why);
            return 1;
        }
        if (strcmp(r->phase, "running") == 0)
            r->waited_ms += S_TICK_MS;
        bool enough = r->new_requests >= r->min_requests;
        snprintf(r->reason, sizeof r->reason, "%s",
                 strcmp(r->phase, "paused") == 0 ? "paused by the operator"
                 : r->waited_ms < s_dwell(r)     ? "dwelling"
                 : enough                        ? "checking"
                                                 : "waiting for traffic to the new version");
        if (strcmp(r->phase, "running") == 0 && r->waited_ms >= s_dwell(r) && enough) {
            if (s_check(r) < 0) {
                s_rollback(c, r, "rolled_back", "the service check failed");
                return 1;
            }
            if (r->step == r->nsteps - 1) {
                vz_strlcpy(r->phase, "complete", sizeof r->phase);
                vz_strlcpy(r->reason, "the new version takes all traffic", sizeof r->reason);
                r->runner = 0;
                s_save(c, r);
                s_log(c, r->service, "complete: %s at 100 %%", r->next);
                return 0;
            }
            r->step++;
        }
        s_save(c, r);
        usleep(S_TICK_MS * 1000);
    }
    return strcmp(r->phase, "complete") == 0 ? 0 : 1;
}

//  --------------------------------------------------------------------------
//  Commands.

static int s_usage(void)
{
    fputs("usage: vzctl rollout start S --version V [--bin PATH] [--env K=V]... [--replicas N]\n"
          "           [--steps 1,10,25,50,100 | --blue-green] [--dwell D | D1,D2,...]\n"
          "           [--max-error-rate R] [--max-p95-ms MS] [--min-requests N]\n"
          "           [--sticky CTXKEY] [--check CMD] [--old V] [--telemetry URL]\n"
          "           [--force --reason TEXT] [--weights FILE]\n"
          "           [--k8s --broker URL [--namespace NS] [--kubectl PATH]]\n"
          "       vzctl rollout status|pause|resume|promote|abort|clear S\n",
          stderr);
    return 2;
}

//  "2s", "500ms", "1m" or plain milliseconds; -1 when malformed.
static int s_duration_ms(const char *text)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || v < 0)
        return -1;
    if (strcmp(end, "") == 0 || strcmp(end, "ms") == 0)
        return (int)v;
    if (strcmp(end, "s") == 0)
        return (int)(v * 1000);
    if (strcmp(end, "m") == 0)
        return (int)(v * 60000);
    return -1;
}

//  1 when telemetry says deploys are frozen, 0 when not, -1 when unknown.
static int s_frozen(const s_ctx_t *c, const char *url)
{
    char base[VZ_PATH_MAX];
    if (url)
        vz_strlcpy(base, url, sizeof base);
    else {
        int port = s_admin_port(c, "telemetry");
        if (port <= 0)
            return -1;
        snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    }
    char *page = s_get(base);
    if (!page || !strstr(page, "vz_telemetry_deploy_freeze")) {
        free(page);
        return -1;
    }
    int frozen = s_metric(page, "vz_telemetry_deploy_freeze") > 0;
    free(page);
    return frozen;
}

//  The one version of service other than next with workers, from the broker.
static int s_find_old(const char *page, const char *service, const char *next, char *old, size_t n)
{
    char prefix[128];
    int plen = snprintf(prefix, sizeof prefix,
                        "vz_broker_version_workers{service=\"%s\",version=\"", service);
    int found = 0;
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, (size_t)plen) != 0)
            continue;
        char version[VZ_VERSION_MAX];
        size_t len = strcspn(p + plen, "\"");
        const char *value = strstr(p, "} ");
        if (len == 0 || len >= sizeof version || !value || strtod(value + 2, NULL) <= 0)
            continue;
        memcpy(version, p + plen, len);
        version[len] = '\0';
        if (strcmp(version, next) != 0) {
            vz_strlcpy(old, version, n);
            found++;
        }
    }
    return found;
}

static int s_start(const s_ctx_t *c, int argc, char **argv)
{
    s_rollout_t r = {.applied = -1,
                     .ndwell = 1,
                     .dwell = {60000},
                     .max_error = 0.02,
                     .max_p95_ms = 1200,
                     .min_requests = 20,
                     .canaries = 1};
    vz_strlcpy(r.service, argv[0], sizeof r.service);
    s_parse_steps("1,10,25,50,100", &r);
    snprintf(r.weights, sizeof r.weights, "%s/weights.cfg", c->state);
    const char *bin = NULL, *reason = NULL, *ns = "vizmesh";
    bool force = false, k8s = false, weights_set = false;
    vz_strlcpy(r.kubectl, "kubectl", sizeof r.kubectl);
    char extra[1024] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--version") == 0 && v)
            vz_strlcpy(r.next, v, sizeof r.next);
        else if (strcmp(a, "--old") == 0 && v)
            vz_strlcpy(r.old, v, sizeof r.old);
        else if (strcmp(a, "--bin") == 0 && v)
            bin = v;
        else if (strcmp(a, "--env") == 0 && v && strchr(v, '=') && !strchr(v, ' ') &&
                 strlen(extra) + strlen(v) + 2 < sizeof extra)
            strcat(strcat(extra, " "), v);
        else if (strcmp(a, "--replicas") == 0 && v && atoi(v) > 0)
            r.canaries = atoi(v);
        else if (strcmp(a, "--steps") == 0 && v) {
            if (s_parse_steps(v, &r) < 0) {
                fprintf(stderr, "vzctl rollout: --steps: increasing percents ending at 100\n");
                return 2;
            }
        } else if (strcmp(a, "--dwell") == 0 && v) {
            //  One duration for every step, or one per step.
            char list[256], *save = NULL;
            vz_strlcpy(list, v, sizeof list);
            r.ndwell = 0;
            for (char *d = strtok_r(list, ",", &save); d; d = strtok_r(NULL, ",", &save))
                if (r.ndwell == S_STEPS_MAX || (r.dwell[r.ndwell++] = s_duration_ms(d)) < 0)
                    return s_usage();
        } else if (strcmp(a, "--max-error-rate") == 0 && v)
            r.max_error = atof(v);
        else if (strcmp(a, "--max-p95-ms") == 0 && v)
            r.max_p95_ms = atof(v);
        else if (strcmp(a, "--min-requests") == 0 && v)
            r.min_requests = atoi(v);
        else if (strcmp(a, "--sticky") == 0 && v)
            vz_strlcpy(r.sticky, v, sizeof r.sticky);
        else if (strcmp(a, "--check") == 0 && v)
            vz_strlcpy(r.check, v, sizeof r.check);
        else if (strcmp(a, "--telemetry") == 0 && v)
            vz_strlcpy(r.telemetry, v, sizeof r.telemetry);
        else if (strcmp(a, "--weights") == 0 && v) {
            vz_strlcpy(r.weights, v, sizeof r.weights);
            weights_set = true;
        } else if (strcmp(a, "--namespace") == 0 && v)
            ns = v;
        else if (strcmp(a, "--kubectl") == 0 && v)
            vz_strlcpy(r.kubectl, v, sizeof r.kubectl);
        else if (strcmp(a, "--broker") == 0 && v)
            vz_strlcpy(r.broker, v, sizeof r.broker);
        else if (strcmp(a, "--reason") == 0 && v)
            reason = v;
        else {
            takes = false;
            if (strcmp(a, "--blue-green") == 0)
                s_parse_steps("100", &r);
            else if (strcmp(a, "--force") == 0)
                force = true;
            else if (strcmp(a, "--k8s") == 0)
                k8s = true;
            else
                return s_usage();
        }
        i += takes;
    }
    if (!vz_version_valid(r.next) || (*r.old && !vz_version_valid(r.old)) ||
        (force && (!reason || !*reason)) || r.ndwell == 0 ||
        (r.ndwell != 1 && r.ndwell != r.nsteps))
        return s_usage();
    //  --k8s: the canary Deployment's image and env are the new version's;
    //  the runner needs a broker's /metrics and keeps its own copy of the
    //  ConfigMap's weights (one per namespace).
    if (k8s) {
        if (bin || *extra || !*r.broker || !*ns || strlen(ns) >= sizeof r.k8s_ns ||
            strspn(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(ns)) {
            fprintf(stderr, "vzctl rollout: --k8s needs --broker URL and a namespace; the canary "
                            "Deployment sets the image and env (no --bin, --env)\n");
            return 2;
        }
        vz_strlcpy(r.k8s_ns, ns, sizeof r.k8s_ns);
        if (!weights_set)
            snprintf(r.weights, sizeof r.weights, "%s/weights-%s.cfg", c->state, ns);
    }
    s_rollout_t cur;
    if (s_load(c, r.service, &cur) == 0 &&
        (strcmp(cur.phase, "running") == 0 || strcmp(cur.phase, "paused") == 0)) {
        fprintf(stderr, "vzctl rollout: %s: a rollout is %s (vzctl rollout status %s)\n", r.service,
                cur.phase, r.service);
        return 1;
    }
    //  Deploy freeze: telemetry's spent error budget stops releases unless forced.
    int frozen = s_frozen(c, *r.telemetry ? r.telemetry : NULL);
    if (frozen != 0 && !force) {
        fprintf(stderr, frozen > 0
                            ? "vzctl rollout: deploys are frozen: an SLO's error budget is spent "
                              "(vzctl slo); --force --reason TEXT to release anyway\n"
                            : "vzctl rollout: cannot read the deploy freeze from telemetry "
                              "(--telemetry URL); --force --reason TEXT to release anyway\n");
        return 1;
    }
    if (force)
        s_log(c, r.service, "forced start of %s (freeze %s): %s", r.next,
              frozen > 0    ? "on"
              : frozen == 0 ? "off"
                            : "unknown",
              reason);
    char *page = s_broker_page(c, &r);
    if (!page) {
        fprintf(stderr, "vzctl rollout: cannot read the broker's metrics\n");
        return 1;
    }
    int olds = *r.old ? 1 : s_find_old(page, r.service, r.next, r.old, sizeof r.old);
    free(page);
    if (olds != 1) {
        fprintf(stderr, "vzctl rollout: %s: %s (--old V)\n", r.service,
                olds ? "workers of several versions" : "no worker of another version");
        return 1;
    }
    //  The supervisor's command, whole or not at all.
    char line[SUP_CONTROL_LINE_MAX];
    int len = snprintf(line, sizeof line, "canary %s %d VZ_SERVICE_VERSION=%s%s%s%s", r.service,
                       r.canaries, r.next, bin ? " command=" : "", bin ? bin : "", extra);
    if (len < 0 || (size_t)len >= sizeof line) {
        fprintf(stderr, "vzctl rollout: --bin and --env make a command over %zu bytes\n",
                sizeof line - 1);
        return 2;
    }
    vz_strlcpy(r.phase, "running", sizeof r.phase);
    r.runner = (long)getpid();
    vz_strlcpy(r.reason, "starting canaries", sizeof r.reason);
    if (s_save(c, &r) < 0) {
        fprintf(stderr, "vzctl rollout: cannot write the state in %s\n", c->state);
        return 1;
    }
    //  Weight 0 before the canaries register: without weights they would
    //  share the service with the old replicas by worker count at once.
    if (s_apply(c, &r, 100, 0) < 0) {
        vz_strlcpy(r.phase, "aborted", sizeof r.phase);
        vz_strlcpy(r.reason, "the broker did not take the weights", sizeof r.reason);
        r.runner = 0;
        s_save(c, &r);
        return 1;
    }
    if (s_canaries(c, &r, r.canaries, line) < 0) {
        vz_strlcpy(r.phase, "aborted", sizeof r.phase);
        vz_strlcpy(r.reason, "the canaries could not be started", sizeof r.reason);
        r.runner = 0;
        s_save(c, &r);
        return 1;
    }
    s_log(c, r.service, "start %s -> %s, %d canar%s", r.old, r.next, r.canaries,
          r.canaries == 1 ? "y" : "ies");
    s_choose_gates(c, &r);
    //  The canaries count once the broker has them.
    char series[256];
    snprintf(series, sizeof series, "vz_broker_version_workers{service=\"%s\",version=\"%s\"}",
             r.service, r.next);
    int64_t until = vz_clock_mono_ms() + (k8s ? S_K8S_CANARY_WAIT_MS : S_CANARY_WAIT_MS);
    bool up = false;
    while (!up && vz_clock_mono_ms() < until) {
        page = s_broker_page(c, &r);
        up = page && s_metric(page, series) >= r.canaries;
        free(page);
        if (!up)
            usleep(100 * 1000);
    }
    if (!up) {
        s_rollback(c, &r, "rolled_back", "the canaries did not register with the broker");
        return 1;
    }
    return s_run(c, &r);
}

static int s_status(const s_ctx_t *c, const char *service)
{
    char path[VZ_PATH_MAX + 64];
    s_path(c, service, "state", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "vzctl rollout: %s: no rollout\n", service);
        return 1;
    }
    char line[VZ_PATH_MAX + 64];
    while (fgets(line, sizeof line, f))
        fputs(line, stdout);
    fclose(f);
    s_rollout_t r;
    if (s_load(c, service, &r) == 0 &&
        (strcmp(r.phase, "running") == 0 || strcmp(r.phase, "paused") == 0) && !s_alive(r.runner))
        printf("runner_alive=no\n");
    return 0;
}

//  pause, resume, promote, abort: to the runner, or done here when none runs.
static int s_request(const s_ctx_t *c, const char *what, const char *service)
{
    s_rollout_t r;
    if (s_load(c, service, &r) < 0) {
        fprintf(stderr, "vzctl rollout: %s: no rollout\n", service);
        return 1;
    }
    if (strcmp(r.phase, "running") != 0 && strcmp(r.phase, "paused") != 0) {
        fprintf(stderr, "vzctl rollout: %s: the rollout is %s\n", service, r.phase);
        return 1;
    }
    char path[VZ_PATH_MAX + 64];
    s_path(c, service, "request", path, sizeof path);
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", what) < 0 || fclose(f) != 0) {
        fprintf(stderr, "vzctl rollout: cannot write %s\n", path);
        return 1;
    }
    if (!s_alive(r.runner)) {
        //  No runner: this process takes the request and, unless it ended the rollout, runs.
        if (s_take_request(c, &r))
            return 0;
        if (strcmp(what, "pause") == 0) {
            s_save(c, &r);
            return 0;
        }
        return s_run(c, &r);
    }
    //  The runner takes it within a tick.
    int64_t until = vz_clock_mono_ms() + S_ACK_WAIT_MS;
    while (vz_clock_mono_ms() < until && access(path, F_OK) == 0)
        usleep(50 * 1000);
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "vzctl rollout: the runner (pid %ld) did not take the request\n", r.runner);
        return 1;
    }
    return 0;
}

//  After a completed rollout made permanent (or an abandoned one): no
//  weights for the service, no canaries, no state.
static int s_clear(const s_ctx_t *c, const char *service)
{
    s_rollout_t r;
    if (s_load(c, service, &r) < 0) {
        fprintf(stderr, "vzctl rollout: %s: no rollout\n", service);
        return 1;
    }
    if (s_alive(r.runner)) {
        fprintf(stderr, "vzctl rollout: %s: a runner (pid %ld) is active: abort first\n", service,
                r.runner);
        return 1;
    }
    int rc = s_apply(c, &r, -1, 0);
    bool stopped = s_canaries(c, &r, 0, NULL) == 0;
    char path[VZ_PATH_MAX + 64];
    s_path(c, service, "state", path, sizeof path);
    unlink(path);
    s_log(c, service, "cleared");
    return rc == 0 && stopped ? 0 : 1;
}

int vzctl_rollout(const char *socket, const char *state, int argc, char **argv)
{
    if (argc < 2)
        return s_usage();
    s_ctx_t c = {socket, state};
    const char *cmd = argv[0], *service = argv[1];
    if (strcmp(cmd, "start") == 0)
        return s_start(&c, argc - 1, argv + 1);
    if (argc != 2)
        return s_usage();
    if (strcmp(cmd, "status") == 0)
        return s_status(&c, service);
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0 || strcmp(cmd, "promote") == 0 ||
        strcmp(cmd, "abort") == 0)
        return s_request(&c, cmd, service);
    if (strcmp(cmd, "clear") == 0)
        return s_clear(&c, service);
    return s_usage();
}
