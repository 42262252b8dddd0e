/*  gh_api - the read methods: repos, insights, roadmap, issue_state (vz_github_contract)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every figure is computed here from what the apply script stored (one
 *  script call per repository, gh_store.c): counts by state from the items,
 *  velocity from their closed_at / merged_at, deployments and CI from the
 *  weekly counters. Readers: through the gateway a caller granted admin or
 *  github:read; in the mesh an identity of VZ_GITHUB_READERS.
 */
#include "gh_app.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_clock.h"
#include "vz_github_contract.h"
#include "vz_json.h"
#include "vz_log.h"
#include "vz_proto.h"

#define WEEK_S (7 * 86400)

//  One stored item as the items script returns it.
typedef struct {
    int64_t number;
    const char *kind, *state, *state_reason, *labels, *title, *url, *milestone;
    bool merged, draft;
    int64_t updated_at, closed_at, merged_at;
} s_item_t;

static bool s_may_read(gh_t *self, const vz_envelope_t *req, vz_reply_t *reply)
{
    if (!vz_authctx_trusted(req->caller)) {
        if (vz_authctx_scope_has(self->config.readers, req->caller))
            return true;
        vz_authctx_reply_error(reply, 0, VZ_ERR_FORBIDDEN, "not a github reader");
        return false;
    }
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (vz_authctx_scope_has(who.scope, "admin") || vz_authctx_scope_has(who.scope, "github:read"))
        return true;
    if (strcmp(who.auth, VZ_AUTHCTX_BY_NONE) == 0)
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_UNAUTHORIZED, "credentials required");
    else
        vz_authctx_reply_error(reply, 0, VZ_AUTHCTX_ERR_DENIED, "needs scope admin or github:read");
    return false;
}

static const char *s_s(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str : "";
}

static int64_t s_i(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return strtoll(s_s(r), NULL, 10);
}

//  The week labels of the window, newest first.
static void s_weeks(int weeks, char labels[][16])
{
    int64_t now = vz_clock_now_ms() / 1000;
    for (int i = 0; i < weeks; i++)
        gh_week(now - (int64_t)i * WEEK_S, labels[i], 16);
}

static int s_week_index(char labels[][16], int weeks, int64_t t)
{
    if (t <= 0)
        return -1;
    char w[16];
    gh_week(t, w, sizeof w);
    for (int i = 0; i < weeks; i++)
        if (strcmp(labels[i], w) == 0)
            return i;
    return -1;
}

//  Run the items script for repo. NULL when Redis failed.
static redisReply *s_dump(gh_t *self, const char *repo)
{
    const char *args[] = {GH_PREFIX, repo};
    redisReply *r = vz_redis_eval(self->redis, self->items, 1, args, 2, args);
    if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != 4)) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

static void s_item_read(const redisReply *row, s_item_t *it)
{
    memset(it, 0, sizeof *it);
    if (row->type != REDIS_REPLY_ARRAY || row->elements != 13)
        return;
    redisReply **e = row->element;
    it->number = s_i(e[0]);
    it->kind = s_s(e[1]);
    it->state = s_s(e[2]);
    it->state_reason = s_s(e[3]);
    it->merged = strcmp(s_s(e[4]), "1") == 0;
    it->draft = strcmp(s_s(e[5]), "1") == 0;
    it->labels = s_s(e[6]);
    it->title = s_s(e[7]);
    it->url = s_s(e[8]);
    it->milestone = s_s(e[9]);
    it->updated_at = s_i(e[10]);
    it->closed_at = s_i(e[11]);
    it->merged_at = s_i(e[12]);
}

static bool s_is_pull(const s_item_t *it)
{
    return strcmp(it->kind, VZ_GH_KIND_PULL) == 0;
}

//  When the item was completed (merged, or closed as done), else 0.
static int64_t s_completed_at(const s_item_t *it)
{
    if (s_is_pull(it))
        return it->merged ? it->merged_at : 0;
    if (strcmp(it->state, "closed") != 0 || strcmp(it->state_reason, "not_planned") == 0)
        return 0;
    return it->closed_at;
}

static void s_velocity(const redisReply *items, char labels[][16], int weeks, vz_gh_week_t *vel)
{
    for (int i = 0; i < weeks; i++) {
        memset(&vel[i], 0, sizeof vel[i]);
        vz_strlcpy(vel[i].week, labels[i], sizeof vel[i].week);
    }
    for (size_t i = 0; i < items->elements; i++) {
        s_item_t it;
        s_item_read(items->element[i], &it);
        int w = s_week_index(labels, weeks, s_completed_at(&it));
        if (w >= 0 && s_is_pull(&it))
            vel[w].pulls_merged++;
        else if (w >= 0)
            vel[w].issues_closed++;
    }
}

