/*  harness - start real daemons for integration tests and wait on readiness
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Readiness is the s6 notification-fd protocol: the child gets the write
 *  end of a pipe as VZ_NOTIFY_FD and writes "\n" once ready; EOF on the pipe
 *  before that means it exited. Children die with the test process
 *  (PR_SET_PDEATHSIG), so a failed or crashed test leaves nothing behind.
 *  A mesh keeps its instances (Redis, broker, daemons) in start order with
 *  their settings, so one can be stopped, killed and started again on the
 *  same ports; every exit is judged once (exit code and sanitizer reports
 *  in the instance's log) and an unclean one makes vzt_mesh_destroy fail.
 */
#include "harness.h"

#include <assert.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vz_broker_contract.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_ports.h"
#include "vz_proto.h"
#include <hiredis/hiredis.h>
#include <strings.h>

struct vzt_proc_t {
    pid_t pid;   //  child process id
    bool exited; //  reaped
    int status;  //  exit code (128+signal) once reaped
};

char *vzt_tempdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = zsys_sprintf("%s/vz-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    assert(path);
    if (!mkdtemp(path)) {
        zstr_free(&path);
        return NULL;
    }
    return path;
}

static int s_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path); //  best effort: keep going
    return 0;
}

void vzt_rmrf(const char *dir)
{
    if (dir && *dir)
        nftw(dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *vzt_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        abort();
    va_end(ap);
    return out;
}

int vzt_free_port(void)
{
    return vz_ports_free();
}

char *vzt_bin(const char *name)
{
    const char *dir = getenv("VZ_BIN_DIR");
    return zsys_sprintf("%s/%s", dir && *dir ? dir : "build/bin", name);
}

static int s_status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

//  The child's environment: ours, then env_extra, then VZ_NOTIFY_FD. Built
//  before fork because the child of a threaded parent may only call
//  async-signal-safe functions.
static char **s_build_env(char *const env_extra[], int notify_fd)
{
    extern char **environ;
    size_t n = 0, extra = 0;
    while (environ[n])
        n++;
    while (env_extra && env_extra[extra])
        extra++;
    char **env = (char **)calloc(n + extra + 2, sizeof *env);
    assert(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        //  A variable given in env_extra (or VZ_NOTIFY_FD) replaces ours.
        size_t klen = strcspn(environ[i], "=");
        bool replaced = strncmp(environ[i], "VZ_NOTIFY_FD=", 13) == 0;
        for (size_t j = 0; j < extra && !replaced; j++)
            replaced = strncmp(environ[i], env_extra[j], klen) == 0 && env_extra[j][klen] == '=';
        if (!replaced)
            env[k++] = strdup(environ[i]);
    }
    for (size_t j = 0; j < extra; j++)
        env[k++] = strdup(env_extra[j]);
    if (notify_fd >= 0)
        env[k++] = zsys_sprintf("VZ_NOTIFY_FD=%d", notify_fd);
    env[k] = NULL;
    return env;
}

static void s_free_env(char **env)
{
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

//  Fork and exec; returns the pid and, if notify_p, the read end of the
//  readiness pipe.
static pid_t s_start(const char *bin, char *const argv[], char *const env_extra[],
                     const char *log_path, int *notify_p)
{
    int fds[2] = {-1, -1};
    if (notify_p && pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    int log_fd = -1;
    if (log_path) {
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            if (notify_p) {
                close(fds[0]);
                close(fds[1]);
            }
            return -1;
        }
    }
    char **env = s_build_env(env_extra, notify_p ? fds[1] : -1);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        //  Nothing we start may outlive the test, even when it crashes.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (notify_p)
            fcntl(fds[1], F_SETFD, 0);
        if (log_fd >= 0) {
            dup2(log_fd, STDOUT_FILENO);
            dup2(log_fd, STDERR_FILENO);
        }
        //  Default signal handling and an empty mask for the daemon.
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execve(bin, argv, env);
        _exit(127);
    }
    s_free_env(env);
    if (log_fd >= 0)
        close(log_fd);
    if (notify_p) {
        close(fds[1]);
        if (pid < 0)
            close(fds[0]);
        else
            *notify_p = fds[0];
    }
    return pid;
}

vzt_proc_t *vzt_spawn(const char *bin, char *const argv[], char *const env_extra[],
                      const char *log_path, int ready_ms)
{
    int notify = -1;
    pid_t pid = s_start(bin, argv, env_extra, log_path, &notify);
    if (pid < 0)
        return NULL;
    vzt_proc_t *self = (vzt_proc_t *)zmalloc(sizeof *self);
    self->pid = pid;
    //  Wait for the line, for EOF (the child exited or closed it), or the timeout.
    bool ready = false;
    int64_t until = zclock_mono() + ready_ms;
    while (!ready) {
        int64_t left = until - zclock_mono();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = notify, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        char c;
        ssize_t got = read(notify, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        ready = c == '\n';
    }
    close(notify);
    if (!ready) {
        fprintf(stderr, "harness: %s did not become ready within %d ms\n", bin, ready_ms);
        kill(pid, SIGKILL);
        vzt_proc_wait(self, 5000);
        vzt_proc_destroy(&self);
    }
    return self;
}

vzt_proc_t *vzt_spawn_nowait(const char *bin, char *const argv[], char *const env_extra[],
                             const char *log_path)
{
    pid_t pid = s_start(bin, argv, env_extra, log_path, NULL);
    if (pid < 0)
        return NULL;
    vzt_proc_t *self = (vzt_proc_t *)zmalloc(sizeof *self);
    self->pid = pid;
    return self;
}

int vzt_proc_pid(const vzt_proc_t *self)
{
    return self->pid;
}

int vzt_proc_wait(vzt_proc_t *self, int timeout_ms)
{
    if (self->exited)
        return self->status;
    //  A pidfd becomes readable when the process exits: an event, not a sleep.
    int pidfd = (int)syscall(SYS_pidfd_open, self->pid, 0);
    int64_t until = zclock_mono() + timeout_ms;
    while (true) {
        int status;
        pid_t rc = waitpid(self->pid, &status, WNOHANG);
        if (rc == self->pid) {
            self->exited = true;
            self->status = s_status_code(status);
            break;
        }
        if (rc < 0 && errno != EINTR) {
            self->exited = true; //  not our child any more: nothing to wait for
            self->status = -ECHILD;
            break;
        }
        int64_t left = until - zclock_mono();
        if (left <= 0)
            break;
        if (pidfd >= 0) {
            struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
            poll(&pfd, 1, (int)left);
        } else {
            //  Old kernel: a bounded poll loop at 5 ms.
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return self->exited ? self->status : -ETIMEDOUT;
}

void vzt_proc_destroy(vzt_proc_t **self_p)
{
    assert(self_p);
    vzt_proc_t *self = *self_p;
    if (!self)
        return;
    if (!self->exited) {
        kill(self->pid, SIGTERM);
        if (vzt_proc_wait(self, 5000) == -ETIMEDOUT) {
            kill(self->pid, SIGKILL);
            vzt_proc_wait(self, 5000);
        }
    }
    free(self);
    *self_p = NULL;
}

typedef struct {
    char *data; //  heap buffer, NUL-terminated
    size_t len; //  bytes used
} s_buffer_t;

static size_t s_on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    s_buffer_t *buf = (s_buffer_t *)arg;
    size_t n = size * nmemb;
    char *grown = (char *)realloc(buf->data, buf->len + n + 1);
    assert(grown);
    buf->data = grown;
    memcpy(buf->data + buf->len, ptr, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
    return n;
}

int vzt_request(const char *method, const char *url, const char *const *headers, const void *body,
                size_t body_len, int timeout_ms, vzt_resp_t *resp)
{
    memset(resp, 0, sizeof *resp);
    s_buffer_t bbuf = {(char *)calloc(1, 1), 0}, hbuf = {(char *)calloc(1, 1), 0};
    assert(bbuf.data && hbuf.data);
    CURL *curl = curl_easy_init();
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    CURLcode rc = CURLE_FAILED_INIT;
    if (curl) {
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method ? method : "GET");
        if (method && strcmp(method, "HEAD") == 0)
            curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        if (body) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        }
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &bbuf);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_on_body);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &hbuf);
        rc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
        curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &resp->seconds);
        curl_easy_cleanup(curl);
    }
    curl_slist_free_all(list);
    resp->body = bbuf.data;
    resp->body_len = bbuf.len;
    resp->headers = hbuf.data;
    resp->headers_len = hbuf.len;
    return rc == CURLE_OK ? 0 : -1;
}

