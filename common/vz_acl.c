/*  vz_acl - who may open a worker's direct endpoint: a ZAP handler fed by the broker
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  ZAP is ZeroMQ RFC 27: a request of version, request id, domain,
 *  address, routing id, mechanism and credentials (for CURVE the client's
 *  32-byte key); a reply of version, request id, status code, status text,
 *  user id and metadata (ZMTP properties: a 1-byte name length, the name,
 *  a 4-byte big-endian value length, the value).
 */
#include "vz_acl.h"

#include <string.h>

#include "vz_common.h"
#include "vz_log.h"

//  An identity and key some broker listed; sources: the brokers that did.
typedef struct {
    char name[VZ_NAME_MAX];
    uint8_t key[32]; //  as ZAP gives it
    char text[41];   //  as the connection's user id gives it (Z85)
    uint32_t sources;
} s_entry_t;

struct vz_acl_t {
    void *zap;                   //  REP bound to inproc://zeromq.zap.01 in the direct context
    s_entry_t entry[VZ_ACL_MAX]; //  the union of every broker's list
    size_t n;
    uint32_t ready; //  brokers whose ACL arrived
};

vz_acl_t *vz_acl_new(void *ctx)
{
    assert(ctx);
    void *zap = zmq_socket(ctx, ZMQ_REP);
    if (!zap)
        return NULL;
    int zero = 0;
    zmq_setsockopt(zap, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(zap, "inproc://zeromq.zap.01") != 0) {
        int err = errno;
        zmq_close(zap);
        errno = err;
        return NULL;
    }
    vz_acl_t *self = (vz_acl_t *)zmalloc(sizeof *self);
    assert(self);
    self->zap = zap;
    return self;
}

void vz_acl_destroy(vz_acl_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        zmq_close((*self_p)->zap);
        free(*self_p);
        *self_p = NULL;
    }
}

void *vz_acl_sock(vz_acl_t *self)
{
    assert(self);
    return self->zap;
}

//  Admitted: listed by every broker that sent an ACL (several brokers
//  disagree while a policy reload reaches them one by one: the stricter
//  wins).
static bool s_admitted(const vz_acl_t *self, const s_entry_t *e)
{
    return self->ready && (e->sources & self->ready) == self->ready;
}

static const s_entry_t *s_find_key(const vz_acl_t *self, const uint8_t *key)
{
    for (size_t i = 0; i < self->n; i++)
        if (memcmp(self->entry[i].key, key, 32) == 0 && s_admitted(self, &self->entry[i]))
            return &self->entry[i];
    return NULL;
}

//  One ZAP request: admit the key when the table holds it.
static void s_answer(vz_acl_t *self, zmsg_t *request)
{
    zframe_t *version = zmsg_first(request);
    zframe_t *rid = zmsg_next(request);
    zmsg_next(request); //  domain
    zmsg_next(request); //  address
    zmsg_next(request); //  routing id
    zframe_t *mechanism = zmsg_next(request);
    zframe_t *key = zmsg_next(request);
    const s_entry_t *who = NULL;
    if (zmsg_size(request) == 7 && zframe_streq(version, "1.0") &&
        zframe_streq(mechanism, "CURVE") && zframe_size(key) == 32)
        who = s_find_key(self, zframe_data(key));
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    if (rid)
        zmsg_addmem(reply, zframe_data(rid), zframe_size(rid));
    else
        zmsg_addstr(reply, "");
    zmsg_addstr(reply, who ? "200" : "400");
    zmsg_addstr(reply, who ? "OK" : "not a caller of this service");
    //  The user id is the key (Z85), which vz_acl_allows checks per request.
    zmsg_addstr(reply, who ? who->text : "");
    if (who) {
        //  The "name" property, as zauth attaches it from a certificate.
        uint8_t meta[1 + 4 + 4 + VZ_NAME_MAX];
        size_t len = strlen(who->name);
        meta[0] = 4;
        memcpy(meta + 1, "name", 4);
        meta[5] = 0;
        meta[6] = 0;
        meta[7] = 0;
        meta[8] = (uint8_t)len;
        memcpy(meta + 9, who->name, len);
        zmsg_addmem(reply, meta, 9 + len);
    } else
        zmsg_addstr(reply, "");
    zmsg_send(&reply, self->zap);
    zmsg_destroy(&reply);
}

void vz_acl_handle(vz_acl_t *self)
{
    assert(self);
    zmsg_t *request;
    while ((request = zmsg_recv_nowait(self->zap))) {
        s_answer(self, request);
        zmsg_destroy(&request);
    }
}

//  Remove source's mark from every entry; entries no broker lists go.
static void s_unmark(vz_acl_t *self, uint32_t bit)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->n; i++) {
        self->entry[i].sources &= ~bit;
        if (self->entry[i].sources)
            self->entry[kept++] = self->entry[i];
    }
    self->n = kept;
}

//  A list that cannot be read: the broker that sent it lists nobody.
static int s_refuse(vz_acl_t *self, uint32_t bit)
{
    s_unmark(self, bit);
    return -EINVAL;
}

int vz_acl_set(vz_acl_t *self, int source, zmsg_t *msg)
{
    assert(self && msg && source >= 0 && source < VZ_ACL_SOURCES);
    uint32_t bit = UINT32_C(1) << source;
    //  What this broker said before is replaced whole; a list that cannot
    //  be read leaves this broker admitting nobody (fail closed).
    s_unmark(self, bit);
    self->ready |= bit;
    int count = 0;
    for (zframe_t *name = zmsg_next(msg); name; name = zmsg_next(msg)) {
        zframe_t *key = zmsg_next(msg);
        char text[41];
        uint8_t raw[32];
        if (!key || zframe_size(name) == 0 || zframe_size(name) >= VZ_NAME_MAX ||
            memchr(zframe_data(name), 0, zframe_size(name)) || zframe_size(key) != 40)
            return s_refuse(self, bit);
        memcpy(text, zframe_data(key), 40);
        text[40] = '\0';
        if (!zmq_z85_decode(raw, text))
            return s_refuse(self, bit);
        char who[VZ_NAME_MAX];
        memcpy(who, zframe_data(name), zframe_size(name));
        who[zframe_size(name)] = '\0';
        s_entry_t *e = NULL;
        for (size_t i = 0; i < self->n && !e; i++)
            if (streq(self->entry[i].name, who) && memcmp(self->entry[i].key, raw, 32) == 0)
                e = &self->entry[i];
        if (!e) {
            if (self->n == VZ_ACL_MAX)
                return s_refuse(self, bit);
            e = &self->entry[self->n++];
            memset(e, 0, sizeof *e);
            vz_strlcpy(e->name, who, sizeof e->name);
            memcpy(e->key, raw, 32);
            memcpy(e->text, text, sizeof e->text);
        }
        e->sources |= bit;
        count++;
    }
    return count;
}

void vz_acl_forget(vz_acl_t *self, int source)
{
    assert(self && source >= 0 && source < VZ_ACL_SOURCES);
    uint32_t bit = UINT32_C(1) << source;
    s_unmark(self, bit);
    self->ready &= ~bit;
}

bool vz_acl_allows(const vz_acl_t *self, const char *identity, const char *key)
{
    assert(self && identity);
    if (!key)
        return false;
    //  Per request: the text as the brokers sent it, no decoding.
    for (size_t i = 0; i < self->n; i++)
        if (streq(self->entry[i].name, identity) && streq(self->entry[i].text, key) &&
            s_admitted(self, &self->entry[i]))
            return true;
    return false;
}

bool vz_acl_ready(const vz_acl_t *self)
{
    assert(self);
    return self->ready != 0;
}
