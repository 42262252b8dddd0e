/*  test_stream - vz_stream, the consumer group module against a real redis-server
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One throwaway redis-server (the integration harness's vzt_redis) on a
 *  free port; each test uses its own stream key. Crashed consumers are
 *  played by raw XREADGROUP calls that read entries and never ack them.
 *  Every wait is vzt_wait_until over vz_stream_poll, bounded; where the
 *  module decides by time (retry_ms), the test passes the time itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vz_clock.h"
#include "vz_stream.h"

#define WAIT_MS 5000

static char *s_dir;
static vzt_proc_t *s_server;
static char s_url[64];
static vz_redis_t *s_raw; //  the test's own connection

typedef struct {
    int calls;        //  fn calls
    int refuse;       //  refuse this many calls first (-1: always)
    bool self_ack;    //  XACK from fn and answer ACKED
    char last[64];    //  last entry's "n" field
    char seen[8][64]; //  every "n" in order
} sink_t;

static vz_stream_verdict_t s_fn(void *arg, const vz_stream_entry_t *e)
{
    sink_t *sink = arg;
    size_t len = 0;
    const char *n = vz_stream_field(e, "n", &len);
    assert_non_null(n);
    snprintf(sink->last, sizeof sink->last, "%.*s", (int)len, n);
    if (sink->calls < 8)
        snprintf(sink->seen[sink->calls], sizeof sink->seen[0], "%s", sink->last);
    sink->calls++;
    if (sink->refuse < 0)
        return VZ_STREAM_RETRY;
    if (sink->refuse > 0) {
        sink->refuse--;
        return VZ_STREAM_RETRY;
    }
    if (sink->self_ack) {
        const char *argv[] = {"XACK", e->stream, e->group, e->id};
        redisReply *r = vz_redis_command(s_raw, 4, argv, NULL);
        assert_non_null(r);
        freeReplyObject(r);
        return VZ_STREAM_ACKED;
    }
    return VZ_STREAM_ACK;
}

static long long s_int(int argc, const char **argv)
{
    redisReply *r = vz_redis_command(s_raw, argc, argv, NULL);
    assert_non_null(r);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

static void s_xadd(const char *stream, const char *n)
{
    const char *argv[] = {"XADD", stream, "*", "n", n, "pad", "x"};
    redisReply *r = vz_redis_command(s_raw, 7, argv, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
}

//  A consumer that reads count entries and dies holding them.
static void s_read_and_die(const char *stream, const char *consumer, const char *count)
{
    const char *create[] = {"XGROUP", "CREATE", stream, "g", "0", "MKSTREAM"};
    redisReply *r = vz_redis_command(s_raw, 6, create, NULL);
    freeReplyObject(r);
    const char *argv[] = {"XREADGROUP", "GROUP",   "g",    consumer, "COUNT",
                          count,        "STREAMS", stream, ">"};
    r = vz_redis_command(s_raw, 9, argv, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

static long long s_pending(const char *stream)
{
    const char *argv[] = {"XPENDING", stream, "g"};
    redisReply *r = vz_redis_command(s_raw, 3, argv, NULL);
    assert_non_null(r);
    long long n = r->type == REDIS_REPLY_ARRAY ? r->element[0]->integer : -1;
    freeReplyObject(r);
    return n;
}

typedef struct {
    vz_stream_t *stream;
    sink_t *sink;
    int want_calls;
    const char *key;
    long long want_pending;
} until_t;

//  Poll once; true when fn was called want_calls times and the group's
//  pending count is want_pending.
static bool s_until(void *arg)
{
    until_t *u = arg;
    vz_stream_poll(u->stream, vz_clock_mono_ms());
    return u->sink->calls >= u->want_calls && s_pending(u->key) == u->want_pending;
}

static vz_stream_stats_t s_stats(const vz_stream_t *s)
{
    vz_stream_stats_t st;
    vz_stream_stats(s, &st);
    return st;
}

//  vz_stream borrows its connection: the tests keep one per stream and
//  free it with the stream through this table.
static vz_redis_t *s_conns[16];
static size_t s_nconns;

static vz_stream_t *s_open(const char *key, const char *consumer, sink_t *sink, int idle_ms)
{
    vz_redis_t *redis = vz_redis_new(s_url, 500, 500, 50);
    assert_non_null(redis);
    s_conns[s_nconns++] = redis;
    vz_stream_config_t c = {.stream = key,
                            .group = "g",
                            .consumer = consumer,
                            .count = 2,
                            .claim_idle_ms = idle_ms,
                            .retry_ms = 20,
                            .max_deliveries = 3};
    vz_stream_t *stream = vz_stream_new(redis, &c, s_fn, sink);
    assert_non_null(stream);
    return stream;
}

static int s_setup(void **state)
{
    s_dir = vzt_tempdir("stream");
    int port = vzt_free_port();
    s_server = vzt_redis(s_dir, port, 10000);
    assert_non_null(s_server);
    snprintf(s_url, sizeof s_url, "redis://127.0.0.1:%d", port);
    s_raw = vz_redis_new(s_url, 500, 500, 50);
    assert_non_null(s_raw);
    return 0;
}

static int s_teardown(void **state)
{
    for (size_t i = 0; i < s_nconns; i++)
        vz_redis_destroy(&s_conns[i]);
    vz_redis_destroy(&s_raw);
    vzt_proc_destroy(&s_server);
    vzt_rmrf(s_dir);
    free(s_dir);
    return 0;
}

static void test_config(void **state)
{
    sink_t sink = {0};
    vz_stream_config_t c = {.stream = "s", .group = "g"};
    assert_null(vz_stream_new(s_raw, &c, s_fn, &sink));
    assert_int_equal(errno, EINVAL);
    c.consumer = "";
    assert_null(vz_stream_new(s_raw, &c, s_fn, &sink));
    c.consumer = "c";
    assert_null(vz_stream_new(NULL, &c, s_fn, &sink));
    vz_stream_t *s = vz_stream_new(s_raw, &c, s_fn, &sink);
    assert_non_null(s);
    vz_stream_destroy(&s);
    assert_null(s);
    vz_stream_destroy(&s);
}

static void test_new_entries_in_order(void **state)
{
    sink_t sink = {0};
    vz_stream_t *s = s_open("t:new", "c1", &sink, 30000);
    s_xadd("t:new", "1");
    s_xadd("t:new", "2");
    s_xadd("t:new", "3");
    //  Before any poll: all three are the backlog (lag).
    assert_int_equal(vz_stream_poll(s, vz_clock_mono_ms()), 2); //  creates the group, COUNT 2
    until_t u = {s, &sink, 3, "t:new", 0};
    assert_true(vzt_wait_until(s_until, &u, WAIT_MS));
    assert_string_equal(sink.seen[0], "1");
    assert_string_equal(sink.seen[1], "2");
    assert_string_equal(sink.seen[2], "3");
    assert_int_equal(sink.calls, 3);
    assert_int_equal(vz_stream_pending(s), 0);
    assert_int_equal(vz_stream_backlog(s), 0);
    s_xadd("t:new", "4");
    assert_int_equal(vz_stream_backlog(s), 1);
    vz_stream_stats_t st = s_stats(s);
    assert_int_equal(st.settled, 3);
    vz_stream_destroy(&s);
}

static void test_refused_then_retried(void **state)
{
    sink_t sink = {.refuse = 1, .self_ack = true};
    vz_stream_t *s = s_open("t:retry", "c1", &sink, 30000);
    s_xadd("t:retry", "a");
    //  The time is the test's: the refusal at t waits retry_ms (20), no more.
    int64_t t = vz_clock_mono_ms();
    assert_int_equal(vz_stream_poll(s, t), 0);
    assert_int_equal(sink.calls, 1);
    assert_int_equal(vz_stream_pending(s), 1); //  left pending
    assert_int_equal(vz_stream_poll(s, t + 19), 0);
    assert_int_equal(sink.calls, 1); //  not yet due
    //  Re-read from this consumer's own pending list at t + retry_ms.
    assert_int_equal(vz_stream_poll(s, t + 20), 1);
    assert_int_equal(sink.calls, 2);
    assert_string_equal(sink.last, "a");
    assert_int_equal(s_pending("t:retry"), 0);
    vz_stream_stats_t st = s_stats(s);
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.settled, 1);
    vz_stream_destroy(&s);
}

//  An entry taken LATER and failed (vz_stream_retry_later at t) is offered
//  again from t + retry_ms on; acked with vz_stream_ack it is settled.
static vz_stream_verdict_t s_later(void *arg, const vz_stream_entry_t *e)
{
    sink_t *sink = arg;
    snprintf(sink->last, sizeof sink->last, "%s", e->id);
    sink->calls++;
    return VZ_STREAM_LATER;
}

static void test_later_then_retry_later(void **state)
{
    vz_redis_t *redis = vz_redis_new(s_url, 500, 500, 50);
    assert_non_null(redis);
    s_conns[s_nconns++] = redis;
    sink_t sink = {0};
    vz_stream_config_t c = {.stream = "t:later", .group = "g", .consumer = "c1", .retry_ms = 100};
    vz_stream_t *s = vz_stream_new(redis, &c, s_later, &sink);
    assert_non_null(s);
    s_xadd("t:later", "l");
    int64_t t = vz_clock_mono_ms();
    assert_int_equal(vz_stream_poll(s, t), 0);
    assert_int_equal(sink.calls, 1);
    vz_stream_retry_later(s, t + 5);
    assert_int_equal(vz_stream_poll(s, t + 104), 0);
    assert_int_equal(sink.calls, 1); //  due at t + 105
    assert_int_equal(vz_stream_poll(s, t + 105), 0);
    assert_int_equal(sink.calls, 2); //  offered again, still in flight
    assert_int_equal(vz_stream_ack(s, sink.last), 0);
    assert_int_equal(s_pending("t:later"), 0);
    vz_stream_stats_t st = s_stats(s);
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.settled, 1);
    vz_stream_destroy(&s);
}

static void test_restart_resumes_own_pending(void **state)
{
    //  "c1" read two entries and crashed; it restarts under the same name.
    s_xadd("t:own", "x");
    s_xadd("t:own", "y");
    s_read_and_die("t:own", "c1", "2");
    sink_t sink = {0};
    vz_stream_t *s = s_open("t:own", "c1", &sink, 30000); //  no claim for 30 s
    assert_int_equal(vz_stream_poll(s, vz_clock_mono_ms()), 2);
    assert_int_equal(sink.calls, 2);
    assert_int_equal(s_pending("t:own"), 0);
    //  Once each: nothing more comes.
    assert_int_equal(vz_stream_poll(s, vz_clock_mono_ms()), 0);
    assert_int_equal(sink.calls, 2);
    vz_stream_destroy(&s);
}

static void test_claims_a_dead_consumer(void **state)
{
    s_xadd("t:claim", "z");
    s_read_and_die("t:claim", "dead", "1");
    sink_t sink = {0};
    vz_stream_t *s = s_open("t:claim", "alive", &sink, 100);
    until_t u = {s, &sink, 1, "t:claim", 0};
    assert_true(vzt_wait_until(s_until, &u, WAIT_MS));
    assert_int_equal(sink.calls, 1);
    assert_string_equal(sink.last, "z");
    vz_stream_stats_t st = s_stats(s);
    assert_int_equal(st.claimed, 1);
    vz_stream_destroy(&s);
}

static void test_poison_goes_dead(void **state)
{
    sink_t sink = {.refuse = -1};
    vz_stream_t *s = s_open("t:poison", "c1", &sink, 50);
    s_xadd("t:poison", "p");
    //  Refused every time; after 3 deliveries it is moved and acked.
    until_t u = {s, &sink, 1, "t:poison", 0};
    assert_true(vzt_wait_until(s_until, &u, WAIT_MS));
    const char *xlen[] = {"XLEN", "t:poison:dead"};
    assert_int_equal(s_int(2, xlen), 1);
    vz_stream_stats_t st = s_stats(s);
    assert_int_equal(st.dead, 1);
    assert_true(sink.calls >= 1 && sink.calls <= 3);
    vz_stream_destroy(&s);
}

static void test_redis_away(void **state)
{
    sink_t sink = {0};
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", vzt_free_port());
    vz_redis_t *redis = vz_redis_new(url, 100, 100, 10);
    vz_stream_config_t c = {.stream = "t:away", .group = "g", .consumer = "c"};
    vz_stream_t *s = vz_stream_new(redis, &c, s_fn, &sink);
    assert_true(vz_stream_poll(s, vz_clock_mono_ms()) < 0);
    assert_true(vz_stream_pending(s) < 0);
    assert_true(vz_stream_backlog(s) < 0);
    assert_int_equal(sink.calls, 0);
    vz_stream_destroy(&s);
    vz_redis_destroy(&redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_new_entries_in_order),
        cmocka_unit_test(test_refused_then_retried),
        cmocka_unit_test(test_later_then_retry_later),
        cmocka_unit_test(test_restart_resumes_own_pending),
        cmocka_unit_test(test_claims_a_dead_consumer),
        cmocka_unit_test(test_poison_goes_dead),
        cmocka_unit_test(test_redis_away),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
