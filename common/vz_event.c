/*  vz_event - fire-and-forget messages to a service: never block, count drops
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_event.h"

#include <string.h>

#include "vz_client.h"
#include "vz_common.h"

#define S_QUEUE_MAX 1000 //  default bound of waiting events
#define S_TTL_MS 10000   //  default deadline of an event
#define S_DISCARD 16     //  answers thrown away per send

struct vz_event_t {
    vz_client_t *client;           //  DEALER to the broker, sndtimeo 0
    zloop_t *loop;                 //  attached reactor, or NULL
    int ttl_ms;                    //  deadline from send
    uint64_t sent;                 //  queued so far
    uint64_t dropped;              //  dropped so far
    vz_series_t *sent_s;           //  vz_event_sent_total, or NULL
    vz_series_t *drop_s;           //  vz_event_dropped_total, or NULL
    vz_event_answer_fn *on_answer; //  told of answers, or NULL
    void *answer_arg;              //  its argument
};

vz_event_t *vz_event_new(const vz_event_config_t *config)
{
    assert(config && config->broker.cert);
    vz_client_t *client = vz_client_new(&config->broker);
    if (!client)
        return NULL;
    //  The pipe to the broker exists from connect on (no ZMQ_IMMEDIATE), so
    //  events wait in it while the broker is away, up to this bound; libzmq
    //  applies a new high-water mark to pipes that already exist.
    zsock_set_sndhwm(vz_client_sock(client),
                     config->queue_max > 0 ? config->queue_max : S_QUEUE_MAX);
    vz_event_t *self = (vz_event_t *)zmalloc(sizeof *self);
    assert(self);
    self->client = client;
    self->ttl_ms = config->ttl_ms > 0 ? config->ttl_ms : S_TTL_MS;
    if (config->metrics) {
        self->sent_s = vz_metrics_counter(config->metrics, "vz_event_sent_total",
                                          "Fire-and-forget events queued for the broker", NULL);
        self->drop_s = vz_metrics_counter(config->metrics, "vz_event_dropped_total",
                                          "Events dropped: queue full or too large", NULL);
    }
    return self;
}

vz_event_t *vz_event_new_daemon(vz_daemon_t *daemon)
{
    assert(daemon);
    vz_event_config_t config = {
        .broker = {vz_daemon_config(daemon)->broker_endpoints, vz_daemon_broker_key(daemon),
                   vz_daemon_cert(daemon)},
        .metrics = vz_daemon_metrics(daemon),
    };
    return vz_event_new(&config);
}

void vz_event_destroy(vz_event_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        if ((*self_p)->loop)
            zloop_reader_end((*self_p)->loop, vz_client_sock((*self_p)->client));
        vz_client_destroy(&(*self_p)->client);
        free(*self_p);
        *self_p = NULL;
    }
}

//  Throw away up to max answers already here; nobody waits for them.
static void s_discard(vz_event_t *self, int max)
{
    zsock_t *sock = vz_client_sock(self->client);
    for (int i = 0; i < max && self->on_answer; i++) {
        vz_response_t *response = NULL;
        if (vz_client_recv(self->client, &response) < 0)
            return;
        self->on_answer(self->answer_arg, response->env.service,
                        response->env.kind == VZ_KIND_ERROR ? response->env.error_code : "");
        vz_response_destroy(&response);
    }
    for (int i = 0; i < max; i++) {
        zmsg_t *msg = zmsg_recv_nowait(sock);
        if (!msg)
            break;
        zmsg_destroy(&msg);
    }
}

static int s_on_answer(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_discard((vz_event_t *)arg, 64);
    return 0;
}

int vz_event_attach(vz_event_t *self, zloop_t *loop)
{
    assert(self && loop && !self->loop);
    if (zloop_reader(loop, vz_client_sock(self->client), s_on_answer, self) < 0)
        return -EIO;
    self->loop = loop;
    return 0;
}

void vz_event_on_answer(vz_event_t *self, vz_event_answer_fn *fn, void *arg)
{
    assert(self);
    self->on_answer = fn;
    self->answer_arg = arg;
}

int vz_event_send(vz_event_t *self, const char *service, const char *method, const void *body,
                  size_t len)
{
    assert(self && service && method);
    assert(strlen(service) < VZ_NAME_MAX && strlen(method) < VZ_NAME_MAX);
    assert(body || len == 0);
    s_discard(self, S_DISCARD);
    vz_envelope_t env;
    vz_envelope_init(&env, VZ_KIND_REQUEST);
    vz_strlcpy(env.service, service, sizeof env.service);
    vz_strlcpy(env.method, method, sizeof env.method);
    vz_client_new_id(env.id, sizeof env.id);
    env.deadline_ms = vz_now_ms() + self->ttl_ms;
    env.body = (const uint8_t *)body;
    env.body_len = len;
    //  vz_client_send never waits (sndtimeo 0): a full queue is -EAGAIN.
    int rc = vz_client_send(self->client, &env);
    if (rc < 0) {
        self->dropped++;
        if (self->drop_s)
            vz_series_inc(self->drop_s);
        return rc == -EMSGSIZE ? rc : -EAGAIN;
    }
    self->sent++;
    if (self->sent_s)
        vz_series_inc(self->sent_s);
    return 0;
}

uint64_t vz_event_dropped(const vz_event_t *self)
{
    assert(self);
    return self->dropped;
}

uint64_t vz_event_sent(const vz_event_t *self)
{
    assert(self);
    return self->sent;
}
