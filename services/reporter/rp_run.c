/*  rp_run - one report run: gather in parallel, render, archive, send, record
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A run holds the lease (rp_store) from its start to its end. Its steps,
 *  each on the reactor thread, none waiting:
 *    1. gather: every call of s_calls goes out at once through vz_call,
 *       each with the deadline gather_ms; a call that fails leaves its
 *       section partial or, for the section's main figure, unavailable,
 *       with the callee's code and message as the reason;
 *    2. compose: the model (the numbers, as JSON), its charts as PNG, the
 *       HTML for the mail (cid:) and for the web (data:), the text, the PDF;
 *    3. archive: fenced by the lease's token;
 *    4. send: notifier.send per recipient with the idempotency key
 *       "report-<week>-<n>", so a run repeated after a crash between the
 *       send and the record is a duplicate at the notifier, not a mail;
 *    5. record: the week's send record, fenced; then the lease is given back.
 *  A failed send keeps the lease until it expires: the next attempt, by any
 *  replica, comes one lease later.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "rp.h"
#include "rp_render.h"
#include "vz_clock.h"
#include "vz_json.h"
#include "vz_log.h"
#include "vz_github_contract.h"
#include "vz_notifier_contract.h"
#include "vz_proto.h"

#define DAY 86400
#define RP_ROADMAP_WEEKS 12 //  velocity rows asked of github
#define REPLY_MAX (8 * 1024 * 1024)
#define MODEL_MAX (4 * 1024 * 1024)

typedef enum { S_REVENUE, S_USAGE, S_ERRORS, S_ROADMAP, S_SECTIONS } s_section_t;
static const char *const s_section_names[S_SECTIONS] = {"revenue", "usage", "errors", "roadmap"};

//  The calls of a run. Bodies depend on the week (s_body).
typedef enum {
    C_REV_WEEK, //  billing.revenue week: the section's main figure
    C_REV_W4,   //  the weeks before, for the 12-week MRR trend
    C_REV_W8,
    C_REV_MONTH,
    C_REV_YEAR,
    C_USE_D0, //  telemetry.usage at the end of each day; D6 is the week's
    C_USE_D6 = C_USE_D0 + 6,
    C_SIGNALS,    //  telemetry.signals of the gateway over the week: calls by endpoint
    C_ERRORS_TOP, //  telemetry.errors_top
    C_RATE_W1,    //  telemetry.signals of the gateway, 1..3 weeks before: error-rate trend
    C_RATE_W3 = C_RATE_W1 + 2,
    C_ROADMAP, //  github.roadmap
    C_ISSUE0,  //  github.issue_state of each configured error link
    C_COUNT = C_ISSUE0 + RP_LINKS_MAX
} s_call_id_t;

typedef struct {
    rp_run_t *run;     //  back pointer for the done callback
    int id;            //  s_call_id_t
    char code[32];     //  "" for a reply
    char message[200]; //  the error's text
    vz_json_t *doc;    //  the parsed reply, or NULL
} s_slot_t;

struct rp_run_t {
    rp_t *app;                      //  owner
    int64_t start, end;             //  the week, [start, end)
    char week[RP_WEEK_ID_MAX];      //  its name
    rp_trigger_t trigger;           //  why it runs
    bool dry_run;                   //  render only
    uint64_t token;                 //  the lease's fencing token (0 for a dry run)
    vz_deferred_t *reply;           //  a manual run's request, or NULL
    size_t pending;                 //  calls not yet done
    s_slot_t slot[C_COUNT];         //  the gathered answers
    const char *status[S_SECTIONS]; //  ok | partial | unavailable
    char reason[S_SECTIONS][240];   //  why not ok
    char *model;                    //  the numbers (JSON)
    int pdf_pages;                  //  pages of the PDF
    size_t sends;                   //  notifier calls not yet done
    size_t sent;                    //  accepted
    size_t recipients;              //  sends started
    char ids[8][VZ_NT_ID_MAX];      //  message ids (the first 8)
    char error[240];                //  the first failure
    const char *outcome;            //  sent | rendered | failed | fenced
};

static const char *const s_trigger_names[] = {"schedule", "catchup", "manual"};

static s_section_t s_section_of(int id)
{
    if (id <= C_REV_YEAR)
        return S_REVENUE;
    if (id <= C_SIGNALS)
        return S_USAGE;
    return id == C_ERRORS_TOP || (id >= C_RATE_W1 && id <= C_RATE_W3) || id >= C_ISSUE0 ? S_ERRORS
                                                                                        : S_ROADMAP;
}

static bool s_essential(int id)
{
    return id == C_REV_WEEK || id == C_USE_D6 || id == C_ERRORS_TOP || id == C_ROADMAP;
}

static void s_date(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%d", &tm);
}

//  Service, method and JSON body of call id for run.
static const char *s_body(const rp_run_t *run, int id, const char **service, const char **method,
                          char *body, size_t n)
{
    char date[16];
    if (id <= C_REV_YEAR) {
        *service = "billing";
        *method = "revenue";
        static const int64_t weeks_back[] = {0, 4, 8};
        const char *period = id == C_REV_MONTH ? "month" : id == C_REV_YEAR ? "year" : "week";
        //  Weeks by their Monday; month and year by the week's last day.
        int64_t at =
            id <= C_REV_W8 ? run->start - weeks_back[id - C_REV_WEEK] * 7 * DAY : run->end - DAY;
        s_date(at, date, sizeof date);
        snprintf(body, n, "{\"period\":\"%s\",\"at\":\"%s\"}", period, date);
    } else if (id <= C_USE_D6) {
        *service = "telemetry";
        *method = "usage";
        snprintf(body, n, "{\"at\":%" PRId64 "}", run->start + (id - C_USE_D0 + 1) * DAY - 1);
    } else if (id == C_SIGNALS || (id >= C_RATE_W1 && id <= C_RATE_W3)) {
        *service = "telemetry";
        *method = "signals";
        int64_t back = id == C_SIGNALS ? 0 : (int64_t)(id - C_RATE_W1 + 1) * 7 * DAY;
        snprintf(body, n, "{\"service\":\"gateway\",\"window_s\":604800,\"at\":%" PRId64 "}",
                 run->end - 1 - back);
    } else if (id == C_ERRORS_TOP) {
        *service = "telemetry";
        *method = "errors_top";
        snprintf(body, n, "{\"at\":%" PRId64 "}", run->end - 1);
    } else {
        //  github's bodies by its contract's encoders.
        char *json = NULL;
        *service = VZ_GH_SERVICE;
        if (id >= C_ISSUE0) {
            const rp_link_t *link = &run->app->links[id - C_ISSUE0];
            vz_gh_issue_state_req_t req = {.number = link->number};
            snprintf(req.owner, sizeof req.owner, "%s", link->owner);
            snprintf(req.repo, sizeof req.repo, "%s", link->repo);
            *method = VZ_GH_METHOD_ISSUE_STATE;
            json = vz_gh_issue_state_req_encode(&req, NULL);
        } else {
            vz_gh_roadmap_req_t req = {.weeks = RP_ROADMAP_WEEKS};
            vz_strlcpy(req.repo, run->app->config.github_repo, sizeof req.repo);
            *method = VZ_GH_METHOD_ROADMAP;
            json = vz_gh_roadmap_req_encode(&req, NULL);
        }
        snprintf(body, n, "%s", json ? json : "{}");
        free(json);
    }
    return body;
}

static void s_compose(rp_run_t *run);
static void s_finish(rp_run_t *run);

//  Does a github answer keep its contract (the shared decoders)?
static bool s_github_reply_ok(int id, const vz_call_result_t *result, const char **reason)
{
    if (id == C_ROADMAP) {
        vz_gh_roadmap_reply_t *roadmap = NULL;
        int rc = vz_gh_roadmap_reply_decode(result->body, result->body_len, &roadmap, reason);
        vz_gh_roadmap_reply_destroy(&roadmap);
        return rc == 0;
    }
    vz_gh_issue_state_reply_t issue;
    return vz_gh_issue_state_reply_decode(result->body, result->body_len, &issue, reason) == 0;
}

static void s_gathered(void *arg, const vz_call_result_t *result)
{
    s_slot_t *slot = arg;
    rp_run_t *run = slot->run;
    const char *bad = NULL;
    if (result->outcome == VZ_CALL_REPLY && slot->id >= C_ROADMAP &&
        !s_github_reply_ok(slot->id, result, &bad)) {
        snprintf(slot->code, sizeof slot->code, "%s", "malformed");
        snprintf(slot->message, sizeof slot->message, "not github's contract: %s", bad);
    } else if (result->outcome == VZ_CALL_REPLY) {
        vz_json_error_t jerr = {0};
        slot->doc = vz_json_parse(result->body, result->body_len, NULL, &jerr);
        if (!slot->doc || vz_json_type(vz_json_root(slot->doc)) != VZ_JSON_OBJECT) {
            vz_json_destroy(&slot->doc);
            snprintf(slot->code, sizeof slot->code, "%s", "malformed");
            snprintf(slot->message, sizeof slot->message, "not a JSON object: %s",
                     jerr.reason ? jerr.reason : "wrong type");
        }
    } else {
        snprintf(slot->code, sizeof slot->code, "%s", result->code);
        snprintf(slot->message, sizeof slot->message, "%s", result->message);
    }
    if (--run->pending == 0)
        s_compose(run);
}

int rp_run_start(rp_t *self, int64_t week_start, rp_trigger_t trigger, bool dry_run, uint64_t token,
                 vz_deferred_t *reply)
{
    if (self->run)
        return -EBUSY;
    rp_run_t *run = (rp_run_t *)calloc(1, sizeof *run);
    assert(run);
    run->app = self;
    run->start = week_start;
    run->end = week_start + 7 * DAY;
    rp_week_id(week_start, run->week);
    run->trigger = trigger;
    run->dry_run = dry_run;
    run->token = token;
    run->reply = reply;
    self->run = run;
    vz_info(NULL, "report run started", "week", run->week, "trigger", s_trigger_names[trigger],
            "dry_run", dry_run ? "true" : "false");
    //  Issue slots past the configured links stay unused (no call).
    int count = C_ISSUE0 + (int)self->nlinks;
    run->pending = (size_t)count;
    //  All at once: the slowest source, not the sum, bounds the gathering.
    for (int id = 0; id < count; id++) {
        run->slot[id].run = run;
        run->slot[id].id = id;
        char body[512];
        const char *service = NULL, *method = NULL;
        s_body(run, id, &service, &method, body, sizeof body);
        vz_call_req_t call = {.service = service,
                              .method = method,
                              .body = body,
                              .body_len = strlen(body),
                              .timeout_ms = self->config.gather_ms,
                              .idempotent = true};
        vz_call_start(self->calls, &call, s_gathered, &run->slot[id]);
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Compose: the model, then every rendering of it

static const vz_json_value_t *s_doc(const rp_run_t *run, int id)
{
    return run->slot[id].doc ? vz_json_root(run->slot[id].doc) : NULL;
}

static void s_write_doc(vz_json_writer_t *w, const char *key, const rp_run_t *run, int id)
{
    vz_json_write_key(w, key);
    if (s_doc(run, id))
        vz_json_write_value(w, s_doc(run, id));
    else
        vz_json_write_null(w);
}

//  Section states from the slots: the main figure missing is unavailable,
//  another one missing is partial; the reason names the first failure.
static void s_judge(rp_run_t *run)
{
    for (int s = 0; s < S_SECTIONS; s++)
        run->status[s] = "ok";
    for (int id = 0; id < C_COUNT; id++) {
        const s_slot_t *slot = &run->slot[id];
        if (!slot->code[0])
            continue;
        s_section_t s = s_section_of(id);
        const char *service = NULL, *method = NULL;
        char body[512];
        s_body(run, id, &service, &method, body, sizeof body);
        if (s_essential(id) || strcmp(run->status[s], "ok") == 0)
            snprintf(run->reason[s], sizeof run->reason[s], "%s.%s: %s%s%s", service, method,
                     slot->code, slot->message[0] ? ": " : "", slot->message);
        run->status[s] = s_essential(id)                              ? "unavailable"
                         : strcmp(run->status[s], "unavailable") == 0 ? "unavailable"
                                                                      : "partial";
    }
}

//  The error-rate trend: the week and the three before, oldest first,
//  each week whose answer came.
static void s_write_rates(vz_json_writer_t *w, const rp_run_t *run)
{
    vz_json_write_key(w, "rate_trend");
    vz_json_write_array_begin(w);
    for (int k = 3; k >= 0; k--) {
        const vz_json_value_t *doc = s_doc(run, k == 0 ? C_SIGNALS : C_RATE_W1 + k - 1);
        if (!doc)
            continue;
        int64_t calls = 0, errors = 0;
        rp_render_calls(doc, &calls, &errors);
        char week[RP_WEEK_ID_MAX];
        rp_week_id(run->start - (int64_t)k * 7 * DAY, week);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "week", week);
        vz_json_write_kv_int(w, "calls", calls);
        vz_json_write_kv_int(w, "errors", errors);
        vz_json_write_key(w, "rate");
        vz_json_write_double(w, calls ? (double)errors / (double)calls : 0);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
}

static char *s_model(rp_run_t *run)
{
    vz_json_writer_t *w = vz_json_writer_new(MODEL_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "week", run->week);
    vz_json_write_kv_int(w, "start", run->start);
    vz_json_write_kv_int(w, "end", run->end);
    vz_json_write_kv_int(w, "generated_at", vz_clock_now_ms() / 1000);
    vz_json_write_kv_string(w, "trigger", s_trigger_names[run->trigger]);
    vz_json_write_kv_bool(w, "dry_run", run->dry_run);
    vz_json_write_key(w, "partial");
    vz_json_write_array_begin(w);
    for (int s = 0; s < S_SECTIONS; s++)
        if (strcmp(run->status[s], "ok") != 0)
            vz_json_write_string(w, s_section_names[s]);
    vz_json_write_array_end(w);
    vz_json_write_key(w, "sections");
    vz_json_write_object_begin(w);
    for (int s = 0; s < S_SECTIONS; s++) {
        vz_json_write_key(w, s_section_names[s]);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "status", run->status[s]);
        vz_json_write_kv_string(w, "reason", run->reason[s]);
        if (s == S_REVENUE) {
            s_write_doc(w, "week", run, C_REV_WEEK);
            s_write_doc(w, "month", run, C_REV_MONTH);
            s_write_doc(w, "year", run, C_REV_YEAR);
            //  MRR by week, oldest first: each weekly answer and its trend.
            vz_json_write_key(w, "mrr_trend");
            vz_json_write_array_begin(w);
            //  Whatever billing's trend length, each week once, the last 12.
            int64_t last = run->start - 12 * 7 * DAY;
            for (int id = C_REV_W8; id >= C_REV_WEEK; id--) {
                const vz_json_value_t *doc = s_doc(run, id);
                const vz_json_value_t *trend = vz_json_get(doc, "trend");
                for (size_t k = vz_json_size(trend) + 1; k-- > 0;) {
                    const vz_json_value_t *p = k == 0 ? doc : vz_json_at(trend, k - 1);
                    int64_t start = 0;
                    if (!p || vz_json_int(vz_json_get(p, "start"), &start) < 0 || start <= last)
                        continue;
                    last = start;
                    vz_json_write_object_begin(w);
                    vz_json_write_kv_int(w, "start", start);
                    vz_json_write_key(w, "mrr");
                    vz_json_write_object_begin(w);
                    const vz_json_value_t *cur = vz_json_get(p, "currencies");
                    for (size_t c = 0; c < vz_json_size(cur); c++) {
                        vz_json_write_key(w, vz_json_key_at(cur, c));
                        int64_t mrr = 0;
                        vz_json_int(vz_json_get(vz_json_at(cur, c), "mrr"), &mrr);
                        vz_json_write_int(w, mrr);
                    }
                    vz_json_write_object_end(w);
                    vz_json_write_object_end(w);
                }
            }
            vz_json_write_array_end(w);
        } else if (s == S_USAGE) {
            s_write_doc(w, "current", run, C_USE_D6);
            vz_json_write_key(w, "days");
            vz_json_write_array_begin(w);
            for (int id = C_USE_D0; id <= C_USE_D6; id++) {
                if (!s_doc(run, id))
                    continue;
                char day[16];
                s_date(run->start + (id - C_USE_D0) * DAY, day, sizeof day);
                vz_json_write_object_begin(w);
                vz_json_write_kv_string(w, "day", day);
                static const char *const keys[] = {"dau", "wau", "mau"};
                for (int k = 0; k < 3; k++) {
                    int64_t v = 0;
                    vz_json_int(vz_json_get(s_doc(run, id), keys[k]), &v);
                    vz_json_write_kv_int(w, keys[k], v);
                }
                vz_json_write_object_end(w);
            }
            vz_json_write_array_end(w);
            s_write_doc(w, "endpoints", run, C_SIGNALS);
        } else if (s == S_ERRORS) {
            s_write_doc(w, "top", run, C_ERRORS_TOP);
            s_write_rates(w, run);
            //  Each linked error with its issue's state, or why it is unknown.
            vz_json_write_key(w, "issues");
            vz_json_write_array_begin(w);
            for (size_t i = 0; i < run->app->nlinks; i++) {
                const rp_link_t *link = &run->app->links[i];
                const s_slot_t *slot = &run->slot[C_ISSUE0 + i];
                char repo[160];
                snprintf(repo, sizeof repo, "%s/%s", link->owner, link->repo);
                vz_json_write_object_begin(w);
                vz_json_write_kv_string(w, "code", link->code);
                vz_json_write_kv_string(w, "repo", repo);
                vz_json_write_kv_int(w, "number", link->number);
                s_write_doc(w, "issue", run, C_ISSUE0 + (int)i);
                char why[240] = "";
                if (slot->code[0])
                    snprintf(why, sizeof why, "%s: %s", slot->code, slot->message);
                vz_json_write_kv_string(w, "error", why);
                vz_json_write_object_end(w);
            }
            vz_json_write_array_end(w);
        } else
            s_write_doc(w, "roadmap", run, C_ROADMAP);
        vz_json_write_object_end(w);
    }
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    char *json = vz_json_writer_status(w) == 0 ? vz_json_writer_take(w, NULL) : NULL;
    vz_json_writer_destroy(&w);
    return json;
}

static char *s_base64(const uint8_t *data, size_t len)
{
    char *out = (char *)malloc(4 * ((len + 2) / 3) + 1);
    assert(out);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

//  The renderings of a model, owned together.
typedef struct {
    uint8_t *png[RP_CHARTS];
    size_t png_len[RP_CHARTS];
    char *png_b64[RP_CHARTS];
    char *data_uri[RP_CHARTS];
    char cid[RP_CHARTS][64];
    char file[RP_CHARTS][32];
    rp_charts_t charts;
    char *mail, *web, *text;
    uint8_t *pdf;
    size_t pdf_len;
} s_out_t;

static void s_out_free(s_out_t *o)
{
    for (int i = 0; i < RP_CHARTS; i++) {
        free(o->png[i]);
        free(o->png_b64[i]);
        free(o->data_uri[i]);
    }
    free(o->mail);
    free(o->web);
    free(o->text);
    free(o->pdf);
}

static int s_render(rp_run_t *run, const vz_json_value_t *model, s_out_t *o)
{
    rp_render_charts(model, &o->charts);
    rp_image_ref_t mail[RP_CHARTS], web[RP_CHARTS];
    for (size_t i = 0; i < o->charts.count; i++) {
        if (rp_chart_png(&o->charts.chart[i], &o->png[i], &o->png_len[i]) < 0)
            return -EIO;
        o->png_b64[i] = s_base64(o->png[i], o->png_len[i]);
        o->data_uri[i] = zsys_sprintf("data:image/png;base64,%s", o->png_b64[i]);
        snprintf(o->cid[i], sizeof o->cid[i], "%s-%s@vizmesh", o->charts.name[i], run->week);
        snprintf(o->file[i], sizeof o->file[i], "%s.png", o->charts.name[i]);
        char *src = zsys_sprintf("cid:%s", o->cid[i]);
        mail[i] = (rp_image_ref_t){o->charts.name[i], src, o->charts.chart[i].title};
        web[i] = (rp_image_ref_t){o->charts.name[i], o->data_uri[i], o->charts.chart[i].title};
    }
    o->mail = rp_render_html(model, mail, o->charts.count);
    o->web = rp_render_html(model, web, o->charts.count);
    for (size_t i = 0; i < o->charts.count; i++)
        zstr_free((char **)&mail[i].src);
    o->text = rp_render_text(model);
    char title[64];
    snprintf(title, sizeof title, "Weekly executive report %s", run->week);
    if (rp_chart_pdf(title, o->text, o->charts.chart, o->charts.count, &o->pdf, &o->pdf_len,
                     &run->pdf_pages) < 0)
        return -EIO;
    return 0;
}

static void s_sent(void *arg, const vz_call_result_t *result);
static void s_settle(rp_run_t *run);

//  notifier.send for each recipient.
static void s_send(rp_run_t *run, const s_out_t *o)
{
    rp_t *app = run->app;
    vz_nt_attachment_t att[RP_CHARTS + 1];
    size_t natt = 0;
    //  The contract's encoder writes the raw bytes as base64.
    for (size_t i = 0; i < o->charts.count; i++)
        att[natt++] = (vz_nt_attachment_t){.name = o->file[i],
                                           .type = "image/png",
                                           .content_id = o->cid[i],
                                           .bytes = o->png[i],
                                           .len = o->png_len[i]};
    char pdf_name[64];
    snprintf(pdf_name, sizeof pdf_name, "weekly-report-%s.pdf", run->week);
    att[natt++] = (vz_nt_attachment_t){
        .name = pdf_name, .type = "application/pdf", .bytes = o->pdf, .len = o->pdf_len};
    vz_nt_var_t data[] = {
        {.name = "week", .type = VZ_NT_VAR_STR, .s = run->week},
        {.name = "html", .type = VZ_NT_VAR_STR, .s = o->mail},
        {.name = "text", .type = VZ_NT_VAR_STR, .s = o->text},
    };
    //  Recipients, space- or comma-separated.
    char list[sizeof app->config.recipients];
    snprintf(list, sizeof list, "%s", app->config.recipients);
    char *save = NULL;
    size_t n = 0;
    //  A guard: after vz_call_close a call ends inside vz_call_start, and
    //  the run must not end before every recipient's call was started.
    run->sends = 1;
    for (char *to = strtok_r(list, " ,", &save); to; to = strtok_r(NULL, " ,", &save), n++) {
        char key[VZ_NT_KEY_MAX];
        snprintf(key, sizeof key, "report-%s-%zu", run->week, n);
        vz_nt_send_t send = {.channel = "email",
                             .template_name = app->config.template_name,
                             .to = to,
                             .data = data,
                             .ndata = sizeof data / sizeof data[0],
                             .idempotency_key = key,
                             .source = RP_SERVICE,
                             .attachments = att,
                             .nattachments = natt};
        size_t len = 0;
        char *body = vz_nt_send_encode(&send, &len);
        if (!body) {
            snprintf(run->error, sizeof run->error, "the report does not fit a notifier request");
            continue;
        }
        run->sends++;
        run->recipients++;
        //  Retried safely: the notifier answers a repeated key as a duplicate.
        vz_call_req_t call = {.service = VZ_NT_SERVICE,
                              .method = VZ_NT_METHOD_SEND,
                              .body = body,
                              .body_len = len,
                              .timeout_ms = app->config.send_ms,
                              .idempotent = true};
        vz_call_start(app->calls, &call, s_sent, run);
        free(body);
    }
    s_settle(run);
}

static void s_compose(rp_run_t *run)
{
    rp_t *app = run->app;
    s_judge(run);
    run->model = s_model(run);
    vz_json_t *doc = run->model ? vz_json_parse(run->model, strlen(run->model), NULL, NULL) : NULL;
    s_out_t o = {0};
    bool sending = false;
    if (!doc || s_render(run, vz_json_root(doc), &o) < 0) {
        snprintf(run->error, sizeof run->error, "unable to render the report");
        run->outcome = "failed";
    } else if (run->dry_run)
        run->outcome = "rendered";
    else {
        rp_parts_t parts = {run->model, o.web, o.mail, o.text, o.pdf, o.pdf_len};
        int rc =
            rp_store_archive(app->store, app->owner, run->token, run->week, run->start, &parts);
        if (rc == 0)
            run->outcome = "fenced";
        else if (rc < 0) {
            snprintf(run->error, sizeof run->error, "unable to archive: redis unavailable");
            run->outcome = "failed";
        } else {
            //  The run may end inside (a closed vz_call): not touched after.
            sending = true;
            s_send(run, &o);
        }
    }
    s_out_free(&o);
    vz_json_destroy(&doc);
    if (!sending)
        s_finish(run);
}

//  What the send record and a manual run's answer share.
static void s_write_outcome(vz_json_writer_t *w, const rp_run_t *run)
{
    vz_json_write_kv_int(w, "pdf_pages", run->pdf_pages);
    vz_json_write_key(w, "notifications");
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < run->sent && i < sizeof run->ids / sizeof run->ids[0]; i++)
        vz_json_write_string(w, run->ids[i]);
    vz_json_write_array_end(w);
}

static void s_sent(void *arg, const vz_call_result_t *result)
{
    rp_run_t *run = arg;
    vz_nt_send_reply_t reply;
    const char *reason = NULL;
    if (result->outcome == VZ_CALL_REPLY &&
        vz_nt_send_reply_decode(result->body, result->body_len, &reply, &reason) == 0) {
        if (run->sent < sizeof run->ids / sizeof run->ids[0])
            snprintf(run->ids[run->sent], sizeof run->ids[0], "%s", reply.id);
        run->sent++;
    } else if (!run->error[0])
        snprintf(run->error, sizeof run->error, "notifier.send: %s%s%s",
                 result->outcome == VZ_CALL_REPLY ? "malformed reply" : result->code,
                 result->message && *result->message ? ": " : "",
                 result->message ? result->message : "");
    s_settle(run);
}

//  One send (or the guard) done; the last one records the week.
static void s_settle(rp_run_t *run)
{
    if (--run->sends > 0)
        return;
    if (run->recipients == 0 && !run->error[0])
        snprintf(run->error, sizeof run->error, "no recipient configured");
    if (run->recipients == 0 || run->sent < run->recipients) {
        run->outcome = "failed";
        s_finish(run);
        return;
    }
    //  Every recipient's message is queued: the week is done.
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "week", run->week);
    vz_json_write_kv_int(w, "sent_at", vz_clock_now_ms() / 1000);
    vz_json_write_kv_int(w, "token", (int64_t)run->token);
    vz_json_write_kv_string(w, "owner", run->app->owner);
    vz_json_write_kv_string(w, "trigger", s_trigger_names[run->trigger]);
    vz_json_write_kv_int(w, "recipients", (int64_t)run->recipients);
    s_write_outcome(w, run);
    vz_json_write_key(w, "partial");
    vz_json_write_array_begin(w);
    for (int s = 0; s < S_SECTIONS; s++)
        if (strcmp(run->status[s], "ok") != 0)
            vz_json_write_string(w, s_section_names[s]);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    char *record = vz_json_writer_take(w, NULL);
    vz_json_writer_destroy(&w);
    int rc = rp_store_record(run->app->store, run->app->owner, run->token, run->week, record);
    free(record);
    run->outcome = rc > 0 ? "sent" : rc == 0 ? "fenced" : "failed";
    if (rc < 0)
        snprintf(run->error, sizeof run->error, "unable to record the send: redis unavailable");
    s_finish(run);
}

//  The counter of partial runs of section s.
static vz_series_t *s_partial(vz_metrics_t *metrics, int s)
{
    char labels[64];
    snprintf(labels, sizeof labels, "section=%s", s_section_names[s]);
    return vz_metrics_counter(metrics, "vz_reporter_sections_partial_total",
                              "sections rendered partial or unavailable", labels);
}

void rp_run_metrics_init(vz_metrics_t *metrics)
{
    for (int s = 0; s < S_SECTIONS; s++)
        s_partial(metrics, s);
}

//  Metrics, the lease, the manual caller's answer; frees the run.
static void s_finish(rp_run_t *run)
{
    rp_t *app = run->app;
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=%s", run->outcome);
    vz_series_inc(vz_metrics_counter(app->metrics, "vz_reporter_runs_total",
                                     "report runs by outcome (sent, rendered, failed, fenced)",
                                     labels));
    for (int s = 0; s < S_SECTIONS && strcmp(run->outcome, "failed") != 0; s++)
        if (run->status[s] && strcmp(run->status[s], "ok") != 0)
            vz_series_inc(s_partial(app->metrics, s));
    if (strcmp(run->outcome, "sent") == 0)
        vz_series_set(app->last_success, (double)(vz_clock_now_ms() / 1000));
    //  A failure keeps the lease: the next attempt waits for it to expire.
    if (run->token && strcmp(run->outcome, "failed") != 0)
        rp_store_lease_give(app->store, app->owner, run->token);
    if (strcmp(run->outcome, "failed") == 0)
        vz_error(NULL, "unable to send the weekly report", "week", run->week, "reason", run->error);
    else
        vz_info(NULL, "report run finished", "week", run->week, "outcome", run->outcome);
    if (run->reply) {
        vz_json_writer_t *w = vz_json_writer_new(REPLY_MAX);
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, "week", run->week);
        vz_json_write_kv_string(w, "outcome", run->outcome);
        vz_json_write_kv_bool(w, "dry_run", run->dry_run);
        vz_json_write_kv_string(w, "error", run->error);
        s_write_outcome(w, run);
        vz_json_write_key(w, "report");
        vz_json_t *doc =
            run->model ? vz_json_parse(run->model, strlen(run->model), NULL, NULL) : NULL;
        if (doc)
            vz_json_write_value(w, vz_json_root(doc));
        else
            vz_json_write_null(w);
        vz_json_destroy(&doc);
        vz_json_write_object_end(w);
        size_t len = 0;
        char *body = vz_json_writer_take(w, &len);
        vz_json_writer_destroy(&w);
        if (body)
            vz_worker_complete(&run->reply, body, len);
        else
            vz_worker_complete_error(&run->reply, VZ_ERR_INTERNAL, "reply too large");
        free(body);
    }
    for (int id = 0; id < C_COUNT; id++)
        vz_json_destroy(&run->slot[id].doc);
    free(run->model);
    app->run = NULL;
    free(run);
}