void vzt_resp_free(vzt_resp_t *resp)
{
    free(resp->body);
    free(resp->headers);
    memset(resp, 0, sizeof *resp);
}

int vzt_http(const char *method, const char *url, const char *body, long *status, char **body_p,
             int timeout_ms)
{
    vzt_resp_t resp;
    int rc = vzt_request(method, url, NULL, body, body ? strlen(body) : 0, timeout_ms, &resp);
    if (rc == 0 && status)
        *status = resp.status;
    if (rc == 0 && body_p) {
        *body_p = resp.body;
        resp.body = NULL;
    }
    vzt_resp_free(&resp);
    return rc;
}

bool vzt_wait_until(vzt_pred_fn *pred, void *arg, int timeout_ms)
{
    int64_t until = zclock_mono() + timeout_ms;
    int step = 1;
    while (!pred(arg)) {
        int64_t left = until - zclock_mono();
        if (left <= 0)
            return pred(arg); //  one last look at the deadline
        //  Short backoff: quick for conditions that are almost there,
        //  gentle on a loaded machine for those that take seconds.
        zclock_sleep((int)(left < step ? left : step));
        step = step * 2 > 50 ? 50 : step * 2;
    }
    return true;
}

typedef struct {
    int port;           //  metrics port
    const char *series; //  series as rendered
    double min;         //  wanted lower bound
} s_metric_goal_t;

