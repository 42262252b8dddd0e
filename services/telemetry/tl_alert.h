/*  tl_alert - alert state per SLO and severity, and the notifier request
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Pure logic, time as a parameter (Unix seconds). One alert per SLO and
 *  severity, named by its dedup key "slo/<name>/<severity>", moves
 *      inactive --condition--> pending --held pending_s--> firing
 *      firing --condition gone--> resolved --condition--> pending
 *      pending --condition gone--> inactive (nobody was told)
 *  tl_alert_step says which notification a step calls for: fire on
 *  entering firing, resolve on entering resolved; the dedup key is the
 *  same for both, so PagerDuty resolves the incident it opened.
 *
 *  The table round-trips through JSON (tl_alerts_json/_load) so the sink
 *  keeps it in Redis and replicas agree.
 */
#ifndef TL_ALERT_H
#define TL_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_slo.h"

#define TL_ALERT_MAX (TL_SLO_MAX * TL_SEVERITIES)
#define TL_ALERT_KEY_MAX 96

typedef enum {
    TL_ALERT_INACTIVE,
    TL_ALERT_PENDING,
    TL_ALERT_FIRING,
    TL_ALERT_RESOLVED,
} tl_alert_state_t;

typedef enum { TL_NOTIFY_NONE, TL_NOTIFY_FIRE, TL_NOTIFY_RESOLVE } tl_notify_t;

typedef struct {
    char key[TL_ALERT_KEY_MAX]; //  dedup key, "slo/<name>/<severity>"
    char slo[TL_SLO_NAME_MAX];  //  SLO name
    tl_severity_t severity;     //  page or ticket
    tl_alert_state_t state;     //  where it is
    int64_t since_s;            //  entered the current state
    int64_t fired_s;            //  last entered firing (0 = never)
    int64_t resolved_s;         //  last resolved (0 = never)
    double burn;                //  highest burn rate seen while active
} tl_alert_t;

typedef struct {
    tl_alert_t alert[TL_ALERT_MAX]; //  in creation order
    size_t count;                   //  rows used
} tl_alerts_t;

//  State names: "inactive", "pending", "firing", "resolved".
const char *tl_alert_state_name(tl_alert_state_t state);
//  "page" or "ticket".
const char *tl_severity_name(tl_severity_t severity);

//  The alert of (slo, severity), created inactive; NULL when the table is full.
tl_alert_t *tl_alerts_get(tl_alerts_t *self, const char *slo, tl_severity_t severity);

//  One evaluation: condition holds now (with burn), at now_s.
tl_notify_t tl_alert_step(tl_alert_t *alert, bool condition, double burn, int64_t now_s,
                          int64_t pending_s);

//  The notifier.send body for a fire or resolve of alert, encoded by
//  vz_notifier_contract: channel and to by severity from alerting, template
//  "slo_alert", severity "critical" (page) or "warning" (ticket),
//  idempotency_key "<dedup key>/<fired_s>/<trigger|resolve>", and data
//  {dedup_key, event_action: trigger|resolve, slo, severity, burn_rate,
//  summary, fired_at, resolved_at}. Caller frees; NULL on failure.
char *tl_alert_notify_body(const tl_alert_t *alert, tl_notify_t what, const tl_alerting_t *alerting,
                           size_t *len_p);

//  The table as JSON (caller frees) and back; load returns 0 or -EINVAL
//  (then *self is empty).
char *tl_alerts_json(const tl_alerts_t *self, size_t *len_p);
int tl_alerts_load(tl_alerts_t *self, const char *json, size_t len);

#endif
