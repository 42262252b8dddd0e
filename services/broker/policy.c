/*  policy - the broker's call policy: which identity may call or serve which service
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "policy.h"

#include <czmq.h>
#include <string.h>

#include "vz_common.h"
#include "vz_config.h"

//  What one identity may do. The sets are hashes used as sets (value = self).
typedef struct {
    zhashx_t *call;  //  services it may call
    zhashx_t *serve; //  services it may serve
    bool call_any;   //  "*" in its call list
    bool serve_any;  //  "*" in its serve list
} s_rights_t;

struct policy_t {
    zhashx_t *identities; //  identity name -> s_rights_t
};

static void s_rights_destroy(void **item_p)
{
    s_rights_t *self = (s_rights_t *)*item_p;
    if (self) {
        zhashx_destroy(&self->call);
        zhashx_destroy(&self->serve);
        free(self);
        *item_p = NULL;
    }
}

bool policy_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= VZ_NAME_MAX)
        return false;
    //  ASCII ranges, not isalnum: the locale must not widen the set.
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

//  A name in the file: a valid name, or "*".
static bool s_name_valid(const char *name)
{
    return strcmp(name, "*") == 0 || policy_name_valid(name);
}

//  Split a list into set; "*" sets *any. -1 on a bad name (copied to bad).
static int s_parse_list(const char *text, zhashx_t *set, bool *any, char *bad, size_t badlen)
{
    char word[VZ_NAME_MAX + 1];
    const char *p = text;
    while (*p) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == 0)
            break;
        size_t keep = len < sizeof word - 1 ? len : sizeof word - 1;
        memcpy(word, p, keep);
        word[keep] = '\0';
        p += len;
        if (len >= VZ_NAME_MAX || !s_name_valid(word)) {
            vz_strlcpy(bad, word, badlen);
            return -1;
        }
        if (strcmp(word, "*") == 0)
            *any = true;
        else
            zhashx_update(set, word, set);
    }
    return 0;
}

policy_t *policy_load(const char *path, char *err, size_t errlen)
{
    assert(path && err && errlen > 0);
    char why[VZ_PATH_MAX + 128];
    zconfig_t *root = vz_config_read(path, 0, why, sizeof why);
    if (!root) {
        snprintf(err, errlen, "unable to read policy %s", why);
        return NULL;
    }
    zconfig_t *section = zconfig_locate(root, "identity");
    if (!section) {
        snprintf(err, errlen, "unable to load policy %s: no \"identity\" section", path);
        zconfig_destroy(&root);
        return NULL;
    }
    policy_t *self = (policy_t *)zmalloc(sizeof *self);
    self->identities = zhashx_new();
    zhashx_set_destructor(self->identities, s_rights_destroy);
    int rc = 0;
    for (zconfig_t *node = zconfig_child(section); node && rc == 0; node = zconfig_next(node)) {
        const char *name = zconfig_name(node);
        if (!name || !s_name_valid(name) || strcmp(name, "*") == 0) {
            snprintf(err, errlen, "unable to load policy %s: bad identity name \"%.64s\"", path,
                     name ? name : "");
            rc = -1;
            break;
        }
        s_rights_t *rights = (s_rights_t *)zmalloc(sizeof *rights);
        rights->call = zhashx_new();
        rights->serve = zhashx_new();
        char bad[VZ_NAME_MAX + 1] = "";
        if (s_parse_list(zconfig_get(node, "call", ""), rights->call, &rights->call_any, bad,
                         sizeof bad) < 0 ||
            s_parse_list(zconfig_get(node, "serve", ""), rights->serve, &rights->serve_any, bad,
                         sizeof bad) < 0) {
            snprintf(err, errlen, "unable to load policy %s: identity %s: bad service \"%s\"", path,
                     name, bad);
            rc = -1;
        }
        void *item = rights;
        if (rc < 0 || zhashx_insert(self->identities, name, rights) < 0) {
            if (rc == 0) {
                snprintf(err, errlen, "unable to load policy %s: identity %s twice", path, name);
                rc = -1;
            }
            s_rights_destroy(&item);
        }
    }
    zconfig_destroy(&root);
    if (rc < 0)
        policy_destroy(&self);
    return self;
}

void policy_destroy(policy_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        zhashx_destroy(&(*self_p)->identities);
        free(*self_p);
        *self_p = NULL;
    }
}

bool policy_known(const policy_t *self, const char *identity)
{
    return zhashx_lookup(self->identities, identity) != NULL;
}

bool policy_may_call(const policy_t *self, const char *identity, const char *service)
{
    s_rights_t *rights = (s_rights_t *)zhashx_lookup(self->identities, identity);
    return rights && (rights->call_any || zhashx_lookup(rights->call, service));
}

bool policy_may_serve(const policy_t *self, const char *identity, const char *service)
{
    s_rights_t *rights = (s_rights_t *)zhashx_lookup(self->identities, identity);
    return rights && (rights->serve_any || zhashx_lookup(rights->serve, service));
}

size_t policy_size(const policy_t *self)
{
    return zhashx_size(self->identities);
}
