/*  vz_github_contract - the methods of "github": repos, insights, roadmap, issue_state
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The one definition of what a caller (the reporter, the gateway's routes,
 *  the tests) sends to the service "github" (services/github) and what it
 *  answers. Every request and reply is one JSON object; the field names
 *  below are used by both ends.
 *
 *    repos        request  {} (or no body)
 *                 reply    {"configured": bool, "repos": [{"full_name", "installation_id",
 *                           "open_issues", "open_pulls", "updated_at"}]}
 *    insights     request  {"owner", "repo", "weeks"}
 *                 reply    {"repo", "weeks", "issues": {"open", "closed"},
 *                           "pulls": {"open", "closed", "merged"},
 *                           "milestones": [{"number", "title", "state", "open_issues",
 *                                           "closed_issues"}],
 *                           "deployments": {"total", "success", "failure", "error",
 *                                           "pending", "environments": [{"name", "total",
 *                                           "success", "failure", "last_state", "last_at"}]},
 *                           "ci": [{"workflow", "runs", "success", "failure", "pass_rate"}],
 *                           "velocity": [{"week", "issues_closed", "pulls_merged"}]}
 *    roadmap      request  {"repo": "owner/name" (optional: every repo), "weeks"}
 *                 reply    {"weeks", "completed": [item], "in_progress": [item],
 *                           "blocked": [item], "velocity": [{"week", "issues_closed",
 *                           "pulls_merged"}]}
 *                 item     {"repo", "number", "kind": "issue" | "pull", "title", "state",
 *                           "url", "milestone", "updated_at"}
 *    issue_state  request  {"owner", "repo", "number"}
 *                 reply    {"repo", "number", "kind", "state": "open" | "closed",
 *                           "state_reason", "merged", "title", "url", "updated_at"}
 *                 error    not_found when the service has never seen that issue
 *
 *  Through the gateway (GET /v1/github/repos, GET /v1/github/repos/{owner}/
 *  {repo}/insights?weeks=N, GET /v1/github/roadmap?repo=o/r&weeks=N) the
 *  same methods read path.owner, path.repo, query.weeks and query.repo from
 *  the ctx instead of a body, and answer the same JSON. A week is the ISO
 *  week "YYYY-Www" (UTC); velocity is newest week first, weeks rows long.
 *  Times are Unix seconds. Errors: invalid_request (a field), forbidden /
 *  access_denied (the caller may not read: admin or github:read through the
 *  gateway, VZ_GITHUB_READERS in the mesh), not_found, unavailable (Redis).
 *
 *  Encoders return a heap string the caller frees (NULL only when out of
 *  memory). Request decoders (the service) and reply decoders (the
 *  callers) read untrusted bytes: 0, or VZ_EMALFORMED with a static
 *  *reason; nothing is asserted of the input. A decoded reply is heap (the
 *  caller destroys it). Reply writers (the service) write one JSON object
 *  into w. Any thread; no shared state.
 */
#ifndef VZ_GITHUB_CONTRACT_H
#define VZ_GITHUB_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"
#include "vz_json.h"

#define VZ_GH_SERVICE "github"
#define VZ_GH_METHOD_WEBHOOK "webhook" //  the gateway's POST /v1/webhooks/github
#define VZ_GH_METHOD_REPOS "repos"
#define VZ_GH_METHOD_INSIGHTS "insights"
#define VZ_GH_METHOD_ROADMAP "roadmap"
#define VZ_GH_METHOD_ISSUE_STATE "issue_state"

//  Field names.
#define VZ_GH_F_OWNER "owner"
#define VZ_GH_F_REPO "repo"
#define VZ_GH_F_WEEKS "weeks"
#define VZ_GH_F_NUMBER "number"
#define VZ_GH_F_CONFIGURED "configured"
#define VZ_GH_F_REPOS "repos"
#define VZ_GH_F_FULL_NAME "full_name"
#define VZ_GH_F_INSTALLATION "installation_id"
#define VZ_GH_F_OPEN_ISSUES "open_issues"
#define VZ_GH_F_OPEN_PULLS "open_pulls"
#define VZ_GH_F_UPDATED_AT "updated_at"
#define VZ_GH_F_ISSUES "issues"
#define VZ_GH_F_PULLS "pulls"
#define VZ_GH_F_OPEN "open"
#define VZ_GH_F_CLOSED "closed"
#define VZ_GH_F_MERGED "merged"
#define VZ_GH_F_MILESTONES "milestones"
#define VZ_GH_F_TITLE "title"
#define VZ_GH_F_STATE "state"
#define VZ_GH_F_CLOSED_ISSUES "closed_issues"
#define VZ_GH_F_DEPLOYMENTS "deployments"
#define VZ_GH_F_TOTAL "total"
#define VZ_GH_F_SUCCESS "success"
#define VZ_GH_F_FAILURE "failure"
#define VZ_GH_F_ERROR "error"
#define VZ_GH_F_PENDING "pending"
#define VZ_GH_F_ENVIRONMENTS "environments"
#define VZ_GH_F_NAME "name"
#define VZ_GH_F_LAST_STATE "last_state"
#define VZ_GH_F_LAST_AT "last_at"
#define VZ_GH_F_CI "ci"
#define VZ_GH_F_WORKFLOW "workflow"
#define VZ_GH_F_RUNS "runs"
#define VZ_GH_F_PASS_RATE "pass_rate"
#define VZ_GH_F_VELOCITY "velocity"
#define VZ_GH_F_WEEK "week"
#define VZ_GH_F_ISSUES_CLOSED "issues_closed"
#define VZ_GH_F_PULLS_MERGED "pulls_merged"
#define VZ_GH_F_COMPLETED "completed"
#define VZ_GH_F_IN_PROGRESS "in_progress"
#define VZ_GH_F_BLOCKED "blocked"
#define VZ_GH_F_KIND "kind"
#define VZ_GH_F_URL "url"
#define VZ_GH_F_MILESTONE "milestone"
#define VZ_GH_F_STATE_REASON "state_reason"

