/*  policies - the rate-limit policy set: which request gets which limit
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "policies.h"
#include "vz_common.h"
#include "vz_config.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_POLICIES_MAX 256  //  policies in one file
#define S_WINDOW_MAX 604800 //  a week, in seconds
#define S_LIMIT_MAX 1000000000ULL

//  Descriptor parts a "by" alternative may join, as bits.
enum { S_BY_IP = 1, S_BY_SUB = 2, S_BY_KEY = 4, S_BY_ROUTE = 8, S_BY_TIER = 16 };
static const struct {
    const char *name; //  as written in the file
    unsigned bit;     //  S_BY_*
} s_parts[] = {
    {"ip", S_BY_IP},       {"sub", S_BY_SUB},   {"key", S_BY_KEY},
    {"route", S_BY_ROUTE}, {"tier", S_BY_TIER},
};
#define S_PARTS (sizeof s_parts / sizeof s_parts[0])

struct rl_policies_t {
    rl_policy_t *policies; //  in file order
    size_t count;          //  entries in policies
    bool shadow;           //  global shadow switch
};

static void s_err(char *err, size_t n, const char *policy, const char *what, const char *value)
{
    snprintf(err, n, "policy \"%.63s\": %s (\"%.64s\")", policy, what, value ? value : "");
}

static bool s_name_valid(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && len < 64 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len;
}

//  Unsigned decimal in [min, max]; false otherwise.
static bool s_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 12)
        return false;
    uint64_t v = strtoull(text, NULL, 10);
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

//  "60", "60s", "1m", "1h", "1d" as seconds.
static bool s_seconds(const char *text, uint32_t *out)
{
    char digits[16];
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof digits)
        return false;
    memcpy(digits, text, len + 1);
    uint64_t unit = 1;
    char last = digits[len - 1];
    if (strchr("smhd", last)) {
        unit = last == 's' ? 1 : last == 'm' ? 60 : last == 'h' ? 3600 : 86400;
        digits[len - 1] = '\0';
    }
    uint64_t v;
    if (!s_uint(digits, 1, S_WINDOW_MAX, &v) || v * unit > S_WINDOW_MAX)
        return false;
    *out = (uint32_t)(v * unit);
    return true;
}

//  "key sub ip" / "ip+route": alternatives by spaces or commas, parts by '+'.
static int s_parse_by(rl_policy_t *p, const char *text)
{
    char copy[128];
    if (vz_strlcpy(copy, text, sizeof copy) < 0)
        return -EINVAL;
    p->by_count = 0;
    char *save = NULL;
    for (char *alt = strtok_r(copy, " ,", &save); alt; alt = strtok_r(NULL, " ,", &save)) {
        if (p->by_count == RL_BY_MAX)
            return -EINVAL;
        unsigned mask = 0;
        char *save2 = NULL;
        for (char *part = strtok_r(alt, "+", &save2); part; part = strtok_r(NULL, "+", &save2)) {
            size_t i = 0;
            while (i < S_PARTS && strcmp(part, s_parts[i].name) != 0)
                i++;
            if (i == S_PARTS)
                return -EINVAL;
            mask |= s_parts[i].bit;
        }
        if (!mask)
            return -EINVAL;
        p->by[p->by_count++] = mask;
    }
    return p->by_count ? 0 : -EINVAL;
}

static int s_parse_policy(zconfig_t *node, rl_policy_t *p, char *err, size_t n)
{
    const char *name = zconfig_name(node);
    if (!name || !s_name_valid(name)) {
        s_err(err, n, name ? name : "", "name must be 1..63 of [A-Za-z0-9_.-]", name);
        return -EINVAL;
    }
    vz_strlcpy(p->name, name, sizeof p->name);
    const char *routes = zconfig_get(node, "route", "*");
    const char *tiers = zconfig_get(node, "tier", "*");
    const char *by = zconfig_get(node, "by", "ip");
    if (vz_strlcpy(p->routes, routes, sizeof p->routes) < 0 || !*routes) {
        s_err(err, n, name, "route list empty or too long", routes);
        return -EINVAL;
    }
    if (vz_strlcpy(p->tiers, tiers, sizeof p->tiers) < 0 || !*tiers) {
        s_err(err, n, name, "tier list empty or too long", tiers);
        return -EINVAL;
    }
    if (vz_strlcpy(p->by_text, by, sizeof p->by_text) < 0 || s_parse_by(p, by) < 0) {
        s_err(err, n, name, "by: expected up to 4 of ip, sub, key, route, tier joined by +", by);
        return -EINVAL;
    }
    const char *algo = zconfig_get(node, "algorithm", "sliding_window");
    if (strcmp(algo, "token_bucket") == 0)
        p->algorithm = RL_TOKEN_BUCKET;
    else if (strcmp(algo, "sliding_window") == 0)
        p->algorithm = RL_SLIDING_WINDOW;
    else {
        s_err(err, n, name, "algorithm: expected token_bucket or sliding_window", algo);
        return -EINVAL;
    }
    const char *limit = zconfig_get(node, "limit", "");
    if (!s_uint(limit, 1, S_LIMIT_MAX, &p->limit)) {
        s_err(err, n, name, "limit: expected an integer in 1..1000000000", limit);
        return -EINVAL;
    }
    const char *window = zconfig_get(node, "window", "60s");
    if (!s_seconds(window, &p->window_s)) {
        s_err(err, n, name, "window: expected seconds (60, 60s, 1m, 1h, 1d) up to 7 days", window);
        return -EINVAL;
    }
    //  The token bucket runs in whole microseconds per token (see ratelimit.c).
    if (p->limit > (uint64_t)p->window_s * 1000000) {
        s_err(err, n, name, "limit: more than one per microsecond of window", limit);
        return -EINVAL;
    }
    p->burst = p->limit;
    const char *burst = zconfig_get(node, "burst", NULL);
    if (burst && (p->algorithm != RL_TOKEN_BUCKET || !s_uint(burst, 1, S_LIMIT_MAX, &p->burst))) {
        s_err(err, n, name, "burst: token_bucket only, an integer in 1..1000000000", burst);
        return -EINVAL;
    }
    const char *shadow = zconfig_get(node, "shadow", "false");
    if (strcmp(shadow, "true") != 0 && strcmp(shadow, "false") != 0) {
        s_err(err, n, name, "shadow: expected true or false", shadow);
        return -EINVAL;
    }
    p->shadow = strcmp(shadow, "true") == 0;
    return 0;
}

static int s_load(rl_policies_t *self, zconfig_t *root, char *err, size_t n)
{
    const char *shadow = zconfig_get(root, "ratelimit/shadow", "false");
    if (strcmp(shadow, "true") != 0 && strcmp(shadow, "false") != 0) {
        snprintf(err, n, "ratelimit/shadow: expected true or false (\"%.32s\")", shadow);
        return -EINVAL;
    }
    self->shadow = strcmp(shadow, "true") == 0;
    zconfig_t *section = zconfig_locate(root, "policy");
    size_t count = 0;
    for (zconfig_t *node = section ? zconfig_child(section) : NULL; node; node = zconfig_next(node))
        count++;
    if (count == 0 || count > S_POLICIES_MAX) {
        snprintf(err, n, "expected 1..%d policies under \"policy\", found %zu", S_POLICIES_MAX,
                 count);
        return -EINVAL;
    }
    self->policies = calloc(count, sizeof *self->policies);
    assert(self->policies);
    for (zconfig_t *node = zconfig_child(section); node; node = zconfig_next(node)) {
        rl_policy_t *p = &self->policies[self->count];
        if (s_parse_policy(node, p, err, n) < 0)
            return -EINVAL;
        for (size_t i = 0; i < self->count; i++)
            if (strcmp(self->policies[i].name, p->name) == 0) {
                s_err(err, n, p->name, "name used twice", p->name);
                return -EINVAL;
            }
        self->count++;
    }
    return 0;
}

rl_policies_t *rl_policies_load(const char *path, char *err, size_t errlen)
{
    assert(path && err && errlen > 0);
    zconfig_t *root = vz_config_read(path, 0, err, errlen);
    if (!root)
        return NULL;
    rl_policies_t *self = calloc(1, sizeof *self);
    assert(self);
    int rc = s_load(self, root, err, errlen);
    zconfig_destroy(&root);
    if (rc < 0)
        rl_policies_destroy(&self);
    return self;
}

void rl_policies_destroy(rl_policies_t **self_p)
{
    assert(self_p);
    rl_policies_t *self = *self_p;
    if (!self)
        return;
    free(self->policies);
    free(self);
    *self_p = NULL;
}

size_t rl_policies_count(const rl_policies_t *self)
{
    assert(self);
    return self->count;
}

const rl_policy_t *rl_policies_at(const rl_policies_t *self, size_t index)
{
    assert(self && index < self->count);
    return &self->policies[index];
}

bool rl_policies_shadow(const rl_policies_t *self)
{
    assert(self);
    return self->shadow;
}

//  Whole-word membership in a space/comma-separated list; "*" matches all.
static bool s_in_list(const char *list, const char *word)
{
    size_t wlen = strlen(word);
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, " ,");
        if (len == 1 && *p == '*')
            return true;
        if (len && len == wlen && memcmp(p, word, len) == 0)
            return true;
        p += len;
    }
    return false;
}

int rl_policies_match(const rl_policies_t *self, const vz_rl_check_t *req)
{
    assert(self && req);
    for (size_t i = 0; i < self->count; i++) {
        const rl_policy_t *p = &self->policies[i];
        if (s_in_list(p->routes, req->route) && s_in_list(p->tiers, req->tier))
            return (int)i;
    }
    return -1;
}

static const char *s_part_value(const vz_rl_check_t *req, unsigned bit)
{
    switch (bit) {
    case S_BY_IP:
        return req->ip;
    case S_BY_SUB:
        return req->sub;
    case S_BY_KEY:
        return req->key;
    case S_BY_ROUTE:
        return req->route;
    default:
        return req->tier;
    }
}

//  Parts are length-prefixed, so "a:b"+"c" and "a"+"b:c" never share a key.
int rl_policies_bucket(const rl_policy_t *policy, const vz_rl_check_t *req, char *out, size_t n)
{
    assert(policy && req && out && n > 0);
    for (size_t a = 0; a < policy->by_count; a++) {
        unsigned mask = policy->by[a];
        bool complete = true;
        for (size_t i = 0; i < S_PARTS && complete; i++)
            if ((mask & s_parts[i].bit) && !*s_part_value(req, s_parts[i].bit))
                complete = false;
        if (!complete)
            continue;
        int used = snprintf(out, n, "vz:rl:%s", policy->name);
        for (size_t i = 0; i < S_PARTS && used >= 0 && (size_t)used < n; i++) {
            if (!(mask & s_parts[i].bit))
                continue;
            const char *v = s_part_value(req, s_parts[i].bit);
            int rc =
                snprintf(out + used, n - (size_t)used, ":%s=%zu:%s", s_parts[i].name, strlen(v), v);
            used = rc < 0 ? rc : used + rc;
        }
        if (used < 0 || (size_t)used >= n)
            return -ENAMETOOLONG;
        return 0;
    }
    return -ENOENT;
}

const char *rl_algorithm_name(rl_algorithm_t algorithm)
{
    return algorithm == RL_TOKEN_BUCKET ? "token_bucket" : "sliding_window";
}
