/*  gh_sync - the App client's work: start, backfill on installation, redelivery reconciliation
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Backfill: the apply script queues {method "backfill", body <installation
 *  id>} in {github}:jobs when an installation is created; this consumer
 *  (vz_stream, group "jobs") reads, as that installation, its repositories
 *  (GET /installation/repositories), then for each the open issues and pull
 *  requests (GET /repos/{o}/{r}/issues?state=open) and the milestones (GET
 *  /repos/{o}/{r}/milestones?state=all), every page through Link, and
 *  stores each through gh_event's writes and the apply script, as if a
 *  webhook had brought it: its updated_at guard keeps newer webhook state.
 *
 *  Reconciliation: GitHub does not redeliver a failed delivery by itself.
 *  One replica at a time ({github}:reconcile:lock) lists the App's recent
 *  deliveries (GET /app/hook/deliveries, newest first, If-None-Match with
 *  the first page's ETag: an unchanged list costs nothing) and, for each
 *  one that failed (status_code not 2xx) within the lookback, was never
 *  queued here (no {github}:seen:<guid>) and was not asked for before
 *  ({github}:redeliver:<guid>, SET NX), asks for it again (POST
 *  /app/hook/deliveries/{id}/attempts).
 */
#include "gh_app.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_clock.h"
#include "vz_json.h"
#include "vz_log.h"
#include "vz_proto.h"

#define RECONCILE_PAGES 10          //  pages of deliveries read per run
#define RECONCILE_LOOKBACK_S 259200 //  GitHub keeps deliveries redeliverable 3 days
#define REPOS_MAX 1000              //  repositories of one installation backfilled

// --------------------------------------------------------------------------
//  Writes as if a webhook had brought them

//  Apply the writes of a synthetic delivery (event, body) under key.
static int s_store(gh_t *self, const char *event, const char *body, size_t len, const char *key)
{
    gh_event_t *ev = calloc(1, sizeof *ev);
    if (!ev || gh_event_read(event, body, len, ev) < 0) {
        free(ev);
        return -EINVAL;
    }
    gh_ops_t ops = {0};
    gh_event_ops(ev, body, len, &ops);
    free(ev);
    char applied[256];
    snprintf(applied, sizeof applied, GH_PREFIX "applied:%s", key);
    const char *keys[] = {applied, GH_JOBS, GH_PREFIX "counts"};
    const char **args = calloc(4 + ops.n, sizeof *args);
    redisReply *r = NULL;
    if (args) {
        args[0] = "jobs";
        args[1] = "0-0"; //  nothing of the jobs stream to acknowledge
        args[2] = self->ttl;
        args[3] = "backfill";
        for (size_t i = 0; i < ops.n; i++)
            args[4 + i] = ops.argv[i];
        r = vz_redis_eval(self->redis, self->apply, 3, keys, (int)(4 + ops.n), args);
    }
    free(args);
    gh_ops_free(&ops);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    return rc;
}

//  {"repository": {"full_name": repo}, "installation": {"id": n}, <member>: value}
static char *s_wrap(const char *repo, int64_t installation, const char *member,
                    const vz_json_value_t *value, size_t *len)
{
    vz_json_writer_t *w = vz_json_writer_new(1 << 20);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "action", "backfill");
    vz_json_write_key(w, "repository");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "full_name", repo);
    vz_json_write_object_end(w);
    vz_json_write_key(w, "installation");
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "id", installation);
    vz_json_write_object_end(w);
    vz_json_write_key(w, member);
    vz_json_write_value(w, value);
    vz_json_write_object_end(w);
    char *body = vz_json_writer_take(w, len);
    vz_json_writer_destroy(&w);
    return body;
}

// --------------------------------------------------------------------------
//  Backfill

typedef enum { STEP_REPOS, STEP_ISSUES, STEP_MILESTONES } s_step_t;

typedef struct {
    gh_t *owner;
    char entry[64]; //  the jobs entry
    int64_t installation;
    s_step_t step;
    char (*repos)[VZ_GH_FULL_MAX];
    size_t nrepos, at; //  repositories read, the one being read
    size_t stored;     //  items and milestones stored
} s_backfill_t;