//  Values of "kind".
#define VZ_GH_KIND_ISSUE "issue"
#define VZ_GH_KIND_PULL "pull"

//  Limits (a reply past them is malformed; the service keeps within them).
#define VZ_GH_OWNER_MAX 40      //  GitHub login: 1..39 bytes, with the NUL
#define VZ_GH_REPO_NAME_MAX 101 //  repository name: 1..100 bytes, with the NUL
#define VZ_GH_FULL_MAX 141      //  "owner/name", with the NUL
#define VZ_GH_TEXT_MAX 257    //  title, milestone, workflow, environment, url (cut by the service)
#define VZ_GH_WORD_MAX 33     //  state, state_reason, kind, week
#define VZ_GH_WEEKS_MAX 52    //  weeks of a request and velocity rows
#define VZ_GH_WEEKS_DEFAULT 4 //  weeks when a request gives none
#define VZ_GH_REPOS_MAX 500   //  repositories in a repos reply
#define VZ_GH_ROWS_MAX 200    //  milestones, environments, workflows, items of one list

//  A repository name part: [A-Za-z0-9_.-], owner 1..39, name 1..100 bytes.
bool vz_gh_owner_valid(const char *owner);
bool vz_gh_repo_name_valid(const char *repo);
//  "owner/name" with both parts valid.
bool vz_gh_full_name_valid(const char *full);

// --------------------------------------------------------------------------
//  Requests

typedef struct {
    char owner[VZ_GH_OWNER_MAX];
    char repo[VZ_GH_REPO_NAME_MAX];
    int weeks; //  1..VZ_GH_WEEKS_MAX; 0 in an encode = VZ_GH_WEEKS_DEFAULT
} vz_gh_insights_req_t;

typedef struct {
    char repo[VZ_GH_FULL_MAX]; //  "owner/name", "" = every repository
    int weeks;                 //  1..VZ_GH_WEEKS_MAX; 0 in an encode = default
} vz_gh_roadmap_req_t;

typedef struct {
    char owner[VZ_GH_OWNER_MAX];
    char repo[VZ_GH_REPO_NAME_MAX];
    int64_t number; //  issue or pull request number, >= 1
} vz_gh_issue_state_req_t;

//  An issue or pull request link ("https://github.com/<owner>/<repo>/issues/<n>",
//  ".../pull/<n>", an optional trailing path, query or fragment after the
//  number) into req: 0, or VZ_EMALFORMED for anything else. For callers that
//  keep the link an error report names.
int vz_gh_issue_url_parse(const char *url, vz_gh_issue_state_req_t *req);

char *vz_gh_insights_req_encode(const vz_gh_insights_req_t *req, size_t *len_p);
char *vz_gh_roadmap_req_encode(const vz_gh_roadmap_req_t *req, size_t *len_p);
char *vz_gh_issue_state_req_encode(const vz_gh_issue_state_req_t *req, size_t *len_p);
//  A missing weeks decodes as VZ_GH_WEEKS_DEFAULT; out of range is malformed.
int vz_gh_insights_req_decode(const void *body, size_t len, vz_gh_insights_req_t *req,
                              const char **reason);
int vz_gh_roadmap_req_decode(const void *body, size_t len, vz_gh_roadmap_req_t *req,
                             const char **reason);
int vz_gh_issue_state_req_decode(const void *body, size_t len, vz_gh_issue_state_req_t *req,
                                 const char **reason);
//  weeks as the gateway's query text: NULL or "" = default; 0 and the
//  value, or VZ_EMALFORMED outside 1..VZ_GH_WEEKS_MAX.
int vz_gh_weeks_parse(const char *text, int *weeks);

