/*  gh_event - what one GitHub webhook delivery means: its fields and its Redis writes (pure)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  gh_event_read takes the X-GitHub-Event name and the verified body and
 *  copies out what the rules and the insights need (repository, action,
 *  branch, the issue or pull request, the actor). gh_event_ops turns it
 *  into the list of Redis writes (gh_ops_t) that the apply script runs
 *  atomically with the acknowledgement of the queued delivery
 *  (github.h, "Redis keys" in docs/services/github.md):
 *
 *    H key field value   HSET            I key field n    HINCRBY
 *    S key member -      SADD            R key member -   SREM
 *    G key ts -          the next H of key only when ts >= its stored updated_at
 *    X key method body   XADD key * method <method> body <body> (the outbox)
 *
 *  Handled events: ping, push, pull_request, pull_request_review, issues,
 *  issue_comment, release, deployment, deployment_status, workflow_run,
 *  check_suite, milestone, installation, installation_repositories. Any
 *  other is "unhandled": acknowledged and counted, nothing stored.
 *
 *  No I/O, no clock (time is taken from the payload): any thread.
 */
#ifndef GH_EVENT_H
#define GH_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_github_contract.h"

#define GH_PREFIX "{github}:"
#define GH_NAME_MAX 64 //  event, action, branch-sized words
#define GH_TEXT_MAX VZ_GH_TEXT_MAX
#define GH_LABELS_MAX 512 //  "|label|label|" of an item

typedef struct {
    char event[GH_NAME_MAX];   //  X-GitHub-Event
    char action[GH_NAME_MAX];  //  "action", or "merged" for a closed, merged pull request
    bool handled;              //  one of the events above
    char repo[VZ_GH_FULL_MAX]; //  repository.full_name ("" when none)
    int64_t installation;      //  installation.id, 0 when none
    char sender[GH_NAME_MAX];  //  sender.login
    char branch[GH_TEXT_MAX];  //  push: ref without refs/heads/; pull_request: base.ref
    bool tag;                  //  push of a tag (refs/tags/...)
    bool deleted;              //  push: the branch was deleted
    int64_t commits;           //  push: commits in the push
    //  The issue, pull request or release the event is about.
    char kind[16];              //  issue | pull | release | "" (VZ_GH_KIND_*)
    int64_t number;             //  issue or pull request number
    char title[GH_TEXT_MAX];    //  title, release name or head commit message (first line)
    char url[GH_TEXT_MAX];      //  html_url of the thing (compare URL for a push)
    char state[24];             //  open | closed
    char state_reason[24];      //  completed | not_planned | reopened | ""
    bool merged;                //  pull request merged
    bool draft;                 //  pull request draft
    char labels[GH_LABELS_MAX]; //  "|a|b|" (names with '|' dropped)
    int64_t milestone;          //  milestone number, 0 when none
    char milestone_title[GH_TEXT_MAX];
    char milestone_state[24];
    int64_t ms_open, ms_closed;                           //  the milestone's issue counts
    int64_t created_at, updated_at, closed_at, merged_at; //  Unix s, 0 when absent
    //  Deployments, CI.
    char environment[GH_TEXT_MAX]; //  deployment(_status)
    char dstate[24];               //  deployment_status state
    char workflow[GH_TEXT_MAX];    //  workflow_run name, or "checks/<app slug>"
    char conclusion[24];           //  workflow_run / check_suite conclusion
    char status[24];               //  workflow_run / check_suite status
} gh_event_t;

//  Read event (the X-GitHub-Event value) and body. 0, or -1 when the body
//  is not a JSON object. An unknown event reads as handled = false.
int gh_event_read(const char *event, const void *body, size_t len, gh_event_t *ev);

//  The ISO week "YYYY-Www" of a Unix time (UTC) into out (>= 9 bytes).
void gh_week(int64_t t, char *out, size_t n);

//  An argument list being built (heap strings); the apply script's ARGV.
typedef struct {
    char **argv;
    size_t n, cap;
} gh_ops_t;

void gh_ops_add(gh_ops_t *ops, char op, const char *key, const char *a, const char *b);
void gh_ops_free(gh_ops_t *ops);

//  Append the writes of ev to ops (none for an unhandled event). The
//  repositories an installation event adds or removes are read from body
//  again (arrays the struct does not hold).
void gh_event_ops(const gh_event_t *ev, const void *body, size_t len, gh_ops_t *ops);

#endif