static bool s_metric_reached(void *arg)
{
    s_metric_goal_t *goal = (s_metric_goal_t *)arg;
    double value = 0;
    return vzt_metric(goal->port, goal->series, &value) == 0 && value >= goal->min;
}

bool vzt_wait_metric(int port, const char *series, double min, int timeout_ms)
{
    s_metric_goal_t goal = {port, series, min};
    return vzt_wait_until(s_metric_reached, &goal, timeout_ms);
}

//  The whole file as a heap string (NULL when unreadable).
static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    s_buffer_t buf = {(char *)calloc(1, 1), 0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        s_on_body(chunk, 1, got, &buf);
    fclose(f);
    return buf.data;
}

bool vzt_file_has(const char *path, const char *needle)
{
    char *text = s_slurp(path);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

int vzt_log_clean(const char *path, char *why, size_t n)
{
    //  What ASan, LSan, UBSan and TSan print when they find something.
    static const char *const reports[] = {
        "ERROR: AddressSanitizer",  "ERROR: LeakSanitizer",
        "runtime error:",           "SUMMARY: UndefinedBehaviorSanitizer",
        "WARNING: ThreadSanitizer", NULL};
    char *text = path ? s_slurp(path) : NULL;
    int rc = 0;
    for (size_t i = 0; text && reports[i] && rc == 0; i++) {
        const char *hit = strstr(text, reports[i]);
        if (!hit)
            continue;
        const char *bol = hit;
        while (bol > text && bol[-1] != '\n')
            bol--;
        snprintf(why, n, "%s: %.*s", path, (int)strcspn(bol, "\n"), bol);
        rc = -1;
    }
    free(text);
    return rc;
}

//  The last lines of a log on stderr, for a failure the directory will not keep.
static void s_show_tail(const char *log)
{
    char *cmd = NULL;
    if (log && asprintf(&cmd, "tail -n 30 '%s' >&2", log) >= 0 && system(cmd) < 0)
        fprintf(stderr, "cannot show %s\n", log);
    free(cmd);
}

//  Judge an exited process: exit code and log. 0 or -1 (reason on stderr).
static int s_judge(const char *what, int status, int want_exit, const char *log)
{
    char why[512] = "";
    int rc = 0;
    if (status != want_exit) {
        snprintf(why, sizeof why, "exit %d, expected %d", status, want_exit);
        rc = -1;
    }
    if (vzt_log_clean(log, why, sizeof why) < 0)
        rc = -1;
    if (rc < 0) {
        fprintf(stderr, "harness: %s: %s\n", what, why);
        s_show_tail(log);
    }
    return rc;
}

int vzt_proc_stop(vzt_proc_t **self_p, const char *log, int want_exit)
{
    vzt_proc_t *self = *self_p;
    if (!self)
        return 0;
    if (!self->exited) {
        kill(self->pid, SIGTERM);
        if (vzt_proc_wait(self, 10000) == -ETIMEDOUT) {
            fprintf(stderr, "harness: pid %d ignored SIGTERM for 10 s\n", (int)self->pid);
            kill(self->pid, SIGKILL);
            vzt_proc_wait(self, 5000);
        }
    }
    char what[32];
    snprintf(what, sizeof what, "pid %d", (int)self->pid);
    int rc = s_judge(what, self->status, want_exit, log);
    vzt_proc_destroy(self_p);
    return rc;
}

int vzt_metrics_page(int port, char **page_p)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    long status = 0;
    *page_p = NULL;
    if (vzt_http("GET", url, NULL, &status, page_p, 5000) < 0 || status != 200) {
        free(*page_p);
        *page_p = NULL;
        return -1;
    }
    return 0;
}

const char *vzt_metrics_lack(const char *page, const char *const names[])
{
    for (size_t i = 0; names[i]; i++)
        if (!strstr(page, names[i]))
            return names[i];
    return NULL;
}

int vzt_metric(int port, const char *series, double *value)
{
    char *body = NULL;
    *value = 0;
    if (vzt_metrics_page(port, &body) < 0)
        return -1;
    //  A series starts a line and is followed by one space and the value.
    int rc = -ENOENT;
    size_t n = strlen(series);
    for (const char *line = body; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            *value = strtod(line + n + 1, NULL);
            rc = 0;
            break;
        }
    }
    free(body);
    return rc;
}