// --------------------------------------------------------------------------
//  Replies

typedef struct {
    char full_name[VZ_GH_FULL_MAX];
    int64_t installation_id; //  0 when unknown
    int64_t open_issues;
    int64_t open_pulls;
    int64_t updated_at; //  last event seen, Unix s
} vz_gh_repo_t;

typedef struct {
    bool configured; //  App credentials present (API calls to GitHub possible)
    vz_gh_repo_t *repos;
    size_t nrepos;
} vz_gh_repos_reply_t;

typedef struct {
    char week[VZ_GH_WORD_MAX]; //  "2026-W49"
    int64_t issues_closed;
    int64_t pulls_merged;
} vz_gh_week_t;

typedef struct {
    int64_t number;
    char title[VZ_GH_TEXT_MAX];
    char state[VZ_GH_WORD_MAX]; //  open | closed
    int64_t open_issues;
    int64_t closed_issues;
} vz_gh_milestone_t;

typedef struct {
    char name[VZ_GH_TEXT_MAX];
    int64_t total, success, failure;
    char last_state[VZ_GH_WORD_MAX]; //  deployment_status state of the newest
    int64_t last_at;
} vz_gh_environment_t;

typedef struct {
    char workflow[VZ_GH_TEXT_MAX];
    int64_t runs, success, failure; //  completed runs in the window
    double pass_rate;               //  success / runs, 0 when no run
} vz_gh_workflow_t;

typedef struct {
    char repo[VZ_GH_FULL_MAX];
    int weeks;
    int64_t issues_open, issues_closed;
    int64_t pulls_open, pulls_closed, pulls_merged; //  closed counts unmerged ones only
    vz_gh_milestone_t *milestones;
    size_t nmilestones;
    int64_t deploy_total, deploy_success, deploy_failure, deploy_error, deploy_pending;
    vz_gh_environment_t *environments;
    size_t nenvironments;
    vz_gh_workflow_t *ci;
    size_t nci;
    vz_gh_week_t *velocity;
    size_t nvelocity;
} vz_gh_insights_reply_t;

typedef struct {
    char repo[VZ_GH_FULL_MAX];
    int64_t number;
    char kind[VZ_GH_WORD_MAX]; //  issue | pull
    char title[VZ_GH_TEXT_MAX];
    char state[VZ_GH_WORD_MAX]; //  open | closed
    char url[VZ_GH_TEXT_MAX];
    char milestone[VZ_GH_TEXT_MAX]; //  "" when none
    int64_t updated_at;
} vz_gh_item_t;

typedef struct {
    int weeks;
    vz_gh_item_t *completed; //  closed (merged) in the window, or labelled done
    size_t ncompleted;
    vz_gh_item_t *in_progress; //  open with an in-progress label, or an open pull request
    size_t nin_progress;
    vz_gh_item_t *blocked; //  open with a blocked label
    size_t nblocked;
    vz_gh_week_t *velocity;
    size_t nvelocity;
} vz_gh_roadmap_reply_t;

typedef struct {
    char repo[VZ_GH_FULL_MAX];
    int64_t number;
    char kind[VZ_GH_WORD_MAX];
    char state[VZ_GH_WORD_MAX];
    char state_reason[VZ_GH_WORD_MAX]; //  completed | not_planned | reopened | ""
    bool merged;                       //  a pull request that was merged
    char title[VZ_GH_TEXT_MAX];
    char url[VZ_GH_TEXT_MAX];
    int64_t updated_at;
} vz_gh_issue_state_reply_t;

void vz_gh_repos_reply_write(vz_json_writer_t *w, const vz_gh_repos_reply_t *reply);
void vz_gh_insights_reply_write(vz_json_writer_t *w, const vz_gh_insights_reply_t *reply);
void vz_gh_roadmap_reply_write(vz_json_writer_t *w, const vz_gh_roadmap_reply_t *reply);
void vz_gh_issue_state_reply_write(vz_json_writer_t *w, const vz_gh_issue_state_reply_t *reply);

int vz_gh_repos_reply_decode(const void *body, size_t len, vz_gh_repos_reply_t **reply_p,
                             const char **reason);
int vz_gh_insights_reply_decode(const void *body, size_t len, vz_gh_insights_reply_t **reply_p,
                                const char **reason);
int vz_gh_roadmap_reply_decode(const void *body, size_t len, vz_gh_roadmap_reply_t **reply_p,
                               const char **reason);
int vz_gh_issue_state_reply_decode(const void *body, size_t len, vz_gh_issue_state_reply_t *reply,
                                   const char **reason);

void vz_gh_repos_reply_destroy(vz_gh_repos_reply_t **self_p);
void vz_gh_insights_reply_destroy(vz_gh_insights_reply_t **self_p);
void vz_gh_roadmap_reply_destroy(vz_gh_roadmap_reply_t **self_p);

#endif
