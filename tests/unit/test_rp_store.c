/*  test_rp_store - the reporter's lease, fencing token, send records and archive, against Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One throwaway redis-server (the integration harness's vzt_redis). A
 *  replica whose lease ran out and was taken by another cannot archive or
 *  record (the fencing token no longer matches); a holder gives its lease
 *  back, and only its own; {rp}:since is set once; Redis away is -EIO.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "rp_store.h"
#include "vz_json.h"

static char *s_dir;
static vzt_proc_t *s_server;
static char s_url[64];

static int s_setup(void **state)
{
    s_dir = vzt_tempdir("rp_store");
    int port = vzt_free_port();
    s_server = vzt_redis(s_dir, port, 10000);
    if (!s_server)
        return -1;
    snprintf(s_url, sizeof s_url, "redis://127.0.0.1:%d", port);
    return 0;
}

static int s_teardown(void **state)
{
    vzt_proc_destroy(&s_server);
    vzt_rmrf(s_dir);
    free(s_dir);
    return 0;
}

static const uint8_t s_pdf[] = {'%', 'P', 'D', 'F', 0, 1, 2, 0xff};

static rp_parts_t s_parts(const char *json)
{
    return (rp_parts_t){json, "<html>web</html>", "<html>mail</html>", "text", s_pdf, sizeof s_pdf};
}

typedef struct {
    rp_store_t *store; //  who tries
    uint64_t token;    //  what it got
} s_taker_t;

static bool s_took(void *arg)
{
    s_taker_t *t = arg;
    return rp_store_lease_take(t->store, "b", 5000, &t->token) == 1;
}

static void test_lease_and_fencing(void **state)
{
    rp_store_t *a = rp_store_new(s_url, 500), *b = rp_store_new(s_url, 500);
    assert_non_null(a);
    assert_non_null(b);
    uint64_t ta = 0, tb = 0;
    assert_int_equal(rp_store_lease_take(a, "a", 300, &ta), 1);
    assert_int_equal(rp_store_lease_take(b, "b", 300, &tb), 0);
    //  The holder archives; the parts come back byte for byte.
    rp_parts_t parts = s_parts("{\"week\":\"2026-W49\"}");
    assert_int_equal(rp_store_archive(a, "a", ta, "2026-W49", 1796083200, &parts), 1);
    size_t len = 0;
    int rc = 0;
    char *pdf = rp_store_part(b, "2026-W49", "pdf", &len, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(len, sizeof s_pdf);
    assert_memory_equal(pdf, s_pdf, sizeof s_pdf);
    free(pdf);
    assert_null(rp_store_part(b, "2026-W48", "pdf", &len, &rc));
    assert_int_equal(rc, -ENOENT);
    //  a stalls past its lease; b takes the next token once it expired.
    s_taker_t taker = {b, 0};
    assert_true(vzt_wait_until(s_took, &taker, 5000));
    tb = taker.token;
    assert_true(tb > ta);
    //  a's writes are fenced off: nothing changes.
    rp_parts_t stale = s_parts("{\"stale\":true}");
    assert_int_equal(rp_store_archive(a, "a", ta, "2026-W49", 1796083200, &stale), 0);
    assert_int_equal(rp_store_record(a, "a", ta, "2026-W49", "{}"), 0);
    assert_int_equal(rp_store_sent(a, "2026-W49"), 0);
    char *json = rp_store_part(a, "2026-W49", "json", &len, &rc);
    assert_string_equal(json, "{\"week\":\"2026-W49\"}");
    free(json);
    //  a giving back does not release b's lease; b's record counts.
    assert_int_equal(rp_store_lease_give(a, "a", ta), 0);
    uint64_t tc = 0;
    assert_int_equal(rp_store_lease_take(a, "a", 5000, &tc), 0);
    assert_int_equal(rp_store_record(b, "b", tb, "2026-W49", "{\"week\":\"2026-W49\"}"), 1);
    assert_int_equal(rp_store_sent(a, "2026-W49"), 1);
    assert_int_equal(rp_store_lease_give(b, "b", tb), 0);
    assert_int_equal(rp_store_lease_take(a, "a", 5000, &tc), 1);
    assert_true(tc > tb);
    assert_int_equal(rp_store_lease_give(a, "a", tc), 0);
    //  The list: the week with its record.
    vz_json_writer_t *w = vz_json_writer_new(4096);
    assert_int_equal(rp_store_list(a, 10, w), 0);
    char *list = vz_json_writer_take(w, NULL);
    assert_string_equal(
        list, "[{\"week\":\"2026-W49\",\"start\":1796083200,\"sent\":{\"week\":\"2026-W49\"}}]");
    free(list);
    vz_json_writer_destroy(&w);
    rp_store_destroy(&a);
    rp_store_destroy(&b);
}

static void test_since_once(void **state)
{
    rp_store_t *s = rp_store_new(s_url, 500);
    int64_t since = 0;
    assert_int_equal(rp_store_since(s, 1000, &since), 0);
    assert_int_equal(since, 1000);
    assert_int_equal(rp_store_since(s, 2000, &since), 0);
    assert_int_equal(since, 1000);
    rp_store_destroy(&s);
}

static void test_redis_away(void **state)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", vzt_free_port());
    rp_store_t *s = rp_store_new(url, 100);
    uint64_t t = 0;
    int64_t since = 0;
    assert_int_equal(rp_store_lease_take(s, "a", 1000, &t), -EIO);
    assert_int_equal(rp_store_sent(s, "2026-W49"), -EIO);
    assert_int_equal(rp_store_since(s, 1, &since), -EIO);
    size_t len = 0;
    int rc = 0;
    assert_null(rp_store_part(s, "2026-W49", "html", &len, &rc));
    assert_int_equal(rc, -EIO);
    rp_store_destroy(&s);
    assert_null(rp_store_new("http://nope", 100));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_and_fencing),
        cmocka_unit_test(test_since_once),
        cmocka_unit_test(test_redis_away),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
