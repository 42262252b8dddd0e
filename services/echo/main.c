/*  vz-echo - reference worker: echo, echo_v2, ping, slow, whoami and relay over the broker
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The smallest real service of the mesh, used by the gateway's tests and as
 *  the template for new workers: one static method table, vz_daemon_serve.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_call.h"
#include "vz_daemon.h"
#include "vz_ports.h"
#include "vz_proto.h"
#include "vz_worker.h"

#define SLOW_MAX_MS 10000
#define WHOAMI_MAX 8192
#define ECHO_V2_MAX (4 * 1024 * 1024) //  echo_v2 reply cap: the body rewritten, escapes may grow it
#define ECHO_CREDIT 32                //  default broker credit: fast methods, pipelined

typedef struct {
    int slow_cap_ms;   //  longest "slow" wait that keeps the broker's heartbeat budget
    vz_call_t *calls;  //  calls to other services ("relay")
    int fail_permille; //  VZ_ECHO_FAIL_PERMILLE: "echo" calls answered "internal", per 1000
    int delay_ms;      //  VZ_ECHO_DELAY_MS: each "echo" call answered this much later
    uint64_t echoes;   //  "echo" calls so far, for the failure pattern
} echo_t;

//  A test version that fails (vzctl rollout's gates): call n fails when
//  n * permille / 1000 steps up, so the share is exact over any 1000 calls.
static int s_echo(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    echo_t *echo = app;
    uint64_t n = ++echo->echoes;
    if (echo->fail_permille > 0 &&
        n * (uint64_t)echo->fail_permille / 1000 != (n - 1) * (uint64_t)echo->fail_permille / 1000)
        return vz_reply_error(reply, VZ_ERR_INTERNAL, "failing on purpose (VZ_ECHO_FAIL_PERMILLE)");
    //  A slow test version (the p95 gate): held on the reactor, as "slow" is.
    if (echo->delay_ms > 0)
        zclock_sleep(echo->delay_ms);
    return vz_reply_body(reply, req->body, req->body_len);
}

//  Version 2 of the echo API (/v2/echo): a JSON body comes back wrapped
//  as {"data": <body>, "api_version": 2}; no body gives "data": null. A
//  body that is not JSON is refused: v2 speaks JSON only (the route says
//  json = "true", so the gateway refuses it first).
static int s_echo_v2(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    vz_json_t *doc = NULL;
    if (req->body_len > 0 && !(doc = vz_json_parse(req->body, req->body_len, NULL, NULL)))
        return vz_authctx_reply_error(reply, 400, VZ_ERR_INVALID, "body must be JSON");
    vz_json_writer_t *w = vz_json_writer_new(ECHO_V2_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "data");
    if (doc)
        vz_json_write_value(w, vz_json_root(doc));
    else
        vz_json_write_null(w);
    vz_json_write_kv_int(w, "api_version", 2);
    vz_json_write_object_end(w);
    vz_json_destroy(&doc);
    return vz_authctx_reply_json(reply, &w);
}

static int s_ping(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    return vz_reply_body(reply, "", 0);
}

//  The worker API replies synchronously, so "slow" blocks this worker's
//  reactor and its heartbeats. It therefore never waits past the caller's
//  deadline (nobody listens after it) nor past slow_cap_ms (the broker
//  would declare the worker lost); cut short it answers "timeout".
static int s_slow(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    const echo_t *echo = app;
    char text[8] = "";
    if (req->body_len == 0 || req->body_len >= sizeof text)
        return vz_reply_error(reply, VZ_ERR_INVALID, "body must be milliseconds 0..10000");
    memcpy(text, req->body, req->body_len);
    char *end = NULL;
    long ms = strtol(text, &end, 10);
    if (*end != '\0' || text[0] == '-' || text[0] == '+' || ms > SLOW_MAX_MS)
        return vz_reply_error(reply, VZ_ERR_INVALID, "body must be milliseconds 0..10000");

    int64_t now = vz_now_ms();
    int64_t until = now + ms;
    int64_t limit = now + echo->slow_cap_ms;
    if (req->deadline_ms > 0 && req->deadline_ms < limit)
        limit = req->deadline_ms;
    bool cut = limit < until;
    if (cut)
        until = limit;
    while (!zsys_interrupted) {
        int64_t left = until - vz_now_ms();
        if (left <= 0)
            break;
        zclock_sleep(left > 50 ? 50 : (int)left);
    }
    if (cut)
        return vz_reply_error(reply, VZ_ERR_TIMEOUT, "deadline reached while waiting");
    return vz_reply_body(reply, "ok", 2);
}

//  Tells a caller what the worker saw: the identity the broker vouched for,
//  the request id and trace context that travelled, whether that identity
//  may set the auth context (vz_authctx.h), and the context when it may.
static int s_whoami(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    bool trusted = vz_authctx_trusted(req->caller);
    vz_json_writer_t *w = vz_json_writer_new(WHOAMI_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "caller", req->caller);
    vz_json_write_kv_string(w, "request_id", req->id);
    vz_json_write_kv_string(w, "traceparent", req->traceparent);
    vz_json_write_kv_bool(w, "trusted", trusted);
    vz_json_write_key(w, "ctx");
    vz_json_write_object_begin(w);
    for (size_t i = 0; trusted && i < req->ctx_count; i++)
        vz_json_write_kv_string(w, req->ctx[i].key, req->ctx[i].value);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    return vz_authctx_reply_json(reply, &w);
}

//  "relay": body "<service>.<method> <payload>": calls service.method with
//  payload through the broker, as echo, within the request's own deadline,
//  and answers with what came back, without blocking this worker (vz_call).
static int s_relay(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    const echo_t *echo = app;
    const char *text = (const char *)req->body;
    const char *space = req->body_len ? memchr(text, ' ', req->body_len) : NULL;
    const char *dot = space ? memchr(text, '.', (size_t)(space - text)) : NULL;
    char service[VZ_NAME_MAX], method[VZ_NAME_MAX];
    if (!dot || dot == text || dot + 1 == space || (size_t)(dot - text) >= sizeof service ||
        (size_t)(space - dot - 1) >= sizeof method || req->deadline_ms == 0)
        return vz_reply_error(reply, VZ_ERR_INVALID, "body must be <service>.<method> <payload>");
    memcpy(service, text, (size_t)(dot - text));
    service[dot - text] = '\0';
    memcpy(method, dot + 1, (size_t)(space - dot - 1));
    method[space - dot - 1] = '\0';
    size_t skip = (size_t)(space - text) + 1;
    vz_call_req_t call = {.service = service,
                          .method = method,
                          .body = req->body + skip,
                          .body_len = req->body_len - skip,
                          .parent = req};
    return vz_call_start(echo->calls, &call, vz_call_complete, vz_reply_defer(reply, NULL));
}

static const vz_method_t s_methods[] = {
    {"echo", s_echo, VZ_METHOD_IDEMPOTENT, 1024 * 1024},
    {"echo_v2", s_echo_v2, VZ_METHOD_IDEMPOTENT, 1024 * 1024},
    {"ping", s_ping, VZ_METHOD_IDEMPOTENT, 0},
    {"slow", s_slow, 0, 0},
    {"whoami", s_whoami, VZ_METHOD_IDEMPOTENT, 0},
    {"relay", s_relay, VZ_METHOD_DEFERRED, 0},
};

int main(int argc, char **argv)
{
    static const vz_cfg_item_t items[] = {
        VZ_CFG_ITEM(echo_t, "VZ_ECHO_FAIL_PERMILLE", "echo/fail_permille", VZ_CFG_INT, "0", 0, 1000,
                    fail_permille,
                    "\"echo\" calls answered \"internal\", per 1000 (a failing test version)"),
        VZ_CFG_ITEM(echo_t, "VZ_ECHO_DELAY_MS", "echo/delay", VZ_CFG_MS, "0", 0, 200, delay_ms,
                    "each \"echo\" call answered this much later (a slow test version)"),
    };
    echo_t echo = {0};
    vz_daemon_spec_t spec = {
        .service = "echo",
        .admin_port = VZ_PORT_ADMIN_ECHO,
        .needs_broker = true,
        .items = items,
        .count = sizeof items / sizeof items[0],
        .config = &echo,
    };
    int code = VZ_EXIT_OK;
    vz_daemon_t *daemon = vz_daemon_new(&spec, argc, argv, &code);
    if (!daemon)
        return code;
    //  One heartbeat of margin under the broker's liveness window.
    echo.slow_cap_ms = vz_daemon_config(daemon)->heartbeat_ms * (VZ_HEARTBEAT_LIVENESS - 1);
    //  With credit 1 every request waits for the previous reply to reach the
    //  broker (a round trip of wake-ups each); 32 lets one wake-up take many.
    //  The price: a "slow" call holds up to 31 others queued at this replica.
    //  "relay" calls out on the worker's own loop.
    zloop_t *loop = zloop_new();
    echo.calls = vz_call_new_daemon(daemon, loop);
    if (!echo.calls) {
        vz_error(NULL, "unable to create the call client", "reason", strerror(errno));
        code = VZ_EXIT_TEMPORARY;
    } else
        code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                               ECHO_CREDIT, &echo);
    vz_call_destroy(&echo.calls);
    zloop_destroy(&loop);
    vz_daemon_destroy(&daemon);
    return code;
}
