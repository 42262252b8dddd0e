/*  vz_telemetry - request outcomes aggregated in the daemon, shipped per interval
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A daemon records each request outcome (name = method or route, code =
 *  "ok", an error code or an HTTP status, duration) with
 *  vz_telemetry_record: a table lookup and a few increments, no I/O, no
 *  allocation after the first request of a name. Every interval
 *  vz_telemetry_flush encodes what was gathered as one JSON snapshot,
 *  hands it to the send function (in a daemon: a vz_event to
 *  telemetry.ingest, which never waits and counts its drops) and starts
 *  over. Requests carried by a snapshot that could not be sent are counted
 *  and reported in the next one ("lost"), so the sink can tell recorded
 *  from delivered: delivered + lost = recorded.
 *
 *  Latency histogram (vz_tl_hist_t): DDSketch-style log buckets. A value v
 *  in microseconds goes to bin i = ceil(log_gamma(v)) with gamma = 1.02,
 *  i.e. bin i holds (gamma^(i-1), gamma^i]; a bin stands for the value
 *  2 gamma^i / (gamma + 1), so every quantile read from a histogram is
 *  within a relative error of (gamma - 1) / (gamma + 1) < 0.99 % of a value
 *  of the data (VZ_TL_REL_ERROR). Values at or under 1 us fall in bin 0,
 *  values past gamma^(VZ_TL_BINS-1) (about 10 minutes) in the last bin.
 *  Histograms merge by adding bins, so per-interval, per-replica and
 *  per-minute sketches combine without losing that bound.
 *
 *  Snapshot body: JSON, version 1, the contract of telemetry.ingest
 *  (vz_telemetry_contract.h: fields, limits, the sink's decoder).
 *  cpu is the share of one core used over the interval, rss bytes, fds the
 *  open descriptors; dropped the vz_event drop counter when known.
 *
 *  At most VZ_TL_SERIES names and VZ_TL_CODES codes per name are kept;
 *  later ones are folded into "_other" (names and codes can come from the
 *  network, the table must stay bounded).
 *  Threads: vz_telemetry_record and the counters may be called from any
 *  thread (a mutex, held for a few increments: the gateway records from
 *  its HTTP threads); new, destroy, attach, snapshot and flush belong to
 *  the owner thread (the reactor's), and the send function runs there
 *  without the lock held.
 */
#ifndef VZ_TELEMETRY_H
#define VZ_TELEMETRY_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "vz_daemon.h"

#define VZ_TL_GAMMA 1.02
#define VZ_TL_REL_ERROR 0.0099           //  (gamma - 1) / (gamma + 1), rounded up
#define VZ_TL_BINS 1024                  //  bin 1023 starts near 10.5 minutes
#define VZ_TL_SERIES 64                  //  names per snapshot
#define VZ_TL_CODES 16                   //  codes per name
#define VZ_TL_NAME_MAX 64                //  bytes of a name or code, with the NUL
#define VZ_TL_USERS 4096                 //  distinct active users per snapshot
#define VZ_TL_SPANS 256                  //  sampled spans per snapshot
#define VZ_TL_EVENTS 128                 //  distinct business events per snapshot
#define VZ_TL_COUNTRY_HEADER "X-Country" //  ISO 3166 alpha-2 set by the ingress
#define VZ_TL_PROBE_EVERY 6              //  auto mode without a sink: one snapshot in this many

//  A mergeable latency histogram over microseconds. Plain data: zero it to
//  start, copy it freely.
typedef struct {
    uint64_t count;            //  values added
    double sum_us;             //  their sum
    uint32_t bins[VZ_TL_BINS]; //  values per bin
} vz_tl_hist_t;

//  The bin of v microseconds, and the value a bin stands for.
int vz_tl_bin(double v_us);
double vz_tl_bin_value(int bin);
//  Add n values of v_us; add every bin of src into dst.
void vz_tl_hist_add(vz_tl_hist_t *self, double v_us, uint32_t n);
void vz_tl_hist_merge(vz_tl_hist_t *dst, const vz_tl_hist_t *src);
//  The q-quantile (0..1) in microseconds: the value of the bin holding the
//  rank ceil(q * count) value (1-based; q = 0 gives the first). 0 when empty.
double vz_tl_hist_quantile(const vz_tl_hist_t *self, double q);

//  Where a snapshot goes. body is borrowed for the call; return 0 when it
//  was taken, negative when it was dropped.
typedef int(vz_tl_send_fn)(void *arg, const char *body, size_t len);
//  The drop counter of the transport, reported in each snapshot (optional).
typedef uint64_t(vz_tl_dropped_fn)(void *arg);

typedef struct {
    const char *service;       //  reporting service (copied)
    const char *version;       //  its version (service_version; copied), NULL/"" = none sent
    int replica;               //  its replica index
    int interval_ms;           //  flush period of vz_telemetry_attach; 0 = 10000
    vz_tl_send_fn *send;       //  required
    vz_tl_dropped_fn *dropped; //  optional
    void *arg;                 //  for send and dropped
    int sample_permille;       //  traces kept per 1000 (by trace id); errors and slow always
    int64_t slow_us;           //  a span this long is always kept; 0 = none is
    bool auto_mode;            //  VZ_TELEMETRY=auto: send only while a sink answers
} vz_telemetry_config_t;

typedef struct vz_telemetry_t vz_telemetry_t;

vz_telemetry_t *vz_telemetry_new(const vz_telemetry_config_t *config);
//  Takes the timer off the loop it was attached to; does not flush.
void vz_telemetry_destroy(vz_telemetry_t **self_p);

