/*  vz_redis - one hiredis connection with short timeouts and reconnection
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A blocking hiredis context whose socket carries SO_RCVTIMEO/SO_SNDTIMEO
 *  (redisSetTimeout), so no command waits longer than command_timeout_ms.
 *  After any transport failure the context is dropped, never reused: a
 *  late reply would otherwise be read as the answer to the next command.
 */
#include "vz_redis.h"

#include <assert.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_clock.h"
#include "vz_common.h"

#define S_HOST_MAX 256
#define S_DEFAULT_PORT 6379

struct vz_redis_t {
    char host[S_HOST_MAX];  //  host name or address
    int port;               //  TCP port
    int db;                 //  SELECT index, 0 = default
    int connect_timeout_ms; //  bound on connect(2)
    int command_timeout_ms; //  bound on each send and receive
    int retry_ms;           //  least time between connect attempts
    redisContext *ctx;      //  NULL while disconnected
    int64_t last_attempt;   //  ms of the last connect attempt, 0 = never
    bool up;                //  last command (or connect) reached Redis
};

struct vz_redis_script_t {
    char *source; //  Lua body
    char sha[41]; //  SHA1 of source, hex, as Redis names scripts
};

static struct timeval s_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

//  redis://host[:port][/db]; everything else is refused.
static int s_parse_url(vz_redis_t *self, const char *url)
{
    const char *prefix = "redis://";
    if (strncmp(url, prefix, strlen(prefix)) != 0)
        return -EINVAL;
    const char *p = url + strlen(prefix);
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || hlen >= sizeof self->host || memchr(p, '@', hlen) || memchr(p, '[', hlen))
        return -EINVAL;
    memcpy(self->host, p, hlen);
    self->host[hlen] = '\0';
    p += hlen;
    self->port = S_DEFAULT_PORT;
    char *end;
    if (*p == ':') {
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            return -EINVAL;
        self->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || db < 0 || db > 1000000)
            return -EINVAL;
        self->db = (int)db;
        p = end;
    } else if (*p == '/')
        p++;
    return *p ? -EINVAL : 0;
}

vz_redis_t *vz_redis_new(const char *url, int connect_timeout_ms, int command_timeout_ms,
                         int retry_ms)
{
    assert(connect_timeout_ms > 0 && command_timeout_ms > 0 && retry_ms >= 0);
    if (!url) {
        errno = EINVAL;
        return NULL;
    }
    vz_redis_t *self = calloc(1, sizeof *self);
    assert(self);
    if (s_parse_url(self, url) < 0) {
        free(self);
        errno = EINVAL;
        return NULL;
    }
    self->connect_timeout_ms = connect_timeout_ms;
    self->command_timeout_ms = command_timeout_ms;
    self->retry_ms = retry_ms;
    return self;
}

static void s_drop(vz_redis_t *self)
{
    if (self->ctx)
        redisFree(self->ctx);
    self->ctx = NULL;
    self->up = false;
}

void vz_redis_destroy(vz_redis_t **self_p)
{
    assert(self_p);
    vz_redis_t *self = *self_p;
    if (!self)
        return;
    s_drop(self);
    free(self);
    *self_p = NULL;
}

bool vz_redis_up(const vz_redis_t *self)
{
    assert(self);
    return self->up;
}

int vz_redis_ensure(vz_redis_t *self)
{
    assert(self);
    if (self->ctx)
        return 0;
    int64_t now = vz_clock_mono_ms();
    //  A Redis that is away costs each caller at most one connect per
    //  retry_ms; in between, failing at once is the whole point.
    if (self->last_attempt && now - self->last_attempt < self->retry_ms)
        return -EAGAIN;
    self->last_attempt = now;
    redisContext *ctx =
        redisConnectWithTimeout(self->host, self->port, s_tv(self->connect_timeout_ms));
    if (!ctx)
        return -ENOMEM;
    if (ctx->err || redisSetTimeout(ctx, s_tv(self->command_timeout_ms)) != REDIS_OK) {
        redisFree(ctx);
        return -ECONNREFUSED;
    }
    self->ctx = ctx;
    if (self->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", self->db);
        redisReply *reply = redisCommand(ctx, "SELECT %s", db);
        bool ok = reply && reply->type == REDIS_REPLY_STATUS;
        if (reply)
            freeReplyObject(reply);
        if (!ok) {
            s_drop(self);
            return -EIO;
        }
    }
    self->up = true;
    return 0;
}

//  Transport failures (NULL) drop the connection; error replies do not.
static redisReply *s_checked(vz_redis_t *self, void *raw)
{
    redisReply *reply = raw;
    if (!reply || self->ctx->err) {
        if (reply)
            freeReplyObject(reply);
        s_drop(self);
        return NULL;
    }
    self->up = true;
    return reply;
}

redisReply *vz_redis_command(vz_redis_t *self, int argc, const char **argv, const size_t *lens)
{
    assert(self && argc > 0 && argv);
    if (vz_redis_ensure(self) < 0)
        return NULL;
    return s_checked(self, redisCommandArgv(self->ctx, argc, argv, lens));
}

