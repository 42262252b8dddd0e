/*  gh_event - what one GitHub webhook delivery means: its fields and its Redis writes (pure)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gh_event.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vz_clock.h"
#include "vz_json.h"

static const char *const s_handled[] = {
    "ping",          "push",      "pull_request", "pull_request_review",       "issues",
    "issue_comment", "release",   "deployment",   "deployment_status",         "workflow_run",
    "check_suite",   "milestone", "installation", "installation_repositories",
};

//  Copy a string member (cut at a UTF-8 boundary to fit), "" when absent.
static void s_copy(char *dst, size_t n, const vz_json_value_t *o, const char *key)
{
    size_t len = 0;
    const char *s = vz_json_string(vz_json_get(o, key), &len);
    dst[0] = '\0';
    if (!s)
        return;
    if (len >= n) {
        len = n - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    //  No NUL, CR or LF inside: these strings reach Redis keys and mail headers.
    for (size_t i = 0; i < len; i++)
        if (dst[i] == '\0' || dst[i] == '\r' || dst[i] == '\n')
            dst[i] = ' ';
}

static int64_t s_int(const vz_json_value_t *o, const char *key)
{
    int64_t n = 0;
    return vz_json_int(vz_json_get(o, key), &n) == 0 ? n : 0;
}

//  A time member: ISO 8601 "...Z" or Unix seconds; 0 when absent.
static int64_t s_time(const vz_json_value_t *o, const char *key)
{
    const vz_json_value_t *v = vz_json_get(o, key);
    int64_t n = 0;
    if (vz_json_int(v, &n) == 0)
        return n;
    const char *s = vz_json_string(v, NULL);
    return s && vz_clock_parse_utc(s, &n) == 0 ? n / 1000000 : 0;
}

static void s_labels(gh_event_t *ev, const vz_json_value_t *labels)
{
    size_t at = 0;
    ev->labels[0] = '\0';
    for (size_t i = 0; i < vz_json_size(labels); i++) {
        char name[GH_NAME_MAX];
        s_copy(name, sizeof name, vz_json_at(labels, i), "name");
        if (!name[0] || strchr(name, '|'))
            continue;
        int w = snprintf(ev->labels + at, sizeof ev->labels - at, "%s%s|", at ? "" : "|", name);
        if (w < 0 || (size_t)w >= sizeof ev->labels - at) {
            ev->labels[at] = '\0';
            break;
        }
        at += (size_t)w;
    }
}

static void s_milestone(gh_event_t *ev, const vz_json_value_t *m)
{
    if (vz_json_type(m) != VZ_JSON_OBJECT)
        return;
    ev->milestone = s_int(m, "number");
    s_copy(ev->milestone_title, sizeof ev->milestone_title, m, "title");
    s_copy(ev->milestone_state, sizeof ev->milestone_state, m, "state");
    ev->ms_open = s_int(m, "open_issues");
    ev->ms_closed = s_int(m, "closed_issues");
}

//  An issue or pull request object.
static void s_item(gh_event_t *ev, const vz_json_value_t *o, bool pull)
{
    bool merged = false;
    snprintf(ev->kind, sizeof ev->kind, "%s",
             pull || vz_json_get(o, "pull_request") ? VZ_GH_KIND_PULL : VZ_GH_KIND_ISSUE);
    ev->number = s_int(o, "number");
    s_copy(ev->title, sizeof ev->title, o, "title");
    s_copy(ev->url, sizeof ev->url, o, "html_url");
    s_copy(ev->state, sizeof ev->state, o, "state");
    s_copy(ev->state_reason, sizeof ev->state_reason, o, "state_reason");
    (void)vz_json_bool(vz_json_get(o, "merged"), &merged);
    ev->merged = merged || s_time(o, "merged_at") > 0;
    (void)vz_json_bool(vz_json_get(o, "draft"), &ev->draft);
    s_labels(ev, vz_json_get(o, "labels"));
    s_milestone(ev, vz_json_get(o, "milestone"));
    ev->created_at = s_time(o, "created_at");
    ev->updated_at = s_time(o, "updated_at");
    ev->closed_at = s_time(o, "closed_at");
    ev->merged_at = s_time(o, "merged_at");
}

int gh_event_read(const char *event, const void *body, size_t len, gh_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    if (vz_json_type(root) != VZ_JSON_OBJECT) {
        vz_json_destroy(&doc);
        return -1;
    }
    snprintf(ev->event, sizeof ev->event, "%s", event ? event : "");
    for (size_t i = 0; i < sizeof s_handled / sizeof s_handled[0]; i++)
        ev->handled |= strcmp(ev->event, s_handled[i]) == 0;
    s_copy(ev->action, sizeof ev->action, root, "action");
    s_copy(ev->repo, sizeof ev->repo, vz_json_get(root, "repository"), "full_name");
    if (!vz_gh_full_name_valid(ev->repo))
        ev->repo[0] = '\0';
    ev->installation = s_int(vz_json_get(root, "installation"), "id");
    s_copy(ev->sender, sizeof ev->sender, vz_json_get(root, "sender"), "login");
    if (strcmp(ev->event, "push") == 0) {
        char ref[GH_TEXT_MAX];
        s_copy(ref, sizeof ref, root, "ref");
        ev->tag = strncmp(ref, "refs/tags/", 10) == 0;
        snprintf(ev->branch, sizeof ev->branch, "%s",
                 strncmp(ref, "refs/heads/", 11) == 0 ? ref + 11 : ref);
        (void)vz_json_bool(vz_json_get(root, "deleted"), &ev->deleted);
        ev->commits = (int64_t)vz_json_size(vz_json_get(root, "commits"));
        s_copy(ev->url, sizeof ev->url, root, "compare");
        const vz_json_value_t *head = vz_json_get(root, "head_commit");
        //  A commit message: its first line only.
        const char *message = vz_json_get_string(head, "message", NULL);
        snprintf(ev->title, sizeof ev->title, "%.*s", message ? (int)strcspn(message, "\r\n") : 0,
                 message ? message : "");
        ev->updated_at = s_time(head, "timestamp");
    } else if (strcmp(ev->event, "pull_request") == 0 ||
               strcmp(ev->event, "pull_request_review") == 0) {
        const vz_json_value_t *pr = vz_json_get(root, "pull_request");
        s_item(ev, pr, true);
        s_copy(ev->branch, sizeof ev->branch, vz_json_get(pr, "base"), "ref");
        if (strcmp(ev->event, "pull_request") == 0 && strcmp(ev->action, "closed") == 0 &&
            ev->merged)
            snprintf(ev->action, sizeof ev->action, "merged");
    } else if (strcmp(ev->event, "issues") == 0 || strcmp(ev->event, "issue_comment") == 0) {
        s_item(ev, vz_json_get(root, "issue"), false);
    } else if (strcmp(ev->event, "release") == 0) {
        const vz_json_value_t *rel = vz_json_get(root, "release");
        snprintf(ev->kind, sizeof ev->kind, "release");
        s_copy(ev->title, sizeof ev->title, rel, "name");
        if (!ev->title[0])
            s_copy(ev->title, sizeof ev->title, rel, "tag_name");
        s_copy(ev->url, sizeof ev->url, rel, "html_url");
        s_copy(ev->branch, sizeof ev->branch, rel, "target_commitish");
        ev->created_at = s_time(rel, "published_at");
    } else if (strcmp(ev->event, "deployment") == 0) {
        const vz_json_value_t *d = vz_json_get(root, "deployment");
        s_copy(ev->environment, sizeof ev->environment, d, "environment");
        s_copy(ev->url, sizeof ev->url, d, "url");
        ev->created_at = s_time(d, "created_at");
    } else if (strcmp(ev->event, "deployment_status") == 0) {
        const vz_json_value_t *st = vz_json_get(root, "deployment_status");
        s_copy(ev->environment, sizeof ev->environment, st, "environment");
        if (!ev->environment[0])
            s_copy(ev->environment, sizeof ev->environment, vz_json_get(root, "deployment"),
                   "environment");
        s_copy(ev->dstate, sizeof ev->dstate, st, "state");
        ev->created_at = s_time(st, "created_at");
    } else if (strcmp(ev->event, "workflow_run") == 0) {
        const vz_json_value_t *run = vz_json_get(root, "workflow_run");
        s_copy(ev->workflow, sizeof ev->workflow, run, "name");
        s_copy(ev->conclusion, sizeof ev->conclusion, run, "conclusion");
        s_copy(ev->status, sizeof ev->status, run, "status");
        s_copy(ev->url, sizeof ev->url, run, "html_url");
        s_copy(ev->branch, sizeof ev->branch, run, "head_branch");
        ev->updated_at = s_time(run, "updated_at");
    } else if (strcmp(ev->event, "check_suite") == 0) {
        const vz_json_value_t *cs = vz_json_get(root, "check_suite");
        char slug[GH_NAME_MAX];
        s_copy(slug, sizeof slug, vz_json_get(cs, "app"), "slug");
        snprintf(ev->workflow, sizeof ev->workflow, "checks/%s", slug[0] ? slug : "unknown");
        s_copy(ev->conclusion, sizeof ev->conclusion, cs, "conclusion");
        s_copy(ev->status, sizeof ev->status, cs, "status");
        s_copy(ev->branch, sizeof ev->branch, cs, "head_branch");
        ev->updated_at = s_time(cs, "updated_at");
    } else if (strcmp(ev->event, "milestone") == 0) {
        const vz_json_value_t *m = vz_json_get(root, "milestone");
        s_milestone(ev, m);
        ev->updated_at = s_time(m, "updated_at");
    }
    //  '|' separates the parts of the fields these names go into.
    for (char *p = ev->environment; *p; p++)
        *p = *p == '|' ? '/' : *p;
    for (char *p = ev->workflow; *p; p++)
        *p = *p == '|' ? '/' : *p;
    vz_json_destroy(&doc);
    return 0;
}

void gh_week(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%G-W%V", &tm);
}

// --------------------------------------------------------------------------
//  Writes

void gh_ops_add(gh_ops_t *ops, char op, const char *key, const char *a, const char *b)
{
    if (ops->n + 4 > ops->cap) {
        size_t cap = ops->cap ? ops->cap * 2 : 64;
        char **argv = realloc(ops->argv, cap * sizeof *argv);
        assert(argv);
        ops->argv = argv;
        ops->cap = cap;
    }
    char code[2] = {op, '\0'};
    ops->argv[ops->n++] = strdup(code);
    ops->argv[ops->n++] = strdup(key);
    ops->argv[ops->n++] = strdup(a ? a : "");
    ops->argv[ops->n++] = strdup(b ? b : "");
}

void gh_ops_free(gh_ops_t *ops)
{
    for (size_t i = 0; i < ops->n; i++)
        free(ops->argv[i]);
    free(ops->argv);
    memset(ops, 0, sizeof *ops);
}

static void s_hset_int(gh_ops_t *ops, const char *key, const char *field, int64_t n)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, n);
    gh_ops_add(ops, 'H', key, field, text);
}

static void s_incr(gh_ops_t *ops, const char *key, const char *field)
{
    gh_ops_add(ops, 'I', key, field, "1");
}

//  The repository is known and was active at t.
static void s_repo(const gh_event_t *ev, gh_ops_t *ops, int64_t t)
{
    char key[VZ_GH_FULL_MAX + 16];
    snprintf(key, sizeof key, GH_PREFIX "repo:%s", ev->repo);
    gh_ops_add(ops, 'S', GH_PREFIX "repos", ev->repo, NULL);
    if (ev->installation)
        s_hset_int(ops, key, "installation_id", ev->installation);
    if (t > 0) {
        char ts[24];
        snprintf(ts, sizeof ts, "%" PRId64, t);
        gh_ops_add(ops, 'G', key, ts, NULL);
        s_hset_int(ops, key, "updated_at", t);
    }
}

static void s_milestone_ops(const gh_event_t *ev, gh_ops_t *ops, bool removed)
{
    if (!ev->milestone)
        return;
    char set[VZ_GH_FULL_MAX + 32], key[VZ_GH_FULL_MAX + 64], num[24];
    snprintf(set, sizeof set, GH_PREFIX "milestones:%s", ev->repo);
    snprintf(key, sizeof key, GH_PREFIX "milestone:%s:%" PRId64, ev->repo, ev->milestone);
    snprintf(num, sizeof num, "%" PRId64, ev->milestone);
    if (removed) {
        gh_ops_add(ops, 'R', set, num, NULL);
        return;
    }
    gh_ops_add(ops, 'S', set, num, NULL);
    gh_ops_add(ops, 'H', key, "title", ev->milestone_title);
    gh_ops_add(ops, 'H', key, "state", ev->milestone_state);
    s_hset_int(ops, key, "open_issues", ev->ms_open);
    s_hset_int(ops, key, "closed_issues", ev->ms_closed);
}

//  An issue or pull request: stored unless a newer state already is.
static void s_item_ops(const gh_event_t *ev, gh_ops_t *ops)
{
    if (ev->number <= 0 || !ev->kind[0])
        return;
    char set[VZ_GH_FULL_MAX + 32], key[VZ_GH_FULL_MAX + 64], num[24], ts[24];
    snprintf(set, sizeof set, GH_PREFIX "items:%s", ev->repo);
    snprintf(key, sizeof key, GH_PREFIX "item:%s:%" PRId64, ev->repo, ev->number);
    snprintf(num, sizeof num, "%" PRId64, ev->number);
    if (strcmp(ev->event, "issues") == 0 && strcmp(ev->action, "deleted") == 0) {
        gh_ops_add(ops, 'R', set, num, NULL);
        return;
    }
    snprintf(ts, sizeof ts, "%" PRId64, ev->updated_at);
    gh_ops_add(ops, 'S', set, num, NULL);
    gh_ops_add(ops, 'G', key, ts, NULL);
    const char *fields[][2] = {{"kind", ev->kind},
                               {"title", ev->title},
                               {"state", ev->state},
                               {"state_reason", ev->state_reason},
                               {"url", ev->url},
                               {"labels", ev->labels},
                               {"milestone", ev->milestone_title},
                               {"merged", ev->merged ? "1" : "0"},
                               {"draft", ev->draft ? "1" : "0"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        gh_ops_add(ops, 'H', key, fields[i][0], fields[i][1]);
    s_hset_int(ops, key, "updated_at", ev->updated_at);
    s_hset_int(ops, key, "closed_at", ev->closed_at);
    s_hset_int(ops, key, "merged_at", ev->merged_at);
    s_milestone_ops(ev, ops, false);
}

//  Installation events name their repositories in arrays.
static void s_install_ops(const gh_event_t *ev, const void *body, size_t len, gh_ops_t *ops)
{
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    bool gone = strcmp(ev->action, "deleted") == 0;
    const char *lists[][2] = {{"repositories", gone ? "R" : "S"},
                              {"repositories_added", "S"},
                              {"repositories_removed", "R"}};
    char inst[24], ikey[64];
    snprintf(inst, sizeof inst, "%" PRId64, ev->installation);
    snprintf(ikey, sizeof ikey, GH_PREFIX "installation:%s", inst);
    for (size_t l = 0; l < 3; l++) {
        const vz_json_value_t *rows = vz_json_get(root, lists[l][0]);
        for (size_t i = 0; i < vz_json_size(rows); i++) {
            char full[VZ_GH_FULL_MAX], key[VZ_GH_FULL_MAX + 16];
            s_copy(full, sizeof full, vz_json_at(rows, i), "full_name");
            if (!vz_gh_full_name_valid(full))
                continue;
            gh_ops_add(ops, lists[l][1][0], GH_PREFIX "repos", full, NULL);
            gh_ops_add(ops, lists[l][1][0], ikey, full, NULL);
            snprintf(key, sizeof key, GH_PREFIX "repo:%s", full);
            if (lists[l][1][0] == 'S')
                gh_ops_add(ops, 'H', key, "installation_id", inst);
        }
    }
    gh_ops_add(ops, gone ? 'R' : 'S', GH_PREFIX "installations", inst, NULL);
    vz_json_destroy(&doc);
}

void gh_event_ops(const gh_event_t *ev, const void *body, size_t len, gh_ops_t *ops)
{
    if (!ev->handled)
        return;
    if (strncmp(ev->event, "installation", 12) == 0) {
        s_install_ops(ev, body, len, ops);
        return;
    }
    if (!ev->repo[0])
        return;
    char key[VZ_GH_FULL_MAX + 32], field[GH_TEXT_MAX + 48], week[16];
    int64_t t = ev->updated_at ? ev->updated_at : ev->created_at;
    s_repo(ev, ops, t);
    if (strcmp(ev->event, "pull_request") == 0 || strcmp(ev->event, "pull_request_review") == 0 ||
        strcmp(ev->event, "issues") == 0 || strcmp(ev->event, "issue_comment") == 0)
        s_item_ops(ev, ops);
    else if (strcmp(ev->event, "milestone") == 0)
        s_milestone_ops(ev, ops, strcmp(ev->action, "deleted") == 0);
    else if (strcmp(ev->event, "deployment") == 0 && ev->created_at > 0) {
        //  Per week: created, and each status outcome; per environment, all time.
        snprintf(key, sizeof key, GH_PREFIX "deploy:%s", ev->repo);
        gh_week(ev->created_at, week, sizeof week);
        snprintf(field, sizeof field, "w|%s|created", week);
        s_incr(ops, key, field);
        snprintf(field, sizeof field, "e|%s|total", ev->environment);
        s_incr(ops, key, field);
    } else if (strcmp(ev->event, "deployment_status") == 0 && ev->created_at > 0 && ev->dstate[0]) {
        snprintf(key, sizeof key, GH_PREFIX "deploy:%s", ev->repo);
        gh_week(ev->created_at, week, sizeof week);
        snprintf(field, sizeof field, "w|%s|%s", week, ev->dstate);
        s_incr(ops, key, field);
        snprintf(field, sizeof field, "e|%s|%s", ev->environment, ev->dstate);
        s_incr(ops, key, field);
        snprintf(field, sizeof field, "e|%s|last_state", ev->environment);
        gh_ops_add(ops, 'H', key, field, ev->dstate);
        snprintf(field, sizeof field, "e|%s|last_at", ev->environment);
        s_hset_int(ops, key, field, ev->created_at);
    } else if ((strcmp(ev->event, "workflow_run") == 0 || strcmp(ev->event, "check_suite") == 0) &&
               strcmp(ev->action, "completed") == 0 && t > 0 && ev->workflow[0]) {
        //  Completed runs per week and workflow: runs, success, failure.
        const char *c = ev->conclusion;
        const char *outcome = strcmp(c, "success") == 0 ? "success"
                              : strcmp(c, "failure") == 0 || strcmp(c, "timed_out") == 0 ||
                                      strcmp(c, "startup_failure") == 0 ||
                                      strcmp(c, "action_required") == 0
                                  ? "failure"
                                  : NULL;
        snprintf(key, sizeof key, GH_PREFIX "ci:%s", ev->repo);
        gh_week(t, week, sizeof week);
        snprintf(field, sizeof field, "%s|%s|runs", week, ev->workflow);
        s_incr(ops, key, field);
        if (outcome) {
            snprintf(field, sizeof field, "%s|%s|%s", week, ev->workflow, outcome);
            s_incr(ops, key, field);
        }
    }
}
