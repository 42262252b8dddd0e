/*  gh_app - the github application object, shared by its modules (private)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  github.c (life cycle, intake, consumer), gh_api.c (the read methods)
 *  and gh_client.c (the App client, reconciliation, backfill) share the one
 *  gh_t below. Reactor thread only, like everything in github.
 */
#ifndef GH_APP_H
#define GH_APP_H

#include "github.h"
#include "gh_client.h"
#include "vz_intake.h"
#include "vz_outbox.h"

#define GH_REPLY_MAX (1024 * 1024) //  largest JSON answer

struct gh_t {
    gh_config_t config;
    char secrets[sizeof((gh_config_t *)0)->webhook_secrets]; //  split copy of the secrets
    gh_sig_config_t sig;                                     //  points into secrets
    char ttl[16];                                            //  dedup ttl as text
    gh_rules_t *rules;                                       //  notification rules, labels
    vz_redis_t *redis;                                       //  shared state
    vz_intake_t *intake;                                     //  webhooks: dedup + XADD
    vz_redis_script_t *apply;                                //  consumer: writes + ack
    vz_redis_script_t *items;                                //  a repository's items
    vz_redis_script_t *repos;                                //  the repositories
    vz_stream_t *stream;                                     //  the consumer group
    int64_t backlog_due;       //  next queue depth refresh (monotonic ms)
    vz_metrics_t *metrics;     //  borrowed, may be NULL
    vz_series_t *backlog;      //  queue depth gauge
    vz_series_t *dead;         //  entries moved dead
    uint64_t dead_seen;        //  vz_stream's count already reported
    vz_outbox_t *notify;       //  the outbox's delivery (NULL until started)
    gh_client_t *client;       //  GitHub's API as the App (NULL before start and after stop)
    vz_stream_t *jobs;         //  backfill jobs (NULL until the client starts)
    char missing[160];         //  which setting an API call lacks, "" when none
    char consumer[256];        //  this replica's consumer name
    bool reconciling;          //  a reconciliation run is in flight
    char deliveries_etag[256]; //  ETag of the deliveries list's first page
};

//  Count a delivery by event and outcome (vz_github_deliveries).
void gh_count_delivery(gh_t *self, const char *event, const char *outcome);

#endif