int vzt_keys(const char *dir, const char *const names[])
{
    for (size_t i = 0; names[i]; i++) {
        int rc = vz_curve_keygen(dir, names[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

vzt_proc_t *vzt_redis(const char *dir, int port, int ready_ms)
{
    char port_text[16], *log = NULL;
    snprintf(port_text, sizeof port_text, "%d", port);
    if (asprintf(&log, "%s/redis.log", dir) < 0)
        return NULL;
    char *const argv[] = {"redis-server", "--port", port_text,   "--bind",
                          "127.0.0.1",    "--save", "",          "--appendonly",
                          "no",           "--dir",  (char *)dir, NULL};
    vzt_proc_t *proc = vzt_spawn_nowait("/usr/bin/redis-server", argv, NULL, log);
    free(log);
    int64_t until = vz_now_ms() + ready_ms;
    while (proc && vz_now_ms() < until) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        bool ok = false;
        if (c && !c->err) {
            redisReply *reply = redisCommand(c, "PING");
            ok = reply && reply->type == REDIS_REPLY_STATUS;
            if (reply)
                freeReplyObject(reply);
        }
        if (c)
            redisFree(c);
        if (ok)
            return proc;
        //  Bounded wait for the next attempt; a process exit ends it early.
        if (vzt_proc_wait(proc, 50) != -ETIMEDOUT)
            break;
    }
    vzt_proc_destroy(&proc);
    return NULL;
}

const char *vzt_header(const char *headers, const char *name, char *out, size_t n)
{
    size_t nlen = strlen(name);
    for (const char *line = headers; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = len - (size_t)(v - line);
            if (vlen >= n)
                vlen = n - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
        line = eol ? eol + 2 : line + len;
    }
    return NULL;
}

//  Daemons under ASan on a loaded 2-core machine can take a while to start.
#define S_READY_MS 20000

vzt_proc_t *vzt_daemon(const char *dir, const char *name, const char *log_name, int broker_port,
                       int redis_port, int admin_port, char *const *more, bool wait)
{
    enum { S_COMMON = 6, S_MORE = 26 };
    char *env[S_COMMON + S_MORE + 1] = {0};
    size_t n = 0;
    int rc = asprintf(&env[n++], "VZ_CURVE_CERT=%s/keys/secret/%s.key", dir, name);
    rc |= asprintf(&env[n++], "VZ_CURVE_ALLOW_DIR=%s/keys/public", dir);
    rc |= asprintf(&env[n++], "VZ_BROKER_KEY=%s/keys/public/broker.key", dir);
    //  A VZ_REDIS_URL in more (a cluster) replaces the default, as do
    //  VZ_BROKER_ENDPOINTS (several brokers, a name).
    bool own_redis = false, own_brokers = false;
    for (size_t i = 0; more && more[i]; i++) {
        own_redis = own_redis || strncmp(more[i], "VZ_REDIS_URL=", 13) == 0;
        own_brokers = own_brokers || strncmp(more[i], "VZ_BROKER_ENDPOINTS=", 20) == 0;
    }
    if (!own_brokers)
        rc |= asprintf(&env[n++], "VZ_BROKER_ENDPOINTS=tcp://127.0.0.1:%d", broker_port);
    if (!own_redis)
        rc |= asprintf(&env[n++], "VZ_REDIS_URL=redis://127.0.0.1:%d", redis_port);
    rc |= asprintf(&env[n++], "VZ_ADMIN_PORT=%d", admin_port ? admin_port : vzt_free_port());
    assert(rc >= 0);
    for (size_t i = 0; more && more[i]; i++) {
        assert(i < S_MORE); //  a test passing more settings than this is a bug
        env[n++] = strdup(more[i]);
    }
    char *binname = NULL, *log = NULL;
    rc = asprintf(&binname, "vz-%s", name);
    rc |= asprintf(&log, "%s/%s.log", dir, log_name ? log_name : name);
    assert(rc >= 0);
    char *bin = vzt_bin(binname);
    char *const argv[] = {bin, NULL};
    vzt_proc_t *proc =
        wait ? vzt_spawn(bin, argv, env, log, S_READY_MS) : vzt_spawn_nowait(bin, argv, env, log);
    if (!proc && wait) {
        char *cmd = NULL;
        if (asprintf(&cmd, "tail -n 30 '%s' >&2", log) >= 0 && system(cmd) < 0)
            fprintf(stderr, "cannot show %s\n", log);
        free(cmd);
    }
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    free(binname);
    free(log);
    free(bin);
    return proc;
}

//  --------------------------------------------------------------------------
//  The mesh

#define S_MAX_INST 24 //  instances per mesh (broker, Redis, daemons, replicas)
#define S_MAX_ENV 24  //  settings per instance (vzt_daemon takes 26)

typedef struct {
    char tag[48];         //  instance name, also its log name
    char daemon[32];      //  vz-<daemon>; "redis" for Redis
    int admin_port;       //  VZ_ADMIN_PORT
    char *env[S_MAX_ENV]; //  its settings, owned, NULL-terminated
    vzt_proc_t *proc;     //  running process, NULL when stopped
    bool judged;          //  its last exit was already judged
} s_inst_t;

struct vzt_mesh_t {
    char *dir;                 //  temp dir: keys, policy, configs, logs
    int broker_port;           //  broker endpoint port
    int redis_port;            //  Redis port (reserved even without Redis)
    int http_port;             //  gateway public port
    char endpoint[64];         //  tcp://127.0.0.1:<broker_port>
    char url[64];              //  http://127.0.0.1:<http_port>
    char broker_key[41];       //  Z85
    s_inst_t inst[S_MAX_INST]; //  broker, Redis and daemons, in start order
    size_t count;              //  instances in use
    char **env;                //  copy of opts->env ({dir} expanded), NULL-terminated
    zhashx_t *certs;           //  identity -> zcert_t (loaded on demand)
    int failures;              //  daemons found unclean when stopped
};

static s_inst_t *s_find(const vzt_mesh_t *self, const char *tag)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->inst[i].tag, tag) == 0)
            return (s_inst_t *)&self->inst[i];
    return NULL;
}

