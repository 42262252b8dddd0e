/*  vzctl - command line client of vz-supervisor, and local key tooling
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Exit codes: 0 ok, 1 the request failed, 2 usage, 3 `status` shows a
 *  failed replica (systemctl's "not running"), 4 supervisor not reachable.
 *  The socket is <state>/vzctl.sock, state from --state, VZ_STATE_DIR or
 *  ./state (or --socket PATH directly). A TARGET is S, S.i or all.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "mesh_config.h"
#include "redis_acl.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_log.h"
#include "vzctl_rollout.h"
#include "vzctl_telemetry.h"

#define S_EXIT_OK 0
#define S_EXIT_FAILED 1
#define S_EXIT_USAGE 2
#define S_EXIT_NOT_RUNNING 3       //  `status`: a replica is failed (systemctl/LSB "not running")
#define S_EXIT_NOSUP 4             //  supervisor not reachable (LSB "status unknown")
#define S_TAIL_BYTES (1024 * 1024) //  how far back `logs -n` looks
#define S_FOLLOW_MS 200            //  poll interval of `logs -f`
#define S_DEFAULT_TIMEOUT_S 30     //  `start` and `wait`

#ifndef VZ_VERSION_STRING
#define VZ_VERSION_STRING "unknown"
#endif

typedef struct {
    char state[VZ_PATH_MAX];       //  state directory
    char socket[VZ_PATH_MAX + 16]; //  control socket path
    bool json;                     //  status as JSON
} s_opts_t;

static const char s_usage_text[] =
    "usage: vzctl [--state DIR] [--socket PATH] COMMAND\n"
    "       vzctl --help | --version\n"
    "TARGET is a service S, one replica S.i, or all.\n"
    "  status [S|S.i] [--json]        replicas: pid, state, readiness, uptime, restarts\n"
    "                                 (exit 3 when a replica shown is failed)\n"
    "  ports                          named ports (with \"auto\" ones resolved)\n"
    "  start TARGET [--timeout SEC] [--no-wait]\n"
    "                                 start (also clears failed), wait until ready (30 s)\n"
    "  stop TARGET                    stop and wait until the processes are gone\n"
    "  restart TARGET [--timeout SEC] rolling restart, one replica at a time (no limit)\n"
    "  scale S N                      run N replicas of S\n"
    "  logs S[.i] [-f] [-n N]         last N lines (default 50) of S's log files\n"
    "  reread                         show what update would change in the config file\n"
    "  update                         apply the config file: start added services, stop\n"
    "                                 removed ones, restart changed ones; others keep running\n"
    "  reload                         SIGHUP to every daemon\n"
    "  wait [TARGET] [--timeout SEC]  until TARGET (or everything) is ready; default 30 s\n"
    "  shutdown                       stop everything in reverse dependency order\n"
    "  keys gen DIR NAME... [--k8s]   key pairs (no supervisor needed)\n"
    "  keys rotate S                  overlap rotation of S's key\n"
    "  redis-acl DIR NAME... [--k8s]  Redis ACL users for compose/k8s, passwords in DIR\n"
    "  slo | alerts [--url U] [--token T] [--json]\n"
    "                                 SLOs and budgets, or alerts, from the telemetry API\n"
    "                                 through the gateway (token: --token or VZ_TOKEN)\n"
    "  rollout start S --version V [options] | status|pause|resume|promote|abort|clear S\n"
    "                                 canary or blue/green release through the broker's\n"
    "                                 weights, gated on errors and p95 (vzctl rollout)\n"
    "  telemetry replay FILE.csv      the anomaly detector over timestamp,value lines:\n"
    "                                 forecast, interval, score, 0/1 flag per point\n"
    "state: --state, else $VZ_STATE_DIR, else ./state\n"
    "exit: 0 ok, 1 failed, 2 usage, 3 (status) a replica is failed,\n"
    "      4 supervisor not reachable\n";

static int s_usage(void)
{
    fputs(s_usage_text, stderr);
    return S_EXIT_USAGE;
}

//  Send one request; the body goes to *body_p (heap) or stdout, the error
//  to stderr; mapped to an exit code. A reply that does not come within
//  timeout_ms is a failure of the request, not an unreachable supervisor.
static int s_request(const s_opts_t *o, const char *line, int timeout_ms, char **body_p)
{
    int rc = 0;
    char *resp = sup_control_request(o->socket, line, timeout_ms, &rc);
    if (!resp && rc == -ETIMEDOUT) {
        fprintf(stderr,
                "vzctl: %s: no answer within %d s; the supervisor carries on (see vzctl "
                "status)\n",
                line, timeout_ms / 1000);
        return S_EXIT_FAILED;
    }
    if (!resp) {
        fprintf(stderr, "vzctl: supervisor not reachable at %s: %s\n", o->socket, strerror(-rc));
        return S_EXIT_NOSUP;
    }
    if (strncmp(resp, "ok\n", 3) == 0 || strcmp(resp, "ok") == 0) {
        if (body_p)
            *body_p = strdup(resp[2] ? resp + 3 : "");
        else
            fputs(resp[2] ? resp + 3 : "", stdout);
        free(resp);
        return S_EXIT_OK;
    }
    fprintf(stderr, "vzctl: %s", strncmp(resp, "error ", 6) == 0 ? resp + 6 : resp);
    free(resp);
    return S_EXIT_FAILED;
}

static void s_human_ms(long long ms, char *out, size_t n)
{
    long long s = ms / 1000;
    if (s < 60)
        snprintf(out, n, "%llds", s);
    else if (s < 3600)
        snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(out, n, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
}

//  status [TARGET]: exit 3 when a replica shown is failed, as systemctl status does
//  for a unit that is not running, so scripts and health checks can test it.
static int s_status(const s_opts_t *o, const char *target)
{
    char *body = NULL;
    char req[SUP_CONTROL_LINE_MAX];
    snprintf(req, sizeof req, "status %.*s", VZ_NAME_MAX + 8, target ? target : "");
    int rc = s_request(o, req, 5000, &body);
    if (rc != S_EXIT_OK)
        return rc;
    bool failed = false;
    if (o->json)
        printf("[");
    else
        printf("%-12s %-7s %-8s %-9s %-5s %-8s %-8s %-6s %s\n", "SERVICE", "REPLICA", "PID",
               "STATE", "READY", "UPTIME", "RESTARTS", "ADMIN", "REASON");
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[9] = {NULL};
        char *fs = NULL;
        int nf = 0;
        for (char *t = strtok_r(line, "\t", &fs); t && nf < 9; t = strtok_r(NULL, "\t", &fs))
            f[nf++] = t;
        if (nf < 9)
            continue;
        failed = failed || strcmp(f[3], "failed") == 0;
        if (o->json) {
            char name[2 * VZ_NAME_MAX], reason[512];
            vz_json_escape(name, sizeof name, f[0]);
            vz_json_escape(reason, sizeof reason, strcmp(f[8], "-") ? f[8] : "");
            printf("%s\n  {\"service\":\"%s\",\"replica\":%s,\"pid\":%s,\"state\":\"%s\","
                   "\"ready\":%s,\"uptime_ms\":%s,\"restarts\":%s,\"admin_port\":%s,"
                   "\"reason\":\"%s\"}",
                   rows ? "," : "", name, f[1], f[2], f[3],
                   strcmp(f[4], "yes") == 0 ? "true" : "false", f[5], f[6], f[7], reason);
        } else {
            char up[32];
            s_human_ms(atoll(f[5]), up, sizeof up);
            printf("%-12s %-7s %-8s %-9s %-5s %-8s %-8s %-6s %s\n", f[0], f[1],
                   strcmp(f[2], "0") ? f[2] : "-", f[3], f[4], strcmp(f[2], "0") ? up : "-", f[6],
                   strcmp(f[7], "0") ? f[7] : "-", f[8]);
        }
        rows++;
    }
    if (o->json)
        printf("%s]\n", rows ? "\n" : "");
    free(body);
    return failed ? S_EXIT_NOT_RUNNING : S_EXIT_OK;
}

//  ---------------------------------------------------------------------------
//  logs

typedef struct {
    char path[VZ_PATH_MAX + 96];  //  log file
    char label[VZ_NAME_MAX + 16]; //  "S.i"
    off_t offset;                 //  bytes already shown
    char seen[64];                //  the last bytes shown, to notice a file emptied and refilled
    size_t seen_len;              //  bytes in seen
} s_logfile_t;

//  Print from offset to the end; prefix each line when several files mix.
static off_t s_print_from(s_logfile_t *lf, off_t from, bool prefix)
{
    int fd = open(lf->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return from;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size < from)
        from = 0; //  truncated or replaced: start over
    //  A rotation (copytruncate) may empty the file and new lines fill it past
    //  our offset between two polls: the bytes before the offset then differ.
    char check[sizeof lf->seen];
    if (from > 0 && lf->seen_len > 0 && (off_t)lf->seen_len <= from &&
        (pread(fd, check, lf->seen_len, from - (off_t)lf->seen_len) != (ssize_t)lf->seen_len ||
         memcmp(check, lf->seen, lf->seen_len) != 0))
        from = 0;
    if (lf->seen_len == 0 && from > 0) { //  first read: the bytes before the offset
        off_t start = from > (off_t)sizeof lf->seen ? from - (off_t)sizeof lf->seen : 0;
        ssize_t got = pread(fd, lf->seen, (size_t)(from - start), start);
        lf->seen_len = got > 0 ? (size_t)got : 0;
    }
    lseek(fd, from, SEEK_SET);
    char buf[8192];
    bool line_start = true;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (prefix && line_start)
                printf("[%s] ", lf->label);
            putchar(buf[i]);
            line_start = buf[i] == '\n';
        }
        from += n;
        //  Remember the tail of what was shown (the last sizeof seen bytes).
        size_t keep = (size_t)n < sizeof lf->seen ? (size_t)n : sizeof lf->seen;
        if (lf->seen_len + keep > sizeof lf->seen) {
            size_t drop = lf->seen_len + keep - sizeof lf->seen;
            memmove(lf->seen, lf->seen + drop, lf->seen_len - drop);
            lf->seen_len -= drop;
        }
        memcpy(lf->seen + lf->seen_len, buf + n - keep, keep);
        lf->seen_len += keep;
    }
    close(fd);
    fflush(stdout);
    return from;
}

//  Offset where the last `lines` lines of the file begin.
static off_t s_tail_offset(const char *path, int lines)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    off_t size = fstat(fd, &st) == 0 ? st.st_size : 0;
    off_t start = size > S_TAIL_BYTES ? size - S_TAIL_BYTES : 0;
    char *buf = malloc((size_t)(size - start) + 1);
    ssize_t n = buf ? pread(fd, buf, (size_t)(size - start), start) : -1;
    close(fd);
    off_t at = start;
    if (n > 0) {
        int seen = 0;
        ssize_t i = n - 1;
        if (buf[i] == '\n')
            i--; //  the final newline ends the last line, it does not start one
        for (; i >= 0; i--)
            if (buf[i] == '\n' && ++seen == lines)
                break;
        at = i < 0 ? start : start + i + 1;
    }
    free(buf);
    return lines <= 0 ? size : at;
}

static int s_logs(const s_opts_t *o, int argc, char **argv)
{
    const char *svc = NULL;
    bool follow = false;
    int lines = 50;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
            follow = true;
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            lines = atoi(argv[++i]);
        else if (!svc && argv[i][0] != '-')
            svc = argv[i];
        else
            return s_usage();
    }
    if (!svc || lines < 0)
        return s_usage();
    s_logfile_t files[SUP_MESH_MAX_REPLICAS];
    memset(files, 0, sizeof files);
    size_t count = 0;
    const char *dot = strrchr(svc, '.');
    for (int k = 0; k < SUP_MESH_MAX_REPLICAS; k++) {
        s_logfile_t *lf = &files[count];
        char label[sizeof lf->label];
        if (dot) //  one replica, given as S.i
            snprintf(label, sizeof label, "%s", svc);
        else
            snprintf(label, sizeof label, "%s.%d", svc, k);
        memcpy(lf->label, label, sizeof label);
        snprintf(lf->path, sizeof lf->path, "%s/logs/%s.log", o->state, label);
        if (access(lf->path, R_OK) == 0)
            count++;
        if (dot)
            break;
    }
    if (count == 0) {
        fprintf(stderr, "vzctl: no log files for %s in %s/logs\n", svc, o->state);
        return S_EXIT_FAILED;
    }
    for (size_t i = 0; i < count; i++)
        files[i].offset = s_print_from(&files[i], s_tail_offset(files[i].path, lines), count > 1);
    //  Follow by polling the sizes: simple, and works for files recreated by a restart.
    while (follow) {
        poll(NULL, 0, S_FOLLOW_MS);
        for (size_t i = 0; i < count; i++)
            files[i].offset = s_print_from(&files[i], files[i].offset, count > 1);
    }
    return S_EXIT_OK;
}

//  ---------------------------------------------------------------------------
//  keys

static int s_print_b64_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    unsigned char in[8192];
    size_t n = fread(in, 1, sizeof in, f);
    bool whole = feof(f);
    fclose(f);
    if (!whole)
        return -EFBIG;
    unsigned char out[((sizeof in + 2) / 3) * 4 + 1];
    EVP_EncodeBlock(out, in, (int)n);
    printf("%s\n", out);
    return 0;
}

static int s_keys_gen(int argc, char **argv)
{
    bool k8s = false;
    const char *dir = NULL;
    int names = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--k8s") == 0)
            k8s = true;
        else if (!dir)
            dir = argv[i];
        else
            names++;
    }
    if (!dir || names == 0)
        return s_usage();
    int rc = S_EXIT_OK;
    bool first = true;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--k8s") == 0 || argv[i] == dir)
            continue;
        int krc = vz_curve_keygen(dir, argv[i]);
        if (krc < 0) {
            fprintf(stderr, "vzctl: unable to generate the key pair of %s in %s: %s\n", argv[i],
                    dir, strerror(-krc));
            rc = S_EXIT_FAILED;
            continue;
        }
        if (!k8s) {
            printf("%s/public/%s.key\n%s/secret/%s.key_secret\n", dir, argv[i], dir, argv[i]);
            continue;
        }
        char path[VZ_PATH_MAX + 96];
        printf("%s", first ? "" : "---\n");
        first = false;
        printf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: vizmesh-key-%s\n"
               "  labels:\n    app.kubernetes.io/part-of: vizmesh\n"
               "    app.kubernetes.io/component: %s\ntype: Opaque\ndata:\n",
               argv[i], argv[i]);
        printf("  %s.key: ", argv[i]);
        snprintf(path, sizeof path, "%s/public/%s.key", dir, argv[i]);
        krc = s_print_b64_file(path);
        printf("  %s.key_secret: ", argv[i]);
        snprintf(path, sizeof path, "%s/secret/%s.key_secret", dir, argv[i]);
        krc = krc < 0 ? krc : s_print_b64_file(path);
        if (krc < 0) {
            fprintf(stderr, "vzctl: unable to read %s: %s\n", path, strerror(-krc));
            rc = S_EXIT_FAILED;
        }
    }
    return rc;
}

//  ---------------------------------------------------------------------------
//  start, restart and wait

//  Arguments of start, restart and wait: one target, [--timeout SEC], [--no-wait].
typedef struct {
    const char *target; //  S, S.i or all; NULL when none was given
    long timeout_ms;    //  -1 = no limit
    bool no_wait;       //  start: return once the supervisor was asked
} s_args_t;

static int s_parse_args(int argc, char **argv, s_args_t *a, bool allow_no_wait)
{
    for (int k = 0; k < argc; k++) {
        if (strcmp(argv[k], "--timeout") == 0 && k + 1 < argc) {
            char *end = NULL;
            double t = strtod(argv[++k], &end);
            if (*end || end == argv[k] || t < 0 || t > 86400)
                return -1;
            a->timeout_ms = (long)(t * 1000);
        } else if (allow_no_wait && strcmp(argv[k], "--no-wait") == 0)
            a->no_wait = true;
        else if (!a->target && argv[k][0] != '-')
            a->target = argv[k];
        else
            return -1;
    }
    return 0;
}

//  Wait until target (NULL: everything) is ready now; the body is empty.
static int s_wait(const s_opts_t *o, const char *target, long ms)
{
    char line[SUP_CONTROL_LINE_MAX];
    if (target)
        snprintf(line, sizeof line, "wait %.*s %ld", VZ_NAME_MAX + 8, target, ms);
    else
        snprintf(line, sizeof line, "wait %ld", ms);
    //  A supervisor that is still starting has no socket yet: keep trying
    //  until the deadline, so `vz-supervisor & vzctl wait` just works.
    for (long waited = 0; waited < ms; waited += 50) {
        int fd = sup_control_connect(o->socket);
        if (fd >= 0) {
            close(fd);
            break;
        }
        poll(NULL, 0, 50);
    }
    //  The supervisor answers by the deadline; the extra second covers transit.
    return s_request(o, line, (int)ms + 1000, NULL);
}

//  start TARGET, then wait until it is ready, as systemctl start waits for
//  its unit; --no-wait returns once the supervisor was asked.
static int s_start(const s_opts_t *o, const s_args_t *a)
{
    char line[SUP_CONTROL_LINE_MAX], *body = NULL;
    snprintf(line, sizeof line, "start %.*s", VZ_NAME_MAX + 8, a->target);
    int rc = s_request(o, line, 5000, &body);
    if (rc != S_EXIT_OK)
        return rc;
    if (a->no_wait) {
        fputs(body, stdout);
        free(body);
        return S_EXIT_OK;
    }
    free(body);
    long ms = a->timeout_ms < 0 ? S_DEFAULT_TIMEOUT_S * 1000L : a->timeout_ms;
    rc = s_wait(o, strcmp(a->target, "all") ? a->target : NULL, ms);
    if (rc == S_EXIT_OK)
        printf("started %s: ready\n", a->target);
    return rc;
}

//  restart all: each service in turn, in dependency order (status lists
//  services in that order), each rolled and ready before the next.
static int s_restart_all(const s_opts_t *o, int timeout_ms)
{
    char *body = NULL;
    int rc = s_request(o, "status", 5000, &body);
    if (rc != S_EXIT_OK)
        return rc;
    char last[VZ_NAME_MAX] = "";
    char *save = NULL;
    for (char *row = strtok_r(body, "\n", &save); row && rc == S_EXIT_OK;
         row = strtok_r(NULL, "\n", &save)) {
        row[strcspn(row, "\t")] = '\0';
        if (strcmp(row, last) == 0)
            continue;
        vz_strlcpy(last, row, sizeof last);
        char line[SUP_CONTROL_LINE_MAX];
        snprintf(line, sizeof line, "restart %.*s", VZ_NAME_MAX, row);
        rc = s_request(o, line, timeout_ms, NULL);
    }
    free(body);
    return rc;
}

int main(int argc, char **argv)
{
    s_opts_t o = {.json = false};
    const char *state = getenv("VZ_STATE_DIR");
    const char *sock = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(s_usage_text, stdout);
            return S_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("vzctl (vizmesh) %s\n", VZ_VERSION_STRING);
            return S_EXIT_OK;
        } else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
            state = argv[++i];
        else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            sock = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            o.json = true;
        else
            return s_usage();
    }
    if (i >= argc)
        return s_usage();
    vz_strlcpy(o.state, state && *state ? state : "state", sizeof o.state);
    if (sock)
        vz_strlcpy(o.socket, sock, sizeof o.socket);
    else
        snprintf(o.socket, sizeof o.socket, "%s/vzctl.sock", o.state);
    const char *cmd = argv[i++];
    int rest = argc - i;
    char **args = argv + i;
    char line[SUP_CONTROL_LINE_MAX];

    if (strcmp(cmd, "help") == 0) {
        fputs(s_usage_text, stdout);
        return S_EXIT_OK;
    }
    if (strcmp(cmd, "status") == 0) {
        const char *target = NULL;
        for (int k = 0; k < rest; k++) {
            if (strcmp(args[k], "--json") == 0)
                o.json = true;
            else if (!target && args[k][0] != '-')
                target = args[k];
            else
                return s_usage();
        }
        return s_status(&o, target);
    }
    if (strcmp(cmd, "logs") == 0)
        return s_logs(&o, rest, args);
    if (strcmp(cmd, "telemetry") == 0)
        return vzctl_telemetry(rest, args);
    if (strcmp(cmd, "rollout") == 0)
        return vzctl_rollout(o.socket, o.state, rest, args);
    if (strcmp(cmd, "slo") == 0 || strcmp(cmd, "alerts") == 0) {
        char *ports = NULL;
        bool url = false;
        for (int k = 0; k < rest; k++)
            url = url || strcmp(args[k], "--url") == 0;
        if (!url && s_request(&o, "ports", 5000, &ports) != S_EXIT_OK)
            return S_EXIT_NOSUP;
        int rc = vzctl_telemetry_show(cmd, rest, args, ports);
        free(ports);
        return rc;
    }
    if (strcmp(cmd, "keys") == 0 && rest >= 1 && strcmp(args[0], "gen") == 0)
        return s_keys_gen(rest - 1, args + 1);
    if (strcmp(cmd, "redis-acl") == 0) {
        int rc = sup_redis_acl_cmd(rest, args, stdout);
        return rc == S_EXIT_USAGE ? s_usage() : rc;
    }
    if (strcmp(cmd, "keys") == 0 && rest == 2 && strcmp(args[0], "rotate") == 0) {
        snprintf(line, sizeof line, "rotate %.*s", VZ_NAME_MAX, args[1]);
        return s_request(&o, line, -1, NULL);
    }
    if ((strcmp(cmd, "ports") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "shutdown") == 0 ||
         strcmp(cmd, "reread") == 0) &&
        rest == 0)
        return s_request(&o, cmd, 5000, NULL);
    //  update waits until removed and changed services have stopped.
    if (strcmp(cmd, "update") == 0 && rest == 0)
        return s_request(&o, cmd, -1, NULL);
    if (strcmp(cmd, "stop") == 0 && rest == 1) {
        snprintf(line, sizeof line, "stop %.*s", VZ_NAME_MAX + 8, args[0]);
        return s_request(&o, line, -1, NULL);
    }
    s_args_t a = {.target = NULL, .timeout_ms = -1, .no_wait = false};
    if (strcmp(cmd, "start") == 0) {
        if (s_parse_args(rest, args, &a, true) < 0 || !a.target)
            return s_usage();
        return s_start(&o, &a);
    }
    if (strcmp(cmd, "restart") == 0) {
        if (s_parse_args(rest, args, &a, false) < 0 || !a.target)
            return s_usage();
        int ms = a.timeout_ms < 0 ? -1 : (int)a.timeout_ms;
        if (strcmp(a.target, "all") == 0)
            return s_restart_all(&o, ms);
        snprintf(line, sizeof line, "restart %.*s", VZ_NAME_MAX + 8, a.target);
        return s_request(&o, line, ms, NULL);
    }
    if (strcmp(cmd, "scale") == 0 && rest == 2) {
        snprintf(line, sizeof line, "scale %.*s %.16s", VZ_NAME_MAX, args[0], args[1]);
        return s_request(&o, line, 5000, NULL);
    }
    if (strcmp(cmd, "wait") == 0) {
        if (s_parse_args(rest, args, &a, false) < 0)
            return s_usage();
        int rc =
            s_wait(&o, a.target, a.timeout_ms < 0 ? S_DEFAULT_TIMEOUT_S * 1000L : a.timeout_ms);
        if (rc == S_EXIT_OK)
            printf("%s ready\n", a.target ? a.target : "everything");
        return rc;
    }
    return s_usage();
}
