/*  test_redis - vz_redis against real redis-servers started on free ports
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Covers URL parsing, commands and error replies, EVALSHA with the NOSCRIPT
 *  fallback, the command timeout (a SIGSTOPped server), retry_ms spacing,
 *  and reconnection after the server is restarted on the same port; then
 *  over TLS: AUTH by password and by ACL user, refused credentials,
 *  certificate checks (unknown CA, wrong name), a client certificate,
 *  commands and a pipelined batch, and the redacted URL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vz_common.h"
#include "vz_redis.h"

#define START_MS 10000

typedef struct {
    vzt_proc_t *proc; //  redis-server (vzt_redis), NULL when stopped
    pid_t pid;        //  its pid, 0 when stopped
    int port;         //  its port
    char *dir;        //  its working directory
    char url[64];     //  redis://127.0.0.1:port
} server_t;

//  Start redis-server and wait until it answers PING (bounded, no sleep).
static void s_server_start(server_t *srv)
{
    srv->proc = vzt_redis(srv->dir, srv->port, START_MS);
    assert_non_null(srv->proc);
    srv->pid = vzt_proc_pid(srv->proc);
}

//  Kill it at once, even when SIGSTOPped.
static void s_server_stop(server_t *srv)
{
    if (!srv->proc)
        return;
    kill(srv->pid, SIGCONT);
    kill(srv->pid, SIGKILL);
    vzt_proc_destroy(&srv->proc);
    srv->pid = 0;
}

static int s_setup(void **state)
{
    server_t *srv = calloc(1, sizeof *srv);
    srv->dir = vzt_tempdir("redis");
    assert_non_null(srv->dir);
    srv->port = vzt_free_port();
    snprintf(srv->url, sizeof srv->url, "redis://127.0.0.1:%d", srv->port);
    s_server_start(srv);
    *state = srv;
    return 0;
}

static int s_teardown(void **state)
{
    server_t *srv = *state;
    s_server_stop(srv);
    vzt_rmrf(srv->dir);
    free(srv->dir);
    free(srv);
    return 0;
}

static redisReply *s_cmd(vz_redis_t *r, const char *a, const char *b, const char *c)
{
    const char *argv[3] = {a, b, c};
    int argc = c ? 3 : b ? 2 : 1;
    return vz_redis_command(r, argc, argv, NULL);
}

static void test_urls(void **state)
{
    const char *bad[] = {"",
                         "http://127.0.0.1:6379",
                         "redis://",
                         "redis://:6379",
                         "redis://host:0",
                         "redis://host:70000",
                         "redis://host:12x",
                         "redis://host:1/x",
                         "redis://user@host:1",
                         "redis://:@host:1",
                         "redis://:%zz@host:1",
                         "redis://h?ca_file=/x",
                         "rediss://h?bogus=1",
                         "rediss://h?ca_file=/nonexistent/ca.pem",
                         "rediss://h?cert_file=/nonexistent/c.pem",
                         "redis://[::1]:6379",
                         "redis://h:1?sentinel_password=pw",
                         "redis://s:1?sentinel=m&sentinel_user=u",
                         "redis://s:1?sentinel=m&sentinel_password=",
                         "redis://s:1?sentinel=m&sentinel_password=%zz",
                         NULL};
    for (size_t i = 0; bad[i]; i++) {
        errno = 0;
        vz_redis_t *r = vz_redis_new(bad[i], 20, 20, 0);
        if (r)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(errno, EINVAL);
    }
    const char *good[] = {"redis://127.0.0.1",
                          "redis://localhost:6380",
                          "redis://h:1/",
                          "redis://h:1/15",
                          "redis://:pw@h",
                          "redis://u:p%40ss@h:1/2",
                          "redis://u:a@b@h:1",
                          "rediss://h:6380",
                          "rediss://u:pw@h:1/3",
                          "redis://s:1,t:2?sentinel=m&sentinel_password=p%40w",
                          "redis://:pw@s:1?sentinel=m&sentinel_user=u&sentinel_password=x",
                          NULL};
    for (size_t i = 0; good[i]; i++) {
        vz_redis_t *r = vz_redis_new(good[i], 20, 20, 0);
        if (!r)
            fail_msg("refused %s", good[i]);
        assert_false(vz_redis_up(r));
        vz_redis_destroy(&r);
        assert_null(r);
    }
    vz_redis_destroy(&(vz_redis_t *){NULL});
}

//  A command (up to two arguments) whose reply is of type, and after
//  which the connection is up.
static void s_expect_type(vz_redis_t *r, const char *a, const char *b, int type)
{
    redisReply *reply = s_cmd(r, a, b, NULL);
    assert_non_null(reply);
    assert_int_equal(reply->type, type);
    freeReplyObject(reply);
    assert_true(vz_redis_up(r));
}

static void test_commands(void **state)
{
    server_t *srv = *state;
    vz_redis_t *r = vz_redis_new(srv->url, 200, 200, 0);
    assert_non_null(r);
    //  Binary-safe arguments with lens.
    const char *argv[] = {"SET", "bin", "a\0b"};
    const size_t lens[] = {3, 3, 3};
    redisReply *reply = vz_redis_command(r, 3, argv, lens);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    assert_true(vz_redis_up(r));
    reply = s_cmd(r, "GET", "bin", NULL);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_int_equal(reply->len, 3);
    assert_memory_equal(reply->str, "a\0b", 3);
    freeReplyObject(reply);
    //  An error reply is a reply, and the connection stays up.
    s_expect_type(r, "NOSUCHCOMMAND", NULL, REDIS_REPLY_ERROR);
    s_expect_type(r, "PING", NULL, REDIS_REPLY_STATUS);
    vz_redis_destroy(&r);

    //  /db selects the database.
    char url[80];
    snprintf(url, sizeof url, "%s/3", srv->url);
    r = vz_redis_new(url, 200, 200, 0);
    reply = s_cmd(r, "SET", "in3", "yes");
    freeReplyObject(reply);
    vz_redis_destroy(&r);
    r = vz_redis_new(srv->url, 200, 200, 0);
    reply = s_cmd(r, "EXISTS", "in3", NULL);
    assert_int_equal(reply->integer, 0);
    freeReplyObject(reply);
    reply = s_cmd(r, "SELECT", "3", NULL);
    freeReplyObject(reply);
    reply = s_cmd(r, "EXISTS", "in3", NULL);
    assert_int_equal(reply->integer, 1);
    freeReplyObject(reply);
    vz_redis_destroy(&r);
}

static void test_eval(void **state)
{
    server_t *srv = *state;
    vz_redis_t *r = vz_redis_new(srv->url, 200, 200, 0);
    vz_redis_script_t *script =
        vz_redis_script_new("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}");
    //  Our SHA is the one Redis computes.
    {
        redisReply *reply =
            s_cmd(r, "SCRIPT", "LOAD", "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}");
        assert_int_equal(reply->type, REDIS_REPLY_STRING);
        assert_string_equal(reply->str, vz_redis_script_sha(script));
        freeReplyObject(reply);
        reply = s_cmd(r, "SCRIPT", "FLUSH", NULL);
        freeReplyObject(reply);
    }
    const char *keys[] = {"counter"};
    const char *args[] = {"arg"};
    for (int i = 1; i <= 3; i++) {
        //  The first call meets NOSCRIPT (flushed above) and falls back to EVAL.
        redisReply *reply = vz_redis_eval(r, script, 1, keys, 1, args);
        assert_non_null(reply);
        assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
        assert_int_equal(reply->elements, 3);
        assert_string_equal(reply->element[0]->str, "counter");
        assert_string_equal(reply->element[1]->str, "arg");
        assert_int_equal(reply->element[2]->integer, i);
        freeReplyObject(reply);
    }
    //  A script error is an error reply, not NULL.
    vz_redis_script_t *bad = vz_redis_script_new("return redis.call('NOPE')");
    redisReply *reply = vz_redis_eval(r, bad, 0, NULL, 0, NULL);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    freeReplyObject(reply);
    //  Many arguments (beyond the stack array).
    const char *many[40];
    for (int i = 0; i < 40; i++)
        many[i] = "x";
    vz_redis_script_t *count = vz_redis_script_new("return #ARGV");
    reply = vz_redis_eval(r, count, 0, NULL, 40, many);
    assert_int_equal(reply->integer, 40);
    freeReplyObject(reply);
    vz_redis_script_destroy(&count);
    vz_redis_script_destroy(&bad);
    vz_redis_script_destroy(&script);
    assert_null(script);
    vz_redis_destroy(&r);
}

//  A pipelined batch: mixed scripts, replies in call order, NOSCRIPT after a
//  SCRIPT FLUSH answered by EVAL within the batch, error replies kept per
//  call; a hung server voids the whole batch (every reply NULL).
static void test_eval_batch(void **state)
{
    server_t *srv = *state;
    vz_redis_t *r = vz_redis_new(srv->url, 50, 50, 0);
    vz_redis_script_t *incr = vz_redis_script_new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    vz_redis_script_t *echo = vz_redis_script_new("return ARGV[1]");
    vz_redis_script_t *bad = vz_redis_script_new("return redis.call('NOPE')");
    redisReply *reply = s_cmd(r, "SCRIPT", "FLUSH", NULL);
    freeReplyObject(reply);
    reply = s_cmd(r, "DEL", "batch", NULL);
    freeReplyObject(reply);
    const char *keys[] = {"batch"};
    const char *one[] = {"1"}, *two[] = {"2"}, *word[] = {"hello"};
    vz_redis_call_t calls[] = {
        {incr, 1, keys, 1, one, NULL}, {echo, 0, NULL, 1, word, NULL},
        {incr, 1, keys, 1, two, NULL}, {bad, 0, NULL, 0, NULL, NULL},
        {incr, 1, keys, 1, one, NULL},
    };
    size_t n = sizeof calls / sizeof calls[0];
    assert_int_equal(vz_redis_eval_batch(r, calls, n), 0);
    assert_int_equal(calls[0].reply->integer, 1);
    assert_string_equal(calls[1].reply->str, "hello");
    assert_int_equal(calls[2].reply->integer, 3);
    assert_int_equal(calls[3].reply->type, REDIS_REPLY_ERROR);
    assert_int_equal(calls[4].reply->integer, 4);
    for (size_t i = 0; i < n; i++) {
        freeReplyObject(calls[i].reply);
        calls[i].reply = NULL;
    }
    //  Hung server: the batch fails as a whole and nothing half-read remains.
    kill(srv->pid, SIGSTOP);
    assert_true(vz_redis_eval_batch(r, calls, n) < 0);
    for (size_t i = 0; i < n; i++)
        assert_null(calls[i].reply);
    assert_false(vz_redis_up(r));
    kill(srv->pid, SIGCONT);
    int64_t until = vz_now_ms() + 5000;
    int rc = -1;
    while ((rc = vz_redis_eval_batch(r, calls, 1)) < 0 && vz_now_ms() < until)
        usleep(10000);
    assert_int_equal(rc, 0);
    //  "Some calls may have run": the stopped server still had the voided
    //  batch in its socket and ran it once resumed (4 + 1 + 2 + 1), or not.
    long long after = calls[0].reply->integer;
    assert_true(after == 5 || after == 9);
    freeReplyObject(calls[0].reply);
    vz_redis_script_destroy(&bad);
    vz_redis_script_destroy(&echo);
    vz_redis_script_destroy(&incr);
    vz_redis_destroy(&r);
}

//  State letter of pid from /proc/<pid>/stat ('T' = stopped), '?' if unknown.
static char s_proc_state(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    char state = '?';
    if (f && fgets(line, sizeof line, f)) {
        const char *paren = strrchr(line, ')'); //  "pid (comm) S ..."
        if (paren && paren[1] == ' ')
            state = paren[2];
    }
    if (f)
        fclose(f);
    return state;
}

static bool s_proc_stopped(void *pid)
{
    return s_proc_state(*(pid_t *)pid) == 'T';
}

//  A hung server (SIGSTOP) costs one command timeout: the command gives up
//  while the server is still stopped. The connection is then dropped, so
//  the late reply is never read as the answer to a later command.
static void test_timeout_and_recovery(void **state)
{
    server_t *srv = *state;
    vz_redis_t *r = vz_redis_new(srv->url, 50, 50, 100);
    redisReply *reply = s_cmd(r, "SET", "k", "before");
    freeReplyObject(reply);
    reply = s_cmd(r, "SET", "k2", "after");
    freeReplyObject(reply);
    kill(srv->pid, SIGSTOP);
    //  Stopped for sure before the command is written (the signal is async).
    vzt_wait_until(s_proc_stopped, &srv->pid, 1000);
    assert_int_equal(s_proc_state(srv->pid), 'T');
    reply = s_cmd(r, "GET", "k", NULL);
    assert_null(reply);
    assert_false(vz_redis_up(r));
    //  Nobody answered: the server is still stopped, so the timeout ended it.
    assert_int_equal(s_proc_state(srv->pid), 'T');
    //  Within retry_ms nothing is attempted: -EAGAIN says no connect was
    //  tried (a return code, not a stopwatch, so load cannot fail it).
    assert_int_equal(vz_redis_ensure(r), -EAGAIN);
    assert_null(s_cmd(r, "GET", "k", NULL));
    kill(srv->pid, SIGCONT);
    //  Back after retry_ms, with a fresh connection in sync.
    int64_t until = vz_now_ms() + 5000;
    while (!(reply = s_cmd(r, "GET", "k2", NULL)) && vz_now_ms() < until)
        usleep(10000);
    assert_non_null(reply);
    //  The late "before" (the reply to the abandoned GET k) is not misread.
    assert_string_equal(reply->str, "after");
    freeReplyObject(reply);
    assert_true(vz_redis_up(r));
    vz_redis_destroy(&r);
}

static void test_restart(void **state)
{
    server_t *srv = *state;
    vz_redis_t *r = vz_redis_new(srv->url, 50, 50, 0);
    redisReply *reply = s_cmd(r, "PING", NULL, NULL);
    freeReplyObject(reply);
    s_server_stop(srv);
    assert_null(s_cmd(r, "PING", NULL, NULL));
    assert_null(s_cmd(r, "PING", NULL, NULL)); //  refused at connect
    assert_true(vz_redis_ensure(r) < 0);
    assert_false(vz_redis_up(r));
    s_server_start(srv);
    s_expect_type(r, "PING", NULL, REDIS_REPLY_STATUS);
    vz_redis_destroy(&r);
}

// --------------------------------------------------------------------------
//  TLS, a password and ACL users
//
//  A second redis-server (Debian's is built with TLS) listens with TLS
//  only, requires a password for the default user and knows an ACL user
//  limited to keys "{auth}:*". The CA and the server certificate (for
//  127.0.0.1 and "redis.test") are made with the openssl command at setup.

#define S_PASS "s3cret:with@odd" //  the default user's password
#define S_PASS_URL "s3cret%3Awith%40odd"

typedef struct {
    char *dir;        //  certificates, logs
    int port;         //  the TLS port
    vzt_proc_t *proc; //  redis-server
} tls_server_t;

//  Run a shell command line in dir; 0 when it exited 0.
static int s_sh(const char *dir, const char *cmd)
{
    char *line = vzt_fmt("cd '%s' && %s >>openssl.log 2>&1", dir, cmd);
    int rc = system(line);
    free(line);
    return rc;
}

//  A CA, a server certificate for 127.0.0.1 and redis.test, a client
//  certificate, and a second CA the server does not use.
static void s_make_certs(const char *dir)
{
    const char *const steps[] = {
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=vz-test-ca "
        "-keyout ca.key -out ca.pem",
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
        "-keyout other.key -out other.pem",
        "openssl req -newkey rsa:2048 -nodes -subj /CN=redis.test -keyout server.key "
        "-out server.csr",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile san.ext -out server.pem",
        "openssl req -newkey rsa:2048 -nodes -subj /CN=vz-client -keyout client.key "
        "-out client.csr",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-out client.pem",
    };
    char *ext = vzt_fmt("%s/san.ext", dir);
    FILE *f = fopen(ext, "w");
    assert_non_null(f);
    fputs("subjectAltName=IP:127.0.0.1,DNS:redis.test\n", f);
    fclose(f);
    free(ext);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (s_sh(dir, steps[i]) != 0)
            fail_msg("certificate step failed: %s (see %s/openssl.log)", steps[i], dir);
}

static char *s_url(const tls_server_t *srv, const char *cred, const char *query)
{
    return vzt_fmt("rediss://%s%s127.0.0.1:%d/0?ca_file=%s/ca.pem%s", cred ? cred : "",
                   cred ? "@" : "", srv->port, srv->dir, query ? query : "");
}

typedef struct {
    vz_redis_t *r;
} ping_t;

static bool s_pong(void *arg)
{
    ping_t *ping = arg;
    const char *argv[] = {"PING"};
    redisReply *reply = vz_redis_command(ping->r, 1, argv, NULL);
    bool ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
    if (reply)
        freeReplyObject(reply);
    return ok;
}

static int s_tls_setup(void **state)
{
    tls_server_t *srv = calloc(1, sizeof *srv);
    assert_non_null(srv);
    srv->dir = vzt_tempdir("redistls");
    assert_non_null(srv->dir);
    s_make_certs(srv->dir);
    srv->port = vzt_free_port();
    char *port = vzt_fmt("%d", srv->port);
    char *cert = vzt_fmt("%s/server.pem", srv->dir), *key = vzt_fmt("%s/server.key", srv->dir);
    char *ca = vzt_fmt("%s/ca.pem", srv->dir), *log = vzt_fmt("%s/redis.log", srv->dir);
    char *const argv[] = {"redis-server",
                          "--port",
                          "0",
                          "--tls-port",
                          port,
                          "--bind",
                          "127.0.0.1",
                          "--tls-cert-file",
                          cert,
                          "--tls-key-file",
                          key,
                          "--tls-ca-cert-file",
                          ca,
                          "--tls-auth-clients",
                          "optional",
                          "--requirepass",
                          S_PASS,
                          "--user",
                          "authsvc",
                          "on",
                          ">authpw",
                          "~{auth}:*",
                          "+@all",
                          "--save",
                          "",
                          "--appendonly",
                          "no",
                          "--dir",
                          srv->dir,
                          NULL};
    srv->proc = vzt_spawn_nowait("/usr/bin/redis-server", argv, NULL, log);
    assert_non_null(srv->proc);
    free(port);
    free(cert);
    free(key);
    free(ca);
    free(log);
    *state = srv;
    //  Ready when an authenticated TLS PING answers.
    char *url = s_url(srv, ":" S_PASS_URL, NULL);
    ping_t ping = {vz_redis_new(url, 200, 500, 0)};
    assert_non_null(ping.r);
    free(url);
    bool up = vzt_wait_until(s_pong, &ping, START_MS);
    vz_redis_destroy(&ping.r);
    if (!up) {
        char *show = vzt_fmt("tail -n 5 '%s/redis.log' '%s/openssl.log' >&2", srv->dir, srv->dir);
        if (system(show) != 0)
            print_message("no logs\n");
        free(show);
    }
    if (!up)
        fail_msg("redis-server with TLS did not answer (see %s/redis.log)", srv->dir);
    return 0;
}

static int s_tls_teardown(void **state)
{
    tls_server_t *srv = *state;
    vzt_proc_destroy(&srv->proc);
    vzt_rmrf(srv->dir);
    free(srv->dir);
    free(srv);
    return 0;
}

//  The reply's type is t (and its string s when given); freed.
static void s_expect(redisReply *reply, int t, const char *s)
{
    assert_non_null(reply);
    if (reply->type != t || (s && (!reply->str || strncmp(reply->str, s, strlen(s)) != 0)))
        fail_msg("expected type %d %s, got type %d %s", t, s ? s : "", reply->type,
                 reply->str ? reply->str : "");
    freeReplyObject(reply);
}

static void test_password_over_tls(void **state)
{
    tls_server_t *srv = *state;
    char *url = s_url(srv, ":" S_PASS_URL, NULL);
    vz_redis_t *r = vz_redis_new(url, 200, 500, 0);
    assert_non_null(r);
    s_expect(s_cmd(r, "SET", "vz:k", "v1"), REDIS_REPLY_STATUS, "OK");
    s_expect(s_cmd(r, "GET", "vz:k", NULL), REDIS_REPLY_STRING, "v1");
    //  A value larger than one TLS record comes back whole.
    char *big = malloc(100001);
    assert_non_null(big);
    memset(big, 'x', 100000);
    big[100000] = '\0';
    s_expect(s_cmd(r, "SET", "vz:big", big), REDIS_REPLY_STATUS, "OK");
    redisReply *reply = s_cmd(r, "GET", "vz:big", NULL);
    assert_non_null(reply);
    assert_int_equal(reply->len, 100000);
    freeReplyObject(reply);
    free(big);
    //  A pipelined batch over TLS.
    vz_redis_script_t *script = vz_redis_script_new("return redis.call('INCR', KEYS[1])");
    const char *keys[] = {"vz:n"};
    vz_redis_call_t calls[3];
    for (size_t i = 0; i < 3; i++)
        calls[i] = (vz_redis_call_t){.script = script, .nkeys = 1, .keys = keys};
    assert_int_equal(vz_redis_eval_batch(r, calls, 3), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(calls[i].reply->type, REDIS_REPLY_INTEGER);
        assert_int_equal(calls[i].reply->integer, (long long)i + 1);
        freeReplyObject(calls[i].reply);
    }
    vz_redis_script_destroy(&script);
    vz_redis_destroy(&r);
    free(url);
}

//  An ACL user: its own keys only (least privilege), its password checked.
static void test_acl_user(void **state)
{
    tls_server_t *srv = *state;
    char *url = s_url(srv, "authsvc:authpw", NULL);
    vz_redis_t *r = vz_redis_new(url, 200, 500, 0);
    assert_non_null(r);
    s_expect(s_cmd(r, "SET", "{auth}:user:1", "a"), REDIS_REPLY_STATUS, "OK");
    s_expect(s_cmd(r, "GET", "vz:rl:x", NULL), REDIS_REPLY_ERROR, "NOPERM");
    assert_true(vz_redis_up(r));
    vz_redis_destroy(&r);
    free(url);
}

//  Refused: a wrong password, none at all, plain TCP to the TLS port.
static void test_refused_credentials(void **state)
{
    tls_server_t *srv = *state;
    const char *const creds[] = {":wrong", "authsvc:wrong", "nobody:authpw"};
    for (size_t i = 0; i < 3; i++) {
        char *url = s_url(srv, creds[i], NULL);
        vz_redis_t *r = vz_redis_new(url, 200, 500, 0);
        assert_non_null(r);
        assert_int_equal(vz_redis_ensure(r), -EACCES);
        assert_false(vz_redis_up(r));
        assert_null(s_cmd(r, "PING", NULL, NULL));
        vz_redis_destroy(&r);
        free(url);
    }
    //  No password: connected, but every command is refused by Redis.
    char *url = s_url(srv, NULL, NULL);
    vz_redis_t *r = vz_redis_new(url, 200, 500, 0);
    s_expect(s_cmd(r, "GET", "vz:k", NULL), REDIS_REPLY_ERROR, "NOAUTH");
    vz_redis_destroy(&r);
    free(url);
    url = vzt_fmt("redis://:%s@127.0.0.1:%d", S_PASS_URL, srv->port);
    r = vz_redis_new(url, 200, 300, 0);
    assert_non_null(r);
    assert_true(vz_redis_ensure(r) < 0);
    vz_redis_destroy(&r);
    free(url);
}

//  The certificate must chain to the CA given and carry the name asked.
static void test_certificate_checks(void **state)
{
    tls_server_t *srv = *state;
    char *urls[] = {
        vzt_fmt("rediss://:%s@127.0.0.1:%d?ca_file=%s/other.pem", S_PASS_URL, srv->port, srv->dir),
        s_url(srv, ":" S_PASS_URL, "&server_name=not-redis.test"),
        //  The system's store does not know the test CA.
        vzt_fmt("rediss://:%s@127.0.0.1:%d", S_PASS_URL, srv->port),
    };
    for (size_t i = 0; i < 3; i++) {
        vz_redis_t *r = vz_redis_new(urls[i], 200, 500, 0);
        assert_non_null(r);
        assert_int_equal(vz_redis_ensure(r), -ECONNREFUSED);
        vz_redis_destroy(&r);
        free(urls[i]);
    }
    //  The right name, and a client certificate presented.
    char *query = vzt_fmt("&server_name=redis.test&cert_file=%s/client.pem&key_file=%s/client.key",
                          srv->dir, srv->dir);
    char *url = s_url(srv, ":" S_PASS_URL, query);
    vz_redis_t *r = vz_redis_new(url, 200, 500, 0);
    assert_non_null(r);
    assert_int_equal(vz_redis_ensure(r), 0);
    s_expect(s_cmd(r, "PING", NULL, NULL), REDIS_REPLY_STATUS, "PONG");
    vz_redis_destroy(&r);
    free(url);
    free(query);
}

//  The password from a file (VZ_REDIS_PASSWORD_FILE) put into a URL
//  without one, percent-encoded: the TLS server takes it.
static void test_url_password(void **state)
{
    tls_server_t *srv = *state;
    char *plain = s_url(srv, NULL, NULL), url[512];
    assert_int_equal(vz_redis_url_password(plain, S_PASS, url, sizeof url), 0);
    assert_non_null(strstr(url, "rediss://:" S_PASS_URL "@127.0.0.1:"));
    vz_redis_t *r = vz_redis_new(url, 200, 500, 0);
    assert_non_null(r);
    s_expect(s_cmd(r, "PING", NULL, NULL), REDIS_REPLY_STATUS, "PONG");
    vz_redis_destroy(&r);
    free(plain);
    assert_int_equal(vz_redis_url_password("redis://authsvc@h:1/2", "a b", url, sizeof url), 0);
    assert_string_equal(url, "redis://authsvc:a%20b@h:1/2");
    assert_int_equal(vz_redis_url_password("redis://:x@h", "p", url, sizeof url), -EINVAL);
    assert_int_equal(vz_redis_url_password("http://h", "p", url, sizeof url), -EINVAL);
    assert_int_equal(vz_redis_url_password("redis://h", "p", url, 10), -ENAMETOOLONG);
}

static void test_redact(void **state)
{
    (void)state;
    //  The userinfo's password, and the Sentinels' wherever it stands in the query.
    const char *const cases[][2] = {
        {"rediss://u:secret@h:6380/1?ca_file=/x", "rediss://u:***@h:6380/1?ca_file=/x"},
        {"redis://:p@ss@h", "redis://:***@h"},
        {"redis://h:6379/0", "redis://h:6379/0"},
        {"redis://:pw@s:1?sentinel=m&sentinel_password=s3c&x=1",
         "redis://:***@s:1?sentinel=m&sentinel_password=***&x=1"},
        {"redis://s:1?sentinel_password=s3c&sentinel=m",
         "redis://s:1?sentinel_password=***&sentinel=m"},
        {"redis://s:1?sentinel=m&my_sentinel_password=x",
         "redis://s:1?sentinel=m&my_sentinel_password=x"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vz_redis_redact(cases[i][0], out, sizeof out);
        assert_string_equal(out, cases[i][1]);
    }
    vz_redis_redact("redis://s:1?sentinel=m&sentinel_password=s3c", out, 30);
    assert_null(strstr(out, "s3c"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_eval_batch),
        cmocka_unit_test(test_timeout_and_recovery),
        cmocka_unit_test(test_restart),
    };
    const struct CMUnitTest tls[] = {
        cmocka_unit_test(test_password_over_tls),   cmocka_unit_test(test_acl_user),
        cmocka_unit_test(test_refused_credentials), cmocka_unit_test(test_certificate_checks),
        cmocka_unit_test(test_url_password),        cmocka_unit_test(test_redact),
    };
    int failed = cmocka_run_group_tests(tests, s_setup, s_teardown);
    return failed + cmocka_run_group_tests(tls, s_tls_setup, s_tls_teardown);
}
