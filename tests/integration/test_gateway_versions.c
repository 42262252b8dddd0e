/*  test_gateway_versions - API versions at the gateway: /v1 and /v2 side by side,
 *  deprecation headers, 410 after the sunset, callers counted per client
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One mesh (Redis, broker, echo, gateway) whose gateway runs on the test
 *  clock (VZ_CLOCK_START=2027-01-15T00:00:00Z, VZ_CLOCK_TEST=1): 2027-01-15
 *  lies after the deprecation of /v1/echo (2026-12-01) and before its
 *  sunset (2027-06-01), after the sunset of /v1/t/sunset (2027-01-01) and
 *  before the deprecation of /v1/t/future (2027-03-01); the last test sets
 *  a sunset seconds ahead of that clock and sees it arrive. The real date
 *  plays no part. The gateway trusts 127.0.0.1 as a proxy, so X-Forwarded-For
 *  makes distinct clients from one test process.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "vz_clock.h"
#include "vz_json.h"

#define HTTP_MS 10000
#define RELOAD_MS 5000
#define RELOADED "vz_gateway_route_reloads_total{result=\"ok\"}"
#define CLOCK_START "2027-01-15T00:00:00Z"
#define CLOCK_START_S 1799971200 //  the same, Unix seconds
#define SUNSET_AHEAD_S 4         //  a sunset this far ahead of the gateway's clock

//  The deprecation dates as the headers must spell them.
#define ECHO_DEPRECATION "@1796083200"              //  2026-12-01T00:00:00Z
#define ECHO_SUNSET "Tue, 01 Jun 2027 00:00:00 GMT" //  2027-06-01T00:00:00Z
#define FUTURE_DEPRECATION "@1803859200"            //  2027-03-01T00:00:00Z
#define ECHO_LINK                                                                                  \
    "</v2/echo>; rel=\"successor-version\", <https://docs.example/deprecations/echo-v1>; "         \
    "rel=\"deprecation\"; type=\"text/html\""

static const char s_routes_base[] =
    "routes\n"
    "    echo\n        methods = \"GET POST\"\n        path = \"/v1/echo\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n        retry = \"idempotent\"\n"
    "        pass_content_type = \"true\"\n        reply_type = \"application/octet-stream\"\n"
    "        deprecated = \"2026-12-01T00:00:00Z\"\n        sunset = \"2027-06-01T00:00:00Z\"\n"
    "        successor = \"/v2/echo\"\n"
    "        deprecation_link = \"https://docs.example/deprecations/echo-v1\"\n"
    "    t_versioned\n        methods = \"GET\"\n        path = \"/v2/echo/whoami\"\n"
    "        service = \"echo\"\n        call = \"whoami\"\n        version = \"2.1.0\"\n"
    "    t_future\n        methods = \"GET\"\n        path = \"/v1/t/future\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n"
    "        deprecated = \"2027-03-01T00:00:00Z\"\n"
    "    t_report\n        methods = \"GET\"\n        path = \"/v1/admin/deprecations\"\n"
    "        service = \"gateway\"\n        call = \"deprecations\"\n";

//  /v2/echo, and the same deprecated (in the reloaded table).
#define V2_ROUTE                                                                                   \
    "    echo_v2\n        methods = \"GET POST\"\n        path = \"/v2/echo\"\n"                   \
    "        service = \"echo\"\n        call = \"echo_v2\"\n        retry = \"idempotent\"\n"     \
    "        accept = \"application/json\"\n        json = \"true\"\n"
static const char s_v2[] = V2_ROUTE;
static const char s_v2_deprecated[] = V2_ROUTE "        deprecated = \"2027-01-10T00:00:00Z\"\n";

//  /v1/t/sunset as first written (sunset passed) and after the reload
//  (sunset moved to 2027-12-31, successor changed).
static const char s_sunset_before[] =
    "    t_sunset\n        methods = \"GET\"\n        path = \"/v1/t/sunset\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n"
    "        deprecated = \"2026-06-01T00:00:00Z\"\n        sunset = \"2027-01-01T00:00:00Z\"\n"
    "        successor = \"/v2/echo\"\n";
static const char s_sunset_after[] =
    "    t_sunset\n        methods = \"GET\"\n        path = \"/v1/t/sunset\"\n"
    "        service = \"echo\"\n        call = \"echo\"\n"
    "        deprecated = \"2026-06-01T00:00:00Z\"\n        sunset = \"2027-12-31T00:00:00Z\"\n"
    "        successor = \"/v3/echo\"\n";

static char *s_routes(const char *v2, const char *sunset)
{
    char *text = NULL;
    assert_true(asprintf(&text, "%s%s%s", s_routes_base, v2, sunset) > 0);
    return text;
}

//  The mesh, and the wall time just before it started: the gateway's
//  shifted clock then reads at most CLOCK_START + (now - started_ms).
typedef struct {
    vzt_mesh_t *mesh;   //  Redis, broker, echo, gateway
    int64_t started_ms; //  vz_clock_wire_ms before the start
} fixture_t;

static int s_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *const env[] = {"gateway:VZ_CLOCK_TEST=1", "gateway:VZ_CLOCK_START=" CLOCK_START,
                         "gateway:VZ_GATEWAY_TRUSTED_PROXIES=127.0.0.1/32",
                         "gateway:VZ_GATEWAY_DEPRECATION_CLIENTS=8", NULL};
    char *routes = s_routes(s_v2, s_sunset_before);
    const char *const files[] = {"routes.cfg", routes, NULL};
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->started_ms = vz_clock_wire_ms();
    fx->mesh = vzt_mesh_start(
        &(vzt_mesh_opts_t){.tag = "gwver", .daemons = "echo,gateway", .env = env, .files = files});
    free(routes);
    assert_non_null(fx->mesh);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    int rc = vzt_mesh_destroy(&fx->mesh);
    free(fx);
    curl_global_cleanup();
    return rc;
}

//  method path (body, one extra header line or NULL), asserting it ran.
static void s_call(vzt_mesh_t *mesh, const char *method, const char *path, const char *body,
                   const char *header, vzt_resp_t *r)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", vzt_mesh_url(mesh), path);
    const char *const headers[] = {"Content-Type: application/json", header, NULL};
    assert_int_equal(vzt_request(method, url, headers, body, body ? strlen(body) : 0, HTTP_MS, r),
                     0);
}

//  Header name of r must be exactly want (NULL: absent).
static void s_header_is(const vzt_resp_t *r, const char *name, const char *want)
{
    char value[1024];
    const char *got = vzt_header(r->headers, name, value, sizeof value);
    if (!want && got)
        fail_msg("%s: unexpected %s: %s", name, got, r->headers);
    if (want && (!got || strcmp(got, want) != 0))
        fail_msg("%s: expected \"%s\", got \"%s\"", name, want, got ? got : "(none)");
}

// --------------------------------------------------------------------------

//  /v2/echo is served by echo.echo_v2: the body comes back wrapped, and
//  the route carries no deprecation.
static void test_v2_served_by_v2_method(void **state)
{
    vzt_mesh_t *mesh = ((fixture_t *)*state)->mesh;
    vzt_resp_t r;
    s_call(mesh, "POST", "/v2/echo", "{\"a\":[1,\"x\"]}", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"data\":{\"a\":[1,\"x\"]},\"api_version\":2}");
    s_header_is(&r, "Deprecation", NULL);
    s_header_is(&r, "Sunset", NULL);
    s_header_is(&r, "Link", NULL);
    vzt_resp_free(&r);
    s_call(mesh, "GET", "/v2/echo", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"data\":null,\"api_version\":2}");
    vzt_resp_free(&r);
    //  The v1 route of the same service answers with the v1 method: raw bytes.
    s_call(mesh, "POST", "/v1/echo", "{\"a\":1}", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"a\":1}");
    vzt_resp_free(&r);
}

//  A deprecated route before its sunset: served, with the three headers
//  spelt exactly (RFC 9745 sf-date, RFC 8594 IMF-fixdate, Link).
static void test_deprecation_headers(void **state)
{
    vzt_mesh_t *mesh = ((fixture_t *)*state)->mesh;
    vzt_resp_t r;
    s_call(mesh, "GET", "/v1/echo", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    s_header_is(&r, "Deprecation", ECHO_DEPRECATION);
    s_header_is(&r, "Sunset", ECHO_SUNSET);
    s_header_is(&r, "Link", ECHO_LINK);
    vzt_resp_free(&r);
    //  A deprecation still to come is announced (RFC 9745 allows a future date).
    s_call(mesh, "GET", "/v1/t/future", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    s_header_is(&r, "Deprecation", FUTURE_DEPRECATION);
    s_header_is(&r, "Sunset", NULL);
    s_header_is(&r, "Link", NULL);
    vzt_resp_free(&r);
}

//  After the sunset by the gateway's (test) clock: 410 route_sunset naming
//  the successor, still with the headers.
static void test_sunset_410(void **state)
{
    vzt_mesh_t *mesh = ((fixture_t *)*state)->mesh;
    vzt_resp_t r;
    s_call(mesh, "GET", "/v1/t/sunset", NULL, NULL, &r);
    assert_int_equal(r.status, 410);
    if (!strstr(r.body, "{\"error\":{\"code\":\"route_sunset\",\"message\":\"") ||
        !strstr(r.body, "use /v2/echo") || !strstr(r.body, "Fri, 01 Jan 2027 00:00:00 GMT"))
        fail_msg("410 body: %s", r.body);
    char id[80];
    assert_non_null(vzt_header(r.headers, "X-Request-Id", id, sizeof id));
    char needle[128];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", id);
    assert_non_null(strstr(r.body, needle));
    s_header_is(&r, "Content-Type", "application/json");
    s_header_is(&r, "Deprecation", "@1780272000");
    s_header_is(&r, "Sunset", "Fri, 01 Jan 2027 00:00:00 GMT");
    s_header_is(&r, "Link", "</v2/echo>; rel=\"successor-version\"");
    vzt_resp_free(&r);
}

//  The route's version reaches the service as ctx route.version.
static void test_route_version_in_ctx(void **state)
{
    vzt_mesh_t *mesh = ((fixture_t *)*state)->mesh;
    vzt_resp_t r;
    s_call(mesh, "GET", "/v2/echo/whoami", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    if (!strstr(r.body, "\"route.version\":\"2.1.0\""))
        fail_msg("no route.version in %s", r.body);
    vzt_resp_free(&r);
    s_call(mesh, "GET", "/v1/echo", NULL, NULL, &r); //  an unversioned route sends none
    vzt_resp_free(&r);
}

//  calls of client on route in the report, -1 when it is not there.
static int64_t s_reported(const char *report, const char *route, const char *client)
{
    vz_json_t *doc = vz_json_parse(report, strlen(report), NULL, NULL);
    assert_non_null(doc);
    int64_t calls = -1;
    const vz_json_value_t *routes = vz_json_get(vz_json_root(doc), "routes");
    for (size_t i = 0; i < vz_json_size(routes); i++) {
        const vz_json_value_t *r = vz_json_at(routes, i);
        const char *name = vz_json_get_string(r, "route", NULL);
        if (!name || strcmp(name, route) != 0)
            continue;
        const vz_json_value_t *clients = vz_json_get(r, "clients");
        for (size_t k = 0; k < vz_json_size(clients); k++) {
            const vz_json_value_t *c = vz_json_at(clients, k);
            const char *key = vz_json_get_string(c, "client", NULL);
            if (key && strcmp(key, client) == 0)
                assert_int_equal(vz_json_int(vz_json_get(c, "calls"), &calls), 0);
        }
    }
    vz_json_destroy(&doc);
    return calls;
}

//  Two clients calling a deprecated route are counted apart (the report
//  and the per-route metric); an undeprecated route is not recorded.
static void test_per_client_counts(void **state)
{
    vzt_mesh_t *mesh = ((fixture_t *)*state)->mesh;
    int port = vzt_mesh_admin_port(mesh, "gateway");
    double before = 0;
    (void)vzt_metric(port, "vz_gateway_deprecated_requests_total{route=\"echo\"}", &before);
    vzt_resp_t r;
    for (int i = 0; i < 3; i++) {
        s_call(mesh, "GET", "/v1/echo", NULL, "X-Forwarded-For: 203.0.113.1", &r);
        assert_int_equal(r.status, 200);
        vzt_resp_free(&r);
    }
    s_call(mesh, "POST", "/v1/echo", "{}", "X-Forwarded-For: 203.0.113.2", &r);
    assert_int_equal(r.status, 200);
    vzt_resp_free(&r);
    s_call(mesh, "GET", "/v2/echo", NULL, "X-Forwarded-For: 203.0.113.3", &r);
    assert_int_equal(r.status, 200);
    vzt_resp_free(&r);
    //  Past its sunset a route still counts its callers.
    s_call(mesh, "GET", "/v1/t/sunset", NULL, "X-Forwarded-For: 203.0.113.2", &r);
    assert_int_equal(r.status, 410);
    vzt_resp_free(&r);

    s_call(mesh, "GET", "/v1/admin/deprecations", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(s_reported(r.body, "echo", "ip:203.0.113.1"), 3);
    assert_int_equal(s_reported(r.body, "echo", "ip:203.0.113.2"), 1);
    assert_int_equal(s_reported(r.body, "echo", "ip:203.0.113.3"), -1);
    assert_int_equal(s_reported(r.body, "echo_v2", "ip:203.0.113.3"), -1);
    assert_int_equal(s_reported(r.body, "t_sunset", "ip:203.0.113.2"), 1);
    if (!strstr(r.body, "\"clients_max\":8"))
        fail_msg("report: %s", r.body);
    vzt_resp_free(&r);
    //  The metric counted the four calls on /v1/echo (the admin page is
    //  rendered when asked, so it is already there).
    double after = 0;
    assert_int_equal(
        vzt_metric(port, "vz_gateway_deprecated_requests_total{route=\"echo\"}", &after), 0);
    assert_true(after - before == 4);
}

//  A full route keeps the busiest clients: 8 places, 10 one-call clients
//  and one heavy caller; the heavy one is never replaced.
static void test_bounded_clients(void **state)
{
    vzt_mesh_t *mesh = ((fixture_t *)*state)->mesh;
    vzt_resp_t r;
    char xff[64];
    for (int i = 0; i < 5; i++) {
        s_call(mesh, "GET", "/v1/t/future", NULL, "X-Forwarded-For: 198.51.100.200", &r);
        vzt_resp_free(&r);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(xff, sizeof xff, "X-Forwarded-For: 198.51.100.%d", i);
        s_call(mesh, "GET", "/v1/t/future", NULL, xff, &r);
        assert_int_equal(r.status, 200);
        vzt_resp_free(&r);
    }
    s_call(mesh, "GET", "/v1/admin/deprecations", NULL, NULL, &r);
    assert_int_equal(s_reported(r.body, "t_future", "ip:198.51.100.200"), 5);
    vz_json_t *doc = vz_json_parse(r.body, r.body_len, NULL, NULL);
    assert_non_null(doc);
    const vz_json_value_t *routes = vz_json_get(vz_json_root(doc), "routes");
    bool seen = false;
    for (size_t i = 0; i < vz_json_size(routes); i++) {
        const vz_json_value_t *route = vz_json_at(routes, i);
        if (strcmp(vz_json_get_string(route, "route", NULL), "t_future") != 0)
            continue;
        seen = true;
        assert_int_equal(vz_json_size(vz_json_get(route, "clients")), 8);
        int64_t n = 0;
        assert_int_equal(vz_json_int(vz_json_get(route, "replaced"), &n), 0);
        assert_true(n >= 3); //  at least 11 clients for 8 places (earlier tests add some)
        assert_int_equal(vz_json_int(vz_json_get(route, "calls"), &n), 0);
        assert_true(n >= 15);
    }
    assert_true(seen);
    vz_json_destroy(&doc);
    vzt_resp_free(&r);
}

//  SIGHUP with a changed deprecation: the sunset moved into the future
//  serves the route again with the new headers; /v2/echo deprecated in
//  turn gets its headers; moved back, 410 again.
static void test_reload_changes_deprecation(void **state)
{
    vzt_mesh_t *mesh = ((fixture_t *)*state)->mesh;
    char *text = s_routes(s_v2_deprecated, s_sunset_after);
    assert_int_equal(vzt_mesh_write(mesh, "routes.cfg", text), 0);
    free(text);
    kill(vzt_mesh_pid(mesh, "gateway"), SIGHUP);
    int admin = vzt_mesh_admin_port(mesh, "gateway");
    assert_true(vzt_wait_metric(admin, RELOADED, 1, RELOAD_MS));
    vzt_resp_t r;
    s_call(mesh, "GET", "/v1/t/sunset", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    s_header_is(&r, "Sunset", "Fri, 31 Dec 2027 00:00:00 GMT");
    s_header_is(&r, "Link", "</v3/echo>; rel=\"successor-version\"");
    vzt_resp_free(&r);
    s_call(mesh, "GET", "/v2/echo", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    s_header_is(&r, "Deprecation", "@1799539200");
    vzt_resp_free(&r);

    //  Back to the first table: the sunset has passed again.
    text = s_routes(s_v2, s_sunset_before);
    assert_int_equal(vzt_mesh_write(mesh, "routes.cfg", text), 0);
    free(text);
    kill(vzt_mesh_pid(mesh, "gateway"), SIGHUP);
    assert_true(vzt_wait_metric(admin, RELOADED, 2, RELOAD_MS));
    s_call(mesh, "GET", "/v1/t/sunset", NULL, NULL, &r);
    assert_int_equal(r.status, 410);
    vzt_resp_free(&r);
    s_call(mesh, "GET", "/v2/echo", NULL, NULL, &r);
    s_header_is(&r, "Deprecation", NULL);
    vzt_resp_free(&r);
}

static bool s_gone(void *arg)
{
    vzt_mesh_t *mesh = arg;
    vzt_resp_t r;
    char url[512];
    snprintf(url, sizeof url, "%s/v1/t/soon", vzt_mesh_url(mesh));
    bool gone = vzt_request("GET", url, NULL, NULL, 0, HTTP_MS, &r) == 0 && r.status == 410;
    vzt_resp_free(&r);
    return gone;
}

//  A sunset a few seconds ahead of the gateway's clock arrives without a
//  reload: the route turns from 200 to 410 when the shifted clock passes
//  it (the date is compared per request, not when the table loads).
static void test_sunset_arrives(void **state)
{
    fixture_t *fx = *state;
    vzt_mesh_t *mesh = fx->mesh;
    int64_t now_ms = vz_clock_wire_ms();
    time_t sunset = (time_t)(CLOCK_START_S + (now_ms - fx->started_ms) / 1000 + SUNSET_AHEAD_S);
    struct tm tm;
    char when[32];
    assert_non_null(gmtime_r(&sunset, &tm));
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *soon = NULL;
    assert_true(asprintf(&soon,
                         "%s    t_soon\n        methods = \"GET\"\n        path = \"/v1/t/soon\"\n"
                         "        service = \"echo\"\n        call = \"echo\"\n"
                         "        deprecated = \"2026-06-01T00:00:00Z\"\n        sunset = \"%s\"\n",
                         s_sunset_before, when) > 0);
    char *text = s_routes(s_v2, soon);
    free(soon);
    assert_int_equal(vzt_mesh_write(mesh, "routes.cfg", text), 0);
    free(text);
    kill(vzt_mesh_pid(mesh, "gateway"), SIGHUP);
    assert_true(vzt_wait_metric(vzt_mesh_admin_port(mesh, "gateway"), RELOADED, 3, RELOAD_MS));
    vzt_resp_t r;
    s_call(mesh, "GET", "/v1/t/soon", NULL, NULL, &r);
    //  Before the sunset, when this machine was quick enough to ask in time.
    if (vz_clock_wire_ms() - now_ms < (SUNSET_AHEAD_S - 1) * 1000)
        assert_int_equal(r.status, 200);
    else
        printf("# slow machine: the answer before the sunset was not checked\n");
    vzt_resp_free(&r);
    assert_true(vzt_wait_until(s_gone, mesh, (SUNSET_AHEAD_S + 10) * 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_served_by_v2_method),
        cmocka_unit_test(test_deprecation_headers),
        cmocka_unit_test(test_sunset_410),
        cmocka_unit_test(test_route_version_in_ctx),
        cmocka_unit_test(test_per_client_counts),
        cmocka_unit_test(test_bounded_clients),
        cmocka_unit_test(test_reload_changes_deprecation),
        cmocka_unit_test(test_sunset_arrives),
    };
    return vzt_result(cmocka_run_group_tests(tests, s_setup, s_teardown));
}
