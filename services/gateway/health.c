/*  health - the gateway's aggregated /health document
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "health.h"

#include <assert.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_log.h"
#include "vz_proto.h"

#define SERVICES_MAX 128 //  services listed; more are summarised as truncated

typedef struct {
    char name[VZ_NAME_MAX]; //  service name
    long long workers;      //  ready workers
    long long queue;        //  requests waiting
} svc_t;

//  Integer value of a msgpack object, or -1 when it is not a small integer.
static long long s_int(const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 < (1ull << 62))
        return (long long)o->via.u64;
    return -1;
}

static bool s_key_is(const msgpack_object *key, const char *text)
{
    size_t n = strlen(text);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == n &&
           memcmp(key->via.str.ptr, text, n) == 0;
}

//  Parse the broker's map defensively: anything unexpected is skipped, the
//  reply is broker output but still bytes from a socket.
static size_t s_parse(const uint8_t *data, size_t len, svc_t *svcs, size_t max)
{
    size_t count = 0;
    msgpack_unpacked result;
    msgpack_unpacked_init(&result);
    size_t off = 0;
    if (data &&
        msgpack_unpack_next(&result, (const char *)data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        result.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *map = &result.data.via.map;
        for (uint32_t i = 0; i < map->size && count < max; i++) {
            const msgpack_object *key = &map->ptr[i].key, *val = &map->ptr[i].val;
            if (key->type != MSGPACK_OBJECT_STR || key->via.str.size >= VZ_NAME_MAX)
                continue;
            svc_t *svc = &svcs[count++];
            memcpy(svc->name, key->via.str.ptr, key->via.str.size);
            svc->name[key->via.str.size] = '\0';
            svc->workers = svc->queue = -1;
            if (val->type != MSGPACK_OBJECT_MAP)
                continue;
            for (uint32_t j = 0; j < val->via.map.size; j++) {
                const msgpack_object_kv *kv = &val->via.map.ptr[j];
                if (s_key_is(&kv->key, "workers"))
                    svc->workers = s_int(&kv->val);
                else if (s_key_is(&kv->key, "queue"))
                    svc->queue = s_int(&kv->val);
            }
        }
    }
    msgpack_unpacked_destroy(&result);
    return count;
}

static void s_put_string(FILE *out, const char *text)
{
    char esc[VZ_ERRMSG_MAX * 6];
    if (vz_json_escape(esc, sizeof esc, text) < 0)
        vz_strlcpy(esc, "?", sizeof esc);
    fprintf(out, "\"%s\"", esc);
}

static void s_put_check(FILE *out, const char *name, bool up, const char *error)
{
    fprintf(out, "\"%s\":{\"status\":\"%s\"", name, up ? "up" : "down");
    if (error && error[0]) {
        fputs(",\"error\":", out);
        s_put_string(out, error);
    }
    fputc('}', out);
}

static void s_put_service(FILE *out, const svc_t *svc, bool first)
{
    fputs(first ? "" : ",", out);
    s_put_string(out, svc->name);
    fprintf(out, ":{\"status\":\"%s\",\"workers\":%lld,\"queue\":%lld}",
            svc->workers > 0 ? "up" : "down", svc->workers < 0 ? 0 : svc->workers,
            svc->queue < 0 ? 0 : svc->queue);
}

char *vz_health_render(const vz_upcall_t *call, const char *const *needed, size_t count,
                       bool *healthy)
{
    assert(call && healthy);
    //  A remote error still proves the broker is there; only a local
    //  timeout or a failed send means it is not.
    bool replied = call->result == VZ_UPCALL_REPLY;
    bool broker_up = replied || (strcmp(call->error_code, VZ_ERR_TIMEOUT) != 0 &&
                                 strcmp(call->error_code, VZ_ERR_UNAVAILABLE) != 0);
    svc_t *svcs = calloc(SERVICES_MAX, sizeof *svcs);
    assert(svcs);
    size_t found = replied ? s_parse(call->reply, call->reply_len, svcs, SERVICES_MAX) : 0;

    bool all = replied && call->redis_ok;
    char *json = NULL;
    size_t json_len = 0;
    FILE *out = open_memstream(&json, &json_len);
    assert(out);
    s_put_check(out, "broker", broker_up, replied ? NULL : call->error_code);
    fputc(',', out);
    s_put_check(out, "redis", call->redis_ok, call->redis_error);
    fputs(",\"services\":{", out);
    bool first = true;
    for (size_t i = 0; i < found; i++, first = false)
        s_put_service(out, &svcs[i], first);
    for (size_t n = 0; n < count; n++) {
        size_t i = 0;
        while (i < found && strcmp(svcs[i].name, needed[n]) != 0)
            i++;
        if (i < found) {
            all = all && svcs[i].workers > 0;
            continue;
        }
        //  A needed service the broker does not know has no worker at all.
        svc_t missing = {.workers = 0, .queue = 0};
        vz_strlcpy(missing.name, needed[n], sizeof missing.name);
        s_put_service(out, &missing, first);
        first = false;
        all = false;
    }
    fputs("}}", out);
    fclose(out);
    free(svcs);

    //  The overall status is known only now; it goes first for readers.
    char *doc = NULL;
    int len = asprintf(&doc, "{\"status\":\"%s\",%s", all ? "ok" : "degraded", json);
    assert(len >= 0);
    free(json);
    *healthy = all;
    return doc;
}
