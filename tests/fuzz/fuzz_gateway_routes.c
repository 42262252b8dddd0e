/*  fuzz_gateway_routes - libFuzzer target for the gateway's route table (gw_routes_parse)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The input is a routes file (configs/routes.cfg format). A table that
 *  loads has 1..GW_ROUTES_MAX routes, each with methods, a pattern split
 *  into at most GW_ROUTE_SEGS_MAX segments with at most GW_ROUTE_PARAMS_MAX
 *  params, and strings that fit; every route's own pattern, params filled
 *  in, matches a route with at least as many literal segments, and the
 *  Allow set of that path covers the route's methods; the deprecation
 *  header values exist exactly when a date does, and hold no line break.
 *  A refused file gives a one-line reason.
 */
#include "fuzz.h"
#include "routes.h"

static void s_check_route(const gw_routes_t *table, const gw_route_t *r)
{
    FZ_CHECK_STR(r->name, sizeof r->name);
    FZ_CHECK_STR(r->path, sizeof r->path);
    FZ_CHECK_STR(r->service, sizeof r->service);
    FZ_CHECK_STR(r->call, sizeof r->call);
    FZ_CHECK_STR(r->scopes, sizeof r->scopes);
    FZ_CHECK_STR(r->accept, sizeof r->accept);
    FZ_CHECK_STR(r->reply_type, sizeof r->reply_type);
    FZ_CHECK(r->name[0] && r->path[0] == '/');
    FZ_CHECK(r->methods && (r->methods & ~GW_M_ALL) == 0);
    FZ_CHECK(r->seg_count <= GW_ROUTE_SEGS_MAX && r->header_count <= GW_ROUTE_HEADERS_MAX);
    FZ_CHECK(r->timeout_ms >= 0 && r->max_body >= 0);
    //  API versions: header values exist exactly for a deprecation, a
    //  sunset never precedes it, and no value can break a header line.
    FZ_CHECK_STR(r->version, sizeof r->version);
    FZ_CHECK_STR(r->successor, sizeof r->successor);
    FZ_CHECK_STR(r->hdr_link, sizeof r->hdr_link);
    FZ_CHECK((r->deprecated_s > 0) == (r->hdr_deprecation[0] == '@'));
    FZ_CHECK(r->sunset_s == 0 || (r->deprecated_s > 0 && r->sunset_s >= r->deprecated_s));
    FZ_CHECK((r->sunset_s > 0) == (r->hdr_sunset[0] != '\0'));
    FZ_CHECK(!strpbrk(r->hdr_link, "\r\n") && !strpbrk(r->hdr_sunset, "\r\n"));
    size_t params = 0, literals = 0;
    char path[GW_ROUTE_SEGS_MAX * VZ_NAME_MAX + 2] = "/";
    size_t len = 0;
    for (size_t i = 0; i < r->seg_count; i++) {
        FZ_CHECK_STR(r->segs[i], VZ_NAME_MAX);
        FZ_CHECK(r->segs[i][0]);
        params += r->is_param[i];
        literals += !r->is_param[i];
        len += (size_t)snprintf(path + len, sizeof path - len, "/%s",
                                r->is_param[i] ? "x" : r->segs[i]);
    }
    FZ_CHECK(params <= GW_ROUTE_PARAMS_MAX && literals == r->literal_count);
    //  Its own pattern reaches this route or a more literal one.
    for (unsigned bit = 1; bit <= GW_M_DELETE; bit <<= 1) {
        if (!(r->methods & bit))
            continue;
        gw_route_match_t m;
        FZ_CHECK(gw_routes_match(table, bit, path, &m));
        FZ_CHECK((m.allow & r->methods) == r->methods);
        FZ_CHECK(m.route->literal_count >= r->literal_count);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[256];
    gw_routes_t *table = gw_routes_parse(text, err, sizeof err);
    free(text);
    if (!table) {
        FZ_CHECK_STR(err, sizeof err);
        FZ_CHECK(err[0] && !strchr(err, '\n'));
        return 0;
    }
    size_t n = gw_routes_count(table);
    FZ_CHECK(n >= 1 && n <= GW_ROUTES_MAX);
    for (size_t i = 0; i < n; i++)
        s_check_route(table, gw_routes_at(table, i));
    gw_routes_unref(&table);
    FZ_CHECK(table == NULL);
    return 0;
}
