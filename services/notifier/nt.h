/*  nt - the notifier's application object, channels and settings
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One nt_t per process, used only on the reactor thread (the SMTP actor
 *  has its own thread and talks to it through its pipe). Every message
 *  lives in Redis (nt_outbox.h); the process holds only what is in flight.
 *
 *  Modules: nt_send (validate and enqueue: send, alert), nt_outbox (Redis
 *  stream, consumer group, schedule, dead letters), nt_deliver (the
 *  delivery loop and the channels), nt_chat (Slack, Discord, PagerDuty and
 *  webhook payloads), nt_smtp (libcurl SMTP on a worker thread), nt_mime
 *  (messages), nt_template (templates), nt_route (alert routing), nt_api
 *  (status and dead-letter methods).
 */
#ifndef NT_H
#define NT_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "nt_template.h"
#include "vz_authctx.h"
#include "vz_http.h"
#include "vz_metrics.h"
#include "vz_redis.h"

#define NT_SERVICE "notifier"
#define NT_ID_MAX 40 //  "n_" + 24 hex, with room

//  Delivery channels, in the order of the static table of nt_channels.c.
typedef enum {
    NT_CH_EMAIL = 0,
    NT_CH_SLACK,
    NT_CH_DISCORD,
    NT_CH_PAGERDUTY,
    NT_CH_WEBHOOK,
    NT_CH_COUNT
} nt_channel_t;

typedef struct {
    const char *name;    //  as in requests and metric labels
    bool needs_to;       //  "to" is required (an address)
    bool attachments;    //  accepts attachments
    const char *summary; //  what it delivers to, for docs and errors
} nt_channel_info_t;

//  The row of channel c; nt_channel_find: index of name or -1.
const nt_channel_info_t *nt_channel_info(nt_channel_t c);
int nt_channel_find(const char *name);

//  Alert severities (PagerDuty's four), routed by nt_route.
typedef enum {
    NT_SEV_CRITICAL = 0,
    NT_SEV_ERROR,
    NT_SEV_WARNING,
    NT_SEV_INFO,
    NT_SEV_COUNT
} nt_sev_t;
const char *nt_sev_name(nt_sev_t s);
int nt_sev_find(const char *name);

//  Route targets of a severity (configs/notifier.cfg, route/<severity>).
#define NT_ROUTE_CHOICES "pagerduty slack discord email webhook digest none"
typedef enum {
    NT_RT_PAGERDUTY = 0,
    NT_RT_SLACK,
    NT_RT_DISCORD,
    NT_RT_EMAIL,
    NT_RT_WEBHOOK,
    NT_RT_DIGEST,
    NT_RT_NONE
} nt_route_target_t;

typedef struct {
    //  Sources of messages.
    char templates[VZ_PATH_MAX]; //  template directory
    char state_dir[VZ_PATH_MAX]; //  .eml files go to <state_dir>/mail when no SMTP
    char mail_from[256];         //  sender address
    char mail_from_name[128];    //  sender display name
    char mail_domain[128];       //  Message-ID domain
    //  SMTP.
    char smtp_url[VZ_PATH_MAX]; //  smtp://host:port (STARTTLS required) or smtps://; "" = .eml
    char smtp_user[256];        //  AUTH user ("" = no AUTH)
    char smtp_pass_file[VZ_PATH_MAX]; //  file holding the password (else env
                                      //  VZ_NOTIFIER_SMTP_PASSWORD)
    char smtp_ca_file[VZ_PATH_MAX];   //  CA bundle for the SMTP server ("" = system store)
    int smtp_timeout_ms;              //  one SMTP transfer
    //  Chat and paging endpoints.
    char slack_url[VZ_PATH_MAX];           //  Slack incoming webhook ("" = channel off)
    char discord_url[VZ_PATH_MAX];         //  Discord webhook
    char pagerduty_url[VZ_PATH_MAX];       //  PagerDuty Events API v2 enqueue URL
    char pagerduty_key_file[VZ_PATH_MAX];  //  routing key file (else env VZ_NOTIFIER_PAGERDUTY_KEY)
    char webhook_url[VZ_PATH_MAX];         //  generic JSON webhook
    char webhook_secret_file[VZ_PATH_MAX]; //  HMAC key file (else env VZ_NOTIFIER_WEBHOOK_SECRET)
    //  Outbox.
    int max_attempts;     //  attempts before the dead letter
    int backoff_ms;       //  first retry delay ceiling (doubles, jittered)
    int backoff_max_ms;   //  largest retry delay
    int claim_ms;         //  idle time after which another replica claims an entry
    int poll_ms;          //  delivery loop period
    int inflight;         //  deliveries in flight per replica
    int idem_ttl_s;       //  how long an idempotency key is remembered
    int attach_max;       //  bytes of one attachment
    int attach_total;     //  bytes of all attachments of one message
    int redis_timeout_ms; //  Redis command timeout
    //  Alert routing.
    int route[NT_SEV_COUNT]; //  nt_route_target_t per severity
    int warning_delay_ms;    //  delay of warning routes (dropped if resolved meanwhile)
    char digest_to[256];     //  address of the daily digest
    char alert_source[128];  //  PagerDuty "source" when the alert names none
    vz_http_config_t http;   //  outbound HTTP
} nt_config_t;

