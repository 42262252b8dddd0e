/*  gh_rules - partner notification rules and roadmap labels of configs/github.cfg (pure)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The file is the daemon's ZPL config (VZ_CONFIG_FILE); besides the
 *  settings under "github" it holds:
 *
 *    labels
 *        blocked = "blocked"                  label names, comma-separated,
 *        in_progress = "in progress, wip"     compared case-insensitively
 *        done = "done"
 *    rules
 *        <name>                               [A-Za-z0-9_-], the idempotency key's part
 *            repository = "*"                 space-separated: "*", owner/<star> (every repo of
 * owner) or "owner/name" event = "push"                   one X-GitHub-Event name (required) action
 * = ""                      space-separated actions, "" = any; a closed, merged pull request has
 * action "merged" branch = "main develop"          push ref / pull request base, "" = any channel =
 * "email"                the notifier's channel to = "a@example.com, b@..."      recipients
 * (e-mail), comma-separated template = "github_event"        the notifier's template severity = ""
 * passed on when not ""
 *
 *  A matching rule becomes one notifier.send body (vz_notifier_contract)
 *  with idempotency key "github-<delivery>-<rule>" and the data of the
 *  template github_event: repo, event, action, title, url, actor, branch,
 *  summary. Pushes of tags and deleted branches match no push rule.
 *  Reading is gh_rules_load's only I/O; the rest is pure. The object is
 *  read-only after loading: any thread.
 */
#ifndef GH_RULES_H
#define GH_RULES_H

#include <stddef.h>

#include "gh_event.h"

#define GH_RULES_MAX 64

typedef struct gh_rules_t gh_rules_t;

//  Load path ("" = no file: no rules, default labels). NULL with one line
//  in err for an unreadable file or a bad rule (named).
gh_rules_t *gh_rules_load(const char *path, char *err, size_t errlen);
void gh_rules_destroy(gh_rules_t **self_p);
size_t gh_rules_count(const gh_rules_t *self);

//  The notifier.send bodies of the rules ev matches, appended to ops as
//  X <outbox> send <body>. The number appended.
size_t gh_rules_apply(const gh_rules_t *self, const gh_event_t *ev, const char *delivery,
                      const char *outbox, gh_ops_t *ops);

//  Roadmap class of an item from its state and "|a|b|" labels.
typedef enum { GH_CLASS_NONE, GH_CLASS_BLOCKED, GH_CLASS_IN_PROGRESS, GH_CLASS_DONE } gh_class_t;
gh_class_t gh_rules_class(const gh_rules_t *self, const char *labels);

#endif
