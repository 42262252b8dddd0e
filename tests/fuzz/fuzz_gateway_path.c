/*  fuzz_gateway_path - libFuzzer target for the gateway's request path and method checks
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The input is "<METHOD> <path>" as libmicrohttpd hands them over (the path
 *  ends at the first NUL or newline), matched against the shipped route
 *  table (configs/routes.cfg) with gw_routes_method_bit and
 *  gw_routes_match, as the gateway does for every request. Properties: an
 *  HTTP method maps to one GW_M_* bit or none; a match has the method, at
 *  most GW_ROUTE_PARAMS_MAX params that fit, non-empty and without '/';
 *  the path rebuilt from the pattern and the params is the path matched
 *  and matches the same route again; no match while Allow lists the
 *  method; the Allow text names exactly the allowed methods.
 *
 *  The header checks of gateway.c (X-Request-Id, traceparent, Content-Type,
 *  Origin, bearer token and X-API-Key charsets, Content-Length) are static
 *  there today and so not reachable from here: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "routes.h"

static gw_routes_t *s_table;

static void s_init(void)
{
    if (s_table)
        return;
    char err[256];
    s_table = gw_routes_load(FZ_ROUTES_FILE, err, sizeof err);
    if (!s_table)
        fprintf(stderr, "fuzz_gateway_path: %s: %s\n", FZ_ROUTES_FILE, err);
    FZ_CHECK(s_table);
}

//  Allow text back to bits: every name known, each once.
static unsigned s_allow_bits(const char *text)
{
    char copy[64];
    snprintf(copy, sizeof copy, "%s", text);
    unsigned bits = 0;
    for (char *save = NULL, *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        unsigned bit = gw_routes_method_bit(w);
        FZ_CHECK(bit && !(bits & bit));
        bits |= bit;
    }
    return bits;
}

static void s_check_match(const char *path, unsigned bit, const gw_route_match_t *m)
{
    const gw_route_t *r = m->route;
    FZ_CHECK(r && (r->methods & bit) && (m->allow & r->methods) == r->methods);
    FZ_CHECK(m->param_count <= GW_ROUTE_PARAMS_MAX);
    char rebuilt[GW_ROUTE_SEGS_MAX * VZ_CTX_VAL_MAX + 2] = "";
    size_t len = 0, k = 0;
    for (size_t i = 0; i < r->seg_count; i++) {
        const char *seg = r->segs[i];
        if (r->is_param[i]) {
            FZ_CHECK(k < m->param_count && strcmp(m->param_name[k], seg) == 0);
            FZ_CHECK_STR(m->param_name[k], GW_ROUTE_PARAM_MAX);
            FZ_CHECK_STR(m->param_value[k], VZ_CTX_VAL_MAX);
            seg = m->param_value[k++];
            FZ_CHECK(seg[0] && !strchr(seg, '/'));
        }
        len += (size_t)snprintf(rebuilt + len, sizeof rebuilt - len, "/%s", seg);
    }
    FZ_CHECK(k == m->param_count);
    FZ_CHECK(strcmp(r->seg_count ? rebuilt : "/", path) == 0);
    gw_route_match_t again;
    FZ_CHECK(gw_routes_match(s_table, bit, path, &again) && again.route == r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_init();
    char *line = malloc(size + 1);
    FZ_CHECK(line);
    memcpy(line, data, size);
    line[size] = '\0';
    line[strcspn(line, "\n")] = '\0';
    char *space = strchr(line, ' ');
    const char *method = line, *path = space ? space + 1 : "/";
    if (space)
        *space = '\0';

    unsigned bit = gw_routes_method_bit(method);
    FZ_CHECK((bit & (bit - 1)) == 0 && (bit & ~GW_M_ALL) == 0);
    gw_route_match_t m;
    bool found = gw_routes_match(s_table, bit, path, &m);
    FZ_CHECK((m.allow & ~GW_M_ALL) == 0);
    if (found)
        s_check_match(path, bit, &m);
    else
        FZ_CHECK(!m.route && m.param_count == 0 && (bit == 0 || !(m.allow & bit)));
    char allow[64];
    gw_routes_allow_text(m.allow, allow, sizeof allow);
    FZ_CHECK(s_allow_bits(allow) == m.allow);
    free(line);
    return 0;
}
