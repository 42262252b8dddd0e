/*  test_redis_sentinel - vz_redis following a Sentinel-managed primary through a failover
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A primary, its replica and one Sentinel (redis-server --sentinel) on
 *  free loopback ports, each behind a password (requirepass; the Sentinel
 *  its own, and auth-pass for the primary). A client whose URL names the
 *  Sentinel without its password or with a wrong one is refused
 *  (-EACCES, not up); with sentinel_password it writes to the primary;
 *  SENTINEL FAILOVER promotes the replica; the client's next writes land
 *  on the new primary (the old one answers READONLY or is re-resolved),
 *  batches too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "vz_common.h"
#include "vz_redis.h"

#define WAIT_MS 20000
#define DATA_PW "data-pw"        //  the primary's and replica's requirepass
#define SENT_PW "sent@pw"        //  the Sentinel's requirepass
#define SENT_PW_URL "sent%%40pw" //  as the URL carries it, in a printf format

typedef struct {
    vzt_proc_t *proc[3]; //  primary, replica, Sentinel
    int port[3];         //  their ports
    char *dir;           //  their files
    vz_redis_t *redis;   //  the client under test
} sentinel_t;

//  The node's INFO (or other) reply contains needle. Ports of the data
//  nodes and the Sentinel's both work: each is sent its own password.
static bool s_says(int port, const char *cmd, const char *needle)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool yes = false;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "AUTH %s", DATA_PW);
        if (r && r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            r = redisCommand(c, "AUTH %s", SENT_PW);
        }
        if (r)
            freeReplyObject(r);
        r = redisCommand(c, cmd);
        yes = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
              strstr(r->str, needle);
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return yes;
}

static bool s_pong(void *arg)
{
    return s_says(*(int *)arg, "PING", "PONG");
}

static bool s_replica_synced(void *arg)
{
    return s_says(*(int *)arg, "INFO replication", "master_link_status:up");
}

static bool s_sentinel_sees_replica(void *arg)
{
    return s_says(*(int *)arg, "INFO sentinel", "slaves=1");
}

static vzt_proc_t *s_start(sentinel_t *st, int i, char *const *extra, int nextra)
{
    char *dir = vzt_fmt("%s/%d", st->dir, i), *port = vzt_fmt("%d", st->port[i]);
    char *log = vzt_fmt("%s/redis.log", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    char *argv[20] = {"redis-server"};
    int n = 1;
    if (i == 2) { //  a Sentinel reads (and rewrites) its config file
        char *conf = vzt_fmt("%s/sentinel.conf", dir);
        FILE *f = fopen(conf, "w");
        assert_non_null(f);
        fprintf(f,
                "port %s\nbind 127.0.0.1\ndir %s\nrequirepass %s\n"
                "sentinel monitor vz 127.0.0.1 %d 1\nsentinel auth-pass vz %s\n"
                "sentinel down-after-milliseconds vz 1000\nsentinel failover-timeout vz 5000\n",
                port, dir, SENT_PW, st->port[0], DATA_PW);
        fclose(f);
        argv[n++] = conf;
        argv[n++] = "--sentinel";
    } else {
        char *const base[] = {"--port",        port,    "--bind",       "127.0.0.1",
                              "--save",        "",      "--dir",        dir,
                              "--requirepass", DATA_PW, "--masterauth", DATA_PW};
        for (int k = 0; k < 12; k++)
            argv[n++] = base[k];
    }
    for (int k = 0; k < nextra; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    vzt_proc_t *proc = vzt_spawn_nowait("/usr/bin/redis-server", argv, NULL, log);
    assert_non_null(proc);
    assert_true(vzt_wait_until(s_pong, &st->port[i], WAIT_MS));
    if (i == 2)
        free(argv[1]);
    free(dir), free(port), free(log);
    return proc;
}

static int s_setup(void **state)
{
    sentinel_t *st = calloc(1, sizeof *st);
    assert_non_null(st);
    *state = st;
    st->dir = vzt_tempdir("sentinel");
    for (int i = 0; i < 3; i++)
        st->port[i] = vzt_free_port();
    st->proc[0] = s_start(st, 0, NULL, 0);
    char *primary = vzt_fmt("127.0.0.1 %d", st->port[0]);
    char *replicaof[] = {"--replicaof", primary};
    st->proc[1] = s_start(st, 1, replicaof, 2);
    free(primary);
    assert_true(vzt_wait_until(s_replica_synced, &st->port[1], WAIT_MS));
    st->proc[2] = s_start(st, 2, NULL, 0);
    assert_true(vzt_wait_until(s_sentinel_sees_replica, &st->port[2], WAIT_MS));
    char url[128];
    snprintf(url, sizeof url,
             "redis://:" DATA_PW "@127.0.0.1:%d?sentinel=vz&sentinel_password=" SENT_PW_URL,
             st->port[2]);
    st->redis = vz_redis_new(url, 1000, 1000, 0);
    assert_non_null(st->redis);
    return 0;
}

static int s_teardown(void **state)
{
    sentinel_t *st = *state;
    vz_redis_destroy(&st->redis);
    for (int i = 0; i < 3; i++) {
        if (st->proc[i])
            kill(vzt_proc_pid(st->proc[i]), SIGKILL);
        vzt_proc_destroy(&st->proc[i]);
    }
    vzt_rmrf(st->dir);
    free(st->dir);
    free(st);
    return 0;
}

//  SET key value through the client; true when Redis answered OK.
static bool s_set(vz_redis_t *redis, const char *key, const char *value)
{
    const char *argv[] = {"SET", key, value};
    redisReply *r = vz_redis_command(redis, 3, argv, NULL);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

typedef struct {
    sentinel_t *st; //  the setup
    int tries;      //  writes tried
} write_arg_t;

static bool s_write_lands_on_replica(void *arg)
{
    write_arg_t *w = arg;
    char value[16];
    snprintf(value, sizeof value, "v%d", ++w->tries);
    if (!s_set(w->st->redis, "vz:sentinel:k", value))
        return false;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "GET vz:sentinel:k");
    //  Written on the former replica, the primary now.
    return s_says(w->st->port[1], cmd, value);
}

static bool s_failover_started(void *arg)
{
    return s_says(*(int *)arg, "SENTINEL FAILOVER vz", "OK");
}

//  The Sentinel refuses a client without its password, or with a wrong
//  one: a clear -EACCES, and never up (a daemon stays not ready).
static void test_sentinel_password_refused(void **state)
{
    sentinel_t *st = *state;
    const char *queries[] = {"", "&sentinel_password=wrong",
                             "&sentinel_user=default&sentinel_password=wrong"};
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        char *url =
            vzt_fmt("redis://:" DATA_PW "@127.0.0.1:%d?sentinel=vz%s", st->port[2], queries[i]);
        vz_redis_t *redis = vz_redis_new(url, 1000, 1000, 0);
        assert_non_null(redis);
        assert_int_equal(vz_redis_ensure(redis), -EACCES);
        assert_false(vz_redis_up(redis));
        const char *argv[] = {"PING"};
        assert_null(vz_redis_command(redis, 1, argv, NULL));
        assert_false(vz_redis_up(redis));
        vz_redis_destroy(&redis);
        free(url);
    }
    //  The right one, as an ACL user too.
    char *url = vzt_fmt("redis://:" DATA_PW "@127.0.0.1:%d?sentinel=vz&sentinel_user=default"
                        "&sentinel_password=" SENT_PW_URL,
                        st->port[2]);
    vz_redis_t *redis = vz_redis_new(url, 1000, 1000, 0);
    free(url);
    assert_non_null(redis);
    assert_int_equal(vz_redis_ensure(redis), 0);
    assert_true(vz_redis_up(redis));
    vz_redis_destroy(&redis);
}

static void test_follows_failover(void **state)
{
    sentinel_t *st = *state;
    assert_true(s_set(st->redis, "vz:sentinel:k", "before"));
    assert_true(s_says(st->port[0], "GET vz:sentinel:k", "before"));
    //  Refused (NOGOODSLAVE) until the Sentinel has the replica's details.
    assert_true(vzt_wait_until(s_failover_started, &st->port[2], WAIT_MS));
    assert_true(vzt_wait_until(s_replica_synced, &st->port[0], WAIT_MS)); //  demoted
    write_arg_t w = {st, 0};
    assert_true(vzt_wait_until(s_write_lands_on_replica, &w, WAIT_MS));
    //  A batch goes to the new primary too.
    vz_redis_script_t *script = vz_redis_script_new("return redis.call('INCR', KEYS[1])");
    const char *keys[] = {"vz:sentinel:n"};
    vz_redis_call_t calls[3];
    for (int i = 0; i < 3; i++)
        calls[i] = (vz_redis_call_t){.script = script, .nkeys = 1, .keys = keys};
    assert_int_equal(vz_redis_eval_batch(st->redis, calls, 3), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(calls[i].reply->type, REDIS_REPLY_INTEGER);
        assert_int_equal(calls[i].reply->integer, i + 1);
        freeReplyObject(calls[i].reply);
    }
    vz_redis_script_destroy(&script);
    printf("sentinel: %d writes tried until one landed on the promoted replica\n", w.tries);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sentinel_password_refused),
                                       cmocka_unit_test(test_follows_failover)};
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