//  Weeks from path.weeks, query.weeks (gateway) or the body (mesh).
static int s_reply_weeks_error(vz_reply_t *reply)
{
    return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                  "weeks must be an integer in 1..52");
}

static void s_writer_reply(vz_reply_t *reply, vz_json_writer_t *w)
{
    (void)vz_authctx_reply_json(reply, &w);
}

// --------------------------------------------------------------------------
//  repos

//  Every repository, as the repos script lists them (heap rows).
static int s_repos(gh_t *self, vz_gh_repo_t **rows_p, size_t *n_p)
{
    const char *args[] = {GH_PREFIX};
    redisReply *r = vz_redis_eval(self->redis, self->repos, 1, args, 1, args);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return -EIO;
    }
    size_t n = r->elements < VZ_GH_REPOS_MAX ? r->elements : VZ_GH_REPOS_MAX;
    vz_gh_repo_t *rows = calloc(n ? n : 1, sizeof *rows);
    size_t k = 0;
    for (size_t i = 0; rows && i < n; i++) {
        redisReply *row = r->element[i];
        if (row->type != REDIS_REPLY_ARRAY || row->elements != 5 ||
            !vz_gh_full_name_valid(s_s(row->element[0])))
            continue;
        vz_strlcpy(rows[k].full_name, s_s(row->element[0]), sizeof rows[k].full_name);
        rows[k].installation_id = s_i(row->element[1]);
        rows[k].updated_at = s_i(row->element[2]);
        rows[k].open_issues = s_i(row->element[3]);
        rows[k].open_pulls = s_i(row->element[4]);
        k++;
    }
    freeReplyObject(r);
    if (!rows)
        return -ENOMEM;
    *rows_p = rows;
    *n_p = k;
    return 0;
}

static int s_cmp_repo(const void *a, const void *b)
{
    return strcmp(((const vz_gh_repo_t *)a)->full_name, ((const vz_gh_repo_t *)b)->full_name);
}

int gh_h_repos(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    gh_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    vz_gh_repos_reply_t out = {.configured = gh_client_configured(self->client)};
    if (s_repos(self, &out.repos, &out.nrepos) < 0)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "github state unavailable");
    qsort(out.repos, out.nrepos, sizeof *out.repos, s_cmp_repo);
    vz_json_writer_t *w = vz_json_writer_new(GH_REPLY_MAX);
    vz_gh_repos_reply_write(w, &out);
    free(out.repos);
    s_writer_reply(reply, w);
    return 0;
}

// --------------------------------------------------------------------------
//  insights

