/*  vz_telemetry_contract - the body of telemetry.ingest: one reporter snapshot (version 1)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The one definition of what a reporter (vz_telemetry.c, in every daemon)
 *  sends to the sink (services/telemetry) and how the sink reads it; the
 *  field names below are used by both. docs/protocol.md, "Service
 *  contracts", lists it field by field.
 *
 *    {"v":1,"service":"echo","service_version":"1.4.0","replica":0,"pid":123,
 *     "t":<end, Unix ms>,
 *     "interval_ms":10000,"seq":7,"lost":0,"dropped":0,
 *     "sat":{"cpu":0.12,"rss":4096000,"fds":14},
 *     "series":[{"name":"echo","count":12,"sum_us":3400,
 *                "codes":{"ok":10,"invalid_request":2},
 *                "bins":[[idx,count],...]}],
 *     "users":["u_1",...],"user_calls":[3,...],"users_over":0,
 *     "spans":[{"trace":"<32 hex>","span":"<16 hex>","parent":"<16 hex or empty>",
 *               "name":"echo","code":"ok","start_us":<Unix us>,"dur_us":120}],
 *     "spans_over":0,"events":{"signup":1,"country.DE":4}}
 *
 *  service_version (the version the reporter's worker announces to the
 *  broker, VZ_SERVICE_VERSION or the build's; [A-Za-z0-9._+-], under
 *  VZ_VERSION_MAX bytes; "" = none) is optional: a snapshot without it (an older
 *  reporter, the broker's own) has version "" and counts in no per-version
 *  series of the sink. users, spans and events (business events,
 *  vz_telemetry_count) are optional; user_calls, when present, has one count per user. A span is
 * one sampled request of the reporter (vz_telemetry_span): trace and span ids in lowercase hex (W3C
 * trace context), the parent span id it was called under ("" for a root), the name and code of its
 * series.
 *
 *  The decoder reads bytes from the network: every field is checked,
 *  nothing is asserted. It returns 0, or VZ_EMALFORMED with a static
 *  *reason when the body is not JSON, not version 1, a service, name, code
 *  or user is outside [A-Za-z0-9_.-] or longer than VZ_TL_NAME_MAX - 1,
 *  there are more than VZ_TL_SERIES series, VZ_TL_CODES codes or
 *  VZ_TL_BINS bins in one series, a bin index is out of range, or counts
 *  disagree (the bins and the codes of a series must each add up to its
 *  count). Pure: no I/O, no clock; any thread.
 */
#ifndef VZ_TELEMETRY_CONTRACT_H
#define VZ_TELEMETRY_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"
#include "vz_proto.h"
#include "vz_telemetry.h"

#define VZ_TL_SERVICE "telemetry"
#define VZ_TL_METHOD_INGEST "ingest"
#define VZ_TL_VERSION 1

//  Field names of the snapshot (encoder and decoder).
#define VZ_TL_F_VERSION "v"
#define VZ_TL_F_SERVICE "service"
#define VZ_TL_F_SERVICE_VERSION "service_version"
#define VZ_TL_F_REPLICA "replica"
#define VZ_TL_F_PID "pid"
#define VZ_TL_F_T "t"
#define VZ_TL_F_INTERVAL "interval_ms"
#define VZ_TL_F_SEQ "seq"
#define VZ_TL_F_LOST "lost"
#define VZ_TL_F_DROPPED "dropped"
#define VZ_TL_F_SAT "sat"
#define VZ_TL_F_CPU "cpu"
#define VZ_TL_F_RSS "rss"
#define VZ_TL_F_FDS "fds"
#define VZ_TL_F_SERIES "series"
#define VZ_TL_F_NAME "name"
#define VZ_TL_F_COUNT "count"
#define VZ_TL_F_SUM_US "sum_us"
#define VZ_TL_F_CODES "codes"
#define VZ_TL_F_BINS "bins"
#define VZ_TL_F_USERS "users"
#define VZ_TL_F_USERS_OVER "users_over"
#define VZ_TL_F_USER_CALLS "user_calls"
#define VZ_TL_F_EVENTS "events"
#define VZ_TL_F_SPANS "spans"
#define VZ_TL_F_SPANS_OVER "spans_over"
#define VZ_TL_F_TRACE "trace"
#define VZ_TL_F_SPAN "span"
#define VZ_TL_F_PARENT "parent"
#define VZ_TL_F_CODE "code"
#define VZ_TL_F_START_US "start_us"
#define VZ_TL_F_DUR_US "dur_us"