static void s_backfill_next(s_backfill_t *job, const char *url);

static void s_backfill_end(s_backfill_t *job, bool ok)
{
    gh_t *self = job->owner;
    if (self->jobs) {
        if (ok)
            (void)vz_stream_ack(self->jobs, job->entry);
        else
            vz_stream_retry_later(self->jobs, vz_clock_mono_ms());
    }
    char inst[24], stored[24];
    snprintf(inst, sizeof inst, "%" PRId64, job->installation);
    snprintf(stored, sizeof stored, "%zu", job->stored);
    if (ok)
        vz_info(NULL, "installation backfilled", "installation", inst, "stored", stored);
    else
        vz_warn(NULL, "installation backfill failed, will retry", "installation", inst);
    free(job->repos);
    free(job);
}

static void s_backfill_page(void *arg, const gh_client_result_t *r)
{
    s_backfill_t *job = arg;
    gh_t *self = job->owner;
    vz_json_t *doc = r->ok ? vz_json_parse(r->body, r->body_len, NULL, NULL) : NULL;
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    if (!doc) {
        s_backfill_end(job, false);
        return;
    }
    const vz_json_value_t *rows =
        job->step == STEP_REPOS ? vz_json_get(root, "repositories") : root;
    bool failed = false;
    for (size_t i = 0; i < vz_json_size(rows) && !failed; i++) {
        const vz_json_value_t *row = vz_json_at(rows, i);
        if (job->step == STEP_REPOS) {
            const char *full = vz_json_get_string(row, "full_name", NULL);
            if (vz_gh_full_name_valid(full) && job->nrepos < REPOS_MAX) {
                void *more = realloc(job->repos, (job->nrepos + 1) * sizeof *job->repos);
                if (!more) {
                    failed = true;
                    break;
                }
                job->repos = more;
                vz_strlcpy(job->repos[job->nrepos++], full, VZ_GH_FULL_MAX);
            }
            continue;
        }
        const char *repo = job->repos[job->at];
        const char *event = job->step == STEP_ISSUES ? "issues" : "milestone";
        size_t len = 0;
        char *body = s_wrap(repo, job->installation,
                            job->step == STEP_ISSUES ? "issue" : "milestone", row, &len);
        char key[VZ_GH_FULL_MAX + 96];
        snprintf(key, sizeof key, "backfill:%s:%s:%s:%zu", job->entry, repo, event, job->stored);
        failed = !body || s_store(self, event, body, len, key) < 0;
        job->stored += failed ? 0 : 1;
        free(body);
    }
    vz_json_destroy(&doc);
    if (failed) {
        s_backfill_end(job, false);
        return;
    }
    if (r->next) {
        s_backfill_next(job, r->next);
        return;
    }
    //  The next list: issues of the next repository, then its milestones.
    if (job->step == STEP_REPOS) {
        job->step = STEP_ISSUES;
        job->at = 0;
    } else if (job->step == STEP_ISSUES)
        job->step = STEP_MILESTONES;
    else {
        job->step = STEP_ISSUES;
        job->at++;
    }
    if (job->at >= job->nrepos) {
        s_backfill_end(job, true);
        return;
    }
    s_backfill_next(job, NULL);
}

static void s_backfill_next(s_backfill_t *job, const char *url)
{
    char path[VZ_GH_FULL_MAX + 96];
    if (!url) {
        if (job->step == STEP_REPOS)
            snprintf(path, sizeof path, "/installation/repositories?per_page=100");
        else if (job->step == STEP_ISSUES)
            snprintf(path, sizeof path, "/repos/%s/issues?state=open&per_page=100",
                     job->repos[job->at]);
        else
            snprintf(path, sizeof path, "/repos/%s/milestones?state=all&per_page=100",
                     job->repos[job->at]);
        url = path;
    }
    if (gh_client_call(job->owner->client, "GET", url, job->installation, NULL, NULL,
                       s_backfill_page, job) < 0)
        s_backfill_end(job, false);
}