//  Sum a "<prefix><week>|<name>|<what>" style counter hash into rows.
static void s_insights_fill(const redisReply *dump, char labels[][16], int weeks,
                            vz_gh_insights_reply_t *out)
{
    const redisReply *items = dump->element[0], *ms = dump->element[1], *dep = dump->element[2],
                     *ci = dump->element[3];
    for (size_t i = 0; i < items->elements; i++) {
        s_item_t it;
        s_item_read(items->element[i], &it);
        bool open = strcmp(it.state, "open") == 0;
        if (!s_is_pull(&it))
            open ? out->issues_open++ : out->issues_closed++;
        else if (open)
            out->pulls_open++;
        else
            it.merged ? out->pulls_merged++ : out->pulls_closed++;
    }
    size_t nms = ms->elements < VZ_GH_ROWS_MAX ? ms->elements : VZ_GH_ROWS_MAX;
    out->milestones = calloc(nms ? nms : 1, sizeof *out->milestones);
    for (size_t i = 0; out->milestones && i < nms; i++) {
        redisReply **e = ms->element[i]->element;
        if (ms->element[i]->elements != 5)
            continue;
        vz_gh_milestone_t *m = &out->milestones[out->nmilestones++];
        m->number = s_i(e[0]);
        vz_strlcpy(m->title, s_s(e[1]), sizeof m->title);
        vz_strlcpy(m->state, s_s(e[2]), sizeof m->state);
        m->open_issues = s_i(e[3]);
        m->closed_issues = s_i(e[4]);
    }
    //  Deployments: w|<week>|<created|state> in the window, e|<env>|... all time.
    out->environments = calloc(VZ_GH_ROWS_MAX, sizeof *out->environments);
    for (size_t i = 0; i + 1 < dep->elements; i += 2) {
        char field[VZ_GH_TEXT_MAX + 64];
        vz_strlcpy(field, s_s(dep->element[i]), sizeof field);
        int64_t n = s_i(dep->element[i + 1]);
        char *a = strchr(field, '|'), *b = a ? strrchr(field, '|') : NULL;
        if (!a || b == a)
            continue;
        *a = '\0';
        *b = '\0';
        const char *mid = a + 1, *what = b + 1;
        if (strcmp(field, "w") == 0) {
            bool in = false;
            for (int k = 0; k < weeks; k++)
                in |= strcmp(labels[k], mid) == 0;
            if (!in)
                continue;
            if (strcmp(what, "created") == 0)
                out->deploy_total += n;
            else if (strcmp(what, "success") == 0)
                out->deploy_success += n;
            else if (strcmp(what, "failure") == 0)
                out->deploy_failure += n;
            else if (strcmp(what, "error") == 0)
                out->deploy_error += n;
            else if (strcmp(what, "pending") == 0 || strcmp(what, "queued") == 0 ||
                     strcmp(what, "in_progress") == 0)
                out->deploy_pending += n;
        } else if (strcmp(field, "e") == 0 && out->environments) {
            vz_gh_environment_t *e = NULL;
            for (size_t k = 0; k < out->nenvironments && !e; k++)
                if (strcmp(out->environments[k].name, mid) == 0)
                    e = &out->environments[k];
            if (!e && out->nenvironments < VZ_GH_ROWS_MAX) {
                e = &out->environments[out->nenvironments++];
                vz_strlcpy(e->name, mid, sizeof e->name);
            }
            if (!e)
                continue;
            if (strcmp(what, "total") == 0)
                e->total = n;
            else if (strcmp(what, "success") == 0)
                e->success = n;
            else if (strcmp(what, "failure") == 0 || strcmp(what, "error") == 0)
                e->failure += n;
            else if (strcmp(what, "last_state") == 0)
                vz_strlcpy(e->last_state, s_s(dep->element[i + 1]), sizeof e->last_state);
            else if (strcmp(what, "last_at") == 0)
                e->last_at = n;
        }
    }
    //  CI: <week>|<workflow>|<runs|success|failure> summed over the window.
    out->ci = calloc(VZ_GH_ROWS_MAX, sizeof *out->ci);
    for (size_t i = 0; out->ci && i + 1 < ci->elements; i += 2) {
        char field[VZ_GH_TEXT_MAX + 64];
        vz_strlcpy(field, s_s(ci->element[i]), sizeof field);
        char *a = strchr(field, '|'), *b = a ? strrchr(field, '|') : NULL;
        if (!a || b == a)
            continue;
        *a = '\0';
        *b = '\0';
        bool in = false;
        for (int k = 0; k < weeks; k++)
            in |= strcmp(labels[k], field) == 0;
        if (!in)
            continue;
        vz_gh_workflow_t *c = NULL;
        for (size_t k = 0; k < out->nci && !c; k++)
            if (strcmp(out->ci[k].workflow, a + 1) == 0)
                c = &out->ci[k];
        if (!c && out->nci < VZ_GH_ROWS_MAX) {
            c = &out->ci[out->nci++];
            vz_strlcpy(c->workflow, a + 1, sizeof c->workflow);
        }
        int64_t n = s_i(ci->element[i + 1]);
        if (c && strcmp(b + 1, "runs") == 0)
            c->runs += n;
        else if (c && strcmp(b + 1, "success") == 0)
            c->success += n;
        else if (c && strcmp(b + 1, "failure") == 0)
            c->failure += n;
    }
    for (size_t k = 0; k < out->nci; k++) {
        vz_gh_workflow_t *c = &out->ci[k];
        c->pass_rate =
            c->success + c->failure ? (double)c->success / (double)(c->success + c->failure) : 0;
    }
    out->velocity = calloc((size_t)weeks, sizeof *out->velocity);
    if (out->velocity) {
        s_velocity(items, labels, weeks, out->velocity);
        out->nvelocity = (size_t)weeks;
    }
}