//  Count one outcome. name and code are copied on their first use (cut to
//  VZ_TL_NAME_MAX - 1 bytes); code NULL or "" means "ok".
void vz_telemetry_record(vz_telemetry_t *self, const char *name, const char *code,
                         int64_t duration_us);

//  One request's span, if sampled: traceparent is the W3C context the
//  request came with ("00-<trace>-<caller span>-<flags>"; without a valid
//  one nothing is kept), name and code as for vz_telemetry_record. The
//  span gets a fresh id and the caller's span as parent. Kept when the
//  code is an error (not "ok", not HTTP 1xx-3xx), when it took slow_us or
//  more, or when the trace id falls in the sampled share (the same traces
//  in every daemon, so a kept trace is whole). At most VZ_TL_SPANS a
//  snapshot ("spans"), the rest counted ("spans_over"). Any thread.
void vz_telemetry_span(vz_telemetry_t *self, const char *traceparent, const char *name,
                       const char *code, int64_t duration_us);

//  Count one business event: event alone ("signup", "login") or with a
//  key ("subscription" "created", "country" "DE"): the snapshot carries
//  "events": {"<event>" or "<event>.<key>": n}. Both [A-Za-z0-9_-]
//  (event) and [A-Za-z0-9_.-] (key), the whole under VZ_TL_NAME_MAX;
//  others are ignored. At most VZ_TL_EVENTS per interval, later ones
//  fold into "_other". Any thread.
void vz_telemetry_count(vz_telemetry_t *self, const char *event, const char *key);

//  vz_telemetry_count on the process's daemon reporter (the one
//  vz_telemetry_new_daemon made, while it lives; nothing when there is none,
//  e.g. VZ_TELEMETRY=off or a unit test): what a service calls for its
//  business events without holding the reporter ("signup", "login",
//  "subscription" "created"). Same threads as vz_telemetry_count; not
//  during the reporter's destruction (the reactor thread does both).
void vz_telemetry_event(const char *event, const char *key);

//  One HTTP request answered by the gateway, from its HTTP threads:
//  record(route, status as text, duration), span(traceparent), user(user
//  when authenticated, else NULL), and the "country" event when country
//  (the VZ_TL_COUNTRY_HEADER value, NULL when absent) is two letters.
void vz_telemetry_http(vz_telemetry_t *self, const char *route, int status, int64_t duration_us,
                       const char *traceparent, const char *user, const char *country);

//  Auto mode (config.auto_mode): the sink's answer to a snapshot. A
//  reply means a sink takes snapshots; the broker's no_worker or
//  forbidden that none does (or may), and then the reporter keeps
//  aggregating but sends only every VZ_TL_PROBE_EVERY-th interval (a
//  probe); the intervals in between are discarded, counted as skipped,
//  not lost. The first answer that is not one of these resumes sending.
//  Owner thread.
void vz_telemetry_answer(vz_telemetry_t *self, const char *code);
//  Auto mode: is a sink believed present? Intervals discarded so far.
bool vz_telemetry_sink_seen(vz_telemetry_t *self);
uint64_t vz_telemetry_skipped(vz_telemetry_t *self);

//  Count one API call of user (a subject id such as "u_123",
//  [A-Za-z0-9_.-], under VZ_TL_NAME_MAX bytes; others are ignored): the
//  user is active this interval (the sink's DAU/WAU/MAU) and its calls are
//  counted. Each distinct user travels once per snapshot ("users": [...],
//  with "user_calls": [n, ...] in the same order); past VZ_TL_USERS they
//  are only counted ("users_over"). Any thread.
void vz_telemetry_user(vz_telemetry_t *self, const char *user);

//  Encode the interval ending at now_ms (Unix ms) and reset. The caller
//  owns the returned string (NULL only when nothing could be allocated).
char *vz_telemetry_snapshot(vz_telemetry_t *self, int64_t now_ms, size_t *len_p);
//  Snapshot and send; an interval with no request still reports saturation.
//  0 sent, or the send function's negative code (its requests become "lost").
int vz_telemetry_flush(vz_telemetry_t *self, int64_t now_ms);
//  Flush every interval_ms on loop (with vz_clock_now_ms). 0 or -1.
int vz_telemetry_attach(vz_telemetry_t *self, zloop_t *loop);

//  The daemon's reporter, as its common settings say (vz_daemon.h):
//  VZ_TELEMETRY off gives NULL (errno 0); auto is the auto mode above
//  (report while the mesh has a telemetry sink that takes this daemon's
//  snapshots), on sends every interval whatever the answer; snapshots every
//  VZ_TELEMETRY_INTERVAL_MS go to telemetry.ingest through a vz_event of
//  the daemon's own (its drops are the snapshot's "dropped"), attached to
//  loop; VZ_TELEMETRY_SAMPLE_PERMILLE and VZ_TELEMETRY_SLOW_MS set the
//  span sampling; the snapshots carry the version the worker announces
//  (VZ_SERVICE_VERSION, else the build's) as service_version. NULL with errno set when the event
//  socket cannot be made. vz_daemon_serve does this for every worker daemon; a daemon with a loop
//  of its own (the gateway) calls it and vz_telemetry_record itself.
vz_telemetry_t *vz_telemetry_new_daemon(vz_daemon_t *daemon, zloop_t *loop);

//  Requests recorded, and requests in snapshots that were not sent.
uint64_t vz_telemetry_recorded(vz_telemetry_t *self);
uint64_t vz_telemetry_lost(vz_telemetry_t *self);

//  Saturation of this process now: total CPU seconds, RSS bytes and open
//  descriptors (from /proc; 0 where unavailable).
void vz_telemetry_process(double *cpu_s, uint64_t *rss, int *fds);

#endif
