/*  tl_store - the sink's working state in Redis, shared by its replicas
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Ingest adds a snapshot into per-minute and per-hour hashes with atomic
 *  HINCRBY, so any number of replicas can ingest at once and read the same
 *  sums; merging histograms is adding bins, so the hour hash is the
 *  downsampled series with the same error bound. Keys (s = service|name):
 *    {tl}:s:<s>:m:<unix minute>  n, s (sum us), c:<code>, b:<bin>   fine_ttl (1 day)
 *    {tl}:s:<s>:h:<unix hour>    the same per hour                 coarse_ttl (30 days)
 *    {tl}:slo:<slo>:m:<minute>, :h:<hour>   n (requests), b (bad ones) of an SLO
 *    {tl}:v:<service>|<version>:m:<minute>, :h:<hour>   the same, every series of
 *                                the version's snapshots added   fine_ttl, coarse_ttl
 *    {tl}:idx   set of "service|name";  {tl}:svc  set of services;  {tl}:vidx "service|version"
 *    {tl}:sat:<service>   replica -> {"cpu","rss","fds","t"} (latest)
 *    {tl}:tot:<service>   received, lost, snapshots, dropped:<replica>
 *    {tl}:dau:<unix day>  HyperLogLog of the day's active users        35 days
 *    {tl}:err:w:<week>    error code -> count (sorted set)              15 days
 *    {tl}:err:first, {tl}:err:last   code -> Unix second; {tl}:err:svc:<code> services
 *    {tl}:alerts (tl_alert.h JSON), {tl}:freeze (JSON), {tl}:eval:lock
 *  A snapshot is filed under the sink's own minute (now_s): a reporter's
 *  clock is not trusted. Range reads run in one Lua script per series
 *  (keys built inside the script: a single Redis, not Cluster).
 *
 *  Reactor thread only (it uses the caller's vz_redis_t). Every call is
 *  0 or -EIO when Redis is away or answers an error.
 */
#ifndef TL_STORE_H
#define TL_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "tl_slo.h"
#include "vz_telemetry_contract.h"
#include "vz_redis.h"
#include "vz_telemetry.h"

typedef struct tl_store_t tl_store_t;

typedef struct {
    int64_t fine_ttl_s;   //  per-minute data kept this long
    int64_t coarse_ttl_s; //  per-hour data kept this long
} tl_store_config_t;

//  redis is borrowed and must outlive the store.
tl_store_t *tl_store_new(vz_redis_t *redis, const tl_store_config_t *config);
void tl_store_destroy(tl_store_t **self_p);

//  File snap at now_s, counting it into every SLO of slos it matches.
int tl_store_ingest(tl_store_t *self, const vz_tl_snapshot_t *snap, const tl_slo_config_t *slos,
                    int64_t now_s);

//  One merged series over a window.
typedef struct {
    char service[VZ_TL_NAME_MAX];          //  its service
    char name[VZ_TL_NAME_MAX];             //  method or route
    vz_tl_hist_t hist;                     //  latency, merged
    vz_tl_code_count_t codes[VZ_TL_CODES]; //  outcomes, merged (first VZ_TL_CODES seen)
    size_t ncodes;                         //  rows in codes
} tl_merged_t;

//  Called once per series; merged is borrowed for the call.
typedef void(tl_merged_fn)(void *arg, const tl_merged_t *merged);

//  Every series of service (NULL = all), merged over [from_s, to_s):
//  minute data when the window fits the fine retention, else hours.
int tl_store_series(tl_store_t *self, const char *service, int64_t from_s, int64_t to_s,
                    tl_merged_fn *fn, void *arg);

//  The same per version of service (NULL = all): every series of a
//  snapshot that carried a service_version, merged; merged->name is the
//  version.
int tl_store_versions(tl_store_t *self, const char *service, int64_t from_s, int64_t to_s,
                      tl_merged_fn *fn, void *arg);

//  tl_counts_fn for tl_slo_eval: arg is the store. Windows up to 6 h read
//  minutes, longer ones hours (the hour of from_s counts whole).
int tl_store_slo_counts(void *arg, const tl_slo_t *slo, int64_t from_s, int64_t to_s,
                        tl_counts_t *out);