int gh_h_insights(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    gh_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    vz_gh_insights_req_t q;
    const char *owner = vz_authctx_param(req, "owner");
    if (owner) {
        const char *repo = vz_authctx_param(req, "repo");
        if (!vz_gh_owner_valid(owner) || !vz_gh_repo_name_valid(repo))
            return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                          "owner and repo must be a GitHub repository");
        memset(&q, 0, sizeof q);
        vz_strlcpy(q.owner, owner, sizeof q.owner);
        vz_strlcpy(q.repo, repo, sizeof q.repo);
        const char *weeks = vz_authctx_param(req, "weeks");
        if (!weeks)
            weeks = vz_authctx_get(req, "query.weeks");
        if (vz_gh_weeks_parse(weeks, &q.weeks) < 0)
            return s_reply_weeks_error(reply);
    } else {
        const char *why = NULL;
        if (vz_gh_insights_req_decode(req->body, req->body_len, &q, &why) < 0)
            return vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, why);
    }
    vz_gh_insights_reply_t out = {.weeks = q.weeks};
    snprintf(out.repo, sizeof out.repo, "%s/%s", q.owner, q.repo);
    redisReply *dump = s_dump(self, out.repo);
    if (!dump)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "github state unavailable");
    char labels[VZ_GH_WEEKS_MAX][16];
    s_weeks(q.weeks, labels);
    s_insights_fill(dump, labels, q.weeks, &out);
    freeReplyObject(dump);
    vz_json_writer_t *w = vz_json_writer_new(GH_REPLY_MAX);
    vz_gh_insights_reply_write(w, &out);
    free(out.milestones);
    free(out.environments);
    free(out.ci);
    free(out.velocity);
    s_writer_reply(reply, w);
    return 0;
}

// --------------------------------------------------------------------------
//  roadmap

typedef struct {
    vz_gh_item_t *rows;
    size_t n;
} s_list_t;

static void s_push(s_list_t *list, const char *repo, const s_item_t *it)
{
    if (list->n == VZ_GH_ROWS_MAX * 4)
        return;
    vz_gh_item_t *row = &list->rows[list->n++];
    memset(row, 0, sizeof *row);
    vz_strlcpy(row->repo, repo, sizeof row->repo);
    row->number = it->number;
    vz_strlcpy(row->kind, s_is_pull(it) ? VZ_GH_KIND_PULL : VZ_GH_KIND_ISSUE, sizeof row->kind);
    vz_strlcpy(row->title, it->title, sizeof row->title);
    vz_strlcpy(row->state, it->state, sizeof row->state);
    vz_strlcpy(row->url, it->url, sizeof row->url);
    vz_strlcpy(row->milestone, it->milestone, sizeof row->milestone);
    row->updated_at = it->updated_at;
}

static int s_cmp_item(const void *a, const void *b)
{
    const vz_gh_item_t *x = a, *y = b;
    return x->updated_at < y->updated_at ? 1 : x->updated_at > y->updated_at ? -1 : 0;
}

