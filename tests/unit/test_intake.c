/*  test_intake - vz_intake, webhook deliveries queued once, against a real redis-server
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One throwaway redis-server (the harness's vzt_redis) on a free port;
 *  each test its own stream. The synchronous vz_intake_enqueue runs the
 *  same script as the batched path, which billing's and github's
 *  integration tests drive through a real worker (duplicates, Redis away).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vz_intake.h"

static char *s_dir;
static vzt_proc_t *s_server;
static char s_url[64];
static vz_redis_t *s_raw; //  the test's own connection

static int s_setup(void **state)
{
    (void)state;
    s_dir = vzt_tempdir("intake");
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
    (void)state;
    vz_redis_destroy(&s_raw);
    vzt_proc_destroy(&s_server);
    vzt_rmrf(s_dir);
    free(s_dir);
    return 0;
}

static redisReply *s_cmd(int argc, const char **argv)
{
    redisReply *r = vz_redis_command(s_raw, argc, argv, NULL);
    assert_non_null(r);
    return r;
}

static long long s_int(int argc, const char **argv)
{
    redisReply *r = s_cmd(argc, argv);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

static void test_config(void **state)
{
    (void)state;
    vz_intake_config_t c = {.seen_prefix = "t:seen:", .stream = "t:s", .ttl_s = 0};
    assert_null(vz_intake_new(s_raw, &c, NULL, NULL)); //  no ttl
    c.ttl_s = 60;
    assert_null(vz_intake_new(NULL, &c, NULL, NULL));
    c.stream = NULL;
    assert_null(vz_intake_new(s_raw, &c, NULL, NULL));
}

static void test_once_then_duplicate(void **state)
{
    (void)state;
    vz_intake_config_t c = {.seen_prefix = "t1:seen:", .stream = "t1:s", .ttl_s = 60};
    vz_intake_t *in = vz_intake_new(s_raw, &c, NULL, NULL);
    assert_non_null(in);
    const char *fields[] = {"id", "evt_1", "type", "invoice.paid"};
    const char body[] = "{\"id\":\"evt_1\"}";
    assert_int_equal(vz_intake_enqueue(in, "evt_1", fields, 2, body, strlen(body)), 1);
    assert_int_equal(vz_intake_enqueue(in, "evt_1", fields, 2, body, strlen(body)), 0);
    assert_int_equal(vz_intake_enqueue(in, "evt_2", fields, 2, body, strlen(body)), 1);

    //  Two entries, fields in order then the body; the seen key expires.
    const char *xlen[] = {"XLEN", "t1:s"};
    assert_int_equal(s_int(2, xlen), 2);
    const char *range[] = {"XRANGE", "t1:s", "-", "+", "COUNT", "1"};
    redisReply *r = s_cmd(6, range);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    redisReply *kv = r->element[0]->element[1];
    assert_int_equal(kv->elements, 6);
    const char *want[] = {"id", "evt_1", "type", "invoice.paid", "body", body};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(kv->element[i]->str, want[i]);
    freeReplyObject(r);
    const char *ttl[] = {"TTL", "t1:seen:evt_1"};
    long long left = s_int(2, ttl);
    assert_true(left > 0 && left <= 60);
    vz_intake_destroy(&in);
    assert_null(in);
}

static void test_trimmed(void **state)
{
    (void)state;
    vz_intake_config_t c = {.seen_prefix = "t2:seen:", .stream = "t2:s", .maxlen = 10, .ttl_s = 60};
    vz_intake_t *in = vz_intake_new(s_raw, &c, NULL, NULL);
    char id[16];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "d%d", i);
        assert_int_equal(vz_intake_enqueue(in, id, NULL, 0, "{}", 2), 1);
    }
    //  MAXLEN ~ trims whole nodes: well under 500, at least 10.
    const char *xlen[] = {"XLEN", "t2:s"};
    long long n = s_int(2, xlen);
    assert_true(n >= 10 && n < 500);
    vz_intake_destroy(&in);
}

static void test_refused(void **state)
{
    (void)state;
    vz_intake_config_t c = {.seen_prefix = "t3:seen:", .stream = "t3:s", .ttl_s = 60};
    vz_intake_t *in = vz_intake_new(s_raw, &c, NULL, NULL);
    char long_id[VZ_INTAKE_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(vz_intake_enqueue(in, "", NULL, 0, "{}", 2), -1);
    assert_int_equal(vz_intake_enqueue(in, long_id, NULL, 0, "{}", 2), -1);
    const char *nul[] = {"a", NULL};
    assert_int_equal(vz_intake_enqueue(in, "ok", nul, 1, "{}", 2), -1);
    assert_int_equal(vz_intake_enqueue(in, "ok", NULL, VZ_INTAKE_FIELDS_MAX + 1, "{}", 2), -1);
    const char *xlen[] = {"XLEN", "t3:s"};
    assert_int_equal(s_int(2, xlen), 0);
    vz_intake_destroy(&in);
}

static void test_redis_away(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", vzt_free_port());
    vz_redis_t *redis = vz_redis_new(url, 100, 100, 10);
    vz_intake_config_t c = {.seen_prefix = "t4:seen:", .stream = "t4:s", .ttl_s = 60};
    vz_intake_t *in = vz_intake_new(redis, &c, NULL, NULL);
    assert_non_null(in);
    assert_int_equal(vz_intake_enqueue(in, "d", NULL, 0, "{}", 2), -1);
    vz_intake_destroy(&in);
    vz_redis_destroy(&redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),     cmocka_unit_test(test_once_then_duplicate),
        cmocka_unit_test(test_trimmed),    cmocka_unit_test(test_refused),
        cmocka_unit_test(test_redis_away),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