//  text with every "{dir}" replaced by the mesh directory (heap).
static char *s_expand(const vzt_mesh_t *self, const char *text)
{
    char *out = strdup(text);
    for (char *hit = strstr(out, "{dir}"); hit; hit = strstr(out, "{dir}")) {
        char *next = zsys_sprintf("%.*s%s%s", (int)(hit - out), out, self->dir, hit + 5);
        free(out);
        out = next;
    }
    return out;
}

static bool s_env_has(char *const *env, const char *key)
{
    size_t klen = strcspn(key, "=");
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], key, klen) == 0 && env[i][klen] == '=')
            return true;
    return false;
}

static void s_env_add(char **env, size_t *n, char *entry)
{
    assert(*n + 1 < S_MAX_ENV); //  a test with more settings than this is a bug
    if (s_env_has(env, entry))  //  the first one given wins
        free(entry);
    else
        env[(*n)++] = entry;
}

//  The settings of a new instance: more, the mesh's for this daemon, then
//  the fixture's defaults (which the others may override).
static void s_inst_env(vzt_mesh_t *self, s_inst_t *inst, char *const *more)
{
    size_t n = 0, dlen = strlen(inst->daemon);
    for (size_t i = 0; more && more[i]; i++)
        s_env_add(inst->env, &n, s_expand(self, more[i]));
    for (size_t i = 0; self->env[i]; i++) {
        const char *entry = self->env[i];
        const char *colon = strchr(entry, ':');
        const char *eq = strchr(entry, '=');
        if (colon && eq && colon < eq) { //  "name:K=V" is for one daemon only
            if ((size_t)(colon - entry) != dlen || strncmp(entry, inst->daemon, dlen) != 0)
                continue;
            entry = colon + 1;
        }
        s_env_add(inst->env, &n, strdup(entry));
    }
    char *path = NULL;
    if (strcmp(inst->daemon, "broker") == 0) {
        s_env_add(inst->env, &n, zsys_sprintf("VZ_BROKER_BIND=%s", self->endpoint));
        s_env_add(inst->env, &n, zsys_sprintf("VZ_BROKER_POLICY=%s/policy.cfg", self->dir));
    } else if (strcmp(inst->daemon, "gateway") == 0) {
        s_env_add(inst->env, &n, zsys_sprintf("VZ_GATEWAY_PORT=%d", self->http_port));
        path = zsys_sprintf("%s/routes.cfg", self->dir);
        if (access(path, R_OK) == 0)
            s_env_add(inst->env, &n, zsys_sprintf("VZ_GATEWAY_ROUTES=%s", path));
    } else if (strcmp(inst->daemon, "ratelimit") == 0) {
        path = zsys_sprintf("%s/ratelimit.cfg", self->dir);
        if (access(path, R_OK) == 0)
            s_env_add(inst->env, &n, zsys_sprintf("VZ_RATELIMIT_POLICY=%s", path));
    }
    zstr_free(&path);
    inst->env[n] = NULL;
}

static int s_inst_start(vzt_mesh_t *self, s_inst_t *inst, bool wait)
{
    if (!inst)
        return -1; //  s_inst_new refused: tag taken or too many instances
    if (strcmp(inst->daemon, "redis") == 0)
        inst->proc = vzt_redis(self->dir, self->redis_port, S_READY_MS);
    else
        inst->proc = vzt_daemon(self->dir, inst->daemon, inst->tag, self->broker_port,
                                self->redis_port, inst->admin_port, inst->env, wait);
    inst->judged = false;
    if (!inst->proc)
        fprintf(stderr, "harness: %s did not start\n", inst->tag);
    return inst->proc ? 0 : -1;
}

