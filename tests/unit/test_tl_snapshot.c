/*  test_tl_snapshot - the sink's decoder of reporter snapshots: round trip and refusals
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_snapshot.h"
#include "vz_telemetry.h"

typedef struct {
    char *last; //  the last snapshot (heap)
} sink_t;

static int s_send(void *arg, const char *body, size_t len)
{
    sink_t *sink = arg;
    free(sink->last);
    sink->last = strndup(body, len);
    return 0;
}

//  What the reporter writes, the sink reads back field for field.
static void test_round_trip(void **state)
{
    sink_t sink = {0};
    vz_telemetry_config_t config = {.service = "auth", .replica = 1, .send = s_send, .arg = &sink};
    vz_telemetry_t *tl = vz_telemetry_new(&config);
    vz_telemetry_record(tl, "login", NULL, 180000);
    vz_telemetry_record(tl, "login", "unauthorized", 900);
    vz_telemetry_record(tl, "jwks", NULL, 40);
    vz_telemetry_user(tl, "u_7");
    assert_int_equal(vz_telemetry_flush(tl, 1796630400000LL), 0);
    const char *err = NULL;
    tl_snapshot_t *snap = tl_snapshot_decode(sink.last, strlen(sink.last), &err);
    assert_non_null(snap);
    assert_string_equal(snap->service, "auth");
    assert_int_equal(snap->replica, 1);
    assert_int_equal(snap->t_ms, 1796630400000LL);
    assert_true(snap->rss > 0);
    assert_int_equal(snap->nseries, 2);
    assert_string_equal(snap->series[0].name, "login");
    assert_int_equal(snap->series[0].count, 2);
    assert_int_equal(snap->series[0].ncodes, 2);
    assert_int_equal(snap->series[0].nbins, 2);
    assert_true(snap->series[0].sum_us == 180900);
    assert_int_equal(snap->series[1].bin[0], vz_tl_bin(40));
    assert_int_equal(snap->nusers, 1);
    assert_string_equal(snap->users[0], "u_7");
    tl_snapshot_destroy(&snap);
    assert_null(snap);
    free(sink.last);
    vz_telemetry_destroy(&tl);
}

#define HEAD                                                                                       \
    "{\"v\":1,\"service\":\"echo\",\"replica\":0,\"pid\":1,\"t\":1,\"interval_ms\":1,\"seq\":0,"   \
    "\"lost\":0,\"dropped\":0,\"sat\":{\"cpu\":0,\"rss\":0,\"fds\":0},"

static void test_refusals(void **state)
{
    const struct {
        const char *body;
        const char *reason;
    } cases[] = {
        {"[1]", "not a version 1 snapshot"},
        {"{\"v\":2}", "not a version 1 snapshot"},
        {"{", "not JSON"},
        {HEAD "\"series\":[]}", NULL},
        {"{\"v\":1,\"service\":\"a|b\"}", "service missing or invalid"},
        {HEAD "\"series\":[{\"name\":\"x:y\",\"count\":0,\"sum_us\":0,\"codes\":{},\"bins\":[]}]}",
         "series name missing or invalid"},
        {HEAD "\"series\":[{\"name\":\"x\",\"count\":1,\"sum_us\":1,\"codes\":{\"ok\":2},"
              "\"bins\":[[0,1]]}]}",
         "series codes do not add up to its count"},
        {HEAD "\"series\":[{\"name\":\"x\",\"count\":1,\"sum_us\":1,\"codes\":{\"ok\":1},"
              "\"bins\":[[1024,1]]}]}",
         "series bin invalid"},
        {HEAD "\"series\":[{\"name\":\"x\",\"count\":1,\"sum_us\":-1,\"codes\":{\"ok\":1},"
              "\"bins\":[[0,1]]}]}",
         "series count or sum_us missing or invalid"},
        {HEAD "\"series\":[],\"users\":[\"u 1\"],\"users_over\":0}", "user invalid"},
        {HEAD "\"series\":[],\"users\":[\"u_1\"]}", "users invalid or too many"},
        {"{\"v\":1,\"service\":\"echo\",\"replica\":0,\"pid\":1,\"t\":1,\"interval_ms\":1,"
         "\"seq\":0,\"lost\":-1,\"dropped\":0,\"sat\":{\"cpu\":0,\"rss\":0,\"fds\":0},"
         "\"series\":[]}",
         "a header field is missing or invalid"},
        {HEAD "\"series\":[],\"lost\":0}", "not JSON"}, //  a key twice
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = NULL;
        tl_snapshot_t *snap = tl_snapshot_decode(cases[i].body, strlen(cases[i].body), &err);
        if (!cases[i].reason) {
            assert_non_null(snap);
            tl_snapshot_destroy(&snap);
            continue;
        }
        if (snap || !err || strcmp(err, cases[i].reason) != 0)
            fail_msg("case %zu: want \"%s\", got %s \"%s\"", i, cases[i].reason,
                     snap ? "accepted" : "refused", err ? err : "");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
