/*  tl_slo - SLOs of configs/slo.cfg: error budgets and multi-window burn rates
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "tl_slo.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_common.h"
#include "vz_config.h"

#define S_HOUR 3600
#define S_DAY 86400

const tl_burn_rule_t tl_burn_rules[TL_SLO_RULES] = {
    {"page", TL_SEV_PAGE, 14.4, S_HOUR, 300},
    {"page", TL_SEV_PAGE, 6.0, 6 * S_HOUR, 1800},
    {"ticket", TL_SEV_TICKET, 1.0, 3 * S_DAY, 6 * S_HOUR},
};

//  Mesh error codes that are the service's fault, not the caller's.
static const char *const s_bad_codes[] = {
    "internal",    "unavailable", "timeout",       "no_worker",
    "worker_lost", "overloaded",  "reply_dropped", "_other",
};

bool tl_code_bad(const char *code)
{
    assert(code);
    if (code[0] >= '0' && code[0] <= '9') {
        long status = strtol(code, NULL, 10);
        return status >= 500 && status <= 599;
    }
    for (size_t i = 0; i < sizeof s_bad_codes / sizeof s_bad_codes[0]; i++)
        if (strcmp(code, s_bad_codes[i]) == 0)
            return true;
    return false;
}

bool tl_slo_matches(const tl_slo_t *slo, const char *service, const char *name)
{
    assert(slo && service && name);
    if (strcmp(slo->service, service) != 0)
        return false;
    char glob[sizeof slo->match];
    const char *p = slo->match;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len == 0)
            break;
        memcpy(glob, p, len);
        glob[len] = '\0';
        if (fnmatch(glob, name, 0) == 0)
            return true;
        p += len;
    }
    return false;
}

//  "250ms", "2s", "5m", "6h", "30d", "100us" into microseconds; -1 if not one.
static int64_t s_duration_us(const char *text)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno || end == text || n < 0 || n > 10LL * 365 * S_DAY)
        return -1;
    static const struct {
        const char *unit;
        int64_t us;
    } units[] = {{"us", 1},
                 {"ms", 1000},
                 {"s", 1000000},
                 {"m", 60LL * 1000000},
                 {"h", 3600LL * 1000000},
                 {"d", 86400LL * 1000000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0)
            return n * units[i].us;
    return -1;
}

static bool s_name_ok(const char *name)
{
    if (!*name || strlen(name) >= TL_SLO_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

static int s_fail(char *err, size_t errlen, const char *slo, const char *what, const char *value)
{
    snprintf(err, errlen, "slo %s: %s \"%.64s\"", slo, what, value ? value : "");
    return -EINVAL;
}

static int s_parse_slo(zconfig_t *node, tl_slo_t *slo, char *err, size_t errlen)
{
    const char *name = zconfig_name(node);
    if (!name || !s_name_ok(name))
        return s_fail(err, errlen, "?", "bad name", name);
    vz_strlcpy(slo->name, name, sizeof slo->name);
    const char *kind = zconfig_get(node, "objective", "availability");
    if (strcmp(kind, "availability") == 0)
        slo->kind = TL_SLO_AVAILABILITY;
    else if (strcmp(kind, "latency") == 0)
        slo->kind = TL_SLO_LATENCY;
    else
        return s_fail(err, errlen, name, "objective must be availability or latency", kind);
    //  target in percent: "99.9".
    const char *target = zconfig_get(node, "target", "");
    char *end = NULL;
    double pct = strtod(target, &end);
    if (end == target || *end || !(pct > 0 && pct < 100))
        return s_fail(err, errlen, name, "target must be a percentage in (0, 100)", target);
    slo->target = pct / 100.0;
    const char *window = zconfig_get(node, "window", "30d");
    int64_t us = s_duration_us(window);
    if (us < S_HOUR * 1000000LL)
        return s_fail(err, errlen, name, "window must be a duration of 1h or more", window);
    slo->window_s = us / 1000000;
    const char *service = zconfig_get(node, "service", "");
    if (!s_name_ok(service))
        return s_fail(err, errlen, name, "service must be a service name", service);
    vz_strlcpy(slo->service, service, sizeof slo->service);
    if (vz_strlcpy(slo->match, zconfig_get(node, "match", "*"), sizeof slo->match) < 0)
        return s_fail(err, errlen, name, "match is too long", "");
    if (slo->kind == TL_SLO_LATENCY) {
        const char *threshold = zconfig_get(node, "threshold", "");
        slo->threshold_us = s_duration_us(threshold);
        if (slo->threshold_us <= 0)
            return s_fail(err, errlen, name, "latency needs a threshold such as 100ms", threshold);
    }
    return 0;
}

static int s_parse_alerting(zconfig_t *node, tl_alerting_t *alerting, char *err, size_t errlen)
{
    const char *min = zconfig_get(node, "min_events", "100");
    char *end = NULL;
    long long n = strtoll(min, &end, 10);
    if (end == min || *end || n < 0)
        return s_fail(err, errlen, "alerting", "min_events must be a count", min);
    alerting->min_events = n;
    const char *pending = zconfig_get(node, "pending", "1m");
    int64_t us = s_duration_us(pending);
    if (us < 0)
        return s_fail(err, errlen, "alerting", "pending must be a duration", pending);
    alerting->pending_s = us / 1000000;
    if (vz_strlcpy(alerting->page_channel, zconfig_get(node, "page_channel", "pagerduty"),
                   sizeof alerting->page_channel) < 0 ||
        vz_strlcpy(alerting->page_to, zconfig_get(node, "page_to", "oncall"),
                   sizeof alerting->page_to) < 0 ||
        vz_strlcpy(alerting->ticket_channel, zconfig_get(node, "ticket_channel", "slack"),
                   sizeof alerting->ticket_channel) < 0 ||
        vz_strlcpy(alerting->ticket_to, zconfig_get(node, "ticket_to", "#ops"),
                   sizeof alerting->ticket_to) < 0)
        return s_fail(err, errlen, "alerting", "a channel or recipient is too long", "");
    return 0;
}

static int s_parse_tree(zconfig_t *root, tl_slo_config_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    zconfig_t *alerting = zconfig_locate(root, "alerting");
    //  The defaults of an absent block come from parsing an empty one.
    zconfig_t *empty = zconfig_new("alerting", NULL);
    int rc = s_parse_alerting(alerting ? alerting : empty, &out->alerting, err, errlen);
    zconfig_destroy(&empty);
    if (rc < 0)
        return rc;
    zconfig_t *section = zconfig_locate(root, "slo");
    for (zconfig_t *node = section ? zconfig_child(section) : NULL; node;
         node = zconfig_next(node)) {
        if (out->count == TL_SLO_MAX) {
            snprintf(err, errlen, "more than %d SLOs", TL_SLO_MAX);
            return -EINVAL;
        }
        rc = s_parse_slo(node, &out->slo[out->count], err, errlen);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < out->count; i++)
            if (strcmp(out->slo[i].name, out->slo[out->count].name) == 0)
                return s_fail(err, errlen, out->slo[i].name, "defined twice", "");
        out->count++;
    }
    return 0;
}

int tl_slo_parse(const char *text, size_t len, tl_slo_config_t *out, char *err, size_t errlen)
{
    assert(text && out && err);
    zconfig_t *root = vz_config_parse(text, len, "slo.cfg", err, errlen);
    if (!root)
        return -EINVAL;
    int rc = s_parse_tree(root, out, err, errlen);
    zconfig_destroy(&root);
    return rc;
}

int tl_slo_load(const char *path, tl_slo_config_t *out, char *err, size_t errlen)
{
    assert(path && out && err);
    zconfig_t *root = vz_config_read(path, 0, err, errlen);
    if (!root)
        return -EINVAL;
    int rc = s_parse_tree(root, out, err, errlen);
    zconfig_destroy(&root);
    return rc;
}

double tl_slo_burn(const tl_counts_t *counts, double target)
{
    assert(counts);
    if (counts->total == 0 || target >= 1)
        return 0;
    return ((double)counts->bad / (double)counts->total) / (1.0 - target);
}

int tl_slo_eval(const tl_slo_t *slo, const tl_alerting_t *alerting, tl_counts_fn *counts, void *arg,
                int64_t now_s, tl_slo_status_t *out)
{
    assert(slo && alerting && counts && out);
    memset(out, 0, sizeof *out);
    for (int r = 0; r < TL_SLO_RULES; r++) {
        const tl_burn_rule_t *rule = &tl_burn_rules[r];
        tl_counts_t lw, sw;
        int rc = counts(arg, slo, now_s - rule->long_s, now_s, &lw);
        if (rc == 0)
            rc = counts(arg, slo, now_s - rule->short_s, now_s, &sw);
        if (rc < 0)
            return rc;
        out->burn_long[r] = tl_slo_burn(&lw, slo->target);
        out->burn_short[r] = tl_slo_burn(&sw, slo->target);
        out->total_long[r] = lw.total;
        //  The guard: too few requests say nothing about the rate.
        out->rule[r] = lw.total >= (uint64_t)alerting->min_events && lw.total > 0 &&
                       out->burn_long[r] >= rule->factor && out->burn_short[r] >= rule->factor;
        if (out->rule[r]) {
            out->condition[rule->sev] = true;
            if (out->burn_long[r] > out->burn[rule->sev])
                out->burn[rule->sev] = out->burn_long[r];
        }
    }
    int rc = counts(arg, slo, now_s - slo->window_s, now_s, &out->budget_counts);
    if (rc < 0)
        return rc;
    double allowed = (1.0 - slo->target) * (double)out->budget_counts.total;
    out->remaining = allowed > 0 ? 1.0 - (double)out->budget_counts.bad / allowed : 1.0;
    out->budget_minutes = (1.0 - slo->target) * (double)slo->window_s / 60.0;
    out->spent = out->remaining <= 0 && out->budget_counts.total >= (uint64_t)alerting->min_events;
    return 0;
}
