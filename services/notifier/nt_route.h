/*  nt_route - alert routing by severity (configs/notifier.cfg, section route)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  notifier.alert {name, severity, status: firing | resolved, summary,
 *  source, key} becomes a message by the route of its severity:
 *    pagerduty: at once; firing triggers, resolved resolves, with the
 *      same dedup_key (the alert's key), so the incident closes itself;
 *    slack, discord, email, webhook: firing is sent after
 *      warning_delay when the severity is warning (at once otherwise) and
 *      dropped if the alert resolved meanwhile ({nt}:alert:<key>); a resolve
 *      only records that;
 *    digest: firing is appended to the day's list and one e-mail per day
 *      (UTC) goes to digest_to with template "digest";
 *    none: nothing.
 *  The decision is a pure function of the settings, the alert and "now",
 *  so it is unit-tested with a set clock. Reactor thread only.
 */
#ifndef NT_ROUTE_H
#define NT_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "nt.h"

#define NT_ROUTE_DIGEST_CHECK_MS 10000 //  how often the digest timer looks at the date
#define NT_KEY_DIGEST "{nt}:digest:"   //  list of lines per day; ":sent" marks it sent

typedef enum {
    NT_PLAN_SKIP = 0, //  nothing to send (none, or a resolve only recorded)
    NT_PLAN_SEND,     //  enqueue a message on channel, due at due_ms (0 = now)
    NT_PLAN_DIGEST,   //  append to the day's digest
} nt_plan_kind_t;

typedef struct {
    nt_plan_kind_t kind;      //  what to do
    nt_channel_t channel;     //  NT_PLAN_SEND: where
    int64_t due_ms;           //  NT_PLAN_SEND: 0 = at once
    bool conditional;         //  NT_PLAN_SEND: dropped unless still firing when due
    const char *event_action; //  PagerDuty: "trigger" or "resolve"; else NULL
} nt_plan_t;

//  The plan for an alert of sev, firing or resolved, at now_ms.
nt_plan_t nt_route_plan(const nt_config_t *config, nt_sev_t sev, bool resolved, int64_t now_ms);

//  "YYYY-MM-DD" (UTC) of ms into out (size >= 11).
void nt_route_day(int64_t ms, char *out, size_t n);

//  Method alert, and the digest timer (sends yesterday's digest once).
int nt_route_digest_tick(zloop_t *loop, int timer_id, void *arg);

#endif
