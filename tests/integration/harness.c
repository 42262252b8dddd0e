/*  harness - start real daemons for integration tests and wait on readiness
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Readiness is the s6 notification-fd protocol: the child gets the write
 *  end of a pipe as VZ_NOTIFY_FD and writes "\n" once ready; EOF on the pipe
 *  before that means it exited. Children die with the test process
 *  (PR_SET_PDEATHSIG), so a failed or crashed test leaves nothing behind.
 */
#include "harness.h"

#include <assert.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vz_common.h"
#include "vz_curve.h"
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

int vzt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
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

int vzt_http(const char *method, const char *url, const char *body, long *status, char **body_p,
             int timeout_ms)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return -1;
    s_buffer_t buf = {(char *)calloc(1, 1), 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method ? method : "GET");
    if (method && strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK && status)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        free(buf.data);
        return -1;
    }
    if (body_p)
        *body_p = buf.data;
    else
        free(buf.data);
    return 0;
}

int vzt_metric(int port, const char *series, double *value)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    char *body = NULL;
    long status = 0;
    *value = 0;
    if (vzt_http("GET", url, NULL, &status, &body, 5000) < 0 || status != 200) {
        free(body);
        return -1;
    }
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
    rc |= asprintf(&env[n++], "VZ_BROKER_ENDPOINTS=tcp://127.0.0.1:%d", broker_port);
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
