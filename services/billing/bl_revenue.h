/*  bl_revenue - revenue figures of a period from stored billing state (pure)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Definitions (docs/services/billing.md, "Revenue"); a period is
 *  [start, end) in UTC, times are Unix seconds, amounts minor units per
 *  currency, never converted:
 *    - a subscription's state at t is its last history point before t, in
 *      the order the store keeps (event created, type rank, event id);
 *    - paying: status active or past_due (trialing is not: trials excluded);
 *    - MRR(t): sum of the monthly-normalised amount (bl_event_monthly) of
 *      the subscriptions paying at t, per currency; the period's MRR is
 *      MRR(end), ARR = 12 x MRR;
 *    - new: subscriptions paying for the first time in the period (a trial
 *      converting counts when it converts; an upgrade is not new);
 *    - churned: subscriptions that go from paying to canceled, unpaid,
 *      incomplete_expired or deleted in the period (a trial that ends
 *      without paying is not churn); churn rate = churned / paying at start
 *      (0 when none were paying);
 *    - revenue: amount_paid of invoices paid (status_transitions.paid_at)
 *      in the period; refunds: growth of charges' amount_refunded in it.
 *  No I/O, no state: any thread.
 */
#ifndef BL_REVENUE_H
#define BL_REVENUE_H

#include <stddef.h>
#include <stdint.h>

#include "vz_json.h"

#define BL_REV_CURRENCIES_MAX 16 //  currencies reported (more are dropped, counted)
#define BL_REV_TREND_MAX 12      //  previous periods in a trend

//  One point of a subscription's history.
typedef struct {
    int64_t at;           //  event created
    const char *status;   //  subscription status then
    const char *currency; //  its currency
    int64_t mrr;          //  monthly minor units then
} bl_rev_point_t;

typedef struct {
    const char *id;               //  subscription id
    size_t count;                 //  points
    const bl_rev_point_t *points; //  in store order (oldest first)
} bl_rev_sub_t;

typedef struct {
    const char *currency; //  invoice currency
    int64_t at;           //  paid_at
    int64_t amount;       //  amount_paid
} bl_rev_payment_t;

typedef struct {
    const char *charge;   //  charge id
    const char *currency; //  its currency
    int64_t at;           //  event created
    int64_t cumulative;   //  amount_refunded then (any order)
} bl_rev_refund_t;

typedef struct {
    const bl_rev_sub_t *subs;
    size_t nsubs;
    const bl_rev_payment_t *payments; //  paid invoices only
    size_t npayments;
    const bl_rev_refund_t *refunds;
    size_t nrefunds;
} bl_rev_input_t;

typedef struct {
    char currency[8];
    int64_t revenue; //  paid in the period
    int64_t refunds; //  refunded in the period
    int64_t mrr;     //  at the period's end
    int64_t arr;     //  12 x mrr
} bl_rev_money_t;

typedef struct {
    int64_t start, end;   //  [start, end)
    int64_t new_subs;     //  became paying
    int64_t churned;      //  stopped paying (canceled...)
    int64_t paying_start; //  paying at start
    int64_t paying_end;   //  paying at end
    double churn_rate;    //  churned / paying_start, 0 when none
    size_t ncur;          //  currencies seen (sorted by code)
    bl_rev_money_t cur[BL_REV_CURRENCIES_MAX];
    size_t dropped; //  currencies beyond BL_REV_CURRENCIES_MAX
} bl_rev_period_t;

typedef enum { BL_REV_WEEK, BL_REV_MONTH, BL_REV_YEAR } bl_rev_unit_t;

//  "week" | "month" | "year". 0 or -EINVAL.
int bl_rev_unit(const char *text, bl_rev_unit_t *out);
//  The period of unit containing at (ISO weeks start Monday 00:00 UTC),
//  moved back by `back` periods. 0 or -EINVAL.
int bl_rev_bounds(bl_rev_unit_t unit, int64_t at, int back, int64_t *start, int64_t *end);
//  Figures of [start, end) from in.
void bl_rev_compute(const bl_rev_input_t *in, int64_t start, int64_t end, bl_rev_period_t *out);
//  The JSON answer: {"period", "start", "end", figures..., "currencies": {..},
//  "trend": [older periods, newest first]}. periods[0] is the period asked.
void bl_rev_write(vz_json_writer_t *w, const char *unit, const bl_rev_period_t *periods,
                  size_t count);

#endif