static s_inst_t *s_inst_new(vzt_mesh_t *self, const char *daemon, const char *tag,
                            char *const *more)
{
    if (self->count == S_MAX_INST || s_find(self, tag))
        return NULL;
    s_inst_t *inst = &self->inst[self->count++];
    vz_strlcpy(inst->tag, tag, sizeof inst->tag);
    vz_strlcpy(inst->daemon, daemon, sizeof inst->daemon);
    inst->admin_port = vzt_free_port();
    if (strcmp(daemon, "redis") != 0)
        s_inst_env(self, inst, more);
    return inst;
}

//  Split a comma list into a NULL-terminated array of trimmed heap strings.
static char **s_split(const char *list)
{
    size_t cap = 2;
    for (const char *p = list; p && *p; p++)
        cap += *p == ',';
    char **out = (char **)calloc(cap, sizeof *out);
    size_t n = 0;
    for (const char *p = list; p && *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ",");
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0)
            out[n++] = zsys_sprintf("%.*s", (int)len, p);
        p += len;
    }
    return out;
}

static void s_free_list(char **list)
{
    for (size_t i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

//  The default call policy: everyone but the broker and the gateway serves
//  its own name; everyone may call every served name and the broker (the
//  broker too: it reports its own telemetry, broker_send_self).
static char *s_default_policy(char **names)
{
    char *served = strdup("broker");
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(names[i], "broker") == 0 || strcmp(names[i], "gateway") == 0)
            continue;
        char *next = zsys_sprintf("%s %s", served, names[i]);
        free(served);
        served = next;
    }
    char *text = strdup("identity\n");
    for (size_t i = 0; names[i]; i++) {
        bool serves = strcmp(names[i], "gateway") != 0 && strcmp(names[i], "broker") != 0;
        char *next = zsys_sprintf("%s    %s\n%s%s%s        call = \"%s\"\n", text, names[i],
                                  serves ? "        serve = \"" : "", serves ? names[i] : "",
                                  serves ? "\"\n" : "", served);
        free(text);
        text = next;
    }
    free(served);
    return text;
}

int vzt_mesh_write(const vzt_mesh_t *self, const char *name, const char *text)
{
    char *tmp = zsys_sprintf("%s/.%s.tmp", self->dir, name);
    char *path = zsys_sprintf("%s/%s", self->dir, name);
    FILE *f = fopen(tmp, "w");
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    zstr_free(&tmp);
    zstr_free(&path);
    return rc;
}

//  Keys, policy and files; the names of every identity in *names_p.
static int s_mesh_prepare(vzt_mesh_t *self, const vzt_mesh_opts_t *opts, char **daemons,
                          char ***names_p)
{
    //  Identities: broker, each daemon once (without "*N"), then the extras.
    char **extras = s_split(opts->identities);
    size_t cap = 2;
    for (size_t i = 0; daemons[i]; i++)
        cap++;
    for (size_t i = 0; extras[i]; i++)
        cap++;
    char **names = (char **)calloc(cap, sizeof *names);
    size_t n = 0;
    names[n++] = strdup("broker");
    for (size_t i = 0; daemons[i]; i++) {
        char *name = zsys_sprintf("%.*s", (int)strcspn(daemons[i], "*"), daemons[i]);
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(names[k], name) == 0;
        if (seen)
            free(name);
        else
            names[n++] = name;
    }
    for (size_t i = 0; extras[i]; i++)
        names[n++] = strdup(extras[i]);
    s_free_list(extras);
    *names_p = names;
    char *keys = zsys_sprintf("%s/keys", self->dir);
    int rc = vzt_keys(keys, (const char *const *)names);
    zstr_free(&keys);
    char *path = zsys_sprintf("%s/keys/public/broker.key", self->dir);
    if (rc == 0)
        rc = vz_curve_server_key(path, self->broker_key);
    zstr_free(&path);
    char *policy = opts->policy ? strdup(opts->policy) : s_default_policy(names);
    if (rc == 0)
        rc = vzt_mesh_write(self, "policy.cfg", policy);
    free(policy);
    for (size_t i = 0; opts->files && opts->files[i] && rc == 0; i += 2)
        rc = opts->files[i + 1] ? vzt_mesh_write(self, opts->files[i], opts->files[i + 1]) : -1;
    if (rc < 0)
        fprintf(stderr, "harness: cannot prepare keys, policy or files in %s\n", self->dir);
    return rc;
}

