/*  test_telemetry_contract - telemetry.ingest: reporter snapshot round trip, refusals, limits
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_telemetry_contract.h"
#include "vz_common.h"
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
    vz_tl_snapshot_t *snap = NULL;
    assert_int_equal(vz_tl_snapshot_decode(sink.last, strlen(sink.last), &snap, &err), 0);
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
    assert_string_equal(snap->version, ""); //  none configured: none sent
    assert_null(strstr(sink.last, VZ_TL_F_SERVICE_VERSION));
    vz_tl_snapshot_destroy(&snap);
    assert_null(snap);
    free(sink.last);
    vz_telemetry_destroy(&tl);
}

//  The worker's version travels as service_version; a bad one is not sent.
static void test_version(void **state)
{
    const char *versions[][2] = {{"1.4.0-rc.1+b7", "1.4.0-rc.1+b7"}, {"bad version", ""}};
    for (size_t i = 0; i < 2; i++) {
        sink_t sink = {0};
        vz_telemetry_config_t config = {
            .service = "echo", .version = versions[i][0], .send = s_send, .arg = &sink};
        vz_telemetry_t *tl = vz_telemetry_new(&config);
        vz_telemetry_record(tl, "echo", NULL, 10);
        assert_int_equal(vz_telemetry_flush(tl, 1796630400000LL), 0);
        vz_tl_snapshot_t *snap = NULL;
        assert_int_equal(vz_tl_snapshot_decode(sink.last, strlen(sink.last), &snap, NULL), 0);
        assert_string_equal(snap->version, versions[i][1]);
        vz_tl_snapshot_destroy(&snap);
        free(sink.last);
        vz_telemetry_destroy(&tl);
    }
}

#define HEAD                                                                                       \
    "{\"v\":1,\"service\":\"echo\",\"replica\":0,\"pid\":1,\"t\":1,\"interval_ms\":1,\"seq\":0,"   \
    "\"lost\":0,\"dropped\":0,\"sat\":{\"cpu\":0,\"rss\":0,\"fds\":0},"

//  VZ_TL_NAME_MAX (64) characters: one too many.
#define S_NAME64 "0123456789012345678901234567890123456789012345678901234567890123"

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
        //  Wrong types.
        {"{\"v\":\"1\"}", "not a version 1 snapshot"},
        {"{\"v\":1,\"service\":7}", "service missing or invalid"},
        {HEAD "\"series\":{}}", "series missing or too many"},
        {HEAD "\"series\":[{\"name\":\"x\",\"count\":\"1\",\"sum_us\":1,\"codes\":{},"
              "\"bins\":[]}]}",
         "series count or sum_us missing or invalid"},
        {HEAD "\"series\":[{\"name\":\"x\",\"count\":1,\"sum_us\":1,\"codes\":[1],"
              "\"bins\":[[0,1]]}]}",
         "series codes missing or too many"},
        {HEAD "\"series\":[{\"name\":\"x\",\"count\":1,\"sum_us\":1,\"codes\":{\"ok\":1},"
              "\"bins\":[[0]]}]}",
         "series bin invalid"},
        {HEAD "\"series\":[],\"users\":[1],\"users_over\":0}", "user invalid"},
        {"{\"v\":1,\"service\":\"echo\",\"replica\":0,\"pid\":1,\"t\":1,\"interval_ms\":1,"
         "\"seq\":0,\"lost\":0,\"dropped\":0,\"sat\":{\"cpu\":\"x\",\"rss\":0,\"fds\":0},"
         "\"series\":[]}",
         "sat missing or invalid"},
        //  service_version: optional, "" = none, else a RDY version token.
        {HEAD "\"service_version\":\"1.4.0\",\"series\":[]}", NULL},
        {HEAD "\"service_version\":\"\",\"series\":[]}", NULL},
        {HEAD "\"service_version\":\"1 4\",\"series\":[]}", "service_version invalid"},
        {HEAD "\"service_version\":7,\"series\":[]}", "service_version invalid"},
        {HEAD "\"service_version\":\"0123456789012345678901234567890123\",\"series\":[]}",
         "service_version invalid"},
        //  Limits: a name of VZ_TL_NAME_MAX bytes.
        {"{\"v\":1,\"service\":\"" S_NAME64 "\"}", "service missing or invalid"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = NULL;
        vz_tl_snapshot_t *snap = NULL;
        int rc = vz_tl_snapshot_decode(cases[i].body, strlen(cases[i].body), &snap, &err);
        if (!cases[i].reason) {
            assert_int_equal(rc, 0);
            assert_non_null(snap);
            vz_tl_snapshot_destroy(&snap);
            continue;
        }
        if (rc != VZ_EMALFORMED || snap || !err || strcmp(err, cases[i].reason) != 0)
            fail_msg("case %zu: want \"%s\", got %s \"%s\"", i, cases[i].reason,
                     snap ? "accepted" : "refused", err ? err : "");
    }
}

//  Every prefix of a valid snapshot is refused, never read past its end.
static void test_truncation(void **state)
{
    const char *body = HEAD "\"series\":[{\"name\":\"x\",\"count\":1,\"sum_us\":1,"
                            "\"codes\":{\"ok\":1},\"bins\":[[0,1]]}],\"users\":[\"u\"],"
                            "\"users_over\":0}";
    size_t len = strlen(body);
    vz_tl_snapshot_t *snap = NULL;
    assert_int_equal(vz_tl_snapshot_decode(body, len, &snap, NULL), 0);
    vz_tl_snapshot_destroy(&snap);
    for (size_t cut = 0; cut < len; cut++) {
        char *part = malloc(cut ? cut : 1); //  exact size: ASan sees an overread
        memcpy(part, body, cut);
        const char *err = NULL;
        assert_int_equal(vz_tl_snapshot_decode(part, cut, &snap, &err), VZ_EMALFORMED);
        assert_null(snap);
        assert_non_null(err);
        free(part);
    }
}

//  The table limits: VZ_TL_SERIES series, VZ_TL_CODES codes, VZ_TL_BINS bins.
static void test_limits(void **state)
{
    for (int over = 0; over < 2; over++) {
        char *body = malloc(64 * 1024);
        size_t n = (size_t)sprintf(body, HEAD "\"series\":[");
        for (int i = 0; i < VZ_TL_SERIES + over; i++)
            n += (size_t)sprintf(body + n,
                                 "%s{\"name\":\"s%d\",\"count\":0,\"sum_us\":0,"
                                 "\"codes\":{},\"bins\":[]}",
                                 i ? "," : "", i);
        strcpy(body + n, "]}");
        vz_tl_snapshot_t *snap = NULL;
        const char *err = NULL;
        int rc = vz_tl_snapshot_decode(body, strlen(body), &snap, &err);
        if (over) {
            assert_int_equal(rc, VZ_EMALFORMED);
            assert_string_equal(err, "series missing or too many");
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(snap->nseries, VZ_TL_SERIES);
        }
        vz_tl_snapshot_destroy(&snap);
        //  Codes of one series.
        n = (size_t)sprintf(body,
                            HEAD "\"series\":[{\"name\":\"x\",\"count\":%d,"
                                 "\"sum_us\":0,\"codes\":{",
                            VZ_TL_CODES + over);
        for (int i = 0; i < VZ_TL_CODES + over; i++)
            n += (size_t)sprintf(body + n, "%s\"c%d\":1", i ? "," : "", i);
        sprintf(body + n, "},\"bins\":[[0,%d]]}]}", VZ_TL_CODES + over);
        rc = vz_tl_snapshot_decode(body, strlen(body), &snap, &err);
        assert_int_equal(rc, over ? VZ_EMALFORMED : 0);
        vz_tl_snapshot_destroy(&snap);
        free(body);
    }
    //  The last bin is VZ_TL_BINS - 1.
    char body[512];
    snprintf(body, sizeof body,
             HEAD "\"series\":[{\"name\":\"x\",\"count\":1,\"sum_us\":1,"
                  "\"codes\":{\"ok\":1},\"bins\":[[%d,1]]}]}",
             VZ_TL_BINS - 1);
    vz_tl_snapshot_t *snap = NULL;
    assert_int_equal(vz_tl_snapshot_decode(body, strlen(body), &snap, NULL), 0);
    assert_int_equal(snap->series[0].bin[0], VZ_TL_BINS - 1);
    vz_tl_snapshot_destroy(&snap);
    assert_true(vz_tl_name_valid("u_1.a-b"));
    assert_false(vz_tl_name_valid(""));
    assert_false(vz_tl_name_valid(NULL));
    assert_false(vz_tl_name_valid(S_NAME64));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_version),
        cmocka_unit_test(test_refusals),   cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