//  Latest saturation per replica of service, and its totals.
typedef struct {
    int64_t replica; //  replica index
    double cpu;      //  cores
    uint64_t rss;    //  bytes
    int64_t fds;     //  descriptors
    int64_t t_s;     //  when reported (sink's clock)
} tl_sat_t;
typedef struct {
    uint64_t received;  //  requests delivered in snapshots
    uint64_t lost;      //  requests whose snapshot was dropped
    uint64_t snapshots; //  snapshots ingested
    uint64_t dropped;   //  sum of the replicas' latest event drop counters
} tl_totals_t;
int tl_store_saturation(tl_store_t *self, const char *service, tl_sat_t *out, size_t max,
                        size_t *count);
int tl_store_totals(tl_store_t *self, const char *service, tl_totals_t *out);
//  The services that ever reported (caller destroys the list).
zlist_t *tl_store_services(tl_store_t *self);

//  Distinct active users (HyperLogLog, about 0.81 % standard error) of the
//  UTC day of now_s, of the 7 days and of the 30 days ending with it.
typedef struct {
    uint64_t dau; //  today
    uint64_t wau; //  last 7 days
    uint64_t mau; //  last 30 days
} tl_usage_t;
int tl_store_usage(tl_store_t *self, int64_t now_s, tl_usage_t *out);

//  The users with the most API calls over the days days ending with
//  now_s's (at most 31), most first, at most max. 0 or -EIO.
typedef struct {
    char user[VZ_TL_NAME_MAX]; //  subject id
    uint64_t calls;            //  API calls through the gateway
} tl_user_calls_t;
int tl_store_top_users(tl_store_t *self, int64_t now_s, int days, tl_user_calls_t *out, size_t max,
                       size_t *count);

//  The service's requests (n) and errors (e) per minute, the minutes
//  minutes ending with now_s's, oldest first. 0 or -EIO.
int tl_store_chart(tl_store_t *self, const char *service, int64_t now_s, uint64_t *n, uint64_t *e,
                   int minutes);

//  The integer field of the hashes prefix<first..last>, -1 where a hash is
//  absent, into out (last - first + 1 slots). 0 or -EIO.
int tl_store_field_range(tl_store_t *self, const char *prefix, int64_t first, int64_t last,
                         const char *field, int64_t *out);
//  Every series as "service|name", sorted (caller destroys), or NULL.
zlist_t *tl_store_series_names(tl_store_t *self);

//  The last 20 deploys (a replica reporting with a new pid), newest first:
//  an array of JSON strings {service, replica, pid, t} (freeReplyObject),
//  or NULL when Redis is away.
redisReply *tl_store_deploys(tl_store_t *self);

//  Business events summed over the days days ending with now_s's: a flat
//  name, count array (freeReplyObject), or NULL when Redis is away.
redisReply *tl_store_events(tl_store_t *self, int64_t now_s, int days);

//  Errors: every outcome code but "ok" and HTTP statuses under 400.
bool tl_code_error(const char *code);

//  The most frequent error codes of the UTC week (Unix time / 7 days) of
//  now_s, with the previous week's count, first and last seen (sink
//  clock) and the services that reported them, most frequent first.
typedef struct {
    char code[VZ_TL_NAME_MAX]; //  error code or HTTP status
    uint64_t count;            //  this week
    uint64_t previous;         //  the week before
    int64_t first_s;           //  first seen ever (within retention)
    int64_t last_s;            //  last seen
    char services[512];        //  space-separated (cut at a service boundary)
} tl_error_t;
int tl_store_errors_top(tl_store_t *self, int64_t now_s, tl_error_t *out, size_t max,
                        size_t *count);

//  A string value (caller frees) or NULL when absent or Redis is away.
char *tl_store_get(tl_store_t *self, const char *key, size_t *len_p);
int tl_store_set(tl_store_t *self, const char *key, const char *value, size_t len);
//  SET key value NX PX ttl_ms: 1 taken, 0 held by another, -EIO.
int tl_store_lock(tl_store_t *self, const char *key, const char *value, int ttl_ms);

#endif