vz_redis_script_t *vz_redis_script_new(const char *source)
{
    assert(source);
    vz_redis_script_t *self = calloc(1, sizeof *self);
    assert(self);
    self->source = strdup(source);
    assert(self->source);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)source, strlen(source), digest);
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(self->sha + 2 * i, 3, "%02x", digest[i]);
    return self;
}

void vz_redis_script_destroy(vz_redis_script_t **self_p)
{
    assert(self_p);
    vz_redis_script_t *self = *self_p;
    if (!self)
        return;
    free(self->source);
    free(self);
    *self_p = NULL;
}

const char *vz_redis_script_sha(const vz_redis_script_t *self)
{
    assert(self);
    return self->sha;
}

//  The SHA is computed locally, so the common case is one EVALSHA. After a
//  Redis restart or SCRIPT FLUSH the first call gets NOSCRIPT and is sent
//  again as EVAL, which also caches the script for the next EVALSHA.
redisReply *vz_redis_eval(vz_redis_t *self, vz_redis_script_t *script, int nkeys, const char **keys,
                          int nargs, const char **args)
{
    assert(self && script && nkeys >= 0 && nargs >= 0);
    assert((!nkeys || keys) && (!nargs || args));
    int argc = 3 + nkeys + nargs;
    const char *stack[32];
    const char **argv = argc <= 32 ? stack : malloc((size_t)argc * sizeof *argv);
    assert(argv);
    char numkeys[16];
    snprintf(numkeys, sizeof numkeys, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = script->sha;
    argv[2] = numkeys;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    redisReply *reply = vz_redis_command(self, argc, argv, NULL);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(reply);
        argv[0] = "EVAL";
        argv[1] = script->source;
        reply = vz_redis_command(self, argc, argv, NULL);
    }
    if (argv != stack)
        free(argv);
    return reply;
}

//  Append one EVALSHA (or EVAL with the source) to the output buffer.
static int s_append_eval(vz_redis_t *self, const vz_redis_call_t *call, bool by_source)
{
    int argc = 3 + call->nkeys + call->nargs;
    const char *stack[32];
    const char **argv = argc <= 32 ? stack : malloc((size_t)argc * sizeof *argv);
    assert(argv);
    char numkeys[16];
    snprintf(numkeys, sizeof numkeys, "%d", call->nkeys);
    argv[0] = by_source ? "EVAL" : "EVALSHA";
    argv[1] = by_source ? call->script->source : call->script->sha;
    argv[2] = numkeys;
    for (int i = 0; i < call->nkeys; i++)
        argv[3 + i] = call->keys[i];
    for (int i = 0; i < call->nargs; i++)
        argv[3 + call->nkeys + i] = call->args[i];
    int rc = redisAppendCommandArgv(self->ctx, argc, argv, NULL);
    if (argv != stack)
        free(argv);
    return rc == REDIS_OK ? 0 : -ENOMEM;
}

static bool s_noscript(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

//  Read one reply per call whose reply is still NULL, in order.
static int s_read_batch(vz_redis_t *self, vz_redis_call_t *calls, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (calls[i].reply)
            continue;
        void *raw = NULL;
        if (redisGetReply(self->ctx, &raw) != REDIS_OK || !raw)
            return -EIO;
        calls[i].reply = raw;
    }
    return 0;
}

//  Everything is written before anything is read: hiredis sends the
//  whole buffer on the first read, Redis answers in order. A transport
//  failure anywhere voids the batch (the connection's stream position is
//  lost), like a failed vz_redis_command.
int vz_redis_eval_batch(vz_redis_t *self, vz_redis_call_t *calls, size_t count)
{
    assert(self && (calls || count == 0));
    for (size_t i = 0; i < count; i++) {
        assert(calls[i].script && calls[i].nkeys >= 0 && calls[i].nargs >= 0);
        calls[i].reply = NULL;
    }
    if (count == 0)
        return 0;
    int rc = vz_redis_ensure(self);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = s_append_eval(self, &calls[i], false);
    if (rc == 0)
        rc = s_read_batch(self, calls, count);
    //  After a Redis restart or SCRIPT FLUSH: resend those by source.
    size_t again = 0;
    for (size_t i = 0; i < count && rc == 0; i++)
        if (s_noscript(calls[i].reply)) {
            freeReplyObject(calls[i].reply);
            calls[i].reply = NULL;
            rc = s_append_eval(self, &calls[i], true);
            again++;
        }
    if (rc == 0 && again)
        rc = s_read_batch(self, calls, count);
    if (rc < 0 || self->ctx->err) {
        for (size_t i = 0; i < count; i++)
            if (calls[i].reply) {
                freeReplyObject(calls[i].reply);
                calls[i].reply = NULL;
            }
        s_drop(self);
        return rc < 0 ? rc : -EIO;
    }
    self->up = true;
    return 0;
}
