/*  rp_app - the reporter's life cycle and its schedule tick
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The tick asks: which week does the latest firing of the schedule report
 *  on, and has it been sent? A firing is owed when it is not older than
 *  catchup_s and not older than {rp}:since (the first tick any replica ever
 *  made: a new installation owes no past weeks). An owed, unsent week is
 *  run by the replica that takes the lease; the others see the lease, then
 *  the send record. Because the owed week is derived from the clock and
 *  Redis alone, a replica coming back after every replica missed 08:00
 *  runs the week then (catch-up), and only once: the record ends it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp.h"
#include "vz_clock.h"
#include "vz_github_contract.h"
#include "vz_log.h"

rp_t *rp_new(const rp_config_t *config, const char *redis_url, vz_metrics_t *metrics,
             const char *owner, char *err, size_t errlen)
{
    rp_cron_t cron;
    char why[128];
    if (rp_cron_parse(config->schedule, &cron, why, sizeof why) < 0) {
        snprintf(err, errlen, "VZ_REPORTER_SCHEDULE: %s", why);
        return NULL;
    }
    if (config->github_repo[0] && !vz_gh_full_name_valid(config->github_repo)) {
        snprintf(err, errlen, "VZ_REPORTER_GITHUB_REPO: not owner/name");
        return NULL;
    }
    rp_link_t links[RP_LINKS_MAX];
    int nlinks = rp_links_parse(config->error_issues, links, why, sizeof why);
    if (nlinks < 0) {
        snprintf(err, errlen, "VZ_REPORTER_ERROR_ISSUES: %s", why);
        return NULL;
    }
    rp_store_t *store = rp_store_new(redis_url, config->redis_timeout_ms);
    if (!store) {
        snprintf(err, errlen, "VZ_REDIS_URL: not a redis:// URL");
        return NULL;
    }
    rp_t *self = (rp_t *)calloc(1, sizeof *self);
    assert(self);
    self->config = *config;
    self->cron = cron;
    memcpy(self->links, links, sizeof links);
    self->nlinks = (size_t)nlinks;
    self->store = store;
    self->metrics = metrics;
    snprintf(self->owner, sizeof self->owner, "%s", owner);
    self->last_success = vz_metrics_gauge(
        metrics, "vz_reporter_last_success_timestamp_seconds",
        "when the last report was sent (Unix seconds; the send record's, for the week due)", NULL);
    self->overdue = vz_metrics_gauge(
        metrics, "vz_reporter_overdue_seconds",
        "seconds since the schedule's latest firing while its week has no send record; 0 when "
        "sent or not owed",
        NULL);
    self->checks = vz_metrics_counter(metrics, "vz_reporter_schedule_checks_total",
                                      "schedule checks (one per tick)", NULL);
    //  The series exist from the start, so a dashboard shows zeros.
    static const char *const outcomes[] = {"sent", "rendered", "failed", "fenced"};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "outcome=%s", outcomes[i]);
        vz_metrics_counter(metrics, "vz_reporter_runs_total",
                           "report runs by outcome (sent, rendered, failed, fenced)", labels);
    }
    rp_run_metrics_init(metrics);
    return self;
}

void rp_destroy(rp_t **self_p)
{
    rp_t *self = *self_p;
    if (!self)
        return;
    rp_store_destroy(&self->store);
    free(self);
    *self_p = NULL;
}

void rp_tick(rp_t *self)
{
    vz_series_inc(self->checks);
    int64_t now = vz_clock_now_ms() / 1000;
    int64_t fired = rp_cron_prev(&self->cron, now);
    if (fired < 0)
        return;
    if (!self->since && rp_store_since(self->store, now, &self->since) < 0)
        return; //  Redis away: readiness says so; the next tick tries again
    char week[RP_WEEK_ID_MAX];
    int64_t start = rp_week_reported(fired);
    rp_week_id(start, week);
    int sent = rp_store_sent(self->store, week);
    if (sent < 0)
        return;
    bool owed = !sent && fired >= self->since && now - fired <= self->config.catchup_s;
    vz_series_set(self->overdue, owed ? (double)(now - fired) : 0);
    if (!owed || self->run)
        return;
    uint64_t token = 0;
    if (rp_store_lease_take(self->store, self->owner, self->config.lease_ms, &token) <= 0)
        return; //  another replica runs it, or Redis away
    //  Within two ticks of the firing it is the scheduled run, else a catch-up.
    rp_trigger_t trigger = (now - fired) * 1000 <= 2 * self->config.tick_ms + 1000
                               ? RP_TRIGGER_SCHEDULE
                               : RP_TRIGGER_CATCHUP;
    char fence[24];
    snprintf(fence, sizeof fence, "%" PRIu64, token);
    vz_info(NULL, "lease taken for the weekly report", "week", week, "token", fence);
    rp_run_start(self, start, trigger, false, token, NULL);
}

//  An error code: [A-Za-z0-9_.-], 1..63 bytes.
static bool s_code(const char *s, size_t len)
{
    if (len == 0 || len >= sizeof((rp_link_t *)0)->code)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("_.-", s[i])))
            return false;
    return true;
}

int rp_links_parse(const char *text, rp_link_t links[RP_LINKS_MAX], char *err, size_t errlen)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", text);
    int count = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, " ,", &save); item; item = strtok_r(NULL, " ,", &save)) {
        char *eq = strchr(item, '='), *slash = eq ? strchr(eq, '/') : NULL;
        char *hash = slash ? strchr(slash, '#') : NULL;
        char *end = NULL;
        long number = hash ? strtol(hash + 1, &end, 10) : 0;
        //  Owner and repository as github's contract allows them.
        char owner[sizeof links[0].owner] = "", repo[sizeof links[0].repo] = "";
        if (slash && hash && (size_t)(slash - eq - 1) < sizeof owner &&
            (size_t)(hash - slash - 1) < sizeof repo) {
            memcpy(owner, eq + 1, (size_t)(slash - eq - 1));
            owner[slash - eq - 1] = '\0';
            memcpy(repo, slash + 1, (size_t)(hash - slash - 1));
            repo[hash - slash - 1] = '\0';
        }
        if (count == RP_LINKS_MAX || !hash || *end || number < 1 || number > 1000000000 ||
            !s_code(item, (size_t)(eq - item)) || !vz_gh_owner_valid(owner) ||
            !vz_gh_repo_name_valid(repo)) {
            snprintf(err, errlen, "%.80s: expected code=owner/repo#number (at most %d)", item,
                     RP_LINKS_MAX);
            return -EINVAL;
        }
        rp_link_t *link = &links[count++];
        snprintf(link->code, sizeof link->code, "%.*s", (int)(eq - item), item);
        snprintf(link->owner, sizeof link->owner, "%.*s", (int)(slash - eq - 1), eq + 1);
        snprintf(link->repo, sizeof link->repo, "%.*s", (int)(hash - slash - 1), slash + 1);
        link->number = (int)number;
    }
    return count;
}
