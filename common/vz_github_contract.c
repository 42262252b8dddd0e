/*  vz_github_contract - the methods of "github": repos, insights, roadmap, issue_state
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_github_contract.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

static bool s_name_valid(const char *text, size_t max)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)text[i]) || text[i] == '_' || text[i] == '.' ||
              text[i] == '-'))
            return false;
    return true;
}

bool vz_gh_owner_valid(const char *owner)
{
    return s_name_valid(owner, VZ_GH_OWNER_MAX - 1);
}

bool vz_gh_repo_name_valid(const char *repo)
{
    return s_name_valid(repo, VZ_GH_REPO_NAME_MAX - 1) && strcmp(repo, ".") != 0 &&
           strcmp(repo, "..") != 0;
}

bool vz_gh_full_name_valid(const char *full)
{
    const char *slash = full ? strchr(full, '/') : NULL;
    if (!slash || (size_t)(slash - full) >= VZ_GH_OWNER_MAX)
        return false;
    char owner[VZ_GH_OWNER_MAX];
    memcpy(owner, full, (size_t)(slash - full));
    owner[slash - full] = '\0';
    return vz_gh_owner_valid(owner) && vz_gh_repo_name_valid(slash + 1);
}

int vz_gh_weeks_parse(const char *text, int *weeks)
{
    assert(weeks);
    *weeks = VZ_GH_WEEKS_DEFAULT;
    if (!text || !*text)
        return 0;
    char *end = NULL;
    long n = strtol(text, &end, 10);
    if (*end || !isdigit((unsigned char)text[0]) || n < 1 || n > VZ_GH_WEEKS_MAX)
        return VZ_EMALFORMED;
    *weeks = (int)n;
    return 0;
}

// --------------------------------------------------------------------------
//  Decoding helpers: each returns 0 or -1 with *why set.

//  A string member into dst (size n); optional ones may be absent or null.
static int s_str(const vz_json_value_t *o, const char *key, char *dst, size_t n, bool optional,
                 const char **why, const char *what)
{
    const vz_json_value_t *v = vz_json_get(o, key);
    dst[0] = '\0';
    if (optional && vz_json_type(v) == VZ_JSON_NULL)
        return 0;
    size_t len = 0;
    const char *s = vz_json_string(v, &len);
    if (!s || len >= n || memchr(s, '\0', len))
        return *why = what, -1;
    memcpy(dst, s, len + 1);
    return 0;
}

static int s_int(const vz_json_value_t *o, const char *key, int64_t *out, const char **why,
                 const char *what)
{
    if (vz_json_int(vz_json_get(o, key), out) < 0 || *out < 0)
        return *why = what, -1;
    return 0;
}

//  An array member of at most max rows: its size, or -1.
static long s_array(const vz_json_value_t *o, const char *key, size_t max, const char **why,
                    const char *what)
{
    const vz_json_value_t *v = vz_json_get(o, key);
    if (vz_json_type(v) != VZ_JSON_ARRAY || vz_json_size(v) > max)
        return *why = what, -1;
    return (long)vz_json_size(v);
}

static void *s_rows(size_t count, size_t size)
{
    void *rows = calloc(count ? count : 1, size);
    assert(rows);
    return rows;
}

//  Parse body as one JSON object: the document, or NULL with *why.
static vz_json_t *s_parse(const void *body, size_t len, const char **why)
{
    vz_json_t *doc = body && len ? vz_json_parse(body, len, NULL, NULL) : NULL;
    if (!doc || vz_json_type(vz_json_root(doc)) != VZ_JSON_OBJECT) {
        vz_json_destroy(&doc);
        *why = "not a JSON object";
    }
    return doc;
}

static int s_fail(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return VZ_EMALFORMED;
}

//  Fills a reply from a parsed root: 0, or -1 with *why.
typedef int(s_fill_fn)(const vz_json_value_t *root, void *reply, const char **why);

//  Parse body and fill reply with fill: 0, or -1 with *why.
static int s_decode(const void *body, size_t len, s_fill_fn *fill, void *reply, const char **why)
{
    vz_json_t *doc = s_parse(body, len, why);
    int rc = doc ? fill(vz_json_root(doc), reply, why) : -1;
    vz_json_destroy(&doc);
    return rc;
}

//  weeks member: absent = default, else 1..max.
static int s_weeks(const vz_json_value_t *o, int *weeks, const char **why)
{
    int64_t n = VZ_GH_WEEKS_DEFAULT;
    const vz_json_value_t *v = vz_json_get(o, VZ_GH_F_WEEKS);
    if (v && (vz_json_int(v, &n) < 0 || n < 1 || n > VZ_GH_WEEKS_MAX))
        return *why = "weeks: expected 1..52", -1;
    *weeks = (int)n;
    return 0;
}

static int s_owner_repo(const vz_json_value_t *o, char *owner, char *repo, const char **why)
{
    if (s_str(o, VZ_GH_F_OWNER, owner, VZ_GH_OWNER_MAX, false, why, "owner: expected a login") <
            0 ||
        !vz_gh_owner_valid(owner))
        return *why = "owner: expected a login", -1;
    if (s_str(o, VZ_GH_F_REPO, repo, VZ_GH_REPO_NAME_MAX, false, why, "repo: expected a name") <
            0 ||
        !vz_gh_repo_name_valid(repo))
        return *why = "repo: expected a repository name", -1;
    return 0;
}

// --------------------------------------------------------------------------
//  Requests

static char *s_take(vz_json_writer_t *w, size_t *len_p)
{
    char *body = vz_json_writer_take(w, len_p);
    vz_json_writer_destroy(&w);
    return body;
}

char *vz_gh_insights_req_encode(const vz_gh_insights_req_t *req, size_t *len_p)
{
    assert(req);
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, VZ_GH_F_OWNER, req->owner);
    vz_json_write_kv_string(w, VZ_GH_F_REPO, req->repo);
    vz_json_write_kv_int(w, VZ_GH_F_WEEKS, req->weeks ? req->weeks : VZ_GH_WEEKS_DEFAULT);
    vz_json_write_object_end(w);
    return s_take(w, len_p);
}

char *vz_gh_roadmap_req_encode(const vz_gh_roadmap_req_t *req, size_t *len_p)
{
    assert(req);
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    if (req->repo[0])
        vz_json_write_kv_string(w, VZ_GH_F_REPO, req->repo);
    vz_json_write_kv_int(w, VZ_GH_F_WEEKS, req->weeks ? req->weeks : VZ_GH_WEEKS_DEFAULT);
    vz_json_write_object_end(w);
    return s_take(w, len_p);
}

char *vz_gh_issue_state_req_encode(const vz_gh_issue_state_req_t *req, size_t *len_p)
{
    assert(req);
    vz_json_writer_t *w = vz_json_writer_new(4096);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, VZ_GH_F_OWNER, req->owner);
    vz_json_write_kv_string(w, VZ_GH_F_REPO, req->repo);
    vz_json_write_kv_int(w, VZ_GH_F_NUMBER, req->number);
    vz_json_write_object_end(w);
    return s_take(w, len_p);
}

int vz_gh_insights_req_decode(const void *body, size_t len, vz_gh_insights_req_t *req,
                              const char **reason)
{
    assert(req);
    memset(req, 0, sizeof *req);
    const char *why = NULL;
    vz_json_t *doc = s_parse(body, len, &why);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    if (doc && s_owner_repo(root, req->owner, req->repo, &why) == 0)
        (void)s_weeks(root, &req->weeks, &why);
    vz_json_destroy(&doc);
    if (why) {
        memset(req, 0, sizeof *req);
        return s_fail(reason, why);
    }
    return 0;
}

int vz_gh_roadmap_req_decode(const void *body, size_t len, vz_gh_roadmap_req_t *req,
                             const char **reason)
{
    assert(req);
    memset(req, 0, sizeof *req);
    req->weeks = VZ_GH_WEEKS_DEFAULT;
    //  No body at all asks for every repository over the default weeks.
    if (len == 0)
        return 0;
    const char *why = NULL;
    vz_json_t *doc = s_parse(body, len, &why);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    if (doc && s_str(root, VZ_GH_F_REPO, req->repo, sizeof req->repo, true, &why,
                     "repo: expected owner/name") == 0) {
        if (req->repo[0] && !vz_gh_full_name_valid(req->repo))
            why = "repo: expected owner/name";
        else
            (void)s_weeks(root, &req->weeks, &why);
    }
    vz_json_destroy(&doc);
    if (why) {
        memset(req, 0, sizeof *req);
        return s_fail(reason, why);
    }
    return 0;
}

int vz_gh_issue_state_req_decode(const void *body, size_t len, vz_gh_issue_state_req_t *req,
                                 const char **reason)
{
    assert(req);
    memset(req, 0, sizeof *req);
    const char *why = NULL;
    vz_json_t *doc = s_parse(body, len, &why);
    const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
    if (doc && s_owner_repo(root, req->owner, req->repo, &why) == 0 &&
        (vz_json_int(vz_json_get(root, VZ_GH_F_NUMBER), &req->number) < 0 || req->number < 1))
        why = "number: expected an issue number";
    vz_json_destroy(&doc);
    if (why) {
        memset(req, 0, sizeof *req);
        return s_fail(reason, why);
    }
    return 0;
}

int vz_gh_issue_url_parse(const char *url, vz_gh_issue_state_req_t *req)
{
    assert(req);
    memset(req, 0, sizeof *req);
    static const char host[] = "https://github.com/";
    if (!url || strncmp(url, host, sizeof host - 1) != 0)
        return VZ_EMALFORMED;
    //  owner / repo / issues|pull / number, each part up to the next '/'.
    const char *p = url + sizeof host - 1;
    char parts[3][VZ_GH_REPO_NAME_MAX];
    for (int i = 0; i < 3; i++) {
        size_t n = strcspn(p, "/");
        if (n == 0 || n >= sizeof parts[i] || p[n] != '/')
            return VZ_EMALFORMED;
        memcpy(parts[i], p, n);
        parts[i][n] = '\0';
        p += n + 1;
    }
    char *end = NULL;
    long long number = isdigit((unsigned char)*p) ? strtoll(p, &end, 10) : 0;
    if (number < 1 || (end && *end && !strchr("/?#", *end)) ||
        (strcmp(parts[2], "issues") != 0 && strcmp(parts[2], "pull") != 0) ||
        !vz_gh_owner_valid(parts[0]) || !vz_gh_repo_name_valid(parts[1])) {
        memset(req, 0, sizeof *req);
        return VZ_EMALFORMED;
    }
    vz_strlcpy(req->owner, parts[0], sizeof req->owner);
    vz_strlcpy(req->repo, parts[1], sizeof req->repo);
    req->number = number;
    return 0;
}

// --------------------------------------------------------------------------
//  Reply writers

static void s_write_weeks(vz_json_writer_t *w, const vz_gh_week_t *rows, size_t n)
{
    vz_json_write_key(w, VZ_GH_F_VELOCITY);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, VZ_GH_F_WEEK, rows[i].week);
        vz_json_write_kv_int(w, VZ_GH_F_ISSUES_CLOSED, rows[i].issues_closed);
        vz_json_write_kv_int(w, VZ_GH_F_PULLS_MERGED, rows[i].pulls_merged);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
}

void vz_gh_repos_reply_write(vz_json_writer_t *w, const vz_gh_repos_reply_t *reply)
{
    assert(w && reply);
    vz_json_write_object_begin(w);
    vz_json_write_kv_bool(w, VZ_GH_F_CONFIGURED, reply->configured);
    vz_json_write_key(w, VZ_GH_F_REPOS);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < reply->nrepos; i++) {
        const vz_gh_repo_t *r = &reply->repos[i];
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, VZ_GH_F_FULL_NAME, r->full_name);
        vz_json_write_kv_int(w, VZ_GH_F_INSTALLATION, r->installation_id);
        vz_json_write_kv_int(w, VZ_GH_F_OPEN_ISSUES, r->open_issues);
        vz_json_write_kv_int(w, VZ_GH_F_OPEN_PULLS, r->open_pulls);
        vz_json_write_kv_int(w, VZ_GH_F_UPDATED_AT, r->updated_at);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
}

void vz_gh_insights_reply_write(vz_json_writer_t *w, const vz_gh_insights_reply_t *r)
{
    assert(w && r);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, VZ_GH_F_REPO, r->repo);
    vz_json_write_kv_int(w, VZ_GH_F_WEEKS, r->weeks);
    vz_json_write_key(w, VZ_GH_F_ISSUES);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, VZ_GH_F_OPEN, r->issues_open);
    vz_json_write_kv_int(w, VZ_GH_F_CLOSED, r->issues_closed);
    vz_json_write_object_end(w);
    vz_json_write_key(w, VZ_GH_F_PULLS);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, VZ_GH_F_OPEN, r->pulls_open);
    vz_json_write_kv_int(w, VZ_GH_F_CLOSED, r->pulls_closed);
    vz_json_write_kv_int(w, VZ_GH_F_MERGED, r->pulls_merged);
    vz_json_write_object_end(w);
    vz_json_write_key(w, VZ_GH_F_MILESTONES);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < r->nmilestones; i++) {
        const vz_gh_milestone_t *m = &r->milestones[i];
        vz_json_write_object_begin(w);
        vz_json_write_kv_int(w, VZ_GH_F_NUMBER, m->number);
        vz_json_write_kv_string(w, VZ_GH_F_TITLE, m->title);
        vz_json_write_kv_string(w, VZ_GH_F_STATE, m->state);
        vz_json_write_kv_int(w, VZ_GH_F_OPEN_ISSUES, m->open_issues);
        vz_json_write_kv_int(w, VZ_GH_F_CLOSED_ISSUES, m->closed_issues);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_key(w, VZ_GH_F_DEPLOYMENTS);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, VZ_GH_F_TOTAL, r->deploy_total);
    vz_json_write_kv_int(w, VZ_GH_F_SUCCESS, r->deploy_success);
    vz_json_write_kv_int(w, VZ_GH_F_FAILURE, r->deploy_failure);
    vz_json_write_kv_int(w, VZ_GH_F_ERROR, r->deploy_error);
    vz_json_write_kv_int(w, VZ_GH_F_PENDING, r->deploy_pending);
    vz_json_write_key(w, VZ_GH_F_ENVIRONMENTS);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < r->nenvironments; i++) {
        const vz_gh_environment_t *e = &r->environments[i];
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, VZ_GH_F_NAME, e->name);
        vz_json_write_kv_int(w, VZ_GH_F_TOTAL, e->total);
        vz_json_write_kv_int(w, VZ_GH_F_SUCCESS, e->success);
        vz_json_write_kv_int(w, VZ_GH_F_FAILURE, e->failure);
        vz_json_write_kv_string(w, VZ_GH_F_LAST_STATE, e->last_state);
        vz_json_write_kv_int(w, VZ_GH_F_LAST_AT, e->last_at);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    vz_json_write_key(w, VZ_GH_F_CI);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < r->nci; i++) {
        const vz_gh_workflow_t *c = &r->ci[i];
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, VZ_GH_F_WORKFLOW, c->workflow);
        vz_json_write_kv_int(w, VZ_GH_F_RUNS, c->runs);
        vz_json_write_kv_int(w, VZ_GH_F_SUCCESS, c->success);
        vz_json_write_kv_int(w, VZ_GH_F_FAILURE, c->failure);
        vz_json_write_key(w, VZ_GH_F_PASS_RATE);
        vz_json_write_double(w, c->pass_rate);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    s_write_weeks(w, r->velocity, r->nvelocity);
    vz_json_write_object_end(w);
}

static void s_write_items(vz_json_writer_t *w, const char *key, const vz_gh_item_t *rows, size_t n)
{
    vz_json_write_key(w, key);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        const vz_gh_item_t *it = &rows[i];
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, VZ_GH_F_REPO, it->repo);
        vz_json_write_kv_int(w, VZ_GH_F_NUMBER, it->number);
        vz_json_write_kv_string(w, VZ_GH_F_KIND, it->kind);
        vz_json_write_kv_string(w, VZ_GH_F_TITLE, it->title);
        vz_json_write_kv_string(w, VZ_GH_F_STATE, it->state);
        vz_json_write_kv_string(w, VZ_GH_F_URL, it->url);
        vz_json_write_kv_string(w, VZ_GH_F_MILESTONE, it->milestone);
        vz_json_write_kv_int(w, VZ_GH_F_UPDATED_AT, it->updated_at);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
}

void vz_gh_roadmap_reply_write(vz_json_writer_t *w, const vz_gh_roadmap_reply_t *r)
{
    assert(w && r);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, VZ_GH_F_WEEKS, r->weeks);
    s_write_items(w, VZ_GH_F_COMPLETED, r->completed, r->ncompleted);
    s_write_items(w, VZ_GH_F_IN_PROGRESS, r->in_progress, r->nin_progress);
    s_write_items(w, VZ_GH_F_BLOCKED, r->blocked, r->nblocked);
    s_write_weeks(w, r->velocity, r->nvelocity);
    vz_json_write_object_end(w);
}

void vz_gh_issue_state_reply_write(vz_json_writer_t *w, const vz_gh_issue_state_reply_t *r)
{
    assert(w && r);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, VZ_GH_F_REPO, r->repo);
    vz_json_write_kv_int(w, VZ_GH_F_NUMBER, r->number);
    vz_json_write_kv_string(w, VZ_GH_F_KIND, r->kind);
    vz_json_write_kv_string(w, VZ_GH_F_STATE, r->state);
    vz_json_write_kv_string(w, VZ_GH_F_STATE_REASON, r->state_reason);
    vz_json_write_kv_bool(w, VZ_GH_F_MERGED, r->merged);
    vz_json_write_kv_string(w, VZ_GH_F_TITLE, r->title);
    vz_json_write_kv_string(w, VZ_GH_F_URL, r->url);
    vz_json_write_kv_int(w, VZ_GH_F_UPDATED_AT, r->updated_at);
    vz_json_write_object_end(w);
}

// --------------------------------------------------------------------------
//  Reply decoders

void vz_gh_repos_reply_destroy(vz_gh_repos_reply_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        free((*self_p)->repos);
        free(*self_p);
        *self_p = NULL;
    }
}

void vz_gh_insights_reply_destroy(vz_gh_insights_reply_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        free((*self_p)->milestones);
        free((*self_p)->environments);
        free((*self_p)->ci);
        free((*self_p)->velocity);
        free(*self_p);
        *self_p = NULL;
    }
}

void vz_gh_roadmap_reply_destroy(vz_gh_roadmap_reply_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        free((*self_p)->completed);
        free((*self_p)->in_progress);
        free((*self_p)->blocked);
        free((*self_p)->velocity);
        free(*self_p);
        *self_p = NULL;
    }
}

static int s_repos(const vz_json_value_t *root, void *reply, const char **why)
{
    vz_gh_repos_reply_t *r = reply;
    if (vz_json_bool(vz_json_get(root, VZ_GH_F_CONFIGURED), &r->configured) < 0)
        return *why = "configured: expected a boolean", -1;
    long n = s_array(root, VZ_GH_F_REPOS, VZ_GH_REPOS_MAX, why, "repos: expected an array");
    if (n < 0)
        return -1;
    const vz_json_value_t *rows = vz_json_get(root, VZ_GH_F_REPOS);
    r->repos = s_rows((size_t)n, sizeof *r->repos);
    for (long i = 0; i < n; i++, r->nrepos++) {
        const vz_json_value_t *o = vz_json_at(rows, (size_t)i);
        vz_gh_repo_t *repo = &r->repos[i];
        if (s_str(o, VZ_GH_F_FULL_NAME, repo->full_name, sizeof repo->full_name, false, why,
                  "repos: full_name invalid") < 0 ||
            !vz_gh_full_name_valid(repo->full_name))
            return *why = "repos: full_name invalid", -1;
        if (s_int(o, VZ_GH_F_INSTALLATION, &repo->installation_id, why, "repos: counts") < 0 ||
            s_int(o, VZ_GH_F_OPEN_ISSUES, &repo->open_issues, why, "repos: counts") < 0 ||
            s_int(o, VZ_GH_F_OPEN_PULLS, &repo->open_pulls, why, "repos: counts") < 0 ||
            s_int(o, VZ_GH_F_UPDATED_AT, &repo->updated_at, why, "repos: counts") < 0)
            return -1;
    }
    return 0;
}

int vz_gh_repos_reply_decode(const void *body, size_t len, vz_gh_repos_reply_t **reply_p,
                             const char **reason)
{
    assert(reply_p);
    const char *why = NULL;
    *reply_p = zmalloc(sizeof **reply_p);
    assert(*reply_p);
    if (s_decode(body, len, s_repos, *reply_p, &why) == 0)
        return 0;
    vz_gh_repos_reply_destroy(reply_p);
    return s_fail(reason, why);
}

static int s_velocity(const vz_json_value_t *root, vz_gh_week_t **rows_p, size_t *n_p,
                      const char **why)
{
    long n = s_array(root, VZ_GH_F_VELOCITY, VZ_GH_WEEKS_MAX, why, "velocity: expected rows");
    if (n < 0)
        return -1;
    const vz_json_value_t *rows = vz_json_get(root, VZ_GH_F_VELOCITY);
    *rows_p = s_rows((size_t)n, sizeof **rows_p);
    for (long i = 0; i < n; i++, (*n_p)++) {
        const vz_json_value_t *o = vz_json_at(rows, (size_t)i);
        vz_gh_week_t *wk = &(*rows_p)[i];
        if (s_str(o, VZ_GH_F_WEEK, wk->week, sizeof wk->week, false, why, "velocity: week") < 0 ||
            s_int(o, VZ_GH_F_ISSUES_CLOSED, &wk->issues_closed, why, "velocity: counts") < 0 ||
            s_int(o, VZ_GH_F_PULLS_MERGED, &wk->pulls_merged, why, "velocity: counts") < 0)
            return -1;
    }
    return 0;
}

static int s_insights(const vz_json_value_t *root, void *reply, const char **why)
{
    vz_gh_insights_reply_t *r = reply;
    int64_t weeks = 0;
    if (s_str(root, VZ_GH_F_REPO, r->repo, sizeof r->repo, false, why, "repo invalid") < 0 ||
        !vz_gh_full_name_valid(r->repo))
        return *why = "repo: expected owner/name", -1;
    if (s_int(root, VZ_GH_F_WEEKS, &weeks, why, "weeks invalid") < 0 || weeks < 1 ||
        weeks > VZ_GH_WEEKS_MAX)
        return *why = "weeks: expected 1..52", -1;
    r->weeks = (int)weeks;
    const vz_json_value_t *issues = vz_json_get(root, VZ_GH_F_ISSUES);
    const vz_json_value_t *pulls = vz_json_get(root, VZ_GH_F_PULLS);
    if (s_int(issues, VZ_GH_F_OPEN, &r->issues_open, why, "issues: counts") < 0 ||
        s_int(issues, VZ_GH_F_CLOSED, &r->issues_closed, why, "issues: counts") < 0 ||
        s_int(pulls, VZ_GH_F_OPEN, &r->pulls_open, why, "pulls: counts") < 0 ||
        s_int(pulls, VZ_GH_F_CLOSED, &r->pulls_closed, why, "pulls: counts") < 0 ||
        s_int(pulls, VZ_GH_F_MERGED, &r->pulls_merged, why, "pulls: counts") < 0)
        return -1;
    long n = s_array(root, VZ_GH_F_MILESTONES, VZ_GH_ROWS_MAX, why, "milestones: expected rows");
    if (n < 0)
        return -1;
    const vz_json_value_t *rows = vz_json_get(root, VZ_GH_F_MILESTONES);
    r->milestones = s_rows((size_t)n, sizeof *r->milestones);
    for (long i = 0; i < n; i++, r->nmilestones++) {
        const vz_json_value_t *o = vz_json_at(rows, (size_t)i);
        vz_gh_milestone_t *m = &r->milestones[i];
        if (s_int(o, VZ_GH_F_NUMBER, &m->number, why, "milestones: number") < 0 ||
            s_str(o, VZ_GH_F_TITLE, m->title, sizeof m->title, false, why, "milestones: title") <
                0 ||
            s_str(o, VZ_GH_F_STATE, m->state, sizeof m->state, false, why, "milestones: state") <
                0 ||
            s_int(o, VZ_GH_F_OPEN_ISSUES, &m->open_issues, why, "milestones: counts") < 0 ||
            s_int(o, VZ_GH_F_CLOSED_ISSUES, &m->closed_issues, why, "milestones: counts") < 0)
            return -1;
    }
    const vz_json_value_t *dep = vz_json_get(root, VZ_GH_F_DEPLOYMENTS);
    if (s_int(dep, VZ_GH_F_TOTAL, &r->deploy_total, why, "deployments: counts") < 0 ||
        s_int(dep, VZ_GH_F_SUCCESS, &r->deploy_success, why, "deployments: counts") < 0 ||
        s_int(dep, VZ_GH_F_FAILURE, &r->deploy_failure, why, "deployments: counts") < 0 ||
        s_int(dep, VZ_GH_F_ERROR, &r->deploy_error, why, "deployments: counts") < 0 ||
        s_int(dep, VZ_GH_F_PENDING, &r->deploy_pending, why, "deployments: counts") < 0)
        return -1;
    n = s_array(dep, VZ_GH_F_ENVIRONMENTS, VZ_GH_ROWS_MAX, why, "environments: expected rows");
    if (n < 0)
        return -1;
    rows = vz_json_get(dep, VZ_GH_F_ENVIRONMENTS);
    r->environments = s_rows((size_t)n, sizeof *r->environments);
    for (long i = 0; i < n; i++, r->nenvironments++) {
        const vz_json_value_t *o = vz_json_at(rows, (size_t)i);
        vz_gh_environment_t *e = &r->environments[i];
        if (s_str(o, VZ_GH_F_NAME, e->name, sizeof e->name, false, why, "environments: name") < 0 ||
            s_int(o, VZ_GH_F_TOTAL, &e->total, why, "environments: counts") < 0 ||
            s_int(o, VZ_GH_F_SUCCESS, &e->success, why, "environments: counts") < 0 ||
            s_int(o, VZ_GH_F_FAILURE, &e->failure, why, "environments: counts") < 0 ||
            s_str(o, VZ_GH_F_LAST_STATE, e->last_state, sizeof e->last_state, false, why,
                  "environments: last_state") < 0 ||
            s_int(o, VZ_GH_F_LAST_AT, &e->last_at, why, "environments: last_at") < 0)
            return -1;
    }
    n = s_array(root, VZ_GH_F_CI, VZ_GH_ROWS_MAX, why, "ci: expected rows");
    if (n < 0)
        return -1;
    rows = vz_json_get(root, VZ_GH_F_CI);
    r->ci = s_rows((size_t)n, sizeof *r->ci);
    for (long i = 0; i < n; i++, r->nci++) {
        const vz_json_value_t *o = vz_json_at(rows, (size_t)i);
        vz_gh_workflow_t *c = &r->ci[i];
        if (s_str(o, VZ_GH_F_WORKFLOW, c->workflow, sizeof c->workflow, false, why,
                  "ci: workflow") < 0 ||
            s_int(o, VZ_GH_F_RUNS, &c->runs, why, "ci: counts") < 0 ||
            s_int(o, VZ_GH_F_SUCCESS, &c->success, why, "ci: counts") < 0 ||
            s_int(o, VZ_GH_F_FAILURE, &c->failure, why, "ci: counts") < 0)
            return -1;
        if (vz_json_double(vz_json_get(o, VZ_GH_F_PASS_RATE), &c->pass_rate) < 0 ||
            c->pass_rate < 0 || c->pass_rate > 1)
            return *why = "ci: pass_rate expected 0..1", -1;
    }
    return s_velocity(root, &r->velocity, &r->nvelocity, why);
}

int vz_gh_insights_reply_decode(const void *body, size_t len, vz_gh_insights_reply_t **reply_p,
                                const char **reason)
{
    assert(reply_p);
    const char *why = NULL;
    *reply_p = zmalloc(sizeof **reply_p);
    assert(*reply_p);
    if (s_decode(body, len, s_insights, *reply_p, &why) == 0)
        return 0;
    vz_gh_insights_reply_destroy(reply_p);
    return s_fail(reason, why);
}

static int s_item(const vz_json_value_t *o, vz_gh_item_t *it, const char **why)
{
    if (s_str(o, VZ_GH_F_REPO, it->repo, sizeof it->repo, false, why, "item: repo") < 0 ||
        !vz_gh_full_name_valid(it->repo))
        return *why = "item: repo expected owner/name", -1;
    if (s_int(o, VZ_GH_F_NUMBER, &it->number, why, "item: number") < 0 ||
        s_str(o, VZ_GH_F_KIND, it->kind, sizeof it->kind, false, why, "item: kind") < 0 ||
        s_str(o, VZ_GH_F_TITLE, it->title, sizeof it->title, false, why, "item: title") < 0 ||
        s_str(o, VZ_GH_F_STATE, it->state, sizeof it->state, false, why, "item: state") < 0 ||
        s_str(o, VZ_GH_F_URL, it->url, sizeof it->url, false, why, "item: url") < 0 ||
        s_str(o, VZ_GH_F_MILESTONE, it->milestone, sizeof it->milestone, true, why,
              "item: milestone") < 0 ||
        s_int(o, VZ_GH_F_UPDATED_AT, &it->updated_at, why, "item: updated_at") < 0)
        return -1;
    if (strcmp(it->kind, VZ_GH_KIND_ISSUE) != 0 && strcmp(it->kind, VZ_GH_KIND_PULL) != 0)
        return *why = "item: kind expected issue or pull", -1;
    return 0;
}

static int s_items(const vz_json_value_t *root, const char *key, vz_gh_item_t **rows_p, size_t *n_p,
                   const char **why)
{
    long n = s_array(root, key, VZ_GH_ROWS_MAX, why, "items: expected an array");
    if (n < 0)
        return -1;
    const vz_json_value_t *rows = vz_json_get(root, key);
    *rows_p = s_rows((size_t)n, sizeof **rows_p);
    for (long i = 0; i < n; i++, (*n_p)++)
        if (s_item(vz_json_at(rows, (size_t)i), &(*rows_p)[i], why) < 0)
            return -1;
    return 0;
}

static int s_roadmap(const vz_json_value_t *root, void *reply, const char **why)
{
    vz_gh_roadmap_reply_t *r = reply;
    int64_t weeks = 0;
    if (s_int(root, VZ_GH_F_WEEKS, &weeks, why, "weeks invalid") < 0 || weeks < 1 ||
        weeks > VZ_GH_WEEKS_MAX)
        return *why = "weeks: expected 1..52", -1;
    r->weeks = (int)weeks;
    if (s_items(root, VZ_GH_F_COMPLETED, &r->completed, &r->ncompleted, why) < 0 ||
        s_items(root, VZ_GH_F_IN_PROGRESS, &r->in_progress, &r->nin_progress, why) < 0 ||
        s_items(root, VZ_GH_F_BLOCKED, &r->blocked, &r->nblocked, why) < 0)
        return -1;
    return s_velocity(root, &r->velocity, &r->nvelocity, why);
}

int vz_gh_roadmap_reply_decode(const void *body, size_t len, vz_gh_roadmap_reply_t **reply_p,
                               const char **reason)
{
    assert(reply_p);
    const char *why = NULL;
    *reply_p = zmalloc(sizeof **reply_p);
    assert(*reply_p);
    if (s_decode(body, len, s_roadmap, *reply_p, &why) == 0)
        return 0;
    vz_gh_roadmap_reply_destroy(reply_p);
    return s_fail(reason, why);
}

int vz_gh_issue_state_reply_decode(const void *body, size_t len, vz_gh_issue_state_reply_t *r,
                                   const char **reason)
{
    assert(r);
    memset(r, 0, sizeof *r);
    const char *why = NULL;
    vz_json_t *doc = s_parse(body, len, &why);
    const vz_json_value_t *o = doc ? vz_json_root(doc) : NULL;
    if (doc && (s_str(o, VZ_GH_F_REPO, r->repo, sizeof r->repo, false, &why, "repo invalid") < 0 ||
                !vz_gh_full_name_valid(r->repo)))
        why = "repo: expected owner/name";
    if (doc && !why &&
        (s_int(o, VZ_GH_F_NUMBER, &r->number, &why, "number invalid") < 0 ||
         s_str(o, VZ_GH_F_KIND, r->kind, sizeof r->kind, false, &why, "kind invalid") < 0 ||
         s_str(o, VZ_GH_F_STATE, r->state, sizeof r->state, false, &why, "state invalid") < 0 ||
         s_str(o, VZ_GH_F_STATE_REASON, r->state_reason, sizeof r->state_reason, true, &why,
               "state_reason invalid") < 0 ||
         vz_json_bool(vz_json_get(o, VZ_GH_F_MERGED), &r->merged) < 0 ||
         s_str(o, VZ_GH_F_TITLE, r->title, sizeof r->title, false, &why, "title invalid") < 0 ||
         s_str(o, VZ_GH_F_URL, r->url, sizeof r->url, false, &why, "url invalid") < 0 ||
         s_int(o, VZ_GH_F_UPDATED_AT, &r->updated_at, &why, "updated_at invalid") < 0))
        why = why ? why : "merged: expected a boolean";
    vz_json_destroy(&doc);
    if (why) {
        memset(r, 0, sizeof *r);
        return s_fail(reason, why);
    }
    return 0;
}
