/*  tl_trace - sampled spans by trace id, trace trees, OTLP/HTTP JSON in and out
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Spans arrive two ways: in the reporters' snapshots (vz_telemetry_span,
 *  one service each) and as OTLP/HTTP JSON from programs outside the mesh
 *  (POST /v1/traces through the gateway: ExportTraceServiceRequest, ids in
 *  hex, times as nanosecond strings or numbers). Both are kept in Redis,
 *  one hash per trace ({tl}:tr:<trace id>: span id -> span JSON) that
 *  expires trace_ttl_s after its last span, so every replica reads the
 *  same traces.
 *
 *  The tree (tl_trace_tree): spans under their parent; a span whose parent
 *  is not in the trace is a root. The gateway forwards the caller's
 *  traceparent unchanged, so the services it calls name the caller's span
 *  as their parent, as the gateway's own span does: a span whose parent is
 *  also the parent of a gateway span (and not a span of the trace) goes
 *  under that gateway span.
 *
 *  Parsing reads bytes from the network: every field is checked, nothing
 *  asserted; limits: TL_TRACE_SPANS_MAX spans per request and per trace.
 *  Reactor thread (the caller's vz_redis_t).
 */
#ifndef TL_TRACE_H
#define TL_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_redis.h"
#include "vz_telemetry_contract.h"

#define TL_TRACE_SPANS_MAX 1000 //  spans per OTLP request, and read per trace
#define TL_TRACE_TEXT 128       //  bytes kept of a name, service or status (with NUL)

//  One span as stored: any text (escaped when written), ids in hex.
typedef struct {
    char trace[VZ_TL_TRACE_HEX + 1]; //  trace id
    char span[VZ_TL_SPAN_HEX + 1];   //  span id
    char parent[VZ_TL_SPAN_HEX + 1]; //  parent span id, "" = root
    char service[TL_TRACE_TEXT];     //  reporting service (OTLP: resource service.name)
    char name[TL_TRACE_TEXT];        //  method, route or OTLP span name
    char code[TL_TRACE_TEXT];        //  outcome: "ok", an error code, an HTTP status, "error"
    int64_t start_us;                //  start, Unix us
    int64_t dur_us;                  //  duration
} tl_span_t;

//  A reporter's span for service, as stored.
void tl_span_from_report(tl_span_t *out, const char *service, const vz_tl_span_t *span);

//  Store n spans, each trace kept ttl_s past its last span and holding at
//  most TL_TRACE_SPANS_MAX (new spans past it are dropped). 0 or -EIO.
int tl_trace_store(vz_redis_t *redis, const tl_span_t *spans, size_t n, int ttl_s);

//  The trace's tree as JSON (caller frees): {"trace_id", "spans": n,
//  "services": [...], "start_us", "duration_us", "roots": [{span_id,
//  parent_id, service, name, code, start_us, duration_us, children:
//  [...]}]}. NULL with *err: -ENOENT unknown (or expired) trace, -EIO
//  Redis away.
char *tl_trace_tree(vz_redis_t *redis, const char *trace, int *err);

//  Parse an OTLP/HTTP JSON ExportTraceServiceRequest into a new array of
//  spans (*spans_p, caller frees; *n_p rows). 0, or -1 with a static *why
//  (not JSON, a span with a bad id or time, more than TL_TRACE_SPANS_MAX).
int tl_otlp_traces_parse(const void *body, size_t len, tl_span_t **spans_p, size_t *n_p,
                         const char **why);

//  One OTLP metric point: the latest value of a gauge or sum, or a
//  histogram's count and sum.
typedef struct {
    char service[TL_TRACE_TEXT]; //  resource service.name
    char name[TL_TRACE_TEXT];    //  metric name
    double value;                //  gauge/sum value, histogram sum
    uint64_t count;              //  histogram count (1 for a gauge or sum point)
} tl_otlp_point_t;

//  Parse an OTLP/HTTP JSON ExportMetricsServiceRequest (gauge, sum and
//  histogram points): as for traces.
int tl_otlp_metrics_parse(const void *body, size_t len, tl_otlp_point_t **points_p, size_t *n_p,
                          const char **why);

//  Encode spans as an OTLP/HTTP JSON ExportTraceServiceRequest (one
//  resource per service), for the collector (caller frees).
char *tl_otlp_traces_encode(const tl_span_t *spans, size_t n, size_t *len_p);

#endif
