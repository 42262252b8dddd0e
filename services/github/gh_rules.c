/*  gh_rules - partner notification rules and roadmap labels of configs/github.cfg (pure)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gh_rules.h"

#include <ctype.h>
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "vz_config.h"
#include "vz_json.h"
#include "vz_notifier_contract.h"

#define WORDS_MAX 256 //  a space- or comma-separated list of one setting

typedef struct {
    char name[64];
    char repository[WORDS_MAX];
    char event[GH_NAME_MAX];
    char action[WORDS_MAX];
    char branch[WORDS_MAX];
    char channel[32];
    char to[1024];
    char template_name[64];
    char severity[16];
} s_rule_t;

struct gh_rules_t {
    s_rule_t rules[GH_RULES_MAX];
    size_t count;
    char blocked[WORDS_MAX], in_progress[WORDS_MAX], done[WORDS_MAX];
};

void gh_rules_destroy(gh_rules_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

size_t gh_rules_count(const gh_rules_t *self)
{
    return self->count;
}

//  The value at path into dst, or def; def may be dst itself (kept as is).
static void s_get(zconfig_t *node, const char *path, char *dst, size_t n, const char *def)
{
    const char *value = zconfig_get(node, path, NULL);
    if (value || def != dst)
        snprintf(dst, n, "%s", value ? value : def);
}

static bool s_name_ok(const char *name)
{
    if (!*name || strlen(name) >= 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
            return false;
    return true;
}

gh_rules_t *gh_rules_load(const char *path, char *err, size_t errlen)
{
    gh_rules_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(self->blocked, sizeof self->blocked, "blocked");
    snprintf(self->in_progress, sizeof self->in_progress, "in progress, in-progress, wip");
    snprintf(self->done, sizeof self->done, "done");
    if (!path || !*path)
        return self;
    zconfig_t *root = vz_config_read(path, 0, err, errlen);
    if (!root) {
        free(self);
        return NULL;
    }
    s_get(root, "labels/blocked", self->blocked, sizeof self->blocked, self->blocked);
    s_get(root, "labels/in_progress", self->in_progress, sizeof self->in_progress,
          self->in_progress);
    s_get(root, "labels/done", self->done, sizeof self->done, self->done);
    const char *why = NULL;
    zconfig_t *rules = zconfig_locate(root, "rules");
    for (zconfig_t *r = rules ? zconfig_child(rules) : NULL; r && !why; r = zconfig_next(r)) {
        if (self->count == GH_RULES_MAX) {
            why = "too many rules";
            break;
        }
        s_rule_t *rule = &self->rules[self->count];
        snprintf(rule->name, sizeof rule->name, "%s", zconfig_name(r));
        s_get(r, "repository", rule->repository, sizeof rule->repository, "*");
        s_get(r, "event", rule->event, sizeof rule->event, "");
        s_get(r, "action", rule->action, sizeof rule->action, "");
        s_get(r, "branch", rule->branch, sizeof rule->branch, "");
        s_get(r, "channel", rule->channel, sizeof rule->channel, "email");
        s_get(r, "to", rule->to, sizeof rule->to, "");
        s_get(r, "template", rule->template_name, sizeof rule->template_name, "github_event");
        s_get(r, "severity", rule->severity, sizeof rule->severity, "");
        if (!s_name_ok(rule->name))
            why = "name must be [A-Za-z0-9_-], 1..63 bytes";
        else if (!rule->event[0])
            why = "event is required";
        else if (strcmp(rule->channel, "email") == 0 && !rule->to[0])
            why = "an email rule needs to";
        else
            self->count++;
    }
    if (why)
        snprintf(err, errlen, "%s: rule %s: %s", path, self->rules[self->count].name, why);
    zconfig_destroy(&root);
    if (why) {
        free(self);
        return NULL;
    }
    return self;
}

//  Is word one of the space/comma-separated list (case-sensitive unless icase)?
static bool s_in_list(const char *list, const char *word, bool icase)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, icase ? "," : " ,");
        //  Label lists are comma-separated (names may hold spaces): trim them.
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if (m && m == wl && (icase ? strncasecmp(p, word, m) : strncmp(p, word, m)) == 0)
            return true;
        p += n;
    }
    return false;
}

static bool s_repo_match(const char *patterns, const char *repo)
{
    const char *p = patterns;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, " ,");
        if (n == 1 && *p == '*')
            return true;
        if (n >= 2 && p[n - 1] == '*' && p[n - 2] == '/' && strncmp(p, repo, n - 1) == 0)
            return true;
        if (n && strlen(repo) == n && strncmp(p, repo, n) == 0)
            return true;
        p += n;
    }
    return false;
}

static bool s_match(const s_rule_t *rule, const gh_event_t *ev)
{
    if (strcmp(rule->event, ev->event) != 0 || !s_repo_match(rule->repository, ev->repo))
        return false;
    if (strcmp(ev->event, "push") == 0 && (ev->tag || ev->deleted))
        return false;
    if (rule->action[0] && !s_in_list(rule->action, ev->action, false))
        return false;
    if (rule->branch[0] && !s_in_list(rule->branch, ev->branch, false))
        return false;
    return true;
}

//  One line of a summary for the template.
static void s_summary(const gh_event_t *ev, char *out, size_t n)
{
    if (strcmp(ev->event, "push") == 0)
        snprintf(out, n, "%s pushed %lld commit%s to %s", ev->sender[0] ? ev->sender : "someone",
                 (long long)ev->commits, ev->commits == 1 ? "" : "s", ev->branch);
    else if (strcmp(ev->event, "pull_request") == 0)
        snprintf(out, n, "Pull request #%lld %s by %s", (long long)ev->number, ev->action,
                 ev->sender[0] ? ev->sender : "someone");
    else if (strcmp(ev->event, "issues") == 0)
        snprintf(out, n, "Issue #%lld %s by %s", (long long)ev->number, ev->action,
                 ev->sender[0] ? ev->sender : "someone");
    else if (strcmp(ev->event, "release") == 0)
        snprintf(out, n, "Release %s %s", ev->title, ev->action);
    else
        snprintf(out, n, "%s %s", ev->event, ev->action);
}

static char *s_message(const s_rule_t *rule, const gh_event_t *ev, const char *delivery)
{
    char key[VZ_NT_KEY_MAX + 16], summary[GH_TEXT_MAX + 128], title[GH_TEXT_MAX];
    snprintf(key, sizeof key, "github-%.56s-%s", delivery, rule->name);
    s_summary(ev, summary, sizeof summary);
    snprintf(title, sizeof title, "%s", ev->title[0] ? ev->title : "(untitled)");
    vz_json_writer_t *w = vz_json_writer_new(16384);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, VZ_NT_F_CHANNEL, rule->channel);
    vz_json_write_kv_string(w, VZ_NT_F_TEMPLATE, rule->template_name);
    vz_json_write_kv_string(w, VZ_NT_F_KEY, key);
    if (rule->severity[0])
        vz_json_write_kv_string(w, VZ_NT_F_SEVERITY, rule->severity);
    vz_json_write_kv_string(w, VZ_NT_F_SOURCE, "github");
    if (rule->to[0]) {
        vz_json_write_key(w, VZ_NT_F_TO);
        vz_json_write_array_begin(w);
        const char *p = rule->to;
        while (*p) {
            while (*p == ' ' || *p == ',')
                p++;
            size_t n = strcspn(p, " ,");
            if (n)
                vz_json_write_string_len(w, p, n);
            p += n;
        }
        vz_json_write_array_end(w);
    }
    vz_json_write_key(w, VZ_NT_F_DATA);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "repo", ev->repo);
    vz_json_write_kv_string(w, "event", ev->event);
    vz_json_write_kv_string(w, "action", ev->action[0] ? ev->action : "-");
    vz_json_write_kv_string(w, "title", title);
    vz_json_write_kv_string(w, "url", ev->url[0] ? ev->url : "-");
    vz_json_write_kv_string(w, "actor", ev->sender[0] ? ev->sender : "-");
    vz_json_write_kv_string(w, "branch", ev->branch[0] ? ev->branch : "-");
    vz_json_write_kv_string(w, "summary", summary);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    char *body = vz_json_writer_take(w, NULL);
    vz_json_writer_destroy(&w);
    return body;
}

size_t gh_rules_apply(const gh_rules_t *self, const gh_event_t *ev, const char *delivery,
                      const char *outbox, gh_ops_t *ops)
{
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++) {
        if (!s_match(&self->rules[i], ev))
            continue;
        char *body = s_message(&self->rules[i], ev, delivery);
        if (!body)
            continue;
        gh_ops_add(ops, 'X', outbox, VZ_NT_METHOD_SEND, body);
        free(body);
        n++;
    }
    return n;
}

//  Does any label of "|a|b|" appear in the comma-separated list?
static bool s_any_label(const char *labels, const char *list)
{
    const char *p = labels;
    while (p && *p == '|' && p[1]) {
        const char *end = strchr(p + 1, '|');
        if (!end)
            break;
        char name[GH_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        if (s_in_list(list, name, true))
            return true;
        p = end;
    }
    return false;
}

gh_class_t gh_rules_class(const gh_rules_t *self, const char *labels)
{
    if (s_any_label(labels, self->blocked))
        return GH_CLASS_BLOCKED;
    if (s_any_label(labels, self->done))
        return GH_CLASS_DONE;
    if (s_any_label(labels, self->in_progress))
        return GH_CLASS_IN_PROGRESS;
    return GH_CLASS_NONE;
}
