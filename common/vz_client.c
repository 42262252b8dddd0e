/*  vz_client - the calling side: service.method with a deadline
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_client.h"

#include <stdio.h>
#include <string.h>

#include "vz_common.h"
#include "vz_curve.h"
#include "vz_proto.h"
#include "vz_retry.h"

#define VZ_RETRY_FIRST_MS 25 //  first pause before retrying an idempotent call
#define VZ_RETRY_CAP_MS 500  //  longest pause between retries

struct vz_client_t {
    zsock_t *sock; //  DEALER connected to every broker
};

void vz_response_destroy(vz_response_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        zframe_destroy(&(*self_p)->frame);
        free(*self_p);
        *self_p = NULL;
    }
}

vz_client_t *vz_client_new(const vz_client_config_t *config)
{
    assert(config && config->cert);
    zsock_t *sock =
        vz_curve_client(ZMQ_DEALER, config->endpoints, config->cert, config->broker_key);
    if (!sock)
        return NULL;
    //  A send never blocks: with every pipe full the call fails fast and
    //  the caller's deadline decides, not the socket.
    zsock_set_sndtimeo(sock, 0);
    vz_client_t *self = (vz_client_t *)zmalloc(sizeof(vz_client_t));
    assert(self);
    self->sock = sock;
    return self;
}

void vz_client_destroy(vz_client_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        zsock_destroy(&(*self_p)->sock);
        free(*self_p);
        *self_p = NULL;
    }
}

zsock_t *vz_client_sock(vz_client_t *self)
{
    assert(self);
    return self->sock;
}

void vz_client_new_id(char *id, size_t n)
{
    assert(id && n >= 33);
    vz_random_hex(id, 32);
}

static int s_send_encoded(vz_client_t *self, const uint8_t *buf, size_t len)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addmem(msg, buf, len);
    int rc = zmsg_send(&msg, self->sock);
    zmsg_destroy(&msg);
    return rc == 0 ? 0 : -EAGAIN;
}

int vz_client_send(vz_client_t *self, const vz_envelope_t *req)
{
    assert(self && req);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = vz_envelope_encode(req, &buf, &len);
    if (rc < 0)
        return rc;
    rc = s_send_encoded(self, buf, len);
    free(buf);
    return rc;
}

//  Read one message; 0 with a response, -EAGAIN when none is waiting or it
//  was not a well-formed REP (dropped: the broker is trusted, but a bug
//  there must not crash us).
static int s_recv_one(vz_client_t *self, vz_response_t **response_p)
{
    zmsg_t *msg = zmsg_recv_nowait(self->sock);
    if (!msg)
        return zsys_interrupted ? -EINTR : -EAGAIN;
    int rc = -EAGAIN;
    zframe_t *cmd = zmsg_first(msg);
    if (zmsg_size(msg) == 2 && zframe_streq(cmd, VZ_CMD_REPLY)) {
        vz_response_t *response = (vz_response_t *)zmalloc(sizeof(vz_response_t));
        assert(response);
        response->frame = zmsg_last(msg);
        zmsg_remove(msg, response->frame);
        if (vz_envelope_decode(&response->env, zframe_data(response->frame),
                               zframe_size(response->frame), NULL, NULL) == 0 &&
            (response->env.kind == VZ_KIND_REPLY || response->env.kind == VZ_KIND_ERROR)) {
            *response_p = response;
            rc = 0;
        } else
            vz_response_destroy(&response);
    }
    zmsg_destroy(&msg);
    return rc;
}

int vz_client_recv(vz_client_t *self, vz_response_t **response_p)
{
    assert(self && response_p);
    *response_p = NULL;
    //  Skip junk so a readable socket always yields the next real response.
    while (zsock_events(self->sock) & ZMQ_POLLIN) {
        int rc = s_recv_one(self, response_p);
        if (rc != -EAGAIN)
            return rc;
    }
    return -EAGAIN;
}

//  The retry policy's codes (vz_retry.h); no budget here: one thread, one
//  call at a time, bounded by the deadline and the backoff.
static bool s_retryable(const vz_envelope_t *env)
{
    return env->kind == VZ_KIND_ERROR && vz_retry_code(env->error_code);
}

//  Wait for a response to id until `until` (monotonic ms). 0 with a
//  response, -ETIMEDOUT or -EINTR. Replies to other ids are late answers
//  to calls that already gave up: dropped.
static int s_wait(vz_client_t *self, const char *id, int64_t until, vz_response_t **response_p)
{
    zmq_pollitem_t item = {.socket = zsock_resolve(self->sock), .events = ZMQ_POLLIN};
    while (true) {
        if (zsys_interrupted)
            return -EINTR;
        int64_t left = until - zclock_mono();
        if (left <= 0)
            return -ETIMEDOUT;
        int rc = zmq_poll(&item, 1, (long)left);
        if (rc < 0) {
            if (errno == EINTR && !zsys_interrupted)
                continue;
            return -EINTR;
        }
        vz_response_t *response = NULL;
        while (s_recv_one(self, &response) == 0) {
            if (streq(response->env.id, id)) {
                *response_p = response;
                return 0;
            }
            vz_response_destroy(&response);
        }
    }
}

int vz_client_call(vz_client_t *self, vz_envelope_t *req, int timeout_ms,
                   vz_response_t **response_p)
{
    assert(self && req && response_p);
    *response_p = NULL;
    if (!req->id[0])
        vz_client_new_id(req->id, sizeof req->id);
    //  A call without any limit could hang: that is a caller bug.
    assert(timeout_ms > 0 || req->deadline_ms != 0);
    int64_t now = vz_now_ms();
    if (req->deadline_ms == 0)
        req->deadline_ms = now + timeout_ms;
    int64_t budget = req->deadline_ms - now;
    if (timeout_ms > 0 && timeout_ms < budget)
        budget = timeout_ms;
    //  Waiting uses the monotonic clock; only the envelope carries wall time.
    int64_t until = zclock_mono() + (budget > 0 ? budget : 0);

    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = vz_envelope_encode(req, &buf, &len);
    if (rc < 0)
        return rc;
    int backoff = VZ_RETRY_FIRST_MS;
    bool idempotent = (req->flags & VZ_FLAG_IDEMPOTENT) != 0;
    rc = -ETIMEDOUT;
    while (zclock_mono() < until) {
        vz_response_t *response = NULL;
        if (s_send_encoded(self, buf, len) == 0) {
            rc = s_wait(self, req->id, until, &response);
            if (rc < 0)
                break;
            //  Retrying with the same id lets a service de-duplicate.
            if (!idempotent || !s_retryable(&response->env) || zclock_mono() + backoff >= until) {
                *response_p = response;
                break;
            }
            vz_response_destroy(&response);
        }
        //  The pause also drains late replies, keeping the pipe clean.
        rc = s_wait(self, "", zclock_mono() + backoff, &response);
        vz_response_destroy(&response);
        if (rc == -EINTR)
            break;
        rc = -ETIMEDOUT;
        backoff = backoff * 2 > VZ_RETRY_CAP_MS ? VZ_RETRY_CAP_MS : backoff * 2;
    }
    free(buf);
    return *response_p ? 0 : rc;
}
