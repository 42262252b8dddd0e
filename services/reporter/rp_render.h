/*  rp_render - the report's figures as HTML (mail and web), plain text and charts
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Input is the report model, the JSON document rp_run builds from the
 *  services' answers (docs/services/reporter.md, "The numbers"): week,
 *  start, end, generated_at, partial, and sections.revenue / usage /
 *  errors / roadmap, each with status ("ok", "partial", "unavailable"),
 *  reason and the owning service's replies as they came. Rendering reads
 *  only that document, so an archived report can be rendered again and a
 *  test can render a model it wrote by hand.
 *
 *  The HTML is what mail clients accept: one table layout, inline CSS
 *  only (no <style>, no script), images by cid: in the mail, as data:
 *  URIs in the web copy. Every text that came from a service is escaped.
 *  Pure (no I/O, no clock); any thread.
 */
#ifndef RP_RENDER_H
#define RP_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_chart.h"
#include "vz_json.h"

#define RP_CHARTS 5 //  mrr, users, errors, error rate, velocity

//  The charts of a model and the storage their labels point into.
typedef struct {
    rp_chart_t chart[RP_CHARTS]; //  the charts that have data
    const char *name[RP_CHARTS]; //  file stem: "mrr", "users", "errors", "velocity"
    size_t count;                //  charts made
    char labels[RP_CHARTS][RP_CHART_POINTS_MAX][24]; //  x labels
    char series[RP_CHARTS][RP_CHART_SERIES_MAX][24]; //  series names
} rp_charts_t;

//  Build the charts of model (a section that is unavailable has none).
void rp_render_charts(const vz_json_value_t *model, rp_charts_t *out);

//  One rendered chart for the HTML: its stem and how the HTML refers to it.
typedef struct {
    const char *name; //  stem, as in rp_charts_t
    const char *src;  //  "cid:<id>" (mail) or "data:image/png;base64,..." (web)
    const char *alt;  //  alt text
} rp_image_ref_t;

//  The HTML document (heap, caller frees). images: the charts to show,
//  matched to their section by name.
char *rp_render_html(const vz_json_value_t *model, const rp_image_ref_t *images, size_t count);

//  The plain-text alternative (heap, caller frees).
char *rp_render_text(const vz_json_value_t *model);

//  Is a telemetry code an error? Every code but "ok" (the workers') and
//  the HTTP statuses 1xx..3xx (the gateway's).
bool rp_render_code_is_error(const char *code);

//  Calls and errors over every series of a telemetry.signals answer.
void rp_render_calls(const vz_json_value_t *signals, int64_t *calls, int64_t *errors);

//  "1234.50 USD" for minor units of a lowercase ISO currency (two
//  decimals except the zero-decimal currencies Stripe lists: jpy, krw...).
void rp_render_money(int64_t minor, const char *currency, char *out, size_t n);

#endif