vzt_mesh_t *vzt_mesh_start(const vzt_mesh_opts_t *opts)
{
    vzt_mesh_t *self = (vzt_mesh_t *)zmalloc(sizeof *self);
    self->dir = vzt_tempdir(opts->tag ? opts->tag : "mesh");
    self->certs = zhashx_new();
    zhashx_set_destructor(self->certs, (zhashx_destructor_fn *)zcert_destroy);
    self->broker_port = vzt_free_port();
    self->redis_port = vzt_free_port();
    self->http_port = vzt_free_port();
    snprintf(self->endpoint, sizeof self->endpoint, "tcp://127.0.0.1:%d", self->broker_port);
    snprintf(self->url, sizeof self->url, "http://127.0.0.1:%d", self->http_port);
    size_t n = 0;
    while (opts->env && opts->env[n])
        n++;
    self->env = (char **)calloc(n + 1, sizeof *self->env);
    for (size_t i = 0; i < n; i++)
        self->env[i] = s_expand(self, opts->env[i]);
    char **daemons = s_split(opts->daemons), **names = NULL;
    int rc = self->dir ? s_mesh_prepare(self, opts, daemons, &names) : -1;

    //  Redis first, then the broker, then the daemons in order. Redis is
    //  started for every mesh (a few milliseconds) rather than guessed from
    //  the daemon names: which daemons need it is theirs to say
    //  (vz_daemon_spec_t.needs_redis), not a list kept again here.
    if (rc == 0 && !opts->no_redis)
        rc = s_inst_start(self, s_inst_new(self, "redis", "redis", NULL), true);
    if (rc == 0)
        rc = s_inst_start(self, s_inst_new(self, "broker", "broker", NULL), true);
    for (size_t i = 0; daemons[i] && rc == 0; i++) {
        char name[32];
        vz_strlcpy(name, daemons[i], sizeof name);
        char *star = strchr(name, '*');
        int replicas = star ? atoi(star + 1) : 0;
        if (star)
            *star = '\0';
        if (strcmp(name, "broker") == 0)
            continue;
        for (int r = 0; r < (replicas > 0 ? replicas : 1) && rc == 0; r++) {
            char tag[48];
            if (replicas > 0)
                snprintf(tag, sizeof tag, "%s.%d", name, r);
            else
                vz_strlcpy(tag, name, sizeof tag);
            s_inst_t *inst = s_inst_new(self, name, tag, NULL);
            rc = inst ? s_inst_start(self, inst, true) : -1;
        }
    }
    s_free_list(daemons);
    s_free_list(names);
    if (rc < 0)
        vzt_mesh_destroy(&self);
    return self;
}

//  Stop and judge one instance (unless already judged).
static int s_inst_stop(vzt_mesh_t *self, s_inst_t *inst)
{
    char *log = vzt_mesh_log(self, inst->tag);
    int rc = 0;
    if (inst->proc && inst->proc->exited && inst->judged) {
        vzt_proc_destroy(&inst->proc); //  the test judged this exit already
    } else if (inst->proc) {
        //  Exited on its own unasked (a crash) or still running: exit 0 expected.
        rc = vzt_proc_stop(&inst->proc, log, 0);
        if (rc < 0)
            fprintf(stderr, "harness: %s did not stop cleanly\n", inst->tag);
    }
    inst->judged = true;
    free(log);
    if (rc < 0)
        self->failures++;
    return rc;
}

static atomic_int s_unclean_meshes; //  meshes whose vzt_mesh_destroy returned -1

int vzt_result(int rc)
{
    return rc ? rc : atomic_load(&s_unclean_meshes) ? 1 : 0;
}

int vzt_mesh_destroy(vzt_mesh_t **self_p)
{
    vzt_mesh_t *self = *self_p;
    if (!self)
        return 0;
    for (size_t i = self->count; i-- > 0;) {
        s_inst_stop(self, &self->inst[i]);
        for (size_t k = 0; self->inst[i].env[k]; k++)
            free(self->inst[i].env[k]);
    }
    int rc = self->failures ? -1 : 0;
    if (rc < 0)
        atomic_fetch_add(&s_unclean_meshes, 1);
    if (rc < 0 || getenv("VZ_KEEP_TMP"))
        fprintf(stderr, "harness: mesh dir %s%s\n", self->dir,
                getenv("VZ_KEEP_TMP") ? " kept" : " removed");
    if (!getenv("VZ_KEEP_TMP"))
        vzt_rmrf(self->dir);
    s_free_list(self->env);
    zhashx_destroy(&self->certs);
    free(self->dir);
    free(self);
    *self_p = NULL;
    return rc;
}

const char *vzt_mesh_dir(const vzt_mesh_t *self)
{
    return self->dir;
}

char *vzt_mesh_path(const vzt_mesh_t *self, const char *rel)
{
    return zsys_sprintf("%s/%s", self->dir, rel);
}

int vzt_mesh_broker_port(const vzt_mesh_t *self)
{
    return self->broker_port;
}

const char *vzt_mesh_endpoint(const vzt_mesh_t *self)
{
    return self->endpoint;
}

const char *vzt_mesh_broker_key(const vzt_mesh_t *self)
{
    return self->broker_key;
}

int vzt_mesh_redis_port(const vzt_mesh_t *self)
{
    return self->redis_port;
}

int vzt_mesh_http_port(const vzt_mesh_t *self)
{
    return self->http_port;
}

const char *vzt_mesh_url(const vzt_mesh_t *self)
{
    return self->url;
}

