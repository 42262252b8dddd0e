/*  test_deprecation - API versions: header values, dates, callers per route
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links gateway_core; uses gw_deprecation.h (the route options themselves
 *  are test_routes.c's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_deprecation.h"
#include "routes.h"
#include "vz_json.h"

#include "ut.h"

//  RFC 9745's own example: deprecated 2023-06-30T23:59:59Z is @1688169599;
//  RFC 8594 dates are IMF-fixdates in English whatever the locale.
static void test_dates(void **state)
{
    (void)state;
    int64_t s = 0;
    assert_int_equal(gw_deprecation_parse_date("2023-06-30T23:59:59Z", &s), 0);
    assert_int_equal(s, 1688169599);
    char buf[GW_DEPRECATION_HTTP_DATE_MAX];
    gw_deprecation_sf_date(s, buf, sizeof buf);
    assert_string_equal(buf, "@1688169599");
    assert_int_equal(gw_deprecation_http_date(s, buf, sizeof buf), 0);
    assert_string_equal(buf, "Fri, 30 Jun 2023 23:59:59 GMT");
    assert_int_equal(gw_deprecation_parse_date("2027-06-01T00:00:00Z", &s), 0);
    assert_int_equal(s, 1811808000);
    assert_int_equal(gw_deprecation_http_date(s, buf, sizeof buf), 0);
    assert_string_equal(buf, "Tue, 01 Jun 2027 00:00:00 GMT");
    //  A leap day; then the sf-date of the shipped /v1/echo deprecation.
    assert_int_equal(gw_deprecation_parse_date("2028-02-29T12:34:56Z", &s), 0);
    assert_int_equal(gw_deprecation_http_date(s, buf, sizeof buf), 0);
    assert_string_equal(buf, "Tue, 29 Feb 2028 12:34:56 GMT");
    assert_int_equal(gw_deprecation_parse_date("2026-12-01T00:00:00Z", &s), 0);
    gw_deprecation_sf_date(s, buf, sizeof buf);
    assert_string_equal(buf, "@1796083200");

    static const char *const bad[] = {"",
                                      "2027-06-01",
                                      "2027-06-01T00:00:00",
                                      "2027-06-01T00:00:00+02:00",
                                      "2027-13-01T00:00:00Z",
                                      "1970-01-01T00:00:00Z",
                                      "Tue, 01 Jun 2027 00:00:00 GMT",
                                      "@1811808000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (gw_deprecation_parse_date(bad[i], &s) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    char small[8];
    assert_int_equal(gw_deprecation_http_date(1811808000, small, sizeof small), -EINVAL);
    assert_int_equal(gw_deprecation_http_date(-1, buf, sizeof buf), -EINVAL);
}

static void test_links(void **state)
{
    (void)state;
    char buf[GW_ROUTE_LINK_MAX];
    assert_int_equal(gw_deprecation_link("/v2/echo", "", buf, sizeof buf), 0);
    assert_string_equal(buf, "</v2/echo>; rel=\"successor-version\"");
    assert_int_equal(gw_deprecation_link("", "https://docs.example/dep", buf, sizeof buf), 0);
    assert_string_equal(buf, "<https://docs.example/dep>; rel=\"deprecation\"; type=\"text/html\"");
    assert_int_equal(gw_deprecation_link("/v2/echo", "https://docs.example/dep", buf, sizeof buf),
                     0);
    assert_string_equal(buf, "</v2/echo>; rel=\"successor-version\", "
                             "<https://docs.example/dep>; rel=\"deprecation\"; type=\"text/html\"");
    assert_int_equal(gw_deprecation_link("", "", buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    char small[16];
    assert_int_equal(gw_deprecation_link("/v2/echo", "", small, sizeof small), -ENAMETOOLONG);

    assert_true(gw_deprecation_ref_ok("/v2/echo"));
    assert_true(gw_deprecation_ref_ok("https://api.example/v2/echo?x=1#y"));
    assert_true(gw_deprecation_ref_ok("http://docs.example/deprecations"));
    static const char *const bad[] = {"",          "v2/echo",         "ftp://x/y",
                                      "/v2/a b",   "/v2/>; rel=evil", "/v2/a,b",
                                      "/v2/\"a\"", "/v2/\x01",        "javascript:alert(1)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (gw_deprecation_ref_ok(bad[i]))
            fail_msg("accepted reference \"%s\"", bad[i]);
}

static void test_client_key(void **state)
{
    (void)state;
    char buf[GW_DEPRECATION_CLIENT_MAX];
    gw_deprecation_client("k_123", "u_9", "203.0.113.1", buf, sizeof buf);
    assert_string_equal(buf, "key:k_123");
    gw_deprecation_client("", "u_9", "203.0.113.1", buf, sizeof buf);
    assert_string_equal(buf, "sub:u_9");
    gw_deprecation_client(NULL, NULL, "203.0.113.1", buf, sizeof buf);
    assert_string_equal(buf, "ip:203.0.113.1");
    gw_deprecation_client(NULL, "", "", buf, sizeof buf);
    assert_string_equal(buf, "ip:unknown");
}

//  Two clients counted apart; a full table hands the place of the least
//  busy client to a newcomer, which starts from that count (overcount).
static void test_record(void **state)
{
    (void)state;
    gw_deprecations_t *rec = gw_deprecations_new(2);
    for (int i = 0; i < 3; i++)
        gw_deprecations_record(rec, "old", "ip:203.0.113.1", 1796083200 + i);
    gw_deprecations_record(rec, "old", "sub:u_2", 1796083300);
    gw_deprecations_record(rec, "older", "sub:u_2", 1796083300);
    size_t len = 0;
    char *doc = gw_deprecations_report(rec, &len);
    assert_non_null(doc);
    assert_int_equal(strlen(doc), len);
    assert_string_equal(
        doc, "{\"clients_max\":2,\"routes\":["
             "{\"route\":\"old\",\"calls\":4,\"replaced\":0,\"clients\":["
             "{\"client\":\"ip:203.0.113.1\",\"calls\":3,\"overcount\":0,"
             "\"first_seen\":\"2026-12-01T00:00:00Z\",\"last_seen\":\"2026-12-01T00:00:02Z\"},"
             "{\"client\":\"sub:u_2\",\"calls\":1,\"overcount\":0,"
             "\"first_seen\":\"2026-12-01T00:01:40Z\",\"last_seen\":\"2026-12-01T00:01:40Z\"}]},"
             "{\"route\":\"older\",\"calls\":1,\"replaced\":0,\"clients\":["
             "{\"client\":\"sub:u_2\",\"calls\":1,\"overcount\":0,"
             "\"first_seen\":\"2026-12-01T00:01:40Z\",\"last_seen\":\"2026-12-01T00:01:40Z\"}]}]}");
    free(doc);

    //  A third client on "old": u_2 (1 call) gives way; key:k_3 starts at 1+1.
    gw_deprecations_record(rec, "old", "key:k_3", 1796083400);
    doc = gw_deprecations_report(rec, &len);
    vz_json_t *json = vz_json_parse(doc, len, NULL, NULL);
    assert_non_null(json);
    const vz_json_value_t *old = vz_json_at(vz_json_get(vz_json_root(json), "routes"), 0);
    int64_t n = 0;
    assert_int_equal(vz_json_int(vz_json_get(old, "calls"), &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(vz_json_int(vz_json_get(old, "replaced"), &n), 0);
    assert_int_equal(n, 1);
    const vz_json_value_t *clients = vz_json_get(old, "clients");
    assert_int_equal(vz_json_size(clients), 2);
    const vz_json_value_t *second = vz_json_at(clients, 1);
    assert_string_equal(vz_json_get_string(second, "client", NULL), "key:k_3");
    assert_int_equal(vz_json_int(vz_json_get(second, "calls"), &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(vz_json_int(vz_json_get(second, "overcount"), &n), 0);
    assert_int_equal(n, 1);
    vz_json_destroy(&json);
    free(doc);
    gw_deprecations_destroy(&rec);
    gw_deprecations_destroy(&rec); //  idempotent
}

//  Routes beyond GW_ROUTES_MAX are not recorded; nothing grows past it.
static void test_record_bound(void **state)
{
    (void)state;
    gw_deprecations_t *rec = gw_deprecations_new(1);
    char name[32];
    for (int i = 0; i < GW_ROUTES_MAX + 5; i++) {
        snprintf(name, sizeof name, "r%03d", i);
        gw_deprecations_record(rec, name, "ip:1", 1796083200);
    }
    size_t len = 0;
    char *doc = gw_deprecations_report(rec, &len);
    vz_json_t *json = vz_json_parse(doc, len, NULL, NULL);
    assert_non_null(json);
    assert_int_equal(vz_json_size(vz_json_get(vz_json_root(json), "routes")), GW_ROUTES_MAX);
    vz_json_destroy(&json);
    free(doc);
    gw_deprecations_destroy(&rec);
}

//  Newcomers churning through a full route: the heavy client (more than
//  calls / places of them, which space-saving always keeps) is found
//  through its chain after every hand-over, and a key longer than what is
//  kept finds its (cut) entry again.
static void test_record_churn(void **state)
{
    (void)state;
    gw_deprecations_t *rec = gw_deprecations_new(4);
    for (int i = 0; i < 30; i++)
        gw_deprecations_record(rec, "old", "sub:heavy", 1796083200);
    char client[32];
    for (int i = 0; i < 50; i++) {
        snprintf(client, sizeof client, "ip:198.51.100.%d", i);
        gw_deprecations_record(rec, "old", client, 1796083200 + i);
    }
    gw_deprecations_record(rec, "old", "sub:heavy", 1796083300);
    char long_key[200];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    gw_deprecations_record(rec, "long", long_key, 1796083200);
    gw_deprecations_record(rec, "long", long_key, 1796083201);
    size_t len = 0;
    char *doc = gw_deprecations_report(rec, &len);
    vz_json_t *json = vz_json_parse(doc, len, NULL, NULL);
    assert_non_null(json);
    const vz_json_value_t *routes = vz_json_get(vz_json_root(json), "routes");
    const vz_json_value_t *lng = vz_json_at(routes, 0), *old = vz_json_at(routes, 1);
    int64_t n = 0;
    assert_int_equal(vz_json_size(vz_json_get(lng, "clients")), 1);
    assert_int_equal(
        vz_json_int(vz_json_get(vz_json_at(vz_json_get(lng, "clients"), 0), "calls"), &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(vz_json_int(vz_json_get(old, "calls"), &n), 0);
    assert_int_equal(n, 81);
    assert_int_equal(vz_json_int(vz_json_get(old, "replaced"), &n), 0);
    assert_int_equal(n, 47); //  3 free places, then every newcomer took one
    const vz_json_value_t *top = vz_json_at(vz_json_get(old, "clients"), 0);
    assert_string_equal(vz_json_get_string(top, "client", NULL), "sub:heavy");
    assert_int_equal(vz_json_int(vz_json_get(top, "calls"), &n), 0);
    assert_int_equal(n, 31);
    assert_int_equal(vz_json_size(vz_json_get(old, "clients")), 4);
    vz_json_destroy(&json);
    free(doc);
    gw_deprecations_destroy(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),        cmocka_unit_test(test_links),
        cmocka_unit_test(test_client_key),   cmocka_unit_test(test_record),
        cmocka_unit_test(test_record_bound), cmocka_unit_test(test_record_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