#define VZ_TL_TRACE_HEX 32 //  hex digits of a trace id
#define VZ_TL_SPAN_HEX 16  //  hex digits of a span id

//  One sampled span (a request served, with its place in a trace).
typedef struct {
    char trace[VZ_TL_TRACE_HEX + 1]; //  trace id, lowercase hex
    char span[VZ_TL_SPAN_HEX + 1];   //  this span's id
    char parent[VZ_TL_SPAN_HEX + 1]; //  the caller's span id, "" = root
    char name[VZ_TL_NAME_MAX];       //  method or route
    char code[VZ_TL_NAME_MAX];       //  outcome code
    int64_t start_us;                //  start, Unix microseconds
    int64_t dur_us;                  //  duration
} vz_tl_span_t;

typedef struct {
    char name[VZ_TL_NAME_MAX]; //  outcome code
    uint64_t count;            //  requests with it
} vz_tl_code_count_t;

typedef struct {
    char name[VZ_TL_NAME_MAX];             //  method or route
    uint64_t count;                        //  requests
    double sum_us;                         //  their total duration
    vz_tl_code_count_t codes[VZ_TL_CODES]; //  by outcome
    size_t ncodes;                         //  rows in codes
    uint16_t bin[VZ_TL_BINS];              //  non-empty histogram bins...
    uint32_t bin_count[VZ_TL_BINS];        //  ...and their counts
    size_t nbins;                          //  rows in bin
} vz_tl_series_t;

typedef struct {
    char service[VZ_TL_NAME_MAX];  //  reporting service
    char version[VZ_VERSION_MAX];  //  its service_version, "" = not sent
    int64_t replica;               //  its replica index
    int64_t pid;                   //  its process id
    int64_t t_ms;                  //  end of the interval, Unix ms
    int64_t interval_ms;           //  its length
    int64_t seq;                   //  snapshot number of that process
    uint64_t lost;                 //  requests of earlier snapshots not delivered
    uint64_t dropped;              //  the reporter's event drop counter
    double cpu;                    //  cores used over the interval
    uint64_t rss;                  //  resident bytes
    int64_t fds;                   //  open descriptors
    vz_tl_series_t *series;        //  nseries rows (heap)
    size_t nseries;                //  rows in series
    char (*users)[VZ_TL_NAME_MAX]; //  active users (heap; optional in the body)
    size_t nusers;                 //  rows in users
    uint64_t *user_calls;          //  calls per user, same order (heap; 1 each when absent)
    uint64_t users_over;           //  users the reporter could not list
    vz_tl_span_t *spans;           //  sampled spans (heap; optional in the body)
    size_t nspans;                 //  rows in spans
    uint64_t spans_over;           //  sampled spans the reporter could not keep
    vz_tl_code_count_t *events;    //  business events by name (heap; optional)
    size_t nevents;                //  rows in events
} vz_tl_snapshot_t;

//  Decode body into a new *snap_p (the caller destroys it): 0, or
//  VZ_EMALFORMED with a static *reason and *snap_p NULL.
int vz_tl_snapshot_decode(const void *body, size_t len, vz_tl_snapshot_t **snap_p,
                          const char **reason);
void vz_tl_snapshot_destroy(vz_tl_snapshot_t **self_p);

//  Is text a valid service, name, code or user ([A-Za-z0-9_.-], 1 to
//  VZ_TL_NAME_MAX - 1 bytes)?
bool vz_tl_name_valid(const char *text);

//  Is text exactly n lowercase hex digits, not all zero (a W3C id)?
bool vz_tl_hex_id_valid(const char *text, size_t n);

//  Split a W3C traceparent "00-<trace>-<parent>-<flags>" into its trace
//  id and parent span id (buffers of VZ_TL_TRACE_HEX + 1 and
//  VZ_TL_SPAN_HEX + 1). 0, or -1 when it is not one.
int vz_tl_traceparent_split(const char *traceparent, char *trace, char *parent);

#endif