static vz_stream_verdict_t s_job(void *arg, const vz_stream_entry_t *e)
{
    gh_t *self = arg;
    const char *method = vz_stream_field(e, "method", NULL);
    const char *body = vz_stream_field(e, "body", NULL);
    int64_t installation = body ? strtoll(body, NULL, 10) : 0;
    if (!method || strcmp(method, "backfill") != 0 || installation <= 0)
        return VZ_STREAM_ACK;
    //  Without credentials the job waits (acknowledged: nothing can run it).
    if (!gh_client_configured(self->client)) {
        vz_warn(NULL, "installation not backfilled: the App is not configured", "setting",
                gh_client_missing(self->client));
        return VZ_STREAM_ACK;
    }
    s_backfill_t *job = calloc(1, sizeof *job);
    if (!job)
        return VZ_STREAM_RETRY;
    job->owner = self;
    job->installation = installation;
    snprintf(job->entry, sizeof job->entry, "%s", e->id);
    s_backfill_next(job, NULL);
    return VZ_STREAM_LATER;
}

// --------------------------------------------------------------------------
//  Reconciliation

typedef struct {
    gh_t *owner;
    int page;
    bool first;
} s_recon_t;

static void s_recon_fetch(s_recon_t *run, const char *url);

static void s_redelivered(void *arg, const gh_client_result_t *r)
{
    gh_t *self = arg;
    if (self->metrics)
        vz_series_inc(vz_metrics_counter(self->metrics, "vz_github_redeliveries",
                                         "Redeliveries asked of GitHub, by result",
                                         r->ok ? "result=asked" : "result=failed"));
}

//  Did this service ever queue delivery guid?
static bool s_seen(gh_t *self, const char *guid)
{
    char key[160];
    snprintf(key, sizeof key, GH_PREFIX "seen:%s", guid);
    const char *argv[] = {"EXISTS", key};
    redisReply *r = vz_redis_command(self->redis, 2, argv, NULL);
    bool seen = !r || (r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    if (r)
        freeReplyObject(r);
    return seen; //  Redis away: do not ask (the next run will)
}

static bool s_claim(gh_t *self, const char *guid)
{
    char key[160];
    snprintf(key, sizeof key, GH_PREFIX "redeliver:%s", guid);
    const char *argv[] = {"SET", key, "1", "NX", "EX", "259200"};
    redisReply *r = vz_redis_command(self->redis, 6, argv, NULL);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

static void s_recon_page(void *arg, const gh_client_result_t *r)
{
    s_recon_t *run = arg;
    gh_t *self = run->owner;
    if (r->ok && run->first && r->etag) {
        if (r->not_modified) {
            self->reconciling = false;
            free(run);
            return;
        }
        vz_strlcpy(self->deliveries_etag, r->etag, sizeof self->deliveries_etag);
    }
    vz_json_t *doc = r->ok ? vz_json_parse(r->body, r->body_len, NULL, NULL) : NULL;
    const vz_json_value_t *rows = doc ? vz_json_root(doc) : NULL;
    int64_t oldest = vz_clock_now_ms() / 1000 - RECONCILE_LOOKBACK_S;
    bool older = false;
    for (size_t i = 0; i < vz_json_size(rows); i++) {
        const vz_json_value_t *d = vz_json_at(rows, i);
        const char *guid = vz_json_get_string(d, "guid", NULL);
        const char *at = vz_json_get_string(d, "delivered_at", NULL);
        int64_t id = 0, status = 0, t = 0;
        bool redelivery = false;
        (void)vz_json_int(vz_json_get(d, "id"), &id);
        (void)vz_json_int(vz_json_get(d, "status_code"), &status);
        (void)vz_json_bool(vz_json_get(d, "redelivery"), &redelivery);
        if (at && vz_clock_parse_utc(at, &t) == 0 && t / 1000000 < oldest) {
            older = true;
            continue;
        }
        if (!guid || id <= 0 || (status >= 200 && status < 300) || s_seen(self, guid) ||
            !s_claim(self, guid))
            continue;
        char path[96];
        snprintf(path, sizeof path, "/app/hook/deliveries/%" PRId64 "/attempts", id);
        vz_info(NULL, "asking GitHub to redeliver a failed delivery", "delivery", guid);
        (void)gh_client_call(self->client, "POST", path, 0, NULL, NULL, s_redelivered, self);
    }
    vz_json_destroy(&doc);
    run->first = false;
    if (r->ok && r->next && !older && ++run->page < RECONCILE_PAGES) {
        s_recon_fetch(run, r->next);
        return;
    }
    self->reconciling = false;
    free(run);
}

static void s_recon_fetch(s_recon_t *run, const char *url)
{
    gh_t *self = run->owner;
    const char *etag = run->first && self->deliveries_etag[0] ? self->deliveries_etag : NULL;
    if (gh_client_call(self->client, "GET", url, 0, NULL, etag, s_recon_page, run) < 0) {
        self->reconciling = false;
        free(run);
    }
}

int gh_reconcile(gh_t *self)
{
    if (!gh_client_configured(self->client))
        return -ENOKEY;
    if (self->reconciling)
        return -EBUSY;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d",
             self->config.reconcile_ms > 0 ? self->config.reconcile_ms : 60000);
    const char *argv[] = {"SET", GH_PREFIX "reconcile:lock", "1", "NX", "PX", ttl};
    redisReply *r = vz_redis_command(self->redis, 6, argv, NULL);
    bool mine = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!mine)
        return -EAGAIN;
    s_recon_t *run = calloc(1, sizeof *run);
    if (!run)
        return -ENOMEM;
    run->owner = self;
    run->first = true;
    self->reconciling = true;
    s_recon_fetch(run, "/app/hook/deliveries?per_page=100");
    return 0;
}