int gh_h_roadmap(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    gh_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    vz_gh_roadmap_req_t q;
    if (vz_authctx_trusted(req->caller)) {
        memset(&q, 0, sizeof q);
        const char *repo = vz_authctx_get(req, "query.repo");
        if (repo && *repo && !vz_gh_full_name_valid(repo))
            return vz_authctx_reply_error(reply, 422, VZ_AUTHCTX_ERR_VALIDATION,
                                          "repo must be owner/name");
        vz_strlcpy(q.repo, repo ? repo : "", sizeof q.repo);
        if (vz_gh_weeks_parse(vz_authctx_get(req, "query.weeks"), &q.weeks) < 0)
            return s_reply_weeks_error(reply);
    } else {
        const char *why = NULL;
        if (vz_gh_roadmap_req_decode(req->body, req->body_len, &q, &why) < 0)
            return vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, why);
    }
    vz_gh_repo_t *repos = NULL;
    size_t nrepos = 0;
    if (q.repo[0]) {
        repos = calloc(1, sizeof *repos);
        if (repos) {
            vz_strlcpy(repos[0].full_name, q.repo, sizeof repos[0].full_name);
            nrepos = 1;
        }
    } else if (s_repos(self, &repos, &nrepos) < 0)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "github state unavailable");
    char labels[VZ_GH_WEEKS_MAX][16];
    s_weeks(q.weeks, labels);
    s_list_t done = {calloc(VZ_GH_ROWS_MAX * 4, sizeof(vz_gh_item_t)), 0};
    s_list_t doing = {calloc(VZ_GH_ROWS_MAX * 4, sizeof(vz_gh_item_t)), 0};
    s_list_t blocked = {calloc(VZ_GH_ROWS_MAX * 4, sizeof(vz_gh_item_t)), 0};
    vz_gh_week_t vel[VZ_GH_WEEKS_MAX], one[VZ_GH_WEEKS_MAX];
    s_velocity(&(redisReply){.type = REDIS_REPLY_ARRAY}, labels, q.weeks, vel);
    bool failed = !done.rows || !doing.rows || !blocked.rows;
    for (size_t r = 0; r < nrepos && !failed; r++) {
        redisReply *dump = s_dump(self, repos[r].full_name);
        if (!dump) {
            failed = true;
            break;
        }
        const redisReply *items = dump->element[0];
        for (size_t i = 0; i < items->elements; i++) {
            s_item_t it;
            s_item_read(items->element[i], &it);
            bool open = strcmp(it.state, "open") == 0;
            gh_class_t cls = gh_rules_class(self->rules, it.labels);
            if (open && cls == GH_CLASS_BLOCKED)
                s_push(&blocked, repos[r].full_name, &it);
            else if (open && cls == GH_CLASS_DONE)
                s_push(&done, repos[r].full_name, &it);
            else if (open && (cls == GH_CLASS_IN_PROGRESS || s_is_pull(&it)))
                s_push(&doing, repos[r].full_name, &it);
            else if (!open && s_week_index(labels, q.weeks, s_completed_at(&it)) >= 0)
                s_push(&done, repos[r].full_name, &it);
        }
        s_velocity(items, labels, q.weeks, one);
        for (int k = 0; k < q.weeks; k++) {
            vel[k].issues_closed += one[k].issues_closed;
            vel[k].pulls_merged += one[k].pulls_merged;
        }
        freeReplyObject(dump);
    }
    free(repos);
    int rc = 0;
    if (failed)
        rc = vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "github state unavailable");
    else {
        //  Newest first, each list within the contract's bound.
        s_list_t *lists[] = {&done, &doing, &blocked};
        for (size_t l = 0; l < 3; l++) {
            qsort(lists[l]->rows, lists[l]->n, sizeof(vz_gh_item_t), s_cmp_item);
            if (lists[l]->n > VZ_GH_ROWS_MAX)
                lists[l]->n = VZ_GH_ROWS_MAX;
        }
        vz_gh_roadmap_reply_t out = {.weeks = q.weeks,
                                     .completed = done.rows,
                                     .ncompleted = done.n,
                                     .in_progress = doing.rows,
                                     .nin_progress = doing.n,
                                     .blocked = blocked.rows,
                                     .nblocked = blocked.n,
                                     .velocity = vel,
                                     .nvelocity = (size_t)q.weeks};
        vz_json_writer_t *w = vz_json_writer_new(GH_REPLY_MAX);
        vz_gh_roadmap_reply_write(w, &out);
        s_writer_reply(reply, w);
    }
    free(done.rows);
    free(doing.rows);
    free(blocked.rows);
    return rc;
}

// --------------------------------------------------------------------------
//  issue_state

int gh_h_issue_state(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    gh_t *self = app;
    if (!s_may_read(self, req, reply))
        return 0;
    vz_gh_issue_state_req_t q;
    const char *why = NULL;
    if (vz_gh_issue_state_req_decode(req->body, req->body_len, &q, &why) < 0)
        return vz_authctx_reply_error(reply, 0, VZ_ERR_INVALID, why);
    char key[VZ_GH_FULL_MAX + 48];
    snprintf(key, sizeof key, GH_PREFIX "item:%s/%s:%" PRId64, q.owner, q.repo, q.number);
    const char *argv[] = {"HMGET",  key,     "kind", "state",     "state_reason",
                          "merged", "title", "url",  "updated_at"};
    redisReply *r = vz_redis_command(self->redis, 9, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 7) {
        if (r)
            freeReplyObject(r);
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "github state unavailable");
    }
    if (r->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return vz_authctx_reply_error(reply, 404, VZ_AUTHCTX_ERR_NOT_FOUND,
                                      "no such issue or pull request seen");
    }
    vz_gh_issue_state_reply_t out = {.number = q.number};
    snprintf(out.repo, sizeof out.repo, "%s/%s", q.owner, q.repo);
    vz_strlcpy(out.kind, s_s(r->element[0]), sizeof out.kind);
    vz_strlcpy(out.state, s_s(r->element[1]), sizeof out.state);
    vz_strlcpy(out.state_reason, s_s(r->element[2]), sizeof out.state_reason);
    out.merged = strcmp(s_s(r->element[3]), "1") == 0;
    vz_strlcpy(out.title, s_s(r->element[4]), sizeof out.title);
    vz_strlcpy(out.url, s_s(r->element[5]), sizeof out.url);
    out.updated_at = s_i(r->element[6]);
    freeReplyObject(r);
    vz_json_writer_t *w = vz_json_writer_new(GH_REPLY_MAX);
    vz_gh_issue_state_reply_write(w, &out);
    s_writer_reply(reply, w);
    return 0;
}
