/*  github - the GitHub service's application object, webhook intake and consumer
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One gh_t per process, used only on the reactor thread. Every piece of
 *  state lives in Redis under "github:" (docs/services/github.md, "Redis
 *  keys"), so any replica answers any request and applies any delivery.
 *
 *  Flow of a webhook: the gateway forwards POST /v1/webhooks/github as
 *  github.webhook with the raw body and ctx header.x-hub-signature-256,
 *  header.x-github-event and header.x-github-delivery; gh_h_webhook
 *  verifies the signature (gh_sig, no I/O) and that the body is a JSON
 *  object, and defers the reply; after the worker's batch one pipelined
 *  round trip (vz_intake) queues each delivery (SET
 *  {github}:seen:<delivery> NX EX ttl and XADD {github}:deliveries,
 *  atomically), and only then answers 200 {"received": true, "duplicate":
 *  bool}: GitHub's 10-second limit is met by queueing, not processing.
 *  A zloop timer runs gh_poll: the stream consumer (vz_stream, the mesh's
 *  durable-queue module) hands each delivery to the apply script, which
 *  runs the delivery's writes (gh_event: insights; gh_rules: the partner
 *  notifications into {github}:outbox), marks it applied and XACKs it, all in
 *  one script: exactly once across crashes. vz_outbox delivers the outbox
 *  through the notifier; gh_client calls GitHub as the App.
 *
 *  Modules: gh_sig (signature, pure), gh_event (payload -> writes, pure),
 *  gh_rules (configs/github.cfg, pure), gh_store.c (the Redis scripts),
 *  gh_api.c (repos, insights, roadmap, issue_state), gh_jwt (App JWT, pure), gh_client (GitHub REST
 * as the App), github.c (life cycle, intake, consumer).
 */
#ifndef GITHUB_H
#define GITHUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_stream.h"
#include "gh_event.h"
#include "gh_rules.h"
#include "gh_sig.h"
#include "vz_authctx.h"
#include "vz_call.h"
#include "vz_common.h"
#include "vz_http.h"
#include "vz_metrics.h"
#include "vz_redis.h"
#include "vz_worker.h"

#define GH_SERVICE "github"
//  The error code of a call this replica cannot serve for want of a setting.
#define GH_ERR_NOT_CONFIGURED "github_not_configured"
#define GH_STREAM GH_PREFIX "deliveries" //  queued webhook deliveries
#define GH_STREAM_MAXLEN 20000              //  about this many kept (MAXLEN ~)
#define GH_GROUP "apply"                 //  the consumer group that applies them
#define GH_OUTBOX GH_PREFIX "outbox"     //  notifier.send bodies
#define GH_JOBS GH_PREFIX "jobs"         //  App client work: backfill of an installation
#define GH_API_BASE "https://api.github.com"

typedef struct {
    char webhook_secrets[1024]; //  comma-separated webhook secrets, never logged
    int dedup_ttl_s;            //  how long a delivery GUID is remembered
    int poll_ms;                //  consumer poll interval
    int claim_idle_ms;          //  a dead replica's deliveries are claimed after this
    int max_deliveries;         //  attempts before a delivery goes to {github}:deliveries:dead
    char consumer[128];         //  consumer name; "" = <hostname>-<replica>
    int redis_timeout_ms;       //  Redis command timeout
    int notify_retry_ms;        //  wait before the notifier is offered an entry again
    char readers[256];          //  in-mesh identities that may read (the reporter)
    //  The App client (gh_client.h).
    char app_id[32];                    //  GitHub App id, "" = not configured
    char private_key_file[VZ_PATH_MAX]; //  the App's PEM key, never logged
    char api_base[256];                 //  REST base URL
    char user_agent[128];               //  User-Agent of every call
    int reconcile_ms;                   //  redelivery of failed deliveries; 0 = off
    int api_budget_ms;                  //  one API call with its waits
    vz_http_config_t http;              //  the common outbound client
} gh_config_t;

typedef struct gh_t gh_t;

//  Build the application: Redis handle, scripts, secrets, the rules of
//  rules_path ("" = none), the stream consumer named consumer, metrics
//  (may be NULL). NULL with a reason in err.
gh_t *gh_new(const gh_config_t *config, const char *redis_url, const char *rules_path,
             const char *consumer, vz_metrics_t *metrics, char *err, size_t errlen);
void gh_destroy(gh_t **self_p);

//  One consumer pass (from a timer): deliveries, outbox, jobs. Settled
//  entries or -errno.
int gh_poll(gh_t *self);

//  Start delivering {github}:outbox through the notifier over calls
//  (borrowed; destroy it before gh_destroy). 0 or -1.
int gh_notify_start(gh_t *self, vz_call_t *calls, const char *consumer);

//  Start the App client on loop. Without app_id or key file it runs
//  unconfigured: gh_configured() false, calls answer 503
//  github_not_configured naming the missing setting. 0, or -1 with err
//  (an unreadable or invalid key file).
int gh_client_start(gh_t *self, zloop_t *loop, char *err, size_t errlen);
void gh_client_stop(void *self);
//  Reconciliation of failed deliveries (from a timer). 0, -ENOKEY, -EBUSY.
int gh_reconcile(gh_t *self);

//  Method handlers.
int gh_h_webhook(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int gh_h_repos(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int gh_h_insights(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int gh_h_roadmap(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int gh_h_issue_state(void *app, const vz_envelope_t *req, vz_reply_t *reply);
//  POST /v1/github/reconcile (admin): start a reconciliation run now;
//  503 github_not_configured naming the missing setting without credentials.
int gh_h_reconcile(void *app, const vz_envelope_t *req, vz_reply_t *reply);

// --------------------------------------------------------------------------
//  gh_store.c: the Redis scripts

extern const char gh_lua_apply[];
extern const char gh_lua_items[];
extern const char gh_lua_repos[];

#endif