// --------------------------------------------------------------------------
//  Start and stop

int gh_client_start(gh_t *self, zloop_t *loop, char *err, size_t errlen)
{
    gh_client_config_t c = {.base_url = self->config.api_base,
                            .app_id = self->config.app_id,
                            .key_file = self->config.private_key_file,
                            .user_agent = self->config.user_agent,
                            .budget_ms = self->config.api_budget_ms};
    self->client = gh_client_new(loop, &self->config.http, &c, self->metrics, err, errlen);
    if (!self->client)
        return -1;
    if (gh_client_warning(self->client))
        vz_warn(NULL, gh_client_warning(self->client), "setting", "VZ_HTTP_INSECURE");
    const char *missing = gh_client_missing(self->client);
    if (missing)
        snprintf(self->missing, sizeof self->missing,
                 "set %s to call GitHub as the App", missing);
    vz_info(NULL, "GitHub App client", "base_url", self->config.api_base, "configured",
            missing ? "no" : "yes", "missing", missing ? missing : "");
    vz_stream_config_t sc = {.stream = GH_JOBS,
                             .group = "jobs",
                             .consumer = self->consumer,
                             .count = 1,
                             .retry_ms = 30000,
                             .max_deliveries = 20};
    self->jobs = vz_stream_new(self->redis, &sc, s_job, self);
    if (!self->jobs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void gh_client_stop(void *arg)
{
    gh_t *self = arg;
    gh_client_destroy(&self->client);
}

int gh_h_reconcile(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    gh_t *self = app;
    vz_authctx_t who;
    vz_authctx_read(req, &who);
    if (!vz_authctx_scope_has(who.scope, "admin"))
        return vz_authctx_reply_error(reply, 403, VZ_AUTHCTX_ERR_DENIED, "missing scope: admin");
    int rc = gh_reconcile(self);
    if (rc == -ENOKEY)
        return vz_authctx_reply_error(reply, 503, GH_ERR_NOT_CONFIGURED, self->missing);
    if (rc == -EIO || rc == -ENOMEM)
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "reconciliation unavailable");
    const char *body = rc == 0 ? "{\"started\":true}" : "{\"started\":false}";
    return vz_reply_body(reply, body, strlen(body));
}
