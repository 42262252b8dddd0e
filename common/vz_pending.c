/*  vz_pending - calls sent and not yet answered, keyed by request id
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_pending.h"

#include <czmq.h>
#include <string.h>

#include "vz_common.h"

struct vz_pending_t {
    zhashx_t *table; //  id -> vz_pending_entry_t * (borrowed)
};

vz_pending_t *vz_pending_new(void)
{
    vz_pending_t *self = (vz_pending_t *)zmalloc(sizeof *self);
    assert(self);
    self->table = zhashx_new();
    assert(self->table);
    return self;
}

void vz_pending_destroy(vz_pending_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        zhashx_destroy(&(*self_p)->table);
        free(*self_p);
        *self_p = NULL;
    }
}

int vz_pending_id(const vz_pending_t *self, const char *want_id, char *out)
{
    assert(self && out);
    if (want_id && *want_id && !zhashx_lookup(self->table, want_id)) {
        if (want_id != out) //  (a retry refiles its own id)
            vz_strlcpy(out, want_id, VZ_ID_MAX);
        return 0;
    }
    //  128 random bits: a second collision is not worth a loop.
    vz_random_hex(out, 32);
    assert(!zhashx_lookup(self->table, out));
    return 1;
}

int vz_pending_add(vz_pending_t *self, vz_pending_entry_t *entry, const char *want_id)
{
    assert(self && entry && entry->service && entry->method);
    int fresh = vz_pending_id(self, want_id, entry->id);
    int rc = zhashx_insert(self->table, entry->id, entry);
    assert(rc == 0);
    return fresh;
}

vz_pending_entry_t *vz_pending_match(vz_pending_t *self, const vz_envelope_t *response)
{
    assert(self && response);
    vz_pending_entry_t *entry = (vz_pending_entry_t *)zhashx_lookup(self->table, response->id);
    if (!entry || strcmp(response->service, entry->service) != 0 ||
        strcmp(response->method, entry->method) != 0)
        return NULL;
    zhashx_delete(self->table, entry->id);
    return entry;
}

void vz_pending_remove(vz_pending_t *self, vz_pending_entry_t *entry)
{
    assert(self && entry);
    if (zhashx_lookup(self->table, entry->id) == entry)
        zhashx_delete(self->table, entry->id);
}

typedef enum { S_ALL, S_EXPIRED, S_BROKER } s_which_t;

//  Take out the entries that pass (all, expired at now_ms, or sent through
//  broker) and hand them to fn afterwards: zhashx must not change while it
//  is iterated, and fn may free entries.
static size_t s_take(vz_pending_t *self, s_which_t which, int64_t now_ms, int broker,
                     vz_pending_fn *fn, void *arg)
{
    zlistx_t *taken = NULL;
    for (vz_pending_entry_t *entry = (vz_pending_entry_t *)zhashx_first(self->table); entry;
         entry = (vz_pending_entry_t *)zhashx_next(self->table)) {
        if ((which == S_EXPIRED && entry->expires_ms > now_ms) ||
            (which == S_BROKER && entry->broker != broker))
            continue;
        if (!taken)
            taken = zlistx_new();
        zlistx_add_end(taken, entry);
    }
    if (!taken)
        return 0;
    size_t n = zlistx_size(taken);
    for (vz_pending_entry_t *entry = (vz_pending_entry_t *)zlistx_first(taken); entry;
         entry = (vz_pending_entry_t *)zlistx_next(taken))
        zhashx_delete(self->table, entry->id);
    for (vz_pending_entry_t *entry = (vz_pending_entry_t *)zlistx_first(taken); entry;
         entry = (vz_pending_entry_t *)zlistx_next(taken))
        if (fn)
            fn(entry, arg);
    zlistx_destroy(&taken);
    return n;
}

size_t vz_pending_expire(vz_pending_t *self, int64_t now_ms, vz_pending_fn *fn, void *arg)
{
    assert(self);
    return s_take(self, S_EXPIRED, now_ms, -1, fn, arg);
}

size_t vz_pending_clear(vz_pending_t *self, vz_pending_fn *fn, void *arg)
{
    assert(self);
    return s_take(self, S_ALL, 0, -1, fn, arg);
}

size_t vz_pending_clear_broker(vz_pending_t *self, int broker, vz_pending_fn *fn, void *arg)
{
    assert(self);
    return s_take(self, S_BROKER, 0, broker, fn, arg);
}

size_t vz_pending_size(const vz_pending_t *self)
{
    assert(self);
    return zhashx_size(self->table);
}
