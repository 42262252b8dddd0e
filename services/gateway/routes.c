/*  routes - the gateway's route table, loaded from a ZPL file (configs/routes.cfg)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "routes.h"
#include "gw_deprecation.h"
#include "vz_authctx.h"
#include "vz_config.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
#define SEG_CHARS NAME_CHARS "~"
#define PARAM_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"
#define TYPE_CHARS "abcdefghijklmnopqrstuvwxyz0123456789.+-/"
#define HEADER_CHARS "abcdefghijklmnopqrstuvwxyz0123456789-"
#define VERSION_CHARS NAME_CHARS "+"

struct gw_routes_t {
    atomic_int refs;   //  holders: the gateway and requests in flight
    size_t count;      //  routes used
    gw_route_t *route; //  heap array of count
};

static const struct {
    const char *name; //  HTTP method
    unsigned bit;     //  GW_M_*
} s_methods[] = {
    {"GET", GW_M_GET},     {"POST", GW_M_POST},     {"PUT", GW_M_PUT},
    {"PATCH", GW_M_PATCH}, {"DELETE", GW_M_DELETE},
};
#define METHOD_COUNT (sizeof s_methods / sizeof s_methods[0])

unsigned gw_routes_method_bit(const char *method)
{
    for (size_t i = 0; method && i < METHOD_COUNT; i++)
        if (strcmp(method, s_methods[i].name) == 0)
            return s_methods[i].bit;
    return 0;
}

void gw_routes_allow_text(unsigned methods, char *buf, size_t n)
{
    assert(buf && n > 0);
    buf[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < METHOD_COUNT; i++) {
        if (!(methods & s_methods[i].bit))
            continue;
        int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", s_methods[i].name);
        if (w < 0 || (size_t)w >= n - len)
            return;
        len += (size_t)w;
    }
}

static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool s_only(const char *text, const char *chars)
{
    return strspn(text, chars) == strlen(text);
}

//  "250ms", "2s", "1500" (ms); -1 when malformed or out of 1..300000.
static int s_parse_ms(const char *text)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (end == text || value < 0 || errno == ERANGE)
        return -1;
    //  Bounded before the multiplication: "9223372036854775807s" must not
    //  wrap into a small timeout (found by fuzz_gateway_routes).
    if (strcmp(end, "s") == 0)
        value = value <= 300 ? value * 1000 : -1;
    else if (*end && strcmp(end, "ms") != 0)
        return -1;
    return value >= 1 && value <= 300000 ? (int)value : -1;
}

static int s_parse_bool(const char *text, bool *out)
{
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0 || strcmp(text, "yes") == 0)
        *out = true;
    else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0 || strcmp(text, "no") == 0 ||
             !*text)
        *out = false;
    else
        return -1;
    return 0;
}

//  Split "/v1/x/{id}" into segments; param names checked.
static int s_parse_path(gw_route_t *r, char *err, size_t errlen)
{
    const char *p = r->path;
    if (p[0] != '/') {
        s_err(err, errlen, "route %s: path must start with '/'", r->name);
        return -1;
    }
    size_t params = 0;
    while (*p == '/') {
        p++;
        size_t len = strcspn(p, "/");
        if (len == 0 && !*p && r->seg_count == 0)
            break; //  "/" alone
        if (len == 0 || len >= VZ_NAME_MAX || r->seg_count == GW_ROUTE_SEGS_MAX) {
            s_err(err, errlen, "route %s: bad path segment in %s", r->name, r->path);
            return -1;
        }
        size_t i = r->seg_count++;
        if (p[0] == '{' && p[len - 1] == '}') {
            if (len - 2 == 0 || len - 2 >= GW_ROUTE_PARAM_MAX || params == GW_ROUTE_PARAMS_MAX) {
                s_err(err, errlen, "route %s: bad parameter in %s", r->name, r->path);
                return -1;
            }
            memcpy(r->segs[i], p + 1, len - 2);
            r->segs[i][len - 2] = '\0';
            r->is_param[i] = true;
            params++;
            //  Two params with one name would overwrite each other in ctx.
            for (size_t j = 0; j < i; j++)
                if (r->is_param[j] && strcmp(r->segs[j], r->segs[i]) == 0) {
                    s_err(err, errlen, "route %s: parameter %s repeated", r->name, r->segs[i]);
                    return -1;
                }
            if (!s_only(r->segs[i], PARAM_CHARS)) {
                s_err(err, errlen, "route %s: parameter names are [a-z0-9_]", r->name);
                return -1;
            }
        } else {
            memcpy(r->segs[i], p, len);
            r->segs[i][len] = '\0';
            if (!s_only(r->segs[i], SEG_CHARS)) {
                s_err(err, errlen, "route %s: bad character in path %s", r->name, r->path);
                return -1;
            }
            r->literal_count++;
        }
        p += len;
    }
    if (*p) {
        s_err(err, errlen, "route %s: bad path %s", r->name, r->path);
        return -1;
    }
    return 0;
}

static int s_copy(char *dst, size_t n, const char *src, const char *route, const char *field,
                  char *err, size_t errlen)
{
    if (vz_strlcpy(dst, src, n) < 0) {
        s_err(err, errlen, "route %s: %s too long", route, field);
        return -1;
    }
    return 0;
}

//  query = "period at": parameters forwarded as ctx "query.<name>", names
//  of [a-z0-9_], each once; with the params and headers at most
//  GW_ROUTE_NAMED_MAX, so the ctx never runs out of room.
static int s_parse_query(zconfig_t *node, gw_route_t *r, char *err, size_t errlen)
{
    const char *name = r->name;
    char query[GW_ROUTE_TEXT_MAX];
    if (s_copy(query, sizeof query, zconfig_get(node, "query", ""), name, "query", err, errlen) < 0)
        return -1;
    size_t named = r->header_count;
    for (size_t i = 0; i < r->seg_count; i++)
        named += r->is_param[i];
    for (char *save = NULL, *tok = strtok_r(query, " ,", &save); tok;
         tok = strtok_r(NULL, " ,", &save)) {
        bool twice = false;
        for (size_t i = 0; i < r->query_count; i++)
            twice = twice || strcmp(r->query[i], tok) == 0;
        if (twice || r->query_count == GW_ROUTE_QUERY_MAX || named + 1 > GW_ROUTE_NAMED_MAX ||
            !s_only(tok, PARAM_CHARS) ||
            strlen(VZ_AUTHCTX_QUERY_PREFIX) + strlen(tok) >= VZ_CTX_KEY_MAX) {
            s_err(err, errlen, "route %s: bad, repeated or too many query parameters", name);
            return -1;
        }
        vz_strlcpy(r->query[r->query_count++], tok, VZ_CTX_KEY_MAX);
        named++;
    }
    return 0;
}

//  API versions: the target service version (ctx "route.version") and a
//  deprecation with its sunset, successor and documentation; the header
//  values are made here, once per table.
static int s_parse_version(zconfig_t *node, gw_route_t *r, char *err, size_t errlen)
{
    const char *name = r->name;
    const char *version = zconfig_get(node, "version", "");
    if (!s_only(version, VERSION_CHARS) ||
        s_copy(r->version, sizeof r->version, version, name, "version", err, errlen) < 0) {
        if (!*err)
            s_err(err, errlen, "route %s: version is [A-Za-z0-9_.+-]", name);
        return -1;
    }
    if (strcmp(r->service, GW_ROUTE_SELF) == 0 &&
        (strcmp(r->call, GW_DEPRECATION_SELF_CALL) != 0 || r->version[0])) {
        s_err(err, errlen, "route %s: service %s answers only call %s", name, GW_ROUTE_SELF,
              GW_DEPRECATION_SELF_CALL);
        return -1;
    }
    const char *deprecated = zconfig_get(node, "deprecated", "");
    const char *sunset = zconfig_get(node, "sunset", "");
    const char *successor = zconfig_get(node, "successor", "");
    const char *link = zconfig_get(node, "deprecation_link", "");
    if (!*deprecated) {
        if (*sunset || *successor || *link) {
            s_err(err, errlen, "route %s: sunset, successor and deprecation_link need deprecated",
                  name);
            return -1;
        }
        return 0;
    }
    if (gw_deprecation_parse_date(deprecated, &r->deprecated_s) < 0 ||
        (*sunset && gw_deprecation_parse_date(sunset, &r->sunset_s) < 0)) {
        s_err(err, errlen, "route %s: deprecated and sunset are dates like 2027-06-01T00:00:00Z",
              name);
        return -1;
    }
    //  RFC 9745 §4: the sunset must not come before the deprecation.
    if (r->sunset_s && r->sunset_s < r->deprecated_s) {
        s_err(err, errlen, "route %s: sunset is before deprecated", name);
        return -1;
    }
    if ((*successor && !gw_deprecation_ref_ok(successor)) ||
        (*link && !gw_deprecation_ref_ok(link)) ||
        s_copy(r->successor, sizeof r->successor, successor, name, "successor", err, errlen) < 0 ||
        s_copy(r->deprecation_link, sizeof r->deprecation_link, link, name, "deprecation_link", err,
               errlen) < 0) {
        if (!*err)
            s_err(err, errlen,
                  "route %s: successor and deprecation_link are a path or an http(s) URL", name);
        return -1;
    }
    gw_deprecation_sf_date(r->deprecated_s, r->hdr_deprecation, sizeof r->hdr_deprecation);
    if (r->sunset_s)
        gw_deprecation_http_date(r->sunset_s, r->hdr_sunset, sizeof r->hdr_sunset);
    //  Two references of GW_ROUTE_PATH_MAX always fit GW_ROUTE_LINK_MAX.
    int rc =
        gw_deprecation_link(r->successor, r->deprecation_link, r->hdr_link, sizeof r->hdr_link);
    assert(rc == 0);
    (void)rc;
    return 0;
}

//  One route from its ZPL block; every field checked.
static int s_parse_route(zconfig_t *node, gw_route_t *r, char *err, size_t errlen)
{
    err[0] = '\0'; //  read below to tell whether a helper already said why
    const char *name = zconfig_name(node);
    if (!name || !*name || strlen(name) >= VZ_NAME_MAX || !s_only(name, NAME_CHARS)) {
        s_err(err, errlen, "route name must be 1..63 of [A-Za-z0-9_.-]");
        return -1;
    }
    vz_strlcpy(r->name, name, sizeof r->name);

    char methods[128];
    if (s_copy(methods, sizeof methods, zconfig_get(node, "methods", ""), name, "methods", err,
               errlen) < 0)
        return -1;
    for (char *save = NULL, *tok = strtok_r(methods, " ,", &save); tok;
         tok = strtok_r(NULL, " ,", &save)) {
        unsigned bit = gw_routes_method_bit(tok);
        if (!bit) {
            s_err(err, errlen, "route %s: unknown method %s", name, tok);
            return -1;
        }
        r->methods |= bit;
    }
    if (!r->methods) {
        s_err(err, errlen, "route %s: methods missing", name);
        return -1;
    }
    if (s_copy(r->path, sizeof r->path, zconfig_get(node, "path", ""), name, "path", err, errlen) <
            0 ||
        s_parse_path(r, err, errlen) < 0)
        return -1;

    const char *service = zconfig_get(node, "service", "");
    const char *call = zconfig_get(node, "call", "");
    if (!*service || !*call || !s_only(service, NAME_CHARS) || !s_only(call, NAME_CHARS) ||
        s_copy(r->service, sizeof r->service, service, name, "service", err, errlen) < 0 ||
        s_copy(r->call, sizeof r->call, call, name, "call", err, errlen) < 0) {
        if (!*err)
            s_err(err, errlen, "route %s: service and call must be names", name);
        return -1;
    }

    const char *auth = zconfig_get(node, "auth", "none");
    static const char *const auths[] = {"none", "jwt", "api_key", "any"};
    r->auth = (gw_route_auth_t)-1;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(auth, auths[i]) == 0)
            r->auth = (gw_route_auth_t)i;
    if ((int)r->auth < 0) {
        s_err(err, errlen, "route %s: auth must be none, jwt, api_key or any", name);
        return -1;
    }
    if (s_copy(r->scopes, sizeof r->scopes, zconfig_get(node, "scopes", ""), name, "scopes", err,
               errlen) < 0)
        return -1;
    if (r->scopes[0] && r->auth == GW_AUTH_NONE) {
        s_err(err, errlen, "route %s: scopes need auth", name);
        return -1;
    }
    const char *rate = zconfig_get(node, "rate_class", "");
    if (!s_only(rate, NAME_CHARS) ||
        s_copy(r->rate_class, sizeof r->rate_class, rate, name, "rate_class", err, errlen) < 0) {
        if (!*err)
            s_err(err, errlen, "route %s: bad rate_class", name);
        return -1;
    }

    const char *timeout = zconfig_get(node, "timeout", "");
    if (*timeout && (r->timeout_ms = s_parse_ms(timeout)) < 0) {
        s_err(err, errlen, "route %s: timeout \"%s\": expected 1ms..300s", name, timeout);
        return -1;
    }
    const char *retry = zconfig_get(node, "retry", "none");
    if (strcmp(retry, "idempotent") == 0)
        r->retry = true;
    else if (strcmp(retry, "none") != 0) {
        s_err(err, errlen, "route %s: retry must be none or idempotent", name);
        return -1;
    }
    const char *body = zconfig_get(node, "max_body", "");
    if (*body) {
        char *end = NULL;
        long value = strtol(body, &end, 10);
        if (end == body || *end || value < 0 || value > 64L * 1024 * 1024) {
            s_err(err, errlen, "route %s: max_body must be 0..67108864", name);
            return -1;
        }
        r->max_body = (int)value;
    }
    const char *accept = zconfig_get(node, "accept", "");
    if (!s_only(accept, TYPE_CHARS " ") ||
        s_copy(r->accept, sizeof r->accept, accept, name, "accept", err, errlen) < 0) {
        if (!*err)
            s_err(err, errlen, "route %s: accept lists lowercase media types", name);
        return -1;
    }
    if (s_parse_bool(zconfig_get(node, "json", ""), &r->json) < 0 ||
        s_parse_bool(zconfig_get(node, "pass_content_type", ""), &r->pass_ctype) < 0 ||
        s_parse_bool(zconfig_get(node, "optional", ""), &r->optional) < 0 ||
        s_parse_bool(zconfig_get(node, "bundle", "true"), &r->bundle) < 0) {
        s_err(err, errlen, "route %s: json, pass_content_type, optional and bundle are booleans",
              name);
        return -1;
    }
    const char *errors = zconfig_get(node, "errors", "vizmesh");
    r->oauth_errors = strcmp(errors, "oauth2") == 0;
    if (!r->oauth_errors && strcmp(errors, "vizmesh") != 0) {
        s_err(err, errlen, "route %s: errors is vizmesh or oauth2", name);
        return -1;
    }
    const char *reply = zconfig_get(node, "reply_type", "");
    if (!s_only(reply, TYPE_CHARS " ;=") ||
        s_copy(r->reply_type, sizeof r->reply_type, reply, name, "reply_type", err, errlen) < 0) {
        if (!*err)
            s_err(err, errlen, "route %s: bad reply_type", name);
        return -1;
    }

    char headers[GW_ROUTE_TEXT_MAX];
    if (s_copy(headers, sizeof headers, zconfig_get(node, "headers", ""), name, "headers", err,
               errlen) < 0)
        return -1;
    for (char *save = NULL, *tok = strtok_r(headers, " ,", &save); tok;
         tok = strtok_r(NULL, " ,", &save)) {
        for (char *c = tok; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        //  "header." + name must fit a ctx key.
        if (r->header_count == GW_ROUTE_HEADERS_MAX || !s_only(tok, HEADER_CHARS) ||
            strlen(VZ_AUTHCTX_HEADER_PREFIX) + strlen(tok) >= VZ_CTX_KEY_MAX) {
            s_err(err, errlen, "route %s: bad or too many headers", name);
            return -1;
        }
        //  The gateway consumes the credential of an authenticated route:
        //  services get the verified identity, never the raw secret.
        if (r->auth != GW_AUTH_NONE &&
            (strcmp(tok, "authorization") == 0 || strcmp(tok, "x-api-key") == 0)) {
            s_err(err, errlen, "route %s: %s is consumed by the gateway on auth routes", name, tok);
            return -1;
        }
        vz_strlcpy(r->headers[r->header_count++], tok, VZ_CTX_KEY_MAX);
    }
    if (s_parse_query(node, r, err, errlen) < 0)
        return -1;
    return s_parse_version(node, r, err, errlen);
}

//  Same methods on the same pattern (params compared by position) twice
//  would make one route unreachable.
static bool s_clash(const gw_route_t *a, const gw_route_t *b)
{
    if (!(a->methods & b->methods) || a->seg_count != b->seg_count)
        return false;
    for (size_t i = 0; i < a->seg_count; i++) {
        if (a->is_param[i] != b->is_param[i])
            return false;
        if (!a->is_param[i] && strcmp(a->segs[i], b->segs[i]) != 0)
            return false;
    }
    return true;
}

//  The table from a parsed file; consumes root.
static gw_routes_t *s_routes_build(zconfig_t *root, char *err, size_t errlen)
{
    zconfig_t *list = zconfig_locate(root, "routes");
    gw_routes_t *self = calloc(1, sizeof *self);
    assert(self);
    atomic_init(&self->refs, 1);
    size_t count = 0;
    for (zconfig_t *c = list ? zconfig_child(list) : NULL; c; c = zconfig_next(c))
        count++;
    if (count == 0 || count > GW_ROUTES_MAX) {
        s_err(err, errlen, "expected 1..%d routes under \"routes\"", GW_ROUTES_MAX);
        goto fail;
    }
    self->route = calloc(count, sizeof *self->route);
    assert(self->route);
    for (zconfig_t *c = zconfig_child(list); c; c = zconfig_next(c)) {
        gw_route_t *r = &self->route[self->count];
        if (s_parse_route(c, r, err, errlen) < 0)
            goto fail;
        for (size_t j = 0; j < self->count; j++) {
            if (strcmp(self->route[j].name, r->name) == 0) {
                s_err(err, errlen, "route %s: name used twice", r->name);
                goto fail;
            }
            if (s_clash(&self->route[j], r)) {
                s_err(err, errlen, "route %s: same method and path as %s", r->name,
                      self->route[j].name);
                goto fail;
            }
        }
        self->count++;
    }
    zconfig_destroy(&root);
    return self;
fail:
    zconfig_destroy(&root);
    gw_routes_unref(&self);
    return NULL;
}

gw_routes_t *gw_routes_parse(const char *text, char *err, size_t errlen)
{
    assert(text && err && errlen > 0);
    zconfig_t *root = vz_config_parse(text, strlen(text), "routes", err, errlen);
    return root ? s_routes_build(root, err, errlen) : NULL;
}

gw_routes_t *gw_routes_load(const char *path, char *err, size_t errlen)
{
    assert(path && err && errlen > 0);
    zconfig_t *root = vz_config_read(path, 0, err, errlen);
    return root ? s_routes_build(root, err, errlen) : NULL;
}

gw_routes_t *gw_routes_ref(gw_routes_t *self)
{
    assert(self);
    atomic_fetch_add(&self->refs, 1);
    return self;
}

void gw_routes_unref(gw_routes_t **self_p)
{
    assert(self_p);
    gw_routes_t *self = *self_p;
    *self_p = NULL;
    if (!self || atomic_fetch_sub(&self->refs, 1) != 1)
        return;
    free(self->route);
    free(self);
}

size_t gw_routes_count(const gw_routes_t *self)
{
    assert(self);
    return self->count;
}

gw_route_t *gw_routes_at(gw_routes_t *self, size_t i)
{
    assert(self && i < self->count);
    return &self->route[i];
}

//  Does path (split into segs) fit route r? Params captured into match.
static bool s_fits(const gw_route_t *r, char segs[][VZ_CTX_VAL_MAX], size_t n)
{
    if (n != r->seg_count)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!r->is_param[i] && strcmp(r->segs[i], segs[i]) != 0)
            return false;
    return true;
}

bool gw_routes_match(const gw_routes_t *self, unsigned method, const char *path,
                     gw_route_match_t *match)
{
    assert(self && path && match);
    memset(match, 0, sizeof *match);
    char segs[GW_ROUTE_SEGS_MAX][VZ_CTX_VAL_MAX];
    size_t n = 0;
    const char *p = path;
    if (*p != '/')
        return false;
    while (*p == '/') {
        p++;
        size_t len = strcspn(p, "/");
        if (len == 0 && !*p && n == 0)
            break;
        //  Empty segments ("//", trailing "/") and oversized ones match nothing.
        if (len == 0 || len >= VZ_CTX_VAL_MAX || n == GW_ROUTE_SEGS_MAX)
            return false;
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        p += len;
    }
    const gw_route_t *best = NULL;
    for (size_t i = 0; i < self->count; i++) {
        const gw_route_t *r = &self->route[i];
        if (!s_fits(r, segs, n))
            continue;
        match->allow |= r->methods;
        //  The most literal pattern wins: /a/me before /a/{id}.
        if ((r->methods & method) && (!best || r->literal_count > best->literal_count))
            best = r;
    }
    if (!best)
        return false;
    match->route = best;
    for (size_t i = 0; i < n; i++) {
        if (!best->is_param[i])
            continue;
        size_t k = match->param_count++;
        vz_strlcpy(match->param_name[k], best->segs[i], GW_ROUTE_PARAM_MAX);
        vz_strlcpy(match->param_value[k], segs[i], VZ_CTX_VAL_MAX);
    }
    return true;
}