typedef struct nt_smtp_t nt_smtp_t;
typedef struct nt_job_t nt_job_t;

typedef struct {
    nt_config_t config;                    //  validated settings
    vz_redis_t *redis;                     //  the outbox (own connection)
    nt_templates_t *templates;             //  loaded templates
    vz_http_t *http;                       //  Slack, Discord, PagerDuty, webhook
    nt_smtp_t *smtp;                       //  SMTP worker thread, NULL in .eml mode
    zloop_t *loop;                         //  the reactor (borrowed)
    vz_metrics_t *metrics;                 //  borrowed, may be NULL
    char consumer[96];                     //  consumer name in the group
    char pd_key[128];                      //  PagerDuty routing key ("" = none)
    char webhook_secret[256];              //  HMAC key ("" = unsigned)
    int64_t paused_until[NT_CH_COUNT];     //  per channel: no delivery before (Unix ms)
    nt_job_t *jobs;                        //  deliveries in flight (list)
    size_t job_count;                      //  entries in jobs
    bool group_ready;                      //  the consumer group exists
    int64_t last_claim_ms;                 //  monotonic time of the last XAUTOCLAIM
    int64_t last_touch_ms;                 //  monotonic time in-flight entries were last touched
    int64_t last_digest_ms;                //  monotonic time of the last digest check
    vz_series_t *m_queued[NT_CH_COUNT];    //  accepted messages
    vz_series_t *m_delivered[NT_CH_COUNT]; //  delivered
    vz_series_t *m_retried[NT_CH_COUNT];   //  retries scheduled
    vz_series_t *m_dead[NT_CH_COUNT];      //  dead letters
    vz_series_t *m_latency[NT_CH_COUNT];   //  accepted -> delivered, seconds
    vz_series_t *m_oldest;                 //  oldest pending age, seconds
    struct nt_scripts_t *scripts;          //  Lua scripts (nt_outbox.c)
} nt_t;

//  Build the app: Redis, scripts, templates, consumer group, HTTP client,
//  SMTP thread (when smtp_url is set), secrets. NULL with a message in err.
nt_t *nt_new(const nt_config_t *config, const char *redis_url, zloop_t *loop, vz_metrics_t *metrics,
             char *err, size_t errlen);
void nt_destroy(nt_t **self_p);

//  Reload templates (SIGHUP hook); the old set stays when the new is bad.
void nt_reload(void *arg);

//  Method handlers (nt_send.c, nt_api.c).
int nt_h_send(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int nt_h_alert(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int nt_h_get(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int nt_h_dead_list(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int nt_h_dead_retry(void *app, const vz_envelope_t *req, vz_reply_t *reply);

//  The delivery loop's timer (nt_deliver.c): promote due scheduled
//  messages, claim abandoned ones, read new ones, start deliveries.
int nt_deliver_tick(zloop_t *loop, int timer_id, void *arg);

//  Free the jobs still in flight: their entries stay pending in Redis and
//  are claimed again after claim_ms (by a restart or another replica).
void nt_deliver_fini(nt_t *self);

//  The SMTP thread's pipe is readable (zloop reader, nt_deliver.c).
int nt_deliver_smtp_ready(zloop_t *loop, zsock_t *sock, void *arg);

//  Mask an address for logs: "a***@example.com". Returns out.
char *nt_mask_addr(const char *addr, char *out, size_t n);

#endif
