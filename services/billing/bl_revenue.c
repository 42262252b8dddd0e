/*  bl_revenue - revenue figures of a period from stored billing state (pure)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "bl_revenue.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bl_event.h"

int bl_rev_unit(const char *text, bl_rev_unit_t *out)
{
    if (text && strcmp(text, "week") == 0)
        *out = BL_REV_WEEK;
    else if (text && strcmp(text, "month") == 0)
        *out = BL_REV_MONTH;
    else if (text && strcmp(text, "year") == 0)
        *out = BL_REV_YEAR;
    else
        return -EINVAL;
    return 0;
}

int bl_rev_bounds(bl_rev_unit_t unit, int64_t at, int back, int64_t *start, int64_t *end)
{
    time_t t = (time_t)at;
    struct tm tm;
    if (back < 0 || !gmtime_r(&t, &tm))
        return -EINVAL;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = 0;
    struct tm first = tm, next;
    if (unit == BL_REV_WEEK) {
        //  Back to Monday, then whole weeks.
        int since_monday = (tm.tm_wday + 6) % 7;
        first.tm_mday -= since_monday + 7 * back;
        next = first;
        next.tm_mday += 7;
    } else if (unit == BL_REV_MONTH) {
        first.tm_mday = 1;
        first.tm_mon -= back;
        next = first;
        next.tm_mon += 1;
    } else {
        first.tm_mday = 1;
        first.tm_mon = 0;
        first.tm_year -= back;
        next = first;
        next.tm_year += 1;
    }
    *start = (int64_t)timegm(&first); //  timegm normalises the fields
    *end = (int64_t)timegm(&next);
    return 0;
}

//  The money row of currency (created in code order), or NULL when full.
static bl_rev_money_t *s_money(bl_rev_period_t *out, const char *currency)
{
    size_t i = 0;
    while (i < out->ncur && strcmp(out->cur[i].currency, currency) < 0)
        i++;
    if (i < out->ncur && strcmp(out->cur[i].currency, currency) == 0)
        return &out->cur[i];
    if (out->ncur == BL_REV_CURRENCIES_MAX) {
        out->dropped++;
        return NULL;
    }
    memmove(&out->cur[i + 1], &out->cur[i], (out->ncur - i) * sizeof out->cur[0]);
    memset(&out->cur[i], 0, sizeof out->cur[i]);
    snprintf(out->cur[i].currency, sizeof out->cur[i].currency, "%s", currency);
    out->ncur++;
    return &out->cur[i];
}

//  The state of sub just before t, or NULL when it has none yet.
static const bl_rev_point_t *s_state(const bl_rev_sub_t *sub, int64_t t)
{
    const bl_rev_point_t *state = NULL;
    for (size_t i = 0; i < sub->count && sub->points[i].at < t; i++)
        state = &sub->points[i];
    return state;
}

static bool s_churn_status(const char *status)
{
    return strcmp(status, "canceled") == 0 || strcmp(status, "unpaid") == 0 ||
           strcmp(status, "incomplete_expired") == 0 || strcmp(status, "deleted") == 0;
}

//  Refunded on charge by t: the largest cumulative amount seen before t
//  (amount_refunded only grows, so the order of arrival does not matter).
static int64_t s_refunded(const bl_rev_input_t *in, const char *charge, int64_t t)
{
    int64_t best = 0;
    for (size_t i = 0; i < in->nrefunds; i++)
        if (strcmp(in->refunds[i].charge, charge) == 0 && in->refunds[i].at < t &&
            in->refunds[i].cumulative > best)
            best = in->refunds[i].cumulative;
    return best;
}

void bl_rev_compute(const bl_rev_input_t *in, int64_t start, int64_t end, bl_rev_period_t *out)
{
    memset(out, 0, sizeof *out);
    out->start = start;
    out->end = end;
    for (size_t s = 0; s < in->nsubs; s++) {
        const bl_rev_sub_t *sub = &in->subs[s];
        const bl_rev_point_t *at_start = s_state(sub, start);
        const bl_rev_point_t *at_end = s_state(sub, end);
        out->paying_start += at_start && bl_event_paying(at_start->status);
        if (at_end && bl_event_paying(at_end->status)) {
            out->paying_end++;
            bl_rev_money_t *m = s_money(out, at_end->currency);
            if (m)
                m->mrr += at_end->mrr;
        }
        //  Walk the history once: first paying point, paying -> churned moves.
        bool paid_before = false, paying = false, is_new = false, churned = false;
        for (size_t i = 0; i < sub->count && sub->points[i].at < end; i++) {
            const bl_rev_point_t *p = &sub->points[i];
            bool inside = p->at >= start;
            bool now_paying = bl_event_paying(p->status);
            if (now_paying && !paid_before && inside)
                is_new = true;
            if (paying && !now_paying && s_churn_status(p->status) && inside)
                churned = true;
            paid_before |= now_paying;
            paying = now_paying;
        }
        out->new_subs += is_new;
        out->churned += churned;
    }
    out->churn_rate = out->paying_start ? (double)out->churned / (double)out->paying_start : 0.0;
    for (size_t i = 0; i < in->npayments; i++) {
        const bl_rev_payment_t *p = &in->payments[i];
        bl_rev_money_t *m = p->at >= start && p->at < end ? s_money(out, p->currency) : NULL;
        if (m)
            m->revenue += p->amount;
    }
    //  Each charge once: its first row in the input.
    for (size_t i = 0; i < in->nrefunds; i++) {
        const bl_rev_refund_t *r = &in->refunds[i];
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp(in->refunds[j].charge, r->charge) != 0;
        int64_t delta =
            first ? s_refunded(in, r->charge, end) - s_refunded(in, r->charge, start) : 0;
        bl_rev_money_t *m = delta > 0 ? s_money(out, r->currency) : NULL;
        if (m)
            m->refunds += delta;
    }
    for (size_t i = 0; i < out->ncur; i++)
        out->cur[i].arr = 12 * out->cur[i].mrr;
}

static void s_write_period(vz_json_writer_t *w, const bl_rev_period_t *p)
{
    vz_json_write_kv_int(w, "start", p->start);
    vz_json_write_kv_int(w, "end", p->end);
    vz_json_write_kv_int(w, "new_subscriptions", p->new_subs);
    vz_json_write_kv_int(w, "churned_subscriptions", p->churned);
    vz_json_write_kv_int(w, "paying_at_start", p->paying_start);
    vz_json_write_kv_int(w, "paying_at_end", p->paying_end);
    vz_json_write_key(w, "churn_rate");
    vz_json_write_double(w, p->churn_rate);
    vz_json_write_key(w, "currencies");
    vz_json_write_object_begin(w);
    for (size_t i = 0; i < p->ncur; i++) {
        const bl_rev_money_t *m = &p->cur[i];
        vz_json_write_key(w, m->currency);
        vz_json_write_object_begin(w);
        vz_json_write_kv_int(w, "revenue", m->revenue);
        vz_json_write_kv_int(w, "refunds", m->refunds);
        vz_json_write_kv_int(w, "mrr", m->mrr);
        vz_json_write_kv_int(w, "arr", m->arr);
        vz_json_write_object_end(w);
    }
    vz_json_write_object_end(w);
}

void bl_rev_write(vz_json_writer_t *w, const char *unit, const bl_rev_period_t *periods,
                  size_t count)
{
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "period", unit);
    if (count > 0)
        s_write_period(w, &periods[0]);
    vz_json_write_key(w, "trend");
    vz_json_write_array_begin(w);
    for (size_t i = 1; i < count; i++) {
        vz_json_write_object_begin(w);
        s_write_period(w, &periods[i]);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
}
