/*  tl_slo - SLOs of configs/slo.cfg: error budgets and multi-window burn rates
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Pure logic: no I/O but tl_slo_load, time is a parameter (Unix seconds),
 *  counts come from a callback, so a unit test drives it with a set clock
 *  and an array of per-minute counts.
 *
 *  An SLO selects series (one service, names matching any of its
 *  space-separated globs: "*", "auth_*", "echo") and counts each request
 *  as good or bad:
 *    availability  bad = a server-side failure (tl_code_bad): an HTTP status
 *                  500..599 or a mesh error code the caller did not cause
 *                  (internal, unavailable, timeout, no_worker, worker_lost,
 *                  overloaded, reply_dropped, _other). Client errors (4xx,
 *                  invalid_request, forbidden...) spend no budget.
 *    latency       bad = slower than threshold (read from the histogram's
 *                  bins: a bin wholly above the threshold's bin; a value
 *                  within 1 % of the threshold may count either way).
 *  target is the good share (0.999); budget = (1 - target) of the requests
 *  over window_s (30 days). remaining = 1 - bad / budget (1 with no
 *  traffic; negative when overspent). spent = remaining <= 0 with at
 *  least min_events requests: the sink then reports a deployment freeze.
 *
 *  Burn rate over a window = (bad / total) / (1 - target). The rules are
 *  the Google SRE workbook's (chapter 5, "multiwindow, multi-burn-rate"):
 *    page    14.4 over 1 h and over 5 m     (2 % of a 30-day budget in 1 h)
 *    page     6   over 6 h and over 30 m    (5 % in 6 h)
 *    ticket   1   over 3 d and over 6 h     (10 % in 3 d)
 *  A rule holds when both windows burn at least its factor and the long
 *  window saw at least min_events requests (the low-traffic guard: with 20
 *  requests one failure is a 50x burn, not an outage worth a page).
 */
#ifndef TL_SLO_H
#define TL_SLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_SLO_MAX 32
#define TL_SLO_NAME_MAX 64
#define TL_SLO_RULES 3 //  rows of the burn-rate table

typedef enum { TL_SLO_AVAILABILITY, TL_SLO_LATENCY } tl_slo_kind_t;
typedef enum { TL_SEV_PAGE, TL_SEV_TICKET, TL_SEVERITIES } tl_severity_t;

typedef struct {
    char name[TL_SLO_NAME_MAX];    //  [A-Za-z0-9_.-]
    tl_slo_kind_t kind;            //  what counts as bad
    double target;                 //  good share, 0 < target < 1
    int64_t window_s;              //  budget period
    char service[TL_SLO_NAME_MAX]; //  the series' service
    char match[256];               //  globs of series names, space-separated
    int64_t threshold_us;          //  latency: slower is bad
} tl_slo_t;

typedef struct {
    const char *severity; //  "page" or "ticket"
    tl_severity_t sev;    //  idem
    double factor;        //  burn rate both windows must reach
    int64_t long_s;       //  long window
    int64_t short_s;      //  short window
} tl_burn_rule_t;

//  The workbook's table (TL_SLO_RULES rows).
extern const tl_burn_rule_t tl_burn_rules[TL_SLO_RULES];

typedef struct {
    int64_t min_events;      //  low-traffic guard, requests in the long window
    int64_t pending_s;       //  a condition must hold this long before firing
    char page_channel[32];   //  notifier channel of pages ("pagerduty")
    char page_to[256];       //  its "to" (PagerDuty routing key name)
    char ticket_channel[32]; //  channel of tickets ("slack" or "email")
    char ticket_to[256];     //  its "to"
} tl_alerting_t;

typedef struct {
    tl_slo_t slo[TL_SLO_MAX]; //  in file order
    size_t count;             //  rows in slo
    tl_alerting_t alerting;   //  how alerts are raised
} tl_slo_config_t;

//  Parse slo.cfg text (ZPL, format in configs/slo.cfg); 0 or -EINVAL with
//  one line in err. tl_slo_load reads the file.
int tl_slo_parse(const char *text, size_t len, tl_slo_config_t *out, char *err, size_t errlen);
int tl_slo_load(const char *path, tl_slo_config_t *out, char *err, size_t errlen);

//  Does slo select the series (service, name)?
bool tl_slo_matches(const tl_slo_t *slo, const char *service, const char *name);
//  Is this outcome code a server-side failure (availability "bad")?
bool tl_code_bad(const char *code);

//  Requests and bad ones of slo in [from_s, to_s).
typedef struct {
    uint64_t total; //  requests
    uint64_t bad;   //  bad ones
} tl_counts_t;
//  0 and *out, or negative when the counts are unavailable (Redis away).
typedef int(tl_counts_fn)(void *arg, const tl_slo_t *slo, int64_t from_s, int64_t to_s,
                          tl_counts_t *out);

typedef struct {
    double burn_long[TL_SLO_RULES];    //  burn rate per rule, long window
    double burn_short[TL_SLO_RULES];   //  and short window
    uint64_t total_long[TL_SLO_RULES]; //  requests in the long window
    bool rule[TL_SLO_RULES];           //  rule holds (guard included)
    bool condition[TL_SEVERITIES];     //  some rule of the severity holds
    double burn[TL_SEVERITIES];        //  highest long-window burn of a holding rule
    tl_counts_t budget_counts;         //  over window_s
    double remaining;                  //  share of the budget left (may be < 0)
    double budget_minutes;             //  (1 - target) * window, in minutes
    bool spent;                        //  freeze
} tl_slo_status_t;

//  Evaluate slo at now_s. 0, or the counts function's negative code.
int tl_slo_eval(const tl_slo_t *slo, const tl_alerting_t *alerting, tl_counts_fn *counts, void *arg,
                int64_t now_s, tl_slo_status_t *out);

//  Burn rate of counts for target (0 without traffic).
double tl_slo_burn(const tl_counts_t *counts, double target);

#endif
