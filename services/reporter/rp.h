/*  rp - the reporter's application: settings, state, and what main.c calls
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  main.c owns one rp_t and runs it on the daemon's reactor thread; every
 *  function here runs there. Modules: rp_cron (schedule, ISO weeks; pure),
 *  rp_store (Redis: lease with fencing token, send records, archive),
 *  rp_gather (the parallel calls to billing, telemetry and github),
 *  rp_render (the numbers as JSON, HTML and text), rp_chart (PNG charts
 *  and the PDF, with cairo), rp_run.c (one run from lease to send record)
 *  and rp_api.c (the methods). docs/services/reporter.md describes it.
 */
#ifndef RP_H
#define RP_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "rp_cron.h"
#include "rp_store.h"
#include "vz_call.h"
#include "vz_common.h"
#include "vz_metrics.h"
#include "vz_worker.h"

#define RP_SERVICE "reporter"

typedef struct {
    char schedule[64];      //  cron expression, UTC
    char recipients[1024];  //  e-mail addresses, space- or comma-separated
    char readers[256];      //  in-mesh identities that may read and run reports
    char github_repo[160];  //  "owner/name" for the roadmap, "" = every repository
    char error_issues[768]; //  "code=owner/repo#number ..." links of errors to issues
    char template_name[64]; //  the notifier's template
    int tick_ms;            //  how often the schedule is checked
    int lease_ms;           //  lease of one run
    int gather_ms;          //  deadline of the calls for the figures
    int send_ms;            //  deadline of the notifier calls
    int catchup_s;          //  a missed firing this recent is still run
    int redis_timeout_ms;   //  Redis command timeout
} rp_config_t;

typedef struct rp_run_t rp_run_t;

#define RP_LINKS_MAX 8 //  error codes linked to GitHub issues

//  An error code linked to a GitHub issue (VZ_REPORTER_ERROR_ISSUES).
typedef struct {
    char code[64];  //  telemetry's error code
    char owner[40]; //  GitHub login
    char repo[101]; //  repository name
    int number;     //  issue or pull request number
} rp_link_t;

//  Parse "code=owner/repo#number ..." (spaces or commas between) into
//  links. The count, or -EINVAL with the bad item in err.
int rp_links_parse(const char *text, rp_link_t links[RP_LINKS_MAX], char *err, size_t errlen);

typedef struct {
    rp_config_t config;            //  as loaded
    rp_cron_t cron;                //  the parsed schedule
    rp_store_t *store;             //  Redis state (owned)
    vz_call_t *calls;              //  calls through the broker (borrowed)
    vz_metrics_t *metrics;         //  borrowed
    rp_run_t *run;                 //  the run in progress, or NULL
    rp_link_t links[RP_LINKS_MAX]; //  error codes linked to issues
    size_t nlinks;                 //  links used
    char owner[96];                //  lease owner: host/replica/pid
    vz_series_t *last_success;     //  last report sent by this replica, Unix seconds
    vz_series_t *overdue;          //  seconds the owed week has waited
    vz_series_t *checks;           //  schedule checks
    int64_t since;                 //  {rp}:since, once read (0 = not yet)
} rp_t;

//  NULL on a bad schedule or Redis URL (the reason in err).
rp_t *rp_new(const rp_config_t *config, const char *redis_url, vz_metrics_t *metrics,
             const char *owner, char *err, size_t errlen);
void rp_destroy(rp_t **self_p);

//  The schedule's tick: start the owed run if this replica wins the lease.
void rp_tick(rp_t *self);

//  Handlers (vz_worker.h).
int rp_h_run(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int rp_h_list(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int rp_h_get(void *app, const vz_envelope_t *req, vz_reply_t *reply);

//  --- runs (rp_run.c) ---

typedef enum { RP_TRIGGER_SCHEDULE, RP_TRIGGER_CATCHUP, RP_TRIGGER_MANUAL } rp_trigger_t;

//  Start a run for the week starting at week_start, holding the lease of
//  token. reply: a deferred request to answer with the outcome, or NULL.
//  The run owns the lease from here: it commits and releases it. 0, or
//  -EBUSY when a run is already in progress here.
int rp_run_start(rp_t *self, int64_t week_start, rp_trigger_t trigger, bool dry_run, uint64_t token,
                 vz_deferred_t *reply);

//  The per-section series of partial sections, at 0 (called at start, so
//  dashboards and alert rules see them before the first run).
void rp_run_metrics_init(vz_metrics_t *metrics);

#endif