int vzt_mesh_admin_port(const vzt_mesh_t *self, const char *tag)
{
    s_inst_t *inst = s_find(self, tag);
    return inst ? inst->admin_port : -1;
}

vzt_proc_t *vzt_mesh_proc(const vzt_mesh_t *self, const char *tag)
{
    s_inst_t *inst = s_find(self, tag);
    return inst ? inst->proc : NULL;
}

int vzt_mesh_pid(const vzt_mesh_t *self, const char *tag)
{
    vzt_proc_t *proc = vzt_mesh_proc(self, tag);
    return proc ? proc->pid : -1;
}

char *vzt_mesh_log(const vzt_mesh_t *self, const char *tag)
{
    return zsys_sprintf("%s/%s.log", self->dir, tag);
}

zcert_t *vzt_mesh_cert(vzt_mesh_t *self, const char *identity)
{
    zcert_t *cert = (zcert_t *)zhashx_lookup(self->certs, identity);
    if (!cert) {
        char err[256];
        char *path = zsys_sprintf("%s/keys/secret/%s.key", self->dir, identity);
        cert = vz_curve_cert_load(path, err, sizeof err);
        if (!cert)
            fprintf(stderr, "harness: cannot load %s: %s\n", path, err);
        else
            zhashx_insert(self->certs, identity, cert);
        zstr_free(&path);
    }
    return cert;
}

vz_client_t *vzt_mesh_client(vzt_mesh_t *self, const char *identity)
{
    vz_client_config_t config = {.endpoints = vzt_mesh_endpoint(self),
                                 .broker_key = vzt_mesh_broker_key(self),
                                 .cert = vzt_mesh_cert(self, identity)};
    return config.cert ? vz_client_new(&config) : NULL;
}

int vzt_directory(vz_client_t *client, const char *service, vz_broker_direct_t *list,
                  size_t max, size_t *n_p, char *code, size_t code_n)
{
    *n_p = 0;
    code[0] = '\0';
    vz_envelope_t req;
    vz_envelope_request(&req, VZ_BROKER_SERVICE, "directory", NULL);
    size_t len = 0;
    uint8_t *body = vz_broker_directory_request_encode(service, &len);
    req.body = body;
    req.body_len = len;
    vz_response_t *resp = NULL;
    int rc = vz_client_call(client, &req, 3000, &resp);
    free(body);
    if (rc < 0)
        return -1;
    bool direct = false;
    if (resp->env.kind == VZ_KIND_ERROR)
        vz_strlcpy(code, resp->env.error_code, code_n);
    else if (vz_broker_directory_decode(resp->env.body, resp->env.body_len, &direct, list, max,
                                        n_p, NULL) < 0)
        rc = -1;
    vz_response_destroy(&resp);
    return rc < 0 ? -1 : direct ? 1 : 0;
}

int vzt_mesh_stop(vzt_mesh_t *self, const char *tag)
{
    s_inst_t *inst = s_find(self, tag);
    if (!inst || !inst->proc)
        return -1;
    inst->judged = false;
    return s_inst_stop(self, inst);
}

int vzt_mesh_kill(vzt_mesh_t *self, const char *tag, int sig)
{
    s_inst_t *inst = s_find(self, tag);
    if (!inst || !inst->proc)
        return -1;
    kill(inst->proc->pid, sig);
    int status = vzt_proc_wait(inst->proc, 10000);
    char *log = vzt_mesh_log(self, tag);
    int rc = s_judge(tag, status, 128 + sig, log);
    free(log);
    inst->judged = true;
    vzt_proc_destroy(&inst->proc);
    if (rc < 0)
        self->failures++;
    return rc;
}

int vzt_mesh_wait(vzt_mesh_t *self, const char *tag, int timeout_ms)
{
    s_inst_t *inst = s_find(self, tag);
    if (!inst || !inst->proc)
        return -1;
    int status = vzt_proc_wait(inst->proc, timeout_ms);
    if (status == -ETIMEDOUT)
        return status;
    char *log = vzt_mesh_log(self, tag), why[512];
    int clean = vzt_log_clean(log, why, sizeof why);
    free(log);
    inst->judged = true;
    if (clean < 0) {
        fprintf(stderr, "harness: %s\n", why);
        self->failures++;
        return -1;
    }
    return status;
}

int vzt_mesh_restart(vzt_mesh_t *self, const char *tag)
{
    s_inst_t *inst = s_find(self, tag);
    if (!inst || (inst->proc && !inst->proc->exited))
        return -1;
    if (inst->proc && s_inst_stop(self, inst) < 0)
        return -1;
    return s_inst_start(self, inst, true);
}

vzt_proc_t *vzt_mesh_add(vzt_mesh_t *self, const char *daemon, const char *tag, char *const *more,
                         bool wait)
{
    s_inst_t *inst = s_inst_new(self, daemon, tag, more);
    if (!inst || s_inst_start(self, inst, wait) < 0)
        return NULL;
    return inst->proc;
}
