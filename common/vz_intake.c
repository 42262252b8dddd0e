/*  vz_intake - verified webhook deliveries queued in a Redis stream, once per id, before the 2xx
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_intake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_log.h"
#include "vz_proto.h"

//  KEYS seen, stream; ARGV ttl, maxlen ('0' none), field, value, ... ->
//  {1, entry id} queued | {0, ''} seen before.
static const char s_lua_enqueue[] = "if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then\n"
                                    "  local xadd = {'XADD', KEYS[2]}\n"
                                    "  if ARGV[2] ~= '0' then\n"
                                    "    xadd[#xadd + 1] = 'MAXLEN'\n"
                                    "    xadd[#xadd + 1] = '~'\n"
                                    "    xadd[#xadd + 1] = ARGV[2]\n"
                                    "  end\n"
                                    "  xadd[#xadd + 1] = '*'\n"
                                    "  for i = 3, #ARGV do xadd[#xadd + 1] = ARGV[i] end\n"
                                    "  return {1, redis.call(unpack(xadd))}\n"
                                    "end\n"
                                    "return {0, ''}\n";

#define ARGS_MAX (2 + 2 * VZ_INTAKE_FIELDS_MAX + 2) //  ttl, maxlen, fields, "body", body

//  One delivery's script call: every string in one heap block.
typedef struct {
    vz_deferred_t *handle; //  the open reply (NULL for enqueue)
    char label[VZ_INTAKE_LABEL_MAX + 1];
    char *block;                //  seen key, id, field strings, body (heap)
    const char *keys[2];        //  seen, stream
    const char *args[ARGS_MAX]; //  ttl, maxlen, pairs, "body", body
    int nargs;
    const char *id; //  inside block
} s_delivery_t;

struct vz_intake_t {
    vz_redis_t *redis;          //  borrowed
    vz_redis_script_t *script;  //  s_lua_enqueue
    char *seen_prefix, *stream; //  copied
    char *what;                 //  copied
    char ttl[16], maxlen[24];   //  as text
    vz_intake_count_fn *count;  //  may be NULL
    void *arg;                  //  for count
    s_delivery_t *pending;      //  this batch's deliveries
    vz_redis_call_t *calls;     //  their script calls
    size_t npending, pending_max;
};

vz_intake_t *vz_intake_new(vz_redis_t *redis, const vz_intake_config_t *config,
                           vz_intake_count_fn *count, void *arg)
{
    if (!redis || !config || !config->seen_prefix || !config->stream || config->ttl_s <= 0)
        return NULL;
    vz_intake_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->redis = redis;
    self->count = count;
    self->arg = arg;
    self->script = vz_redis_script_new(s_lua_enqueue);
    self->seen_prefix = strdup(config->seen_prefix);
    self->stream = strdup(config->stream);
    self->what = strdup(config->what ? config->what : "delivery");
    snprintf(self->ttl, sizeof self->ttl, "%d", config->ttl_s);
    snprintf(self->maxlen, sizeof self->maxlen, "%lu", config->maxlen);
    if (!self->script || !self->seen_prefix || !self->stream || !self->what)
        vz_intake_destroy(&self);
    return self;
}

void vz_intake_destroy(vz_intake_t **self_p)
{
    vz_intake_t *self = *self_p;
    if (!self)
        return;
    //  Handles still open belong to the worker, which frees them.
    for (size_t i = 0; i < self->npending; i++)
        free(self->pending[i].block);
    free(self->pending);
    free(self->calls);
    vz_redis_script_destroy(&self->script);
    free(self->seen_prefix);
    free(self->stream);
    free(self->what);
    free(self);
    *self_p = NULL;
}

//  Fill d with a copy of the delivery; 0, -EINVAL (id or fields), -ENOMEM.
static int s_delivery(vz_intake_t *self, s_delivery_t *d, const char *id, const char *const *fields,
                      size_t nfields, const void *body, size_t len)
{
    size_t id_len = id ? strlen(id) : 0;
    if (id_len == 0 || id_len > VZ_INTAKE_ID_MAX || nfields > VZ_INTAKE_FIELDS_MAX ||
        (nfields && !fields))
        return -EINVAL;
    size_t size = strlen(self->seen_prefix) + 2 * id_len + len + 3;
    for (size_t i = 0; i < 2 * nfields; i++) {
        if (!fields[i])
            return -EINVAL;
        size += strlen(fields[i]) + 1;
    }
    char *block = malloc(size);
    if (!block)
        return -ENOMEM;
    //  seen key, then each string, NUL-separated, in argument order.
    char *at = block;
    at += sprintf(at, "%s%s", self->seen_prefix, id) + 1;
    d->block = block;
    d->keys[0] = block;
    d->keys[1] = self->stream;
    d->id = at;
    at += sprintf(at, "%s", id) + 1;
    d->nargs = 0;
    d->args[d->nargs++] = self->ttl;
    d->args[d->nargs++] = self->maxlen;
    for (size_t i = 0; i < 2 * nfields; i++) {
        d->args[d->nargs++] = at;
        at += sprintf(at, "%s", fields[i]) + 1;
    }
    d->args[d->nargs++] = "body";
    memcpy(at, body ? body : "", len);
    at[len] = '\0';
    d->args[d->nargs++] = at;
    return 0;
}

//  1 queued, 0 duplicate, -1 failed; warns with the reason of a Redis error.
static int s_verdict(vz_intake_t *self, int rc, const s_delivery_t *d, redisReply *r)
{
    if (rc == 0 && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        return r->element[0]->integer == 1 ? 1 : 0;
    //  Redis away is vz_redis's to log; an error answer is worth a line each.
    if (r && r->type == REDIS_REPLY_ERROR) {
        char what[64];
        snprintf(what, sizeof what, "unable to queue a webhook %s", self->what);
        vz_warn(NULL, what, "id", d->id, "reason", r->str);
    }
    return -1;
}

int vz_intake_add(vz_intake_t *self, vz_reply_t *reply, vz_flush_fn *flush, const char *id,
                  const char *label, const char *const *fields, size_t nfields, const void *body,
                  size_t body_len)
{
    if (self->npending == self->pending_max) {
        size_t max = self->pending_max ? self->pending_max * 2 : VZ_WORKER_BATCH;
        s_delivery_t *pending = realloc(self->pending, max * sizeof *pending);
        if (pending)
            self->pending = pending;
        vz_redis_call_t *calls = realloc(self->calls, max * sizeof *calls);
        if (calls)
            self->calls = calls;
        if (!pending || !calls)
            return vz_reply_error(reply, VZ_ERR_INTERNAL, "out of memory");
        self->pending_max = max;
    }
    s_delivery_t *d = &self->pending[self->npending];
    memset(d, 0, sizeof *d);
    int rc = s_delivery(self, d, id, fields, nfields, body, body_len);
    if (rc == -ENOMEM)
        return vz_reply_error(reply, VZ_ERR_INTERNAL, "out of memory");
    if (rc != 0)
        return vz_reply_error(reply, VZ_ERR_INVALID, "webhook delivery id or fields invalid");
    snprintf(d->label, sizeof d->label, "%s", label ? label : "");
    self->npending++;
    d->handle = vz_reply_defer(reply, flush);
    return 0;
}

void vz_intake_flush(vz_intake_t *self)
{
    size_t n = self->npending;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        s_delivery_t *d = &self->pending[i];
        self->calls[i] = (vz_redis_call_t){.script = self->script,
                                           .nkeys = 2,
                                           .keys = d->keys,
                                           .nargs = d->nargs,
                                           .args = d->args};
    }
    int rc = vz_redis_eval_batch(self->redis, self->calls, n);
    for (size_t i = 0; i < n; i++) {
        s_delivery_t *d = &self->pending[i];
        redisReply *r = self->calls[i].reply;
        int verdict = s_verdict(self, rc, d, r);
        vz_intake_outcome_t outcome = verdict == 1   ? VZ_INTAKE_QUEUED
                                      : verdict == 0 ? VZ_INTAKE_DUPLICATE
                                                     : VZ_INTAKE_UNAVAILABLE;
        if (self->count)
            self->count(self->arg, d->label, outcome);
        if (verdict >= 0) {
            const char *body = verdict == 0 ? "{\"received\":true,\"duplicate\":true}"
                                            : "{\"received\":true,\"duplicate\":false}";
            (void)vz_worker_complete(&d->handle, body, strlen(body));
        } else {
            //  Not queued: the sender retries a non-2xx, so nothing is lost.
            char message[96];
            snprintf(message, sizeof message, "%s queue unavailable, retry later", self->what);
            (void)vz_worker_complete_error(&d->handle, VZ_ERR_UNAVAILABLE, message);
        }
        if (r)
            freeReplyObject(r);
        self->calls[i].reply = NULL;
        free(d->block);
        d->block = NULL;
    }
    self->npending = 0;
}

int vz_intake_enqueue(vz_intake_t *self, const char *id, const char *const *fields, size_t nfields,
                      const void *body, size_t body_len)
{
    s_delivery_t d = {0};
    if (s_delivery(self, &d, id, fields, nfields, body, body_len) != 0)
        return -1;
    redisReply *r = vz_redis_eval(self->redis, self->script, 2, d.keys, d.nargs, d.args);
    int verdict = s_verdict(self, r ? 0 : -1, &d, r);
    if (r)
        freeReplyObject(r);
    free(d.block);
    return verdict;
}
