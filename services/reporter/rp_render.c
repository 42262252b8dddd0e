/*  rp_render - the report's figures as HTML (mail and web), plain text and charts
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rp_render.h"

#define TOP_ROWS 10 //  rows of the error and endpoint tables, items per roadmap list

// --------------------------------------------------------------------------
//  Reading the model

static const vz_json_value_t *s_section(const vz_json_value_t *model, const char *name)
{
    return vz_json_get(vz_json_get(model, "sections"), name);
}

static const char *s_str(const vz_json_value_t *obj, const char *key)
{
    const char *s = vz_json_get_string(obj, key, NULL);
    return s ? s : "";
}

static double s_num(const vz_json_value_t *obj, const char *key)
{
    double d = 0;
    if (vz_json_double(vz_json_get(obj, key), &d) < 0)
        return 0;
    return d;
}

static bool s_available(const vz_json_value_t *section)
{
    return section && strcmp(s_str(section, "status"), "unavailable") != 0;
}

//  Stripe's zero-decimal currencies.
static bool s_zero_decimal(const char *c)
{
    static const char *const list[] = {"bif", "clp", "djf", "gnf", "jpy", "kmf",
                                       "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                                       "vuv", "xaf", "xof", "xpf", NULL};
    for (int i = 0; list[i]; i++)
        if (strcmp(c, list[i]) == 0)
            return true;
    return false;
}

void rp_render_money(int64_t minor, const char *currency, char *out, size_t n)
{
    char code[8] = "";
    for (size_t i = 0; currency[i] && i < sizeof code - 1; i++)
        code[i] = (char)(currency[i] >= 'a' && currency[i] <= 'z' ? currency[i] - 32 : currency[i]);
    if (s_zero_decimal(currency))
        snprintf(out, n, "%" PRId64 " %s", minor, code);
    else
        snprintf(out, n, "%s%" PRId64 ".%02" PRId64 " %s", minor < 0 ? "-" : "",
                 (minor < 0 ? -minor : minor) / 100, (minor < 0 ? -minor : minor) % 100, code);
}

//  Currency amount `field` of a billing period for `currency`, 0 when absent.
static int64_t s_amount(const vz_json_value_t *period, const char *currency, const char *field)
{
    int64_t v = 0;
    vz_json_int(vz_json_get(vz_json_get(vz_json_get(period, "currencies"), currency), field), &v);
    return v;
}

//  The currencies of the three periods, each once, in order of appearance.
static size_t s_currencies(const vz_json_value_t *rev, const char *out[], size_t cap)
{
    static const char *const periods[] = {"week", "month", "year"};
    size_t count = 0;
    for (size_t p = 0; p < 3; p++) {
        const vz_json_value_t *cur = vz_json_get(vz_json_get(rev, periods[p]), "currencies");
        for (size_t i = 0; i < vz_json_size(cur) && count < cap; i++) {
            const char *c = vz_json_key_at(cur, i);
            bool seen = false;
            for (size_t j = 0; j < count; j++)
                seen = seen || strcmp(out[j], c) == 0;
            if (!seen)
                out[count++] = c;
        }
    }
    return count;
}

bool rp_render_code_is_error(const char *code)
{
    return strcmp(code, "ok") != 0 && !(code[0] >= '1' && code[0] <= '3' && strlen(code) == 3);
}

//  Calls and errors of the codes of one series.
static void s_series_calls(const vz_json_value_t *series, int64_t *calls, int64_t *errors)
{
    const vz_json_value_t *codes = vz_json_get(series, "codes");
    for (size_t c = 0; c < vz_json_size(codes); c++) {
        int64_t v = 0;
        vz_json_int(vz_json_at(codes, c), &v);
        *calls += v;
        if (rp_render_code_is_error(vz_json_key_at(codes, c)))
            *errors += v;
    }
}

void rp_render_calls(const vz_json_value_t *signals, int64_t *calls, int64_t *errors)
{
    *calls = *errors = 0;
    const vz_json_value_t *services = vz_json_get(signals, "services");
    for (size_t s = 0; s < vz_json_size(services); s++) {
        const vz_json_value_t *series = vz_json_get(vz_json_at(services, s), "series");
        for (size_t i = 0; i < vz_json_size(series); i++)
            s_series_calls(vz_json_at(series, i), calls, errors);
    }
}

//  Error rate of the gateway's series in the signals answer, or -1.
static double s_error_rate(const vz_json_value_t *signals)
{
    int64_t calls = 0, errors = 0;
    rp_render_calls(signals, &calls, &errors);
    return calls > 0 ? (double)errors / (double)calls : -1;
}

// --------------------------------------------------------------------------
//  Charts

static void s_label_date(char *out, size_t n, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%m-%d", &tm);
}

void rp_render_charts(const vz_json_value_t *model, rp_charts_t *out)
{
    memset(out, 0, sizeof *out);
    const vz_json_value_t *rev = s_section(model, "revenue");
    const vz_json_value_t *trend = vz_json_get(rev, "mrr_trend");
    if (s_available(rev) && vz_json_size(trend) > 0) {
        size_t k = out->count++;
        rp_chart_t *c = &out->chart[k];
        out->name[k] = "mrr";
        c->title = "MRR, last 12 weeks";
        c->count =
            vz_json_size(trend) < RP_CHART_POINTS_MAX ? vz_json_size(trend) : RP_CHART_POINTS_MAX;
        for (size_t i = 0; i < c->count; i++) {
            const vz_json_value_t *pt = vz_json_at(trend, i);
            s_label_date(out->labels[k][i], sizeof out->labels[k][i], (int64_t)s_num(pt, "start"));
            c->labels[i] = out->labels[k][i];
            const vz_json_value_t *cur = vz_json_get(pt, "mrr");
            for (size_t j = 0; j < vz_json_size(cur); j++) {
                const char *code = vz_json_key_at(cur, j);
                size_t s = 0;
                while (s < c->nseries && strcmp(out->series[k][s], code) != 0)
                    s++;
                if (s == c->nseries) {
                    if (s == RP_CHART_SERIES_MAX)
                        continue;
                    snprintf(out->series[k][s], sizeof out->series[k][s], "%s", code);
                    c->series[s].name = out->series[k][s];
                    c->nseries++;
                }
                double v = 0;
                vz_json_double(vz_json_at(cur, j), &v);
                c->series[s].values[i] = s_zero_decimal(code) ? v : v / 100;
            }
        }
    }
    const vz_json_value_t *use = s_section(model, "usage");
    const vz_json_value_t *days = vz_json_get(use, "days");
    if (s_available(use) && vz_json_size(days) > 0) {
        size_t k = out->count++;
        rp_chart_t *c = &out->chart[k];
        out->name[k] = "users";
        c->title = "Active users (DAU, WAU, MAU)";
        static const char *const keys[] = {"dau", "wau", "mau"};
        c->nseries = 3;
        for (size_t s = 0; s < 3; s++) {
            snprintf(out->series[k][s], sizeof out->series[k][s], "%c%c%c", keys[s][0] - 32,
                     keys[s][1] - 32, keys[s][2] - 32);
            c->series[s].name = out->series[k][s];
        }
        for (size_t i = 0; i < vz_json_size(days) && i < RP_CHART_POINTS_MAX; i++) {
            const vz_json_value_t *d = vz_json_at(days, i);
            snprintf(out->labels[k][i], sizeof out->labels[k][i], "%s", s_str(d, "day") + 5);
            c->labels[i] = out->labels[k][i];
            for (size_t s = 0; s < 3; s++)
                c->series[s].values[i] = s_num(d, keys[s]);
            c->count = i + 1;
        }
    }
    const vz_json_value_t *err = s_section(model, "errors");
    const vz_json_value_t *top = vz_json_get(vz_json_get(err, "top"), "errors");
    if (s_available(err) && vz_json_size(top) > 0) {
        size_t k = out->count++;
        rp_chart_t *c = &out->chart[k];
        out->name[k] = "errors";
        c->title = "Top errors: this week and the week before";
        c->bars = true;
        c->nseries = 2;
        c->series[0].name = "this week";
        c->series[1].name = "week before";
        for (size_t i = 0; i < vz_json_size(top) && i < 8; i++) {
            const vz_json_value_t *e = vz_json_at(top, i);
            snprintf(out->labels[k][i], sizeof out->labels[k][i], "%.12s", s_str(e, "code"));
            c->labels[i] = out->labels[k][i];
            c->series[0].values[i] = s_num(e, "count");
            c->series[1].values[i] = s_num(e, "previous_week");
            c->count = i + 1;
        }
    }
    const vz_json_value_t *rates = vz_json_get(err, "rate_trend");
    if (s_available(err) && vz_json_size(rates) > 0) {
        size_t k = out->count++;
        rp_chart_t *c = &out->chart[k];
        out->name[k] = "error_rate";
        c->title = "Error rate of the API, by week";
        c->unit = " %";
        c->nseries = 1;
        c->series[0].name = "errors / calls";
        for (size_t i = 0; i < vz_json_size(rates) && i < RP_CHART_POINTS_MAX; i++) {
            const vz_json_value_t *r = vz_json_at(rates, i);
            snprintf(out->labels[k][i], sizeof out->labels[k][i], "%s", s_str(r, "week"));
            c->labels[i] = out->labels[k][i];
            c->series[0].values[i] = 100 * s_num(r, "rate");
            c->count = i + 1;
        }
    }
    const vz_json_value_t *road = s_section(model, "roadmap");
    const vz_json_value_t *vel = vz_json_get(vz_json_get(road, "roadmap"), "velocity");
    if (s_available(road) && vz_json_size(vel) > 0) {
        size_t k = out->count++;
        rp_chart_t *c = &out->chart[k];
        out->name[k] = "velocity";
        c->title = "Sprint velocity";
        c->bars = true;
        c->nseries = 2;
        c->series[0].name = "issues closed";
        c->series[1].name = "pulls merged";
        size_t n =
            vz_json_size(vel) < RP_CHART_POINTS_MAX ? vz_json_size(vel) : RP_CHART_POINTS_MAX;
        //  Newest first in the answer; oldest on the left here.
        for (size_t i = 0; i < n; i++) {
            const vz_json_value_t *w = vz_json_at(vel, n - 1 - i);
            snprintf(out->labels[k][i], sizeof out->labels[k][i], "%s", s_str(w, "week"));
            c->labels[i] = out->labels[k][i];
            c->series[0].values[i] = s_num(w, "issues_closed");
            c->series[1].values[i] = s_num(w, "pulls_merged");
        }
        c->count = n;
    }
}

// --------------------------------------------------------------------------
//  HTML

#define FONT "font-family:Arial,Helvetica,sans-serif;"
#define H2 "<h2 style=\"" FONT "font-size:18px;color:#1f2d3d;margin:24px 0 8px;\">"
#define TABLE                                                                                      \
    "<table role=\"presentation\" cellpadding=\"6\" cellspacing=\"0\" width=\"100%%\" "            \
    "style=\"border-collapse:collapse;" FONT "font-size:13px;\">"
#define TH "<th align=\"left\" style=\"border-bottom:2px solid #d0d7de;color:#57606a;\">"
#define THR "<th align=\"right\" style=\"border-bottom:2px solid #d0d7de;color:#57606a;\">"
#define TD "<td style=\"border-bottom:1px solid #eaeef2;\">"
#define TDR "<td align=\"right\" style=\"border-bottom:1px solid #eaeef2;\">"

static void s_esc(FILE *f, const char *text)
{
    for (const char *p = text; *p; p++)
        switch (*p) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*p, f);
        }
}

//  The section's heading, and its state when not ok. false: nothing more to show.
static bool s_head(FILE *f, const vz_json_value_t *section, const char *title)
{
    fprintf(f, "<tr><td style=\"padding:0 24px 8px;\">" H2 "%s</h2>", title);
    const char *status = section ? s_str(section, "status") : "unavailable";
    if (strcmp(status, "ok") == 0)
        return true;
    fprintf(f, "<p style=\"" FONT "font-size:13px;color:%s;margin:0 0 8px;\"><b>%s</b>",
            strcmp(status, "partial") == 0 ? "#9a6700" : "#cf222e",
            strcmp(status, "partial") == 0 ? "Partial" : "Unavailable");
    const char *reason = section ? s_str(section, "reason") : "no data";
    if (*reason) {
        fputs(": ", f);
        s_esc(f, reason);
    }
    fputs("</p>", f);
    if (strcmp(status, "unavailable") == 0) {
        fputs("</td></tr>", f);
        return false;
    }
    return true;
}

static void s_img(FILE *f, const rp_image_ref_t *images, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(images[i].name, name) == 0) {
            fprintf(f,
                    "<p style=\"margin:8px 0;\"><img src=\"%s\" width=\"%d\" height=\"%d\" alt=\"",
                    images[i].src, RP_CHART_WIDTH, RP_CHART_HEIGHT);
            s_esc(f, images[i].alt);
            fputs("\" style=\"display:block;max-width:100%;height:auto;border:0;\"></p>", f);
        }
}

static void s_html_revenue(FILE *f, const vz_json_value_t *rev, const rp_image_ref_t *images,
                           size_t count)
{
    if (!s_head(f, rev, "Revenue"))
        return;
    const char *cur[16];
    size_t n = s_currencies(rev, cur, 16);
    fputs(TABLE "<tr>" TH "Currency</th>" THR "Week</th>" THR "Month</th>" THR "Year</th>" THR
                "MRR</th>" THR "ARR</th></tr>",
          f);
    static const char *const periods[] = {"week", "month", "year"};
    for (size_t i = 0; i < n; i++) {
        fputs("<tr>" TD, f);
        s_esc(f, cur[i]);
        fputs("</td>", f);
        char money[64];
        for (size_t p = 0; p < 3; p++) {
            rp_render_money(s_amount(vz_json_get(rev, periods[p]), cur[i], "revenue"), cur[i],
                            money, sizeof money);
            fprintf(f, TDR "%s</td>", money);
        }
        rp_render_money(s_amount(vz_json_get(rev, "week"), cur[i], "mrr"), cur[i], money,
                        sizeof money);
        fprintf(f, TDR "%s</td>", money);
        rp_render_money(s_amount(vz_json_get(rev, "week"), cur[i], "arr"), cur[i], money,
                        sizeof money);
        fprintf(f, TDR "%s</td></tr>", money);
    }
    if (n == 0)
        fputs("<tr>" TD "no revenue</td>" TD "</td>" TD "</td>" TD "</td>" TD "</td>" TD
              "</td></tr>",
              f);
    fputs("</table>" TABLE "<tr>" TH "</th>" THR "Week</th>" THR "Month</th>" THR "Year</th></tr>",
          f);
    fputs("<tr>" TD "New subscriptions</td>", f);
    for (size_t p = 0; p < 3; p++)
        fprintf(f, TDR "%.0f</td>", s_num(vz_json_get(rev, periods[p]), "new_subscriptions"));
    fputs("</tr><tr>" TD "Churn rate</td>", f);
    for (size_t p = 0; p < 3; p++)
        fprintf(f, TDR "%.2f %%</td>", 100 * s_num(vz_json_get(rev, periods[p]), "churn_rate"));
    fputs("</tr></table>", f);
    s_img(f, images, count, "mrr");
    fputs("</td></tr>", f);
}

//  A {name: count} object of the usage answer as a two-column table, the
//  largest first (at most TOP_ROWS), or the text none when it is empty.
static void s_html_counts(FILE *f, const vz_json_value_t *usage, const char *key, const char *title,
                          const char *none)
{
    const vz_json_value_t *counts = vz_json_get(usage, key);
    size_t n = vz_json_size(counts);
    char window[48] = "";
    if (s_num(usage, "window_days") > 0)
        snprintf(window, sizeof window, ", last %.0f days", s_num(usage, "window_days"));
    fprintf(f, TABLE "<tr>" TH "%s%s</th>" THR "Count</th></tr>", title, window);
    bool used[64] = {false};
    for (size_t row = 0; row < n && row < TOP_ROWS && n <= 64; row++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!used[i] && (best == n || s_num(counts, vz_json_key_at(counts, i)) >
                                              s_num(counts, vz_json_key_at(counts, best))))
                best = i;
        used[best] = true;
        fputs("<tr>" TD, f);
        s_esc(f, vz_json_key_at(counts, best));
        fprintf(f, "</td>" TDR "%.0f</td></tr>", s_num(counts, vz_json_key_at(counts, best)));
    }
    if (n == 0)
        fprintf(f, "<tr>" TD "%s</td>" TD "</td></tr>", none);
    fputs("</table>", f);
}

static void s_html_usage(FILE *f, const vz_json_value_t *use, const rp_image_ref_t *images,
                         size_t count)
{
    if (!s_head(f, use, "Usage"))
        return;
    const vz_json_value_t *cur = vz_json_get(use, "current");
    fprintf(f,
            TABLE "<tr>" THR "DAU</th>" THR "WAU</th>" THR "MAU</th></tr><tr>" TDR "%.0f</td>" TDR
                  "%.0f</td>" TDR "%.0f</td></tr></table>",
            s_num(cur, "dau"), s_num(cur, "wau"), s_num(cur, "mau"));
    s_img(f, images, count, "users");
    const vz_json_value_t *services = vz_json_get(vz_json_get(use, "endpoints"), "services");
    const vz_json_value_t *series = vz_json_get(vz_json_at(services, 0), "series");
    if (vz_json_size(series) > 0) {
        fputs(TABLE "<tr>" TH "API calls by endpoint</th>" THR "Calls</th>" THR "Errors</th></tr>",
              f);
        for (size_t i = 0; i < vz_json_size(series) && i < TOP_ROWS; i++) {
            const vz_json_value_t *s = vz_json_at(series, i);
            fputs("<tr>" TD, f);
            s_esc(f, s_str(s, "name"));
            int64_t calls = 0, errors = 0;
            s_series_calls(s, &calls, &errors);
            fprintf(f, "</td>" TDR "%.0f</td>" TDR "%.2f %%</td></tr>", s_num(s, "count"),
                    calls ? 100.0 * (double)errors / (double)calls : 0.0);
        }
        fputs("</table>", f);
    }
    //  Feature adoption (business events) and countries, over telemetry's window.
    s_html_counts(f, cur, "events", "Feature adoption (events)", "no events recorded");
    s_html_counts(f, cur, "countries", "Geographic distribution", "no country known");
    fputs("</td></tr>", f);
}

//  The resolution status of error code: its linked issue and that issue's
//  state ("acme/api#12 closed (completed)"), "... state unknown" when
//  github did not answer, or "not linked".
static void s_issue(const vz_json_value_t *errors, const char *code, char *out, size_t n)
{
    const vz_json_value_t *links = vz_json_get(errors, "issues");
    snprintf(out, n, "not linked");
    for (size_t i = 0; i < vz_json_size(links); i++) {
        const vz_json_value_t *l = vz_json_at(links, i);
        if (strcmp(s_str(l, "code"), code) != 0)
            continue;
        const vz_json_value_t *issue = vz_json_get(l, "issue");
        const char *state = s_str(issue, "state"), *reason = s_str(issue, "state_reason");
        if (!issue || vz_json_type(issue) != VZ_JSON_OBJECT)
            snprintf(out, n, "%s#%.0f state unknown", s_str(l, "repo"), s_num(l, "number"));
        else if (*reason)
            snprintf(out, n, "%s#%.0f %s (%s)", s_str(l, "repo"), s_num(l, "number"), state,
                     reason);
        else
            snprintf(out, n, "%s#%.0f %s", s_str(l, "repo"), s_num(l, "number"), state);
        return;
    }
}

static void s_html_errors(FILE *f, const vz_json_value_t *err, const vz_json_value_t *use,
                          const rp_image_ref_t *images, size_t count)
{
    if (!s_head(f, err, "Errors"))
        return;
    double rate = s_error_rate(vz_json_get(use, "endpoints"));
    if (rate >= 0)
        fprintf(f, "<p style=\"" FONT "font-size:13px;margin:0 0 8px;\">Error rate: %.2f %%</p>",
                100 * rate);
    const vz_json_value_t *top = vz_json_get(vz_json_get(err, "top"), "errors");
    fputs(TABLE "<tr>" TH "Error</th>" THR "This week</th>" THR "Week before</th>" THR
                "Change</th>" TH "Services</th>" TH "Status</th></tr>",
          f);
    for (size_t i = 0; i < vz_json_size(top) && i < TOP_ROWS; i++) {
        const vz_json_value_t *e = vz_json_at(top, i);
        fputs("<tr>" TD, f);
        s_esc(f, s_str(e, "code"));
        fprintf(f, "</td>" TDR "%.0f</td>" TDR "%.0f</td>", s_num(e, "count"),
                s_num(e, "previous_week"));
        if (vz_json_type(vz_json_get(e, "change")) == VZ_JSON_NUMBER)
            fprintf(f, TDR "%+.0f %%</td>", 100 * s_num(e, "change"));
        else
            fputs(TDR "new</td>", f);
        fputs(TD, f);
        const vz_json_value_t *svc = vz_json_get(e, "services");
        for (size_t j = 0; j < vz_json_size(svc); j++) {
            const char *name = vz_json_string(vz_json_at(svc, j), NULL);
            fputs(j ? ", " : "", f);
            s_esc(f, name ? name : "");
        }
        fputs("</td>" TD, f);
        char status[256];
        s_issue(err, s_str(e, "code"), status, sizeof status);
        s_esc(f, status);
        fputs("</td></tr>", f);
    }
    if (vz_json_size(top) == 0)
        fputs("<tr>" TD "no errors this week</td>" TD "</td>" TD "</td>" TD "</td>" TD "</td>" TD
              "</td></tr>",
              f);
    fputs("</table>", f);
    s_img(f, images, count, "errors");
    s_img(f, images, count, "error_rate");
    fputs("</td></tr>", f);
}

static void s_html_items(FILE *f, const vz_json_value_t *road, const char *key, const char *title)
{
    const vz_json_value_t *items = vz_json_get(road, key);
    fprintf(f, "<p style=\"" FONT "font-size:13px;margin:8px 0 4px;\"><b>%s: %zu</b></p>", title,
            vz_json_size(items));
    if (vz_json_size(items) == 0)
        return;
    fprintf(f, "<ul style=\"" FONT "font-size:13px;margin:0 0 8px;padding-left:20px;\">");
    for (size_t i = 0; i < vz_json_size(items) && i < TOP_ROWS; i++) {
        const vz_json_value_t *it = vz_json_at(items, i);
        fputs("<li>", f);
        s_esc(f, s_str(it, "repo"));
        fprintf(f, "#%.0f ", s_num(it, "number"));
        s_esc(f, s_str(it, "title"));
        fputs("</li>", f);
    }
    fputs("</ul>", f);
}

static void s_html_roadmap(FILE *f, const vz_json_value_t *road, const rp_image_ref_t *images,
                           size_t count)
{
    if (!s_head(f, road, "Roadmap"))
        return;
    const vz_json_value_t *r = vz_json_get(road, "roadmap");
    s_html_items(f, r, "completed", "Completed");
    s_html_items(f, r, "in_progress", "In progress");
    s_html_items(f, r, "blocked", "Blocked");
    const vz_json_value_t *vel = vz_json_get(r, "velocity");
    if (vz_json_size(vel) > 0) {
        fputs(TABLE "<tr>" TH "Sprint velocity</th>" THR "Issues closed</th>" THR
                    "Pulls merged</th></tr>",
              f);
        for (size_t i = 0; i < vz_json_size(vel) && i < TOP_ROWS; i++) {
            const vz_json_value_t *w = vz_json_at(vel, i);
            fputs("<tr>" TD, f);
            s_esc(f, s_str(w, "week"));
            fprintf(f, "</td>" TDR "%.0f</td>" TDR "%.0f</td></tr>", s_num(w, "issues_closed"),
                    s_num(w, "pulls_merged"));
        }
        fputs("</table>", f);
    }
    s_img(f, images, count, "velocity");
    fputs("</td></tr>", f);
}

static void s_period(FILE *f, const vz_json_value_t *model)
{
    char from[32], to[32];
    time_t start = (time_t)s_num(model, "start"), end = (time_t)s_num(model, "end") - 1;
    struct tm tm;
    gmtime_r(&start, &tm);
    strftime(from, sizeof from, "%a %d %b %Y", &tm);
    gmtime_r(&end, &tm);
    strftime(to, sizeof to, "%a %d %b %Y", &tm);
    fprintf(f, "%s to %s (UTC)", from, to);
}

char *rp_render_html(const vz_json_value_t *model, const rp_image_ref_t *images, size_t count)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert(f);
    const char *week = s_str(model, "week");
    fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>",
          f);
    fputs("Weekly report ", f);
    s_esc(f, week);
    fputs("</title></head>\n<body style=\"margin:0;padding:0;background:#f4f5f7;\">"
          "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" "
          "style=\"background:#f4f5f7;\"><tr><td align=\"center\" style=\"padding:24px 8px;\">"
          "<table role=\"presentation\" width=\"680\" cellpadding=\"0\" cellspacing=\"0\" "
          "style=\"background:#ffffff;border:1px solid #d0d7de;max-width:680px;\">\n"
          "<tr><td style=\"padding:24px 24px 0;\"><h1 style=\"" FONT
          "font-size:22px;color:#1f2d3d;margin:0 0 4px;\">Weekly executive report</h1>"
          "<p style=\"" FONT "font-size:13px;color:#57606a;margin:0;\">Week ",
          f);
    s_esc(f, week);
    fputs(": ", f);
    s_period(f, model);
    fputs("</p>", f);
    const vz_json_value_t *partial = vz_json_get(model, "partial");
    if (vz_json_size(partial) > 0) {
        fputs("<p style=\"" FONT "font-size:13px;color:#9a6700;margin:8px 0 0;\">Incomplete "
              "sections: ",
              f);
        for (size_t i = 0; i < vz_json_size(partial); i++) {
            const char *name = vz_json_string(vz_json_at(partial, i), NULL);
            fputs(i ? ", " : "", f);
            s_esc(f, name ? name : "");
        }
        fputs("</p>", f);
    }
    fputs("</td></tr>\n", f);
    s_html_revenue(f, s_section(model, "revenue"), images, count);
    s_html_usage(f, s_section(model, "usage"), images, count);
    s_html_errors(f, s_section(model, "errors"), s_section(model, "usage"), images, count);
    s_html_roadmap(f, s_section(model, "roadmap"), images, count);
    fputs("<tr><td style=\"padding:16px 24px 24px;" FONT "font-size:11px;color:#8c959f;\">"
          "Generated by vz-reporter from billing, telemetry and github. The PDF copy is "
          "attached.</td></tr>\n</table></td></tr></table></body></html>\n",
          f);
    fclose(f);
    return out;
}

// --------------------------------------------------------------------------
//  Text

static bool s_text_head(FILE *f, const vz_json_value_t *section, const char *title)
{
    fprintf(f, "\n%s\n", title);
    for (size_t i = 0; i < strlen(title); i++)
        fputc('-', f);
    fputc('\n', f);
    const char *status = section ? s_str(section, "status") : "unavailable";
    if (strcmp(status, "ok") != 0)
        fprintf(f, "%s: %s\n", strcmp(status, "partial") == 0 ? "Partial" : "Unavailable",
                section ? s_str(section, "reason") : "no data");
    return strcmp(status, "unavailable") != 0;
}

char *rp_render_text(const vz_json_value_t *model)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert(f);
    fprintf(f, "Weekly executive report, week %s\n", s_str(model, "week"));
    s_period(f, model);
    fputc('\n', f);
    const vz_json_value_t *partial = vz_json_get(model, "partial");
    for (size_t i = 0; i < vz_json_size(partial); i++) {
        const char *name = vz_json_string(vz_json_at(partial, i), NULL);
        fprintf(f, "%s%s", i ? ", " : "Incomplete sections: ", name ? name : "");
    }
    if (vz_json_size(partial) > 0)
        fputc('\n', f);
    const vz_json_value_t *rev = s_section(model, "revenue");
    if (s_text_head(f, rev, "Revenue")) {
        const char *cur[16];
        size_t n = s_currencies(rev, cur, 16);
        fprintf(f, "%-6s %14s %14s %14s %14s %14s\n", "", "week", "month", "year", "MRR", "ARR");
        static const char *const periods[] = {"week", "month", "year"};
        for (size_t i = 0; i < n; i++) {
            char m[5][64];
            for (size_t p = 0; p < 3; p++)
                rp_render_money(s_amount(vz_json_get(rev, periods[p]), cur[i], "revenue"), cur[i],
                                m[p], sizeof m[p]);
            rp_render_money(s_amount(vz_json_get(rev, "week"), cur[i], "mrr"), cur[i], m[3],
                            sizeof m[3]);
            rp_render_money(s_amount(vz_json_get(rev, "week"), cur[i], "arr"), cur[i], m[4],
                            sizeof m[4]);
            fprintf(f, "%-6s %14s %14s %14s %14s %14s\n", cur[i], m[0], m[1], m[2], m[3], m[4]);
        }
        fprintf(f, "New subscriptions: week %.0f, month %.0f, year %.0f\n",
                s_num(vz_json_get(rev, "week"), "new_subscriptions"),
                s_num(vz_json_get(rev, "month"), "new_subscriptions"),
                s_num(vz_json_get(rev, "year"), "new_subscriptions"));
        fprintf(f, "Churn rate: week %.2f %%, month %.2f %%, year %.2f %%\n",
                100 * s_num(vz_json_get(rev, "week"), "churn_rate"),
                100 * s_num(vz_json_get(rev, "month"), "churn_rate"),
                100 * s_num(vz_json_get(rev, "year"), "churn_rate"));
    }
    const vz_json_value_t *use = s_section(model, "usage");
    if (s_text_head(f, use, "Usage")) {
        const vz_json_value_t *cur = vz_json_get(use, "current");
        fprintf(f, "DAU %.0f, WAU %.0f, MAU %.0f\n", s_num(cur, "dau"), s_num(cur, "wau"),
                s_num(cur, "mau"));
        static const char *const keys[] = {"events", "countries"};
        static const char *const titles[] = {"Feature adoption", "Countries"};
        for (size_t k = 0; k < 2; k++) {
            const vz_json_value_t *counts = vz_json_get(cur, keys[k]);
            fprintf(f, "%s:", titles[k]);
            for (size_t i = 0; i < vz_json_size(counts) && i < TOP_ROWS; i++)
                fprintf(f, "%s %s %.0f", i ? "," : "", vz_json_key_at(counts, i),
                        s_num(counts, vz_json_key_at(counts, i)));
            fputs(vz_json_size(counts) ? "\n" : " none known\n", f);
        }
        const vz_json_value_t *series = vz_json_get(
            vz_json_at(vz_json_get(vz_json_get(use, "endpoints"), "services"), 0), "series");
        for (size_t i = 0; i < vz_json_size(series) && i < TOP_ROWS; i++) {
            const vz_json_value_t *s = vz_json_at(series, i);
            int64_t calls = 0, errors = 0;
            s_series_calls(s, &calls, &errors);
            fprintf(f, "  %-32s %10.0f calls %7.2f %% errors\n", s_str(s, "name"),
                    s_num(s, "count"), calls ? 100.0 * (double)errors / (double)calls : 0.0);
        }
    }
    const vz_json_value_t *err = s_section(model, "errors");
    if (s_text_head(f, err, "Errors")) {
        double rate = s_error_rate(vz_json_get(use, "endpoints"));
        if (rate >= 0)
            fprintf(f, "Error rate: %.2f %%\n", 100 * rate);
        const vz_json_value_t *top = vz_json_get(vz_json_get(err, "top"), "errors");
        for (size_t i = 0; i < vz_json_size(top) && i < TOP_ROWS; i++) {
            const vz_json_value_t *e = vz_json_at(top, i);
            char status[256];
            s_issue(err, s_str(e, "code"), status, sizeof status);
            fprintf(f, "  %-24s %8.0f (week before %.0f)  %s\n", s_str(e, "code"),
                    s_num(e, "count"), s_num(e, "previous_week"), status);
        }
        if (vz_json_size(top) == 0)
            fputs("No errors this week.\n", f);
    }
    const vz_json_value_t *road = s_section(model, "roadmap");
    if (s_text_head(f, road, "Roadmap")) {
        const vz_json_value_t *r = vz_json_get(road, "roadmap");
        static const char *const keys[] = {"completed", "in_progress", "blocked"};
        static const char *const names[] = {"Completed", "In progress", "Blocked"};
        for (size_t k = 0; k < 3; k++) {
            const vz_json_value_t *items = vz_json_get(r, keys[k]);
            fprintf(f, "%s: %zu\n", names[k], vz_json_size(items));
            for (size_t i = 0; i < vz_json_size(items) && i < TOP_ROWS; i++) {
                const vz_json_value_t *it = vz_json_at(items, i);
                fprintf(f, "  %s#%.0f %s\n", s_str(it, "repo"), s_num(it, "number"),
                        s_str(it, "title"));
            }
        }
        const vz_json_value_t *vel = vz_json_get(r, "velocity");
        for (size_t i = 0; i < vz_json_size(vel) && i < TOP_ROWS; i++) {
            const vz_json_value_t *w = vz_json_at(vel, i);
            fprintf(f, "Velocity %s: %.0f issues closed, %.0f pulls merged\n", s_str(w, "week"),
                    s_num(w, "issues_closed"), s_num(w, "pulls_merged"));
        }
    }
    fclose(f);
    return out;
}
