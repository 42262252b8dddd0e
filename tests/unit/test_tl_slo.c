/*  test_tl_slo - SLO config, burn-rate rules, low-traffic guard, alert states and notifier body
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A simulated service: per-minute request and failure counts in an array,
 *  a set clock (vz_clock test hooks) moved minute by minute, and the sink's
 *  evaluation run each minute as the daemon's timer would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tl_alert.h"
#include "tl_slo.h"
#include "vz_clock.h"
#include "vz_json.h"

#define T0 1796630400LL       //  2026-12-07T08:00:00Z
#define MINUTES (4 * 24 * 60) //  four days of history

static const char s_cfg[] = "slo\n"
                            "    api-availability\n"
                            "        objective = \"availability\"\n"
                            "        target = \"99.9\"\n"
                            "        window = \"30d\"\n"
                            "        service = \"gateway\"\n"
                            "        match = \"*\"\n"
                            "    gateway-latency\n"
                            "        objective = \"latency\"\n"
                            "        target = \"99\"\n"
                            "        threshold = \"100ms\"\n"
                            "        service = \"gateway\"\n"
                            "        match = \"echo auth_*\"\n"
                            "alerting\n"
                            "    min_events = \"100\"\n"
                            "    pending = \"2m\"\n"
                            "    ticket_channel = \"email\"\n"
                            "    ticket_to = \"ops@example.com\"\n";

typedef struct {
    int64_t start_s;         //  Unix second of minute 0
    uint64_t total[MINUTES]; //  requests per minute
    uint64_t bad[MINUTES];   //  failures per minute
} sim_t;

//  Sum of the minutes in [from_s, to_s) that the simulation has.
static int s_counts(void *arg, const tl_slo_t *slo, int64_t from_s, int64_t to_s, tl_counts_t *out)
{
    sim_t *sim = arg;
    out->total = out->bad = 0;
    for (int64_t m = 0; m < MINUTES; m++) {
        int64_t t = sim->start_s + m * 60;
        if (t >= from_s && t < to_s) {
            out->total += sim->total[m];
            out->bad += sim->bad[m];
        }
    }
    return 0;
}

//  Minute index of the set clock.
static int64_t s_minute(const sim_t *sim)
{
    return (vz_clock_now_ms() / 1000 - sim->start_s) / 60;
}

static int reset(void **state)
{
    vz_clock_test_reset();
    return 0;
}

static void test_parse(void **state)
{
    tl_slo_config_t cfg;
    char err[256] = "";
    assert_int_equal(tl_slo_parse(s_cfg, strlen(s_cfg), &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.count, 2);
    assert_true(fabs(cfg.slo[0].target - 0.999) < 1e-12);
    assert_int_equal(cfg.slo[0].window_s, 30 * 86400);
    assert_int_equal(cfg.slo[1].kind, TL_SLO_LATENCY);
    assert_int_equal(cfg.slo[1].threshold_us, 100000);
    assert_int_equal(cfg.alerting.min_events, 100);
    assert_int_equal(cfg.alerting.pending_s, 120);
    assert_string_equal(cfg.alerting.page_channel, "pagerduty");
    assert_string_equal(cfg.alerting.ticket_channel, "email");
    assert_true(tl_slo_matches(&cfg.slo[1], "gateway", "auth_login"));
    assert_true(tl_slo_matches(&cfg.slo[1], "gateway", "echo"));
    assert_false(tl_slo_matches(&cfg.slo[1], "gateway", "echo_slow"));
    assert_false(tl_slo_matches(&cfg.slo[1], "echo", "echo"));
    //  The budget of 99.9 % over 30 days is 43.2 minutes.
    sim_t *sim = calloc(1, sizeof *sim);
    tl_slo_status_t st;
    assert_int_equal(tl_slo_eval(&cfg.slo[0], &cfg.alerting, s_counts, sim, T0, &st), 0);
    assert_true(fabs(st.budget_minutes - 43.2) < 1e-9);
    assert_true(st.remaining == 1.0);
    free(sim);

    const char *bad[] = {
        "slo\n    x\n        target = \"100\"\n        service = \"gateway\"\n",
        "slo\n    x\n        target = \"99\"\n",
        "slo\n    x\n        objective = \"latency\"\n        target = \"99\"\n"
        "        service = \"gateway\"\n",
        "slo\n    x\n        objective = \"speed\"\n        target = \"99\"\n"
        "        service = \"gateway\"\n",
        "slo\n    x\n        target = \"99\"\n        service = \"gateway\"\n        window = "
        "\"5m\"\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(tl_slo_parse(bad[i], strlen(bad[i]), &cfg, err, sizeof err), -EINVAL);
        assert_true(strlen(err) > 0);
    }
}

static void test_codes(void **state)
{
    assert_true(tl_code_bad("500"));
    assert_true(tl_code_bad("503"));
    assert_false(tl_code_bad("404"));
    assert_false(tl_code_bad("200"));
    assert_true(tl_code_bad("internal"));
    assert_true(tl_code_bad("no_worker"));
    assert_false(tl_code_bad("invalid_request"));
    assert_false(tl_code_bad("ok"));
}

//  Steady traffic with a 0.05 % failure rate, then from 10:00 half of the
//  requests fail for 20 minutes. The 14.4x rule holds within its 5-minute
//  short window and stops holding once that window is clean again; the page
//  fires after the pending period and resolves when no page rule holds
//  (the 6x rule's 30-minute window clears last). The notifier gets trigger
//  then resolve with the same dedup key and severity critical.
static void test_fast_burn_fires_and_resolves(void **state)
{
    tl_slo_config_t cfg;
    char err[256];
    assert_int_equal(tl_slo_parse(s_cfg, strlen(s_cfg), &cfg, err, sizeof err), 0);
    const tl_slo_t *slo = &cfg.slo[0];
    sim_t *sim = calloc(1, sizeof *sim);
    sim->start_s = T0 - 3 * 86400;
    int64_t incident = (T0 + 2 * 3600 - sim->start_s) / 60; //  10:00
    for (int m = 0; m < MINUTES; m++) {
        sim->total[m] = 2000;
        sim->bad[m] = 1;
        if (m >= incident && m < incident + 20)
            sim->bad[m] = 1000;
    }
    tl_alerts_t alerts = {0};
    int64_t fired = -1, resolved = -1, fast_on = -1, fast_off = -1;
    char *fire_body = NULL, *resolve_body = NULL;
    vz_clock_test_set((T0 + 3600) * 1000000LL);
    for (int step = 0; step < 4 * 60; step++) {
        //  The minute that just ended is complete: evaluate at its end.
        int64_t now_s = vz_clock_now_ms() / 1000;
        tl_slo_status_t st;
        assert_int_equal(tl_slo_eval(slo, &cfg.alerting, s_counts, sim, now_s, &st), 0);
        if (st.rule[0] && fast_on < 0)
            fast_on = s_minute(sim);
        if (!st.rule[0] && fast_on >= 0 && fast_off < 0)
            fast_off = s_minute(sim);
        tl_alert_t *page = tl_alerts_get(&alerts, slo->name, TL_SEV_PAGE);
        tl_notify_t what = tl_alert_step(page, st.condition[TL_SEV_PAGE], st.burn[TL_SEV_PAGE],
                                         now_s, cfg.alerting.pending_s);
        if (what == TL_NOTIFY_FIRE) {
            assert_int_equal(fired, -1);
            fired = s_minute(sim);
            fire_body = tl_alert_notify_body(page, what, &cfg.alerting, NULL);
        } else if (what == TL_NOTIFY_RESOLVE) {
            assert_int_equal(resolved, -1);
            resolved = s_minute(sim);
            resolve_body = tl_alert_notify_body(page, what, &cfg.alerting, NULL);
        }
        //  Before the incident nothing is even pending.
        if (s_minute(sim) <= incident)
            assert_int_equal(page->state, TL_ALERT_INACTIVE);
        vz_clock_test_advance(60 * 1000000LL);
    }
    //  The 14.4x rule: the first bad minute is enough for the short window
    //  (50 % failures is a 500x burn), the 1-hour one needs 0.0144 * 60 /
    //  0.5 ~ 2 minutes: within the 5-minute window, as the rule says. It
    //  stops holding once the incident's minutes have left the 5-minute window.
    assert_true(fast_on > incident && fast_on <= incident + 5);
    assert_true(fast_off > incident + 20 && fast_off <= incident + 20 + 5);
    //  Fired once the condition held for pending (2 minutes).
    assert_int_equal(fired, fast_on + 2);
    //  Resolved after the incident, once the 6x rule's 30-minute window
    //  is clean too.
    assert_true(resolved > incident + 20 && resolved <= incident + 20 + 30);
    vz_json_t *doc = vz_json_parse(fire_body, strlen(fire_body), NULL, NULL);
    const vz_json_value_t *root = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(root, "channel", NULL), "pagerduty");
    assert_string_equal(vz_json_get_string(root, "severity", NULL), "critical");
    const vz_json_value_t *data = vz_json_get(root, "data");
    assert_string_equal(vz_json_get_string(data, "event_action", NULL), "trigger");
    assert_string_equal(vz_json_get_string(data, "dedup_key", NULL), "slo/api-availability/page");
    //  Where the notifier reads them for PagerDuty: at the top level.
    assert_string_equal(vz_json_get_string(root, "event_action", NULL), "trigger");
    assert_string_equal(vz_json_get_string(root, "dedup_key", NULL), "slo/api-availability/page");
    vz_json_destroy(&doc);
    doc = vz_json_parse(resolve_body, strlen(resolve_body), NULL, NULL);
    assert_string_equal(vz_json_get_string(vz_json_root(doc), "event_action", NULL), "resolve");
    assert_string_equal(vz_json_get_string(vz_json_root(doc), "dedup_key", NULL),
                        "slo/api-availability/page");
    data = vz_json_get(vz_json_root(doc), "data");
    assert_string_equal(vz_json_get_string(data, "event_action", NULL), "resolve");
    assert_string_equal(vz_json_get_string(data, "dedup_key", NULL), "slo/api-availability/page");
    //  Trigger and resolve are different notifications, never deduplicated away.
    assert_string_not_equal(vz_json_get_string(vz_json_root(doc), "idempotency_key", NULL),
                            "slo/api-availability/page/0/trigger");
    vz_json_destroy(&doc);
    free(fire_body);
    free(resolve_body);
    free(sim);
}

//  A trickle of requests with a large failure share burns far past 14.4x
//  but stays under min_events in every long window: no rule holds. The
//  same share at volume fires.
static void test_low_traffic_guard(void **state)
{
    tl_slo_config_t cfg;
    char err[256];
    assert_int_equal(tl_slo_parse(s_cfg, strlen(s_cfg), &cfg, err, sizeof err), 0);
    sim_t *sim = calloc(1, sizeof *sim);
    sim->start_s = T0 - 3 * 86400;
    //  One request an hour, every other one failing.
    for (int m = 0; m < MINUTES; m += 60) {
        sim->total[m] = 1;
        sim->bad[m] = (m / 60) % 2;
    }
    tl_slo_status_t st;
    assert_int_equal(tl_slo_eval(&cfg.slo[0], &cfg.alerting, s_counts, sim, T0, &st), 0);
    assert_true(st.burn_long[2] > 100); //  the 3-day window burns hard...
    assert_false(st.rule[0]);
    assert_false(st.rule[1]);
    assert_false(st.rule[2]); //  ...with fewer than 100 requests (72)
    assert_false(st.condition[TL_SEV_PAGE]);
    assert_false(st.condition[TL_SEV_TICKET]);
    //  Budget: nearly all of it spent, but the freeze needs min_events too.
    assert_true(st.remaining < 0);
    assert_false(st.spent);

    for (int m = 0; m < MINUTES; m++) {
        sim->total[m] = 100;
        sim->bad[m] = 50;
    }
    assert_int_equal(tl_slo_eval(&cfg.slo[0], &cfg.alerting, s_counts, sim, T0, &st), 0);
    assert_true(st.condition[TL_SEV_PAGE]);
    assert_true(st.condition[TL_SEV_TICKET]);
    assert_true(st.spent);
    free(sim);
}

//  A slow burn (2x for days) opens a ticket, not a page, to email.
static void test_slow_burn_ticket(void **state)
{
    tl_slo_config_t cfg;
    char err[256];
    assert_int_equal(tl_slo_parse(s_cfg, strlen(s_cfg), &cfg, err, sizeof err), 0);
    sim_t *sim = calloc(1, sizeof *sim);
    sim->start_s = T0 - 4 * 86400;
    for (int m = 0; m < MINUTES; m++) {
        sim->total[m] = 1000;
        sim->bad[m] = 2;
    }
    tl_slo_status_t st;
    assert_int_equal(tl_slo_eval(&cfg.slo[0], &cfg.alerting, s_counts, sim, T0, &st), 0);
    assert_false(st.condition[TL_SEV_PAGE]);
    assert_true(st.condition[TL_SEV_TICKET]);
    assert_true(fabs(st.burn[TL_SEV_TICKET] - 2.0) < 1e-9);
    tl_alerts_t alerts = {0};
    tl_alert_t *ticket = tl_alerts_get(&alerts, cfg.slo[0].name, TL_SEV_TICKET);
    //  Pending for 2 minutes first.
    assert_int_equal(tl_alert_step(ticket, true, 2.0, T0, 120), TL_NOTIFY_NONE);
    assert_int_equal(ticket->state, TL_ALERT_PENDING);
    assert_int_equal(tl_alert_step(ticket, true, 2.0, T0 + 60, 120), TL_NOTIFY_NONE);
    assert_int_equal(tl_alert_step(ticket, true, 2.0, T0 + 120, 120), TL_NOTIFY_FIRE);
    char *body = tl_alert_notify_body(ticket, TL_NOTIFY_FIRE, &cfg.alerting, NULL);
    assert_non_null(strstr(body, "\"channel\":\"email\""));
    assert_non_null(strstr(body, "\"to\":\"ops@example.com\""));
    assert_non_null(strstr(body, "\"severity\":\"warning\""));
    free(body);
    free(sim);
}

//  A blip shorter than pending never notifies; the table survives JSON.
static void test_pending_and_persistence(void **state)
{
    tl_alerts_t alerts = {0};
    tl_alert_t *a = tl_alerts_get(&alerts, "x", TL_SEV_PAGE);
    assert_int_equal(tl_alert_step(a, true, 20, T0, 60), TL_NOTIFY_NONE);
    assert_int_equal(tl_alert_step(a, false, 0, T0 + 30, 60), TL_NOTIFY_NONE);
    assert_int_equal(a->state, TL_ALERT_INACTIVE);
    assert_int_equal(tl_alert_step(a, true, 20, T0 + 60, 60), TL_NOTIFY_NONE);
    assert_int_equal(tl_alert_step(a, true, 30, T0 + 120, 60), TL_NOTIFY_FIRE);
    assert_int_equal(tl_alert_step(a, true, 30, T0 + 180, 60), TL_NOTIFY_NONE); //  deduplicated
    assert_non_null(tl_alerts_get(&alerts, "y", TL_SEV_TICKET));
    size_t len = 0;
    char *json = tl_alerts_json(&alerts, &len);
    tl_alerts_t back;
    assert_int_equal(tl_alerts_load(&back, json, len), 0);
    assert_int_equal(back.count, 2);
    assert_string_equal(back.alert[0].key, "slo/x/page");
    assert_int_equal(back.alert[0].state, TL_ALERT_FIRING);
    assert_int_equal(back.alert[0].fired_s, T0 + 120);
    assert_true(back.alert[0].burn == 30);
    assert_int_equal(back.alert[1].severity, TL_SEV_TICKET);
    free(json);
    assert_int_equal(tl_alerts_load(&back, "{\"x\":1}", 7), -EINVAL);
    assert_int_equal(back.count, 0);
    assert_int_equal(tl_alerts_load(&back, "[{\"slo\":\"x\",\"severity\":\"loud\"}]", 32), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_parse, reset),
        cmocka_unit_test_teardown(test_codes, reset),
        cmocka_unit_test_teardown(test_fast_burn_fires_and_resolves, reset),
        cmocka_unit_test_teardown(test_low_traffic_guard, reset),
        cmocka_unit_test_teardown(test_slow_burn_ticket, reset),
        cmocka_unit_test_teardown(test_pending_and_persistence, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
