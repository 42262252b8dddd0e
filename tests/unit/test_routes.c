/*  test_routes - the gateway's route table: loading, validation, matching
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links gateway_core and uses routes.h (and gw_deprecation.h for the
 *  API-version options); reads the shipped configs/routes.cfg.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_deprecation.h"
#include "routes.h"

#include "ut.h"

static const char s_table[] =
    "routes\n"
    "    keys\n        methods = \"GET POST\"\n        path = \"/v1/keys\"\n"
    "        service = \"auth\"\n        call = \"api_key_list\"\n        auth = \"jwt\"\n"
    "        scopes = \"keys:read\"\n        rate_class = \"default\"\n"
    "    key\n        methods = \"GET DELETE\"\n        path = \"/v1/keys/{id}\"\n"
    "        service = \"auth\"\n        call = \"api_key_get\"\n        timeout = \"250ms\"\n"
    "        retry = \"idempotent\"\n"
    "    key_me\n        methods = \"GET\"\n        path = \"/v1/keys/me\"\n"
    "        service = \"auth\"\n        call = \"api_key_me\"\n"
    "    part\n        methods = \"PUT\"\n        path = \"/v1/items/{id}/parts/{part}\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n        max_body = \"64\"\n"
    "        json = \"true\"\n        accept = \"application/json\"\n"
    "        query = \"period, at\"\n"
    "    root\n        methods = \"GET\"\n        path = \"/\"\n"
    "        service = \"echo\"\n        call = \"ping\"\n";

static gw_routes_t *s_parse(const char *text)
{
    char err[256] = "";
    gw_routes_t *routes = gw_routes_parse(text, err, sizeof err);
    if (!routes)
        fail_msg("table refused: %s", err);
    return routes;
}

//  The reason text when text is refused (fails the test when it loads).
static void s_refused(const char *text, const char *needle)
{
    char err[256] = "";
    gw_routes_t *routes = gw_routes_parse(text, err, sizeof err);
    if (routes) {
        gw_routes_unref(&routes);
        fail_msg("table accepted, expected \"%s\":\n%s", needle, text);
    }
    if (!strstr(err, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, err);
}

static void test_fields(void **state)
{
    (void)state;
    gw_routes_t *routes = s_parse(s_table);
    assert_int_equal(gw_routes_count(routes), 5);
    const gw_route_t *keys = gw_routes_at(routes, 0);
    assert_string_equal(keys->name, "keys");
    assert_int_equal(keys->methods, GW_M_GET | GW_M_POST);
    assert_int_equal(keys->auth, GW_AUTH_JWT);
    assert_string_equal(keys->scopes, "keys:read");
    assert_string_equal(keys->rate_class, "default");
    assert_string_equal(keys->service, "auth");
    assert_string_equal(keys->call, "api_key_list");
    const gw_route_t *key = gw_routes_at(routes, 1);
    assert_int_equal(key->timeout_ms, 250);
    assert_true(key->retry);
    assert_int_equal(key->auth, GW_AUTH_NONE);
    const gw_route_t *part = gw_routes_at(routes, 3);
    assert_int_equal(part->max_body, 64);
    assert_true(part->json);
    assert_string_equal(part->accept, "application/json");
    assert_int_equal(part->seg_count, 5);
    assert_int_equal(part->literal_count, 3);
    assert_int_equal(part->query_count, 2);
    assert_string_equal(part->query[0], "period");
    assert_string_equal(part->query[1], "at");
    assert_int_equal(keys->query_count, 0);
    gw_routes_unref(&routes);
    assert_null(routes);
}

static void test_match(void **state)
{
    (void)state;
    gw_routes_t *routes = s_parse(s_table);
    gw_route_match_t m;
    //  The literal pattern wins over the parameter.
    assert_true(gw_routes_match(routes, GW_M_GET, "/v1/keys/me", &m));
    assert_string_equal(m.route->name, "key_me");
    assert_int_equal(m.param_count, 0);
    assert_true(gw_routes_match(routes, GW_M_GET, "/v1/keys/k-42", &m));
    assert_string_equal(m.route->name, "key");
    assert_int_equal(m.param_count, 1);
    assert_string_equal(m.param_name[0], "id");
    assert_string_equal(m.param_value[0], "k-42");
    //  DELETE only fits the parameter route, even for "me".
    assert_true(gw_routes_match(routes, GW_M_DELETE, "/v1/keys/me", &m));
    assert_string_equal(m.route->name, "key");
    assert_true(gw_routes_match(routes, GW_M_PUT, "/v1/items/7/parts/lid", &m));
    assert_int_equal(m.param_count, 2);
    assert_string_equal(m.param_name[1], "part");
    assert_string_equal(m.param_value[1], "lid");
    assert_true(gw_routes_match(routes, GW_M_GET, "/", &m));
    assert_string_equal(m.route->name, "root");
    gw_routes_unref(&routes);
}

static void test_no_match(void **state)
{
    (void)state;
    gw_routes_t *routes = s_parse(s_table);
    gw_route_match_t m;
    //  Path known, method not: 405 with the methods of every fitting route.
    assert_false(gw_routes_match(routes, GW_M_PUT, "/v1/keys/me", &m));
    assert_null(m.route);
    assert_int_equal(m.allow, GW_M_GET | GW_M_DELETE);
    char allow[64];
    gw_routes_allow_text(m.allow, allow, sizeof allow);
    assert_string_equal(allow, "GET, DELETE");
    //  Unknown paths, empty segments, trailing slash, no leading slash: 404.
    const char *const misses[] = {"/v1/nothing", "/v1//keys",    "/v1/keys/",
                                  "v1/keys",     "/v1/keys/a/b", "/v1/items/7/parts"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        if (gw_routes_match(routes, GW_M_GET, misses[i], &m) || m.allow != 0)
            fail_msg("%s matched (allow %u)", misses[i], m.allow);
    }
    //  Method 0 asks about the path only.
    assert_false(gw_routes_match(routes, 0, "/v1/keys", &m));
    assert_int_equal(m.allow, GW_M_GET | GW_M_POST);
    gw_routes_unref(&routes);
}

static void test_refused(void **state)
{
    (void)state;
    const char *head = "routes\n    r\n        service = \"echo\"\n        call = \"echo\"\n";
    char text[1024];
    struct {
        const char *lines; //  appended to route r
        const char *why;   //  expected in the reason
    } cases[] = {
        {"        methods = \"GET\"\n        path = \"v1\"\n", "must start with '/'"},
        {"        methods = \"FETCH\"\n        path = \"/v1\"\n", "unknown method FETCH"},
        {"        path = \"/v1\"\n", "methods missing"},
        {"        methods = \"GET\"\n        path = \"/v1/{id}/{id}\"\n", "repeated"},
        {"        methods = \"GET\"\n        path = \"/v1/{Id}\"\n", "[a-z0-9_]"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        auth = \"magic\"\n",
         "auth must be"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        scopes = \"admin\"\n",
         "scopes need auth"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        timeout = \"10m\"\n",
         "timeout"},
        //  Seconds that would wrap to a small timeout when multiplied (fuzz).
        {"        methods = \"GET\"\n        path = \"/v1\"\n"
         "        timeout = \"2305843009213693960s\"\n",
         "timeout"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        timeout = \"301s\"\n",
         "timeout"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        retry = \"always\"\n",
         "retry must be"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        json = \"maybe\"\n",
         "booleans"},
        //  Query parameters: [a-z0-9_], each once, at most 4, and with the
        //  params and headers at most GW_ROUTE_NAMED_MAX.
        {"        methods = \"GET\"\n        path = \"/v1\"\n        query = \"Period\"\n",
         "query parameters"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        query = \"a b a\"\n",
         "query parameters"},
        {"        methods = \"GET\"\n        path = \"/v1\"\n        query = \"a b c d e\"\n",
         "query parameters"},
        {"        methods = \"GET\"\n        path = \"/v1/{p}/{q}/{r}\"\n"
         "        headers = \"x-a x-b x-c\"\n        query = \"a b c\"\n",
         "query parameters"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].lines);
        s_refused(text, cases[i].why);
    }
    s_refused("routes\n", "expected 1..");
    s_refused("nothing here\n  \"\n", "");
    //  Two routes with the same method and path, or the same name.
    snprintf(text, sizeof text,
             "routes\n    a\n        methods = \"GET\"\n        path = \"/x/{p}\"\n"
             "        service = \"echo\"\n        call = \"echo\"\n"
             "    b\n        methods = \"GET POST\"\n        path = \"/x/{q}\"\n"
             "        service = \"echo\"\n        call = \"echo\"\n");
    s_refused(text, "same method and path");
}

static void test_load_file(void **state)
{
    (void)state;
    char path[256];
    assert_int_equal(ut_temp_file(path, sizeof path, "routes", s_table), 0);
    char err[256] = "";
    gw_routes_t *routes = gw_routes_load(path, err, sizeof err);
    assert_non_null(routes);
    //  A reference keeps the table alive past the loader's unref.
    gw_routes_t *held = gw_routes_ref(routes);
    gw_routes_unref(&routes);
    assert_null(routes);
    assert_int_equal(gw_routes_count(held), 5);
    gw_routes_unref(&held);
    unlink(path);
    assert_null(gw_routes_load(path, err, sizeof err));
    assert_non_null(strstr(err, "cannot read"));
}

static void test_methods(void **state)
{
    (void)state;
    assert_int_equal(gw_routes_method_bit("GET"), GW_M_GET);
    assert_int_equal(gw_routes_method_bit("PATCH"), GW_M_PATCH);
    assert_int_equal(gw_routes_method_bit("get"), 0);
    assert_int_equal(gw_routes_method_bit("OPTIONS"), 0);
    char text[64];
    gw_routes_allow_text(GW_M_ALL, text, sizeof text);
    assert_string_equal(text, "GET, POST, PUT, PATCH, DELETE");
}

//  errors = "oauth2" marks a route for RFC 6749 §5.2 error bodies; the
//  default is the gateway's own form, and any other value is refused.
static void test_errors(void **state)
{
    (void)state;
    const char *head = "routes\n    r\n        service = \"auth\"\n        call = \"token\"\n"
                       "        methods = \"POST\"\n        path = \"/v1/token\"\n";
    char text[512];
    snprintf(text, sizeof text, "%s        errors = \"oauth2\"\n", head);
    gw_routes_t *routes = s_parse(text);
    assert_true(gw_routes_at(routes, 0)->oauth_errors);
    gw_routes_unref(&routes);
    routes = s_parse(head);
    assert_false(gw_routes_at(routes, 0)->oauth_errors);
    gw_routes_unref(&routes);
    snprintf(text, sizeof text, "%s        errors = \"rfc\"\n", head);
    s_refused(text, "errors is vizmesh or oauth2");
}

#define ROUTE_HEAD                                                                                 \
    "routes\n    old\n        methods = \"GET\"\n        path = \"/v1/old\"\n"                     \
    "        service = \"echo\"\n        call = \"echo\"\n"

//  The options reach the route with the header values made once.
static void test_route_options(void **state)
{
    (void)state;
    gw_routes_t *routes = s_parse(ROUTE_HEAD "        deprecated = \"2026-12-01T00:00:00Z\"\n"
                                             "        sunset = \"2027-06-01T00:00:00Z\"\n"
                                             "        successor = \"/v2/old\"\n"
                                             "        deprecation_link = \"https://d.example/x\"\n"
                                             "    new\n        methods = \"GET\"\n"
                                             "        path = \"/v2/old\"\n"
                                             "        service = \"echo\"\n"
                                             "        call = \"echo_v2\"\n"
                                             "        version = \"1.4.0+b2\"\n"
                                             "    report\n        methods = \"GET\"\n"
                                             "        path = \"/v1/admin/deprecations\"\n"
                                             "        service = \"gateway\"\n"
                                             "        call = \"deprecations\"\n");
    const gw_route_t *old = gw_routes_at(routes, 0);
    assert_int_equal(old->deprecated_s, 1796083200);
    assert_int_equal(old->sunset_s, 1811808000);
    assert_string_equal(old->hdr_deprecation, "@1796083200");
    assert_string_equal(old->hdr_sunset, "Tue, 01 Jun 2027 00:00:00 GMT");
    assert_string_equal(old->hdr_link,
                        "</v2/old>; rel=\"successor-version\", "
                        "<https://d.example/x>; rel=\"deprecation\"; type=\"text/html\"");
    assert_string_equal(old->version, "");
    assert_false(gw_deprecation_sunset(old, old->sunset_s - 1));
    assert_true(gw_deprecation_sunset(old, old->sunset_s));
    const gw_route_t *neu = gw_routes_at(routes, 1);
    assert_int_equal(neu->deprecated_s, 0);
    assert_string_equal(neu->version, "1.4.0+b2");
    assert_false(gw_deprecation_sunset(neu, 1811808000 * 2LL));
    gw_routes_unref(&routes);

    //  Deprecated without a sunset: headers, never 410.
    routes = s_parse(ROUTE_HEAD "        deprecated = \"2026-12-01T00:00:00Z\"\n");
    old = gw_routes_at(routes, 0);
    assert_string_equal(old->hdr_sunset, "");
    assert_string_equal(old->hdr_link, "");
    assert_false(gw_deprecation_sunset(old, 1811808000 * 2LL));
    gw_routes_unref(&routes);

    s_refused(ROUTE_HEAD "        sunset = \"2027-06-01T00:00:00Z\"\n", "need deprecated");
    s_refused(ROUTE_HEAD "        successor = \"/v2/old\"\n", "need deprecated");
    s_refused(ROUTE_HEAD "        deprecated = \"2027-06-01\"\n", "dates like");
    s_refused(ROUTE_HEAD "        deprecated = \"2027-06-01T00:00:00Z\"\n"
                         "        sunset = \"2026-12-01T00:00:00Z\"\n",
              "sunset is before deprecated");
    s_refused(ROUTE_HEAD "        deprecated = \"2026-12-01T00:00:00Z\"\n"
                         "        successor = \"/v2/x>; rel=evil\"\n",
              "successor and deprecation_link");
    s_refused(ROUTE_HEAD "        version = \"2 beta\"\n", "version is");
    s_refused("routes\n    r\n        methods = \"GET\"\n        path = \"/x\"\n"
              "        service = \"gateway\"\n        call = \"other\"\n",
              "answers only call deprecations");
}

//  The shipped table: /v1/echo is deprecated with /v2/echo as successor,
//  /v2/echo exists, and sunsets keep the six months of N-1.
static void test_shipped_table(void **state)
{
    (void)state;
    char err[256] = "";
    gw_routes_t *routes = gw_routes_load(VZ_TEST_SOURCE_DIR "/configs/routes.cfg", err, sizeof err);
    if (!routes)
        fail_msg("shipped table refused: %s", err);
    gw_route_match_t m;
    assert_true(gw_routes_match(routes, GW_M_GET, "/v1/echo", &m));
    assert_true(m.route->deprecated_s > 0);
    assert_string_equal(m.route->successor, "/v2/echo");
    //  The platform keeps version N-1 six months: no shipped sunset comes
    //  sooner after its deprecation.
    for (size_t i = 0; i < gw_routes_count(routes); i++) {
        const gw_route_t *r = gw_routes_at(routes, i);
        if (r->sunset_s && r->sunset_s - r->deprecated_s < 182 * 86400)
            fail_msg("route %s: sunset less than six months after its deprecation", r->name);
    }
    assert_true(gw_routes_match(routes, GW_M_POST, "/v2/echo", &m));
    assert_string_equal(m.route->call, "echo_v2");
    assert_int_equal(m.route->deprecated_s, 0);
    gw_routes_unref(&routes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),        cmocka_unit_test(test_match),
        cmocka_unit_test(test_no_match),      cmocka_unit_test(test_refused),
        cmocka_unit_test(test_load_file),     cmocka_unit_test(test_methods),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_route_options),
        cmocka_unit_test(test_shipped_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
