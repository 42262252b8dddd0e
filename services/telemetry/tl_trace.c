/*  tl_trace - sampled spans by trace id, trace trees, OTLP/HTTP JSON in and out
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "tl_trace.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_common.h"
#include "vz_json.h"

#define S_PREFIX "{tl}:tr:" //  a trace's hash: span id -> JSON
#define S_DEPTH_MAX 64      //  tree depth written; deeper spans are cut

//  KEYS: the trace key prefix (hash tag: the slot); ARGV: TTL, cap, then
//  trace, span, JSON triples.
//  A trace holds at most cap spans (later new ones are dropped).
static const char s_store_lua[] = "for i = 3, #ARGV, 3 do\n"
                                  "  local key = KEYS[1] .. ARGV[i]\n"
                                  "  if redis.call('HLEN', key) < tonumber(ARGV[2]) or\n"
                                  "     redis.call('HEXISTS', key, ARGV[i + 1]) == 1 then\n"
                                  "    redis.call('HSET', key, ARGV[i + 1], ARGV[i + 2])\n"
                                  "    redis.call('EXPIRE', key, ARGV[1])\n"
                                  "  end\n"
                                  "end\n"
                                  "return 1\n";

static vz_redis_script_t *s_script(void)
{
    //  One script object for the process: the sink runs one reactor.
    static vz_redis_script_t *script;
    if (!script)
        script = vz_redis_script_new(s_store_lua);
    return script;
}

void tl_span_from_report(tl_span_t *out, const char *service, const vz_tl_span_t *span)
{
    memset(out, 0, sizeof *out);
    vz_strlcpy(out->trace, span->trace, sizeof out->trace);
    vz_strlcpy(out->span, span->span, sizeof out->span);
    vz_strlcpy(out->parent, span->parent, sizeof out->parent);
    vz_strlcpy(out->service, service, sizeof out->service);
    vz_strlcpy(out->name, span->name, sizeof out->name);
    vz_strlcpy(out->code, span->code, sizeof out->code);
    out->start_us = span->start_us;
    out->dur_us = span->dur_us;
}

static char *s_span_json(const tl_span_t *span)
{
    vz_json_writer_t *w = vz_json_writer_new(4 * TL_TRACE_TEXT + 256);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "parent", span->parent);
    vz_json_write_kv_string(w, "service", span->service);
    vz_json_write_kv_string(w, "name", span->name);
    vz_json_write_kv_string(w, "code", span->code);
    vz_json_write_kv_int(w, "start_us", span->start_us);
    vz_json_write_kv_int(w, "dur_us", span->dur_us);
    vz_json_write_object_end(w);
    size_t len = 0;
    char *text = vz_json_writer_take(w, &len);
    vz_json_writer_destroy(&w);
    return text;
}

int tl_trace_store(vz_redis_t *redis, const tl_span_t *spans, size_t n, int ttl_s)
{
    if (n == 0)
        return 0;
    const char **args = (const char **)calloc(2 + 3 * n, sizeof(char *));
    char **owned = (char **)calloc(n, sizeof(char *));
    assert(args && owned);
    char ttl[24], cap[24];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    snprintf(cap, sizeof cap, "%d", TL_TRACE_SPANS_MAX);
    args[0] = ttl;
    args[1] = cap;
    for (size_t i = 0; i < n; i++) {
        owned[i] = s_span_json(&spans[i]);
        args[2 + 3 * i] = spans[i].trace;
        args[3 + 3 * i] = spans[i].span;
        args[4 + 3 * i] = owned[i] ? owned[i] : "{}";
    }
    redisReply *reply =
        vz_redis_eval(redis, s_script(), 1, (const char *[]){S_PREFIX}, (int)(2 + 3 * n), args);
    int rc = reply && reply->type != REDIS_REPLY_ERROR ? 0 : -EIO;
    if (reply)
        freeReplyObject(reply);
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(args);
    return rc;
}

// --------------------------------------------------------------------------
//  The tree

typedef struct {
    tl_span_t *spans; //  the trace's spans
    size_t n;         //  rows
    bool *written;    //  per span: already in the tree (guards against cycles)
} s_tree_t;

//  The gateway span that adopts span: a gateway span with the same parent
//  (the traceparent the gateway forwarded) whose time holds span's start,
//  else the only gateway span with that parent.
static const tl_span_t *s_adopter(const s_tree_t *t, const tl_span_t *span)
{
    if (!*span->parent || strcmp(span->service, "gateway") == 0)
        return NULL;
    const tl_span_t *only = NULL;
    size_t same = 0;
    for (size_t i = 0; i < t->n; i++) {
        const tl_span_t *gw = &t->spans[i];
        if (strcmp(gw->service, "gateway") != 0 || strcmp(gw->parent, span->parent) != 0)
            continue;
        if (span->start_us >= gw->start_us && span->start_us <= gw->start_us + gw->dur_us)
            return gw;
        only = gw;
        same++;
    }
    return same == 1 ? only : NULL;
}

//  The span under which span hangs, or NULL for a root.
static const tl_span_t *s_parent_of(const s_tree_t *t, const tl_span_t *span)
{
    const tl_span_t *adopter = s_adopter(t, span);
    if (adopter)
        return adopter;
    for (size_t i = 0; *span->parent && i < t->n; i++)
        if (strcmp(t->spans[i].span, span->parent) == 0 && &t->spans[i] != span)
            return &t->spans[i];
    return NULL;
}

static void s_write_span(s_tree_t *t, vz_json_writer_t *w, size_t at, int depth)
{
    const tl_span_t *span = &t->spans[at];
    t->written[at] = true;
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "span_id", span->span);
    vz_json_write_kv_string(w, "parent_id", span->parent);
    vz_json_write_kv_string(w, "service", span->service);
    vz_json_write_kv_string(w, "name", span->name);
    vz_json_write_kv_string(w, "code", span->code);
    vz_json_write_kv_int(w, "start_us", span->start_us);
    vz_json_write_kv_int(w, "duration_us", span->dur_us);
    vz_json_write_key(w, "children");
    vz_json_write_array_begin(w);
    for (size_t i = 0; depth < S_DEPTH_MAX && i < t->n; i++)
        if (!t->written[i] && s_parent_of(t, &t->spans[i]) == span)
            s_write_span(t, w, i, depth + 1);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
}

static const char *s_str(const vz_json_value_t *root, const char *key)
{
    const char *text = vz_json_get_string(root, key, NULL);
    return text ? text : "";
}

//  One stored span from its hash field (id) and value (JSON): 0 or -1.
static int s_span_read(tl_span_t *out, const char *trace, const char *id, const char *json,
                       size_t len)
{
    memset(out, 0, sizeof *out);
    vz_json_t *doc = vz_json_parse(json, len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    int rc = -1;
    if (root && vz_json_type(root) == VZ_JSON_OBJECT) {
        vz_strlcpy(out->trace, trace, sizeof out->trace);
        vz_strlcpy(out->span, id, sizeof out->span);
        vz_strlcpy(out->parent, s_str(root, "parent"), sizeof out->parent);
        vz_strlcpy(out->service, s_str(root, "service"), sizeof out->service);
        vz_strlcpy(out->name, s_str(root, "name"), sizeof out->name);
        vz_strlcpy(out->code, s_str(root, "code"), sizeof out->code);
        vz_json_int(vz_json_get(root, "start_us"), &out->start_us);
        vz_json_int(vz_json_get(root, "dur_us"), &out->dur_us);
        rc = 0;
    }
    vz_json_destroy(&doc);
    return rc;
}

char *tl_trace_tree(vz_redis_t *redis, const char *trace, int *err)
{
    assert(redis && trace && err);
    char key[16 + VZ_TL_TRACE_HEX];
    snprintf(key, sizeof key, S_PREFIX "%s", trace);
    const char *argv[] = {"HGETALL", key};
    redisReply *reply = vz_redis_command(redis, 2, argv, NULL);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            freeReplyObject(reply);
        *err = -EIO;
        return NULL;
    }
    size_t max = reply->elements / 2;
    if (max == 0) {
        freeReplyObject(reply);
        *err = -ENOENT;
        return NULL;
    }
    if (max > TL_TRACE_SPANS_MAX)
        max = TL_TRACE_SPANS_MAX;
    s_tree_t t = {(tl_span_t *)calloc(max, sizeof(tl_span_t)), 0, (bool *)calloc(max, 1)};
    assert(t.spans && t.written);
    for (size_t i = 0; i < max; i++) {
        redisReply *f = reply->element[2 * i], *v = reply->element[2 * i + 1];
        if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            s_span_read(&t.spans[t.n], trace, f->str, v->str, v->len) == 0)
            t.n++;
    }
    freeReplyObject(reply);
    int64_t first = INT64_MAX, last = 0;
    zlistx_t *services = zlistx_new();
    zlistx_set_duplicator(services, (czmq_duplicator *)strdup);
    zlistx_set_destructor(services, (czmq_destructor *)zstr_free);
    zlistx_set_comparator(services, (czmq_comparator *)strcmp);
    for (size_t i = 0; i < t.n; i++) {
        first = t.spans[i].start_us < first ? t.spans[i].start_us : first;
        int64_t end = t.spans[i].start_us + t.spans[i].dur_us;
        last = end > last ? end : last;
        if (!zlistx_find(services, t.spans[i].service))
            zlistx_add_end(services, t.spans[i].service);
    }
    vz_json_writer_t *w = vz_json_writer_new(4096 + t.n * (8 * TL_TRACE_TEXT + 256));
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "trace_id", trace);
    vz_json_write_kv_int(w, "spans", (int64_t)t.n);
    vz_json_write_key(w, "services");
    vz_json_write_array_begin(w);
    for (const char *s = zlistx_first(services); s; s = zlistx_next(services))
        vz_json_write_string(w, s);
    vz_json_write_array_end(w);
    vz_json_write_kv_int(w, "start_us", t.n ? first : 0);
    vz_json_write_kv_int(w, "duration_us", t.n ? last - first : 0);
    vz_json_write_key(w, "roots");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < t.n; i++)
        if (!t.written[i] && !s_parent_of(&t, &t.spans[i]))
            s_write_span(&t, w, i, 0);
    //  Spans caught in a parent cycle have no root: shown as roots.
    for (size_t i = 0; i < t.n; i++)
        if (!t.written[i])
            s_write_span(&t, w, i, 0);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    size_t len = 0;
    char *text = vz_json_writer_take(w, &len);
    vz_json_writer_destroy(&w);
    zlistx_destroy(&services);
    free(t.spans);
    free(t.written);
    *err = text ? 0 : -ENOMEM;
    return text;
}

// --------------------------------------------------------------------------
//  OTLP/HTTP JSON

//  A nanosecond time: a decimal string or a number. 0 or -1.
static int s_nanos(const vz_json_value_t *v, int64_t *out)
{
    if (vz_json_type(v) == VZ_JSON_STRING) {
        const char *text = vz_json_string(v, NULL);
        char *end = NULL;
        errno = 0;
        long long n = strtoll(text, &end, 10);
        if (errno || end == text || *end || n < 0)
            return -1;
        *out = n;
        return 0;
    }
    double d = 0;
    if (vz_json_int(v, out) == 0)
        return *out < 0 ? -1 : 0;
    if (vz_json_double(v, &d) < 0 || d < 0 || d > 9e18)
        return -1;
    *out = (int64_t)d;
    return 0;
}

//  A resource's service.name, or "unknown".
static void s_service_name(const vz_json_value_t *resource, char *out, size_t n)
{
    vz_strlcpy(out, "unknown", n);
    const vz_json_value_t *attrs = vz_json_get(resource, "attributes");
    for (size_t i = 0; i < vz_json_size(attrs); i++) {
        const vz_json_value_t *a = vz_json_at(attrs, i);
        const char *key = vz_json_get_string(a, "key", NULL);
        const char *value = vz_json_get_string(vz_json_get(a, "value"), "stringValue", NULL);
        if (key && value && strcmp(key, "service.name") == 0 && *value) {
            vz_strlcpy(out, value, n);
            return;
        }
    }
}

//  The span's id fields in hex, lowercased: 0 or -1.
static int s_hex_id(const vz_json_value_t *span, const char *key, char *out, size_t digits,
                    bool optional)
{
    size_t len = 0;
    const char *text = vz_json_get_string(span, key, &len);
    if (!text || len == 0) {
        out[0] = '\0';
        return optional ? 0 : -1;
    }
    if (len != digits)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)text[i]);
    out[len] = '\0';
    return vz_tl_hex_id_valid(out, digits) ? 0 : -1;
}

static int s_otlp_span(const vz_json_value_t *item, const char *service, tl_span_t *out)
{
    memset(out, 0, sizeof *out);
    int64_t start = 0, end = 0;
    if (s_hex_id(item, "traceId", out->trace, VZ_TL_TRACE_HEX, false) < 0 ||
        s_hex_id(item, "spanId", out->span, VZ_TL_SPAN_HEX, false) < 0 ||
        s_hex_id(item, "parentSpanId", out->parent, VZ_TL_SPAN_HEX, true) < 0 ||
        s_nanos(vz_json_get(item, "startTimeUnixNano"), &start) < 0 ||
        s_nanos(vz_json_get(item, "endTimeUnixNano"), &end) < 0 || end < start)
        return -1;
    vz_strlcpy(out->service, service, sizeof out->service);
    const char *name = vz_json_get_string(item, "name", NULL);
    vz_strlcpy(out->name, name && *name ? name : "span", sizeof out->name);
    int64_t status = 0;
    vz_json_int(vz_json_get(vz_json_get(item, "status"), "code"), &status);
    vz_strlcpy(out->code, status == 2 ? "error" : "ok", sizeof out->code);
    out->start_us = start / 1000;
    out->dur_us = (end - start) / 1000;
    return 0;
}

int tl_otlp_traces_parse(const void *body, size_t len, tl_span_t **spans_p, size_t *n_p,
                         const char **why)
{
    assert(spans_p && n_p && why);
    *spans_p = NULL;
    *n_p = 0;
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    const vz_json_value_t *rs = doc ? vz_json_get(vz_json_root(doc), "resourceSpans") : NULL;
    if (!doc || (rs && vz_json_type(rs) != VZ_JSON_ARRAY)) {
        vz_json_destroy(&doc);
        return *why = "not an OTLP JSON ExportTraceServiceRequest", -1;
    }
    tl_span_t *spans = (tl_span_t *)calloc(TL_TRACE_SPANS_MAX, sizeof(tl_span_t));
    assert(spans);
    size_t n = 0;
    int rc = 0;
    for (size_t r = 0; rc == 0 && r < vz_json_size(rs); r++) {
        const vz_json_value_t *res = vz_json_at(rs, r);
        char service[TL_TRACE_TEXT];
        s_service_name(vz_json_get(res, "resource"), service, sizeof service);
        const vz_json_value_t *ss = vz_json_get(res, "scopeSpans");
        for (size_t s = 0; rc == 0 && s < vz_json_size(ss); s++) {
            const vz_json_value_t *list = vz_json_get(vz_json_at(ss, s), "spans");
            for (size_t i = 0; rc == 0 && i < vz_json_size(list); i++) {
                if (n == TL_TRACE_SPANS_MAX)
                    rc = -1, *why = "more than 1000 spans";
                else if (s_otlp_span(vz_json_at(list, i), service, &spans[n]) < 0)
                    rc = -1, *why = "a span with a bad id or time";
                else
                    n++;
            }
        }
    }
    vz_json_destroy(&doc);
    if (rc < 0) {
        free(spans);
        return -1;
    }
    *spans_p = spans;
    *n_p = n;
    return 0;
}

//  A number point's value: asDouble, or asInt (string or number).
static double s_point_value(const vz_json_value_t *p)
{
    double d = 0;
    if (vz_json_double(vz_json_get(p, "asDouble"), &d) == 0)
        return d;
    const vz_json_value_t *i = vz_json_get(p, "asInt");
    int64_t n = 0;
    if (vz_json_type(i) == VZ_JSON_STRING)
        return strtod(vz_json_string(i, NULL), NULL);
    return vz_json_int(i, &n) == 0 ? (double)n : 0;
}

int tl_otlp_metrics_parse(const void *body, size_t len, tl_otlp_point_t **points_p, size_t *n_p,
                          const char **why)
{
    assert(points_p && n_p && why);
    *points_p = NULL;
    *n_p = 0;
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    const vz_json_value_t *rm = doc ? vz_json_get(vz_json_root(doc), "resourceMetrics") : NULL;
    if (!doc || (rm && vz_json_type(rm) != VZ_JSON_ARRAY)) {
        vz_json_destroy(&doc);
        return *why = "not an OTLP JSON ExportMetricsServiceRequest", -1;
    }
    tl_otlp_point_t *points = (tl_otlp_point_t *)calloc(TL_TRACE_SPANS_MAX, sizeof *points);
    assert(points);
    size_t n = 0;
    for (size_t r = 0; r < vz_json_size(rm); r++) {
        const vz_json_value_t *res = vz_json_at(rm, r);
        char service[TL_TRACE_TEXT];
        s_service_name(vz_json_get(res, "resource"), service, sizeof service);
        const vz_json_value_t *sm = vz_json_get(res, "scopeMetrics");
        for (size_t s = 0; s < vz_json_size(sm); s++) {
            const vz_json_value_t *metrics = vz_json_get(vz_json_at(sm, s), "metrics");
            for (size_t m = 0; m < vz_json_size(metrics); m++) {
                const vz_json_value_t *metric = vz_json_at(metrics, m);
                const char *name = vz_json_get_string(metric, "name", NULL);
                const char *kinds[] = {"gauge", "sum", "histogram"};
                for (size_t k = 0; name && k < 3; k++) {
                    const vz_json_value_t *dps =
                        vz_json_get(vz_json_get(metric, kinds[k]), "dataPoints");
                    for (size_t i = 0; i < vz_json_size(dps) && n < TL_TRACE_SPANS_MAX; i++) {
                        const vz_json_value_t *dp = vz_json_at(dps, i);
                        tl_otlp_point_t *p = &points[n++];
                        vz_strlcpy(p->service, service, sizeof p->service);
                        vz_strlcpy(p->name, name, sizeof p->name);
                        if (k < 2) {
                            p->value = s_point_value(dp);
                            p->count = 1;
                        } else {
                            int64_t count = 0;
                            s_nanos(vz_json_get(dp, "count"), &count);
                            vz_json_double(vz_json_get(dp, "sum"), &p->value);
                            p->count = (uint64_t)count;
                        }
                    }
                }
            }
        }
    }
    vz_json_destroy(&doc);
    *points_p = points;
    *n_p = n;
    return 0;
}

char *tl_otlp_traces_encode(const tl_span_t *spans, size_t n, size_t *len_p)
{
    vz_json_writer_t *w = vz_json_writer_new(1024 + n * (6 * TL_TRACE_TEXT + 512));
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "resourceSpans");
    vz_json_write_array_begin(w);
    bool *done = (bool *)calloc(n ? n : 1, 1);
    assert(done);
    //  One resource per service, its spans together.
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        vz_json_write_object_begin(w);
        vz_json_write_key(w, "resource");
        vz_json_write_object_begin(w);
        vz_json_write_key(w, "attributes");
        vz_json_write_array_begin(w);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "key", "service.name");
        vz_json_write_key(w, "value");
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "stringValue", spans[i].service);
        vz_json_write_object_end(w);
        vz_json_write_object_end(w);
        vz_json_write_array_end(w);
        vz_json_write_object_end(w);
        vz_json_write_key(w, "scopeSpans");
        vz_json_write_array_begin(w);
        vz_json_write_object_begin(w);
        vz_json_write_key(w, "scope");
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "name", "vizmesh");
        vz_json_write_object_end(w);
        vz_json_write_key(w, "spans");
        vz_json_write_array_begin(w);
        for (size_t j = i; j < n; j++) {
            if (done[j] || strcmp(spans[j].service, spans[i].service) != 0)
                continue;
            done[j] = true;
            const tl_span_t *s = &spans[j];
            char start[32], end[32];
            snprintf(start, sizeof start, "%lld", (long long)s->start_us * 1000);
            snprintf(end, sizeof end, "%lld", (long long)(s->start_us + s->dur_us) * 1000);
            vz_json_write_object_begin(w);
            vz_json_write_kv_string(w, "traceId", s->trace);
            vz_json_write_kv_string(w, "spanId", s->span);
            vz_json_write_kv_string(w, "parentSpanId", s->parent);
            vz_json_write_kv_string(w, "name", s->name);
            vz_json_write_kv_int(w, "kind", 2); //  SPAN_KIND_SERVER
            vz_json_write_kv_string(w, "startTimeUnixNano", start);
            vz_json_write_kv_string(w, "endTimeUnixNano", end);
            vz_json_write_key(w, "attributes");
            vz_json_write_array_begin(w);
            vz_json_write_object_begin(w);
            vz_json_write_kv_string(w, "key", "vizmesh.code");
            vz_json_write_key(w, "value");
            vz_json_write_object_begin(w);
            vz_json_write_kv_string(w, "stringValue", s->code);
            vz_json_write_object_end(w);
            vz_json_write_object_end(w);
            vz_json_write_array_end(w);
            vz_json_write_key(w, "status");
            vz_json_write_object_begin(w);
            bool ok = strcmp(s->code, "ok") == 0 || (s->code[0] >= '1' && s->code[0] <= '3');
            vz_json_write_kv_int(w, "code", ok ? 1 : 2);
            vz_json_write_object_end(w);
            vz_json_write_object_end(w);
        }
        vz_json_write_array_end(w);
        vz_json_write_object_end(w);
        vz_json_write_array_end(w);
        vz_json_write_object_end(w);
    }
    free(done);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    char *text = vz_json_writer_take(w, len_p);
    vz_json_writer_destroy(&w);
    return text;
}
