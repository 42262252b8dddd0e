/*  vz_client - the calling side: service.method with a deadline
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_client.h"

#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "vz_authctx.h"
#include "vz_broker_contract.h"
#include "vz_common.h"
#include "vz_curve.h"
#include "vz_endpoints.h"
#include "vz_proto.h"
#include "vz_retry.h"

#include <stdatomic.h>

#define VZ_RETRY_FIRST_MS 25 //  first pause before retrying an idempotent call
#define VZ_RETRY_CAP_MS 500  //  longest pause between retries
#define S_RID_MAX 16         //  "<slot letter><seq>": our name for a broker's pipe
#define S_DRAIN_MS 10        //  link events read by sends at most this often
#define S_DIR_MAX 16         //  services whose directory a client follows
#define S_DIR_MS 1000        //  a followed service's directory is asked again this often
#define S_DIR_ID "~dir"      //  ids of directory requests start so (real ids are hex)

//  A slot: a broker (0..VZ_ENDPOINTS_MAX-1) or a worker's direct endpoint
//  (VZ_ENDPOINTS_MAX..VZ_CLIENT_SLOTS-1).
typedef struct {
    char endpoint[VZ_PATH_MAX]; //  "" = free slot
    char rid[S_RID_MAX];        //  routing id of its pipe on our ROUTER
    bool up;                    //  handshake done, no drop since
    bool bye;                   //  a direct worker draining: no new calls
    unsigned drops;             //  link drops seen (a call compares before and after)
    int64_t waiting_since;      //  oldest send not followed by any answer (mono ms), 0 = none
    char service[VZ_NAME_MAX];  //  direct slots: the service the worker serves
} s_broker_t;

//  A service whose directory the client follows (calls it sent directly).
typedef struct {
    char service[VZ_NAME_MAX]; //  "" = free
    int64_t asked_ms;          //  last directory request (mono ms), 0 = never
    char id[VZ_ID_MAX];        //  its id, "" = none out
    size_t next;               //  round-robin position over its direct slots
} s_dir_t;

struct vz_client_t {
    zsock_t *sock;                        //  ROUTER: one pipe per broker, named by rid
    zsock_t *events;                      //  PAIR: sock's connection events
    s_broker_t brokers[VZ_CLIENT_SLOTS];  //  by slot
    size_t next;                          //  round-robin position
    int last;                             //  slot of the last send
    unsigned seq;                         //  rid numbering
    uint64_t lost;                        //  slots dropped, not yet reported
    bool direct;                          //  call workers directly when the directory allows
    char broker_key[41];                  //  brokers' public key (direct slots use their own)
    s_dir_t dirs[S_DIR_MAX];              //  directories followed
    int heartbeat_ms;                     //  a broker silent this long with calls out is suspect
    int64_t drained_ms;                   //  when a send last read the link events
    vz_resolver_t *resolver;              //  NULL without names
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

//  Connect endpoint into a free slot of [from, to) under a fresh routing
//  id; key: the server's public key when it is not the brokers'. The slot,
//  or -ENOSPC / -EINVAL.
static int s_slot_add(vz_client_t *self, int from, int to, const char *endpoint, const char *key)
{
    for (int i = from; i < to; i++) {
        s_broker_t *b = &self->brokers[i];
        //  A slot whose loss is not reported yet is not reused: the report
        //  would end the new broker's calls.
        if (*b->endpoint || (self->lost & (UINT64_C(1) << i)))
            continue;
        //  The first byte names the slot, so a reply finds its broker at once.
        snprintf(b->rid, sizeof b->rid, "%c%u", 'A' + i, self->seq++);
        void *handle = zsock_resolve(self->sock);
        zmq_setsockopt(handle, ZMQ_CONNECT_ROUTING_ID, b->rid, strlen(b->rid));
        //  The server key is read at connect: a worker's for its pipe only.
        if (key)
            zsock_set_curve_serverkey(handle, key);
        int rc = zsock_connect(self->sock, "%s", endpoint);
        if (key)
            zsock_set_curve_serverkey(handle, self->broker_key);
        if (rc != 0)
            return -EINVAL;
        vz_strlcpy(b->endpoint, endpoint, sizeof b->endpoint);
        b->up = false;
        b->bye = false;
        return i;
    }
    return -ENOSPC;
}

static int s_broker_add(vz_client_t *self, const char *endpoint)
{
    int rc = s_slot_add(self, 0, VZ_ENDPOINTS_MAX, endpoint, NULL);
    return rc < 0 ? rc : 0;
}

//  A broker gone from DNS, or a worker gone from its directory:
//  disconnect, and report what it held as lost.
static void s_broker_remove(vz_client_t *self, int slot)
{
    s_broker_t *b = &self->brokers[slot];
    zsock_disconnect(self->sock, "%s", b->endpoint);
    //  A call waiting on this slot compares drops: it must see this one.
    unsigned drops = b->drops + 1;
    memset(b, 0, sizeof *b);
    b->drops = drops;
    self->lost |= UINT64_C(1) << slot;
}

//  Make the sockets match the resolver's latest set (own thread only).
static void s_apply(vz_client_t *self)
{
    vz_endpoints_t set;
    if (!self->resolver || !vz_resolver_take(self->resolver, &set))
        return;
    for (int i = 0; i < VZ_ENDPOINTS_MAX; i++)
        if (*self->brokers[i].endpoint && !vz_endpoints_has(&set, self->brokers[i].endpoint))
            s_broker_remove(self, i);
    for (size_t k = 0; k < set.n; k++) {
        bool known = false;
        for (int i = 0; i < VZ_ENDPOINTS_MAX && !known; i++)
            known = streq(self->brokers[i].endpoint, set.ep[k]);
        if (!known)
            s_broker_add(self, set.ep[k]);
    }
}

vz_client_t *vz_client_new(const vz_client_config_t *config)
{
    assert(config && config->cert);
    vz_endpoints_t set;
    if (!config->endpoints || vz_endpoints_resolve(config->endpoints, &set) < 0) {
        errno = EINVAL;
        return NULL;
    }
    zsock_t *sock = vz_curve_client_socket(ZMQ_ROUTER, config->cert, config->broker_key);
    if (!sock)
        return NULL;
    vz_client_t *self = (vz_client_t *)zmalloc(sizeof(vz_client_t));
    assert(self);
    self->sock = sock;
    self->last = -1;
    self->direct = config->direct;
    vz_strlcpy(self->broker_key, config->broker_key, sizeof self->broker_key);
    //  A send never blocks: with every pipe full the call fails fast and
    //  the caller's deadline decides, not the socket.
    zsock_set_sndtimeo(sock, 0);
    //  A call to a broker whose pipe is full or unknown fails instead of
    //  vanishing, so the next broker can take it.
    zsock_set_router_mandatory(sock, 1);
    //  ZMTP heartbeats drop a broker that stops answering without closing.
    int hb = config->heartbeat_ms > 0 ? config->heartbeat_ms : VZ_HEARTBEAT_MS;
    self->heartbeat_ms = hb;
    zsock_set_heartbeat_ivl(sock, hb);
    zsock_set_heartbeat_timeout(sock, hb * VZ_HEARTBEAT_LIVENESS);
    //  A name never used before: an ended monitor's endpoint may linger.
    static atomic_uint monitors;
    char monitor[64];
    snprintf(monitor, sizeof monitor, "inproc://vz-client-%u", atomic_fetch_add(&monitors, 1));
    if (zmq_socket_monitor(zsock_resolve(sock), monitor,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0)
        self->events = zsock_new_pair(monitor);
    int rc = self->events ? 0 : -EIO;
    for (size_t i = 0; i < set.n && rc == 0; i++)
        rc = s_broker_add(self, set.ep[i]);
    if (rc == 0 && set.names && !(self->resolver = vz_resolver_new(config->endpoints, &set)))
        rc = -EAGAIN;
    if (rc < 0) {
        vz_client_destroy(&self);
        errno = rc == -EIO ? EIO : EINVAL;
        return NULL;
    }
    return self;
}

void vz_client_destroy(vz_client_t **self_p)
{
    assert(self_p);
    vz_client_t *self = *self_p;
    if (self) {
        vz_resolver_destroy(&self->resolver);
        if (self->events)
            zmq_socket_monitor(zsock_resolve(self->sock), NULL, 0);
        zsock_destroy(&self->events);
        zsock_destroy(&self->sock);
        free(self);
        *self_p = NULL;
    }
}

zsock_t *vz_client_sock(vz_client_t *self)
{
    assert(self);
    return self->sock;
}

zsock_t *vz_client_links_sock(vz_client_t *self)
{
    assert(self);
    return self->events;
}

int vz_client_last_broker(const vz_client_t *self)
{
    assert(self);
    return self->last;
}

//  The slot an event's address names. libzmq reports the address it
//  connected to, which is the endpoint as given (names were expanded); a
//  name that did not resolve when listed is reported by its address, so
//  it is matched when it is the only broker.
static int s_slot_of(const vz_client_t *self, const char *address)
{
    int only = -1, known = 0;
    for (int i = 0; i < VZ_CLIENT_SLOTS; i++) {
        if (!*self->brokers[i].endpoint)
            continue;
        if (streq(self->brokers[i].endpoint, address))
            return i;
        if (i < VZ_ENDPOINTS_MAX) {
            only = i;
            known++;
        }
    }
    return known == 1 && vz_endpoints_named(self->brokers[only].endpoint) ? only : -1;
}

//  Read the link events queued so far (never blocks).
static void s_events(vz_client_t *self)
{
    s_apply(self);
    zmsg_t *msg;
    while ((msg = zmsg_recv_nowait(self->events))) {
        zframe_t *head = zmsg_first(msg);
        char *address = zmsg_size(msg) == 2 ? zframe_strdup(zmsg_last(msg)) : NULL;
        if (head && zframe_size(head) == 6 && address) {
            uint16_t event;
            memcpy(&event, zframe_data(head), sizeof event);
            int slot = s_slot_of(self, address);
            if (slot >= 0 && event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                self->brokers[slot].up = true;
                self->brokers[slot].waiting_since = 0;
            } else if (slot >= 0 && event == ZMQ_EVENT_DISCONNECTED) {
                self->brokers[slot].up = false;
                self->brokers[slot].drops++;
                self->brokers[slot].waiting_since = 0;
                self->lost |= UINT64_C(1) << slot;
            }
        }
        free(address);
        zmsg_destroy(&msg);
    }
}

int vz_client_links(vz_client_t *self, vz_client_lost_fn *lost, void *arg)
{
    assert(self);
    s_events(self);
    uint64_t dropped = self->lost;
    self->lost = 0;
    for (int i = 0; i < VZ_CLIENT_SLOTS; i++)
        if ((dropped & (UINT64_C(1) << i)) && lost)
            lost(arg, i);
    return (int)vz_client_brokers_up(self);
}

size_t vz_client_brokers(const vz_client_t *self)
{
    assert(self);
    size_t n = 0;
    for (int i = 0; i < VZ_ENDPOINTS_MAX; i++)
        n += *self->brokers[i].endpoint != '\0';
    return n;
}

size_t vz_client_brokers_up(const vz_client_t *self)
{
    assert(self);
    size_t n = 0;
    for (int i = 0; i < VZ_ENDPOINTS_MAX; i++)
        n += *self->brokers[i].endpoint && self->brokers[i].up;
    return n;
}

void vz_client_new_id(char *id, size_t n)
{
    assert(id && n >= 33);
    vz_random_hex(id, 32);
}

//  Hand one request to broker slot: 0, or -EAGAIN when its pipe is full or
//  not there. The routing frame is checked first (ZMQ_ROUTER_MANDATORY),
//  so a refused send leaves nothing behind.
static int s_send_to(vz_client_t *self, int slot, const uint8_t *buf, size_t len)
{
    void *handle = zsock_resolve(self->sock);
    const char *rid = self->brokers[slot].rid;
    if (zmq_send(handle, rid, strlen(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -EAGAIN;
    zmq_send(handle, VZ_CMD_REQUEST, strlen(VZ_CMD_REQUEST), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(handle, buf, len, ZMQ_DONTWAIT);
    self->last = slot;
    return 0;
}

//  A broker that was sent something a heartbeat ago and has answered
//  nothing since is suspect: it gets no new call while another can take
//  it, long before ZMTP heartbeats drop its link (calls already there
//  wait for that, or for their answer).
static bool s_suspect(const s_broker_t *b, int64_t now, int heartbeat_ms)
{
    return b->waiting_since && now - b->waiting_since > heartbeat_ms;
}

//  The next broker in turn that is up and not suspect; else one that is
//  up; with none up, the next that takes the message at all (queued until
//  its link is back).
static int s_send_broker(vz_client_t *self, const uint8_t *buf, size_t len, int64_t now)
{
    for (int pass = 0; pass < 3; pass++)
        for (size_t k = 0; k < VZ_ENDPOINTS_MAX; k++) {
            int slot = (int)((self->next + k) % VZ_ENDPOINTS_MAX);
            s_broker_t *b = &self->brokers[slot];
            if (!*b->endpoint || (pass < 2 && !b->up) ||
                (pass == 0 && s_suspect(b, now, self->heartbeat_ms)))
                continue;
            if (s_send_to(self, slot, buf, len) == 0) {
                self->next = (size_t)slot + 1;
                if (!b->waiting_since)
                    b->waiting_since = now;
                return 0;
            }
        }
    return -EAGAIN;
}

//  The directory entry of service, made when create and there is room.
static s_dir_t *s_dir_find(vz_client_t *self, const char *service, bool create)
{
    s_dir_t *room = NULL;
    for (int i = 0; i < S_DIR_MAX; i++) {
        if (streq(self->dirs[i].service, service))
            return &self->dirs[i];
        if (!room && !*self->dirs[i].service)
            room = &self->dirs[i];
    }
    if (room && create)
        vz_strlcpy(room->service, service, sizeof room->service);
    return create ? room : NULL;
}

//  Ask a broker for dir's workers (broker.directory, vz_broker_contract.h).
//  The answer comes in like any reply and is taken by s_recv_one.
static void s_dir_ask(vz_client_t *self, s_dir_t *dir, int64_t now)
{
    dir->asked_ms = now;
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    vz_strlcpy(req.service, VZ_BROKER_SERVICE, sizeof req.service);
    vz_strlcpy(req.method, "directory", sizeof req.method);
    memcpy(req.id, S_DIR_ID, strlen(S_DIR_ID));
    vz_random_hex(req.id + strlen(S_DIR_ID), 32 - strlen(S_DIR_ID));
    req.deadline_ms = vz_now_ms() + S_DIR_MS;
    uint8_t *body = vz_broker_directory_request_encode(dir->service, &req.body_len);
    req.body = body;
    uint8_t *buf = NULL;
    size_t len = 0;
    //  Not a call of the caller's: the slot of its last send stays.
    int last = self->last;
    if (vz_envelope_encode(&req, &buf, &len) == 0 && s_send_broker(self, buf, len, now) == 0)
        vz_strlcpy(dir->id, req.id, sizeof dir->id);
    self->last = last;
    free(buf);
    free(body);
}

//  Make dir's direct slots match a directory answer: workers gone are
//  disconnected (what they held is reported lost), new ones connected.
//  direct false (weights split the service, or the answer was an error):
//  none.
static void s_dir_apply(vz_client_t *self, s_dir_t *dir, bool direct,
                        const vz_broker_direct_t *list, size_t n)
{
    for (int i = VZ_ENDPOINTS_MAX; i < VZ_CLIENT_SLOTS; i++) {
        s_broker_t *b = &self->brokers[i];
        if (!*b->endpoint || !streq(b->service, dir->service))
            continue;
        bool listed = false;
        for (size_t k = 0; k < n && direct && !listed; k++)
            listed = streq(list[k].endpoint, b->endpoint);
        if (!listed)
            s_broker_remove(self, i);
    }
    for (size_t k = 0; k < n && direct; k++) {
        bool known = false;
        for (int i = VZ_ENDPOINTS_MAX; i < VZ_CLIENT_SLOTS && !known; i++)
            known = streq(self->brokers[i].endpoint, list[k].endpoint);
        int slot = known ? -1
                         : s_slot_add(self, VZ_ENDPOINTS_MAX, VZ_CLIENT_SLOTS, list[k].endpoint,
                                      list[k].key);
        if (slot >= 0)
            vz_strlcpy(self->brokers[slot].service, dir->service,
                       sizeof self->brokers[slot].service);
    }
}

//  A reply to a directory request: applied, never handed to the caller.
static void s_dir_answer(vz_client_t *self, const vz_envelope_t *env)
{
    s_dir_t *dir = NULL;
    for (int i = 0; i < S_DIR_MAX && !dir; i++)
        if (*self->dirs[i].id && streq(self->dirs[i].id, env->id))
            dir = &self->dirs[i];
    if (!dir)
        return; //  an answer to a request asked again since
    dir->id[0] = '\0';
    vz_broker_direct_t list[VZ_BROKER_DIRECT_MAX];
    size_t n = 0;
    bool direct = false;
    //  An error (an older broker, a refusal) or an answer that does not
    //  decode changes nothing: links already up stay (a worker refuses a
    //  caller the policy no longer allows itself), none are added.
    if (env->kind != VZ_KIND_REPLY ||
        vz_broker_directory_decode(env->body, env->body_len, &direct, list, VZ_BROKER_DIRECT_MAX,
                                   &n, NULL) < 0)
        return;
    s_dir_apply(self, dir, direct, list, n);
}

//  The next of dir's direct slots in turn that is up, not draining and
//  not suspect, or -1.
static int s_pick_direct(vz_client_t *self, s_dir_t *dir, int64_t now)
{
    const int count = VZ_CLIENT_SLOTS - VZ_ENDPOINTS_MAX;
    for (int k = 0; k < count; k++) {
        int slot = VZ_ENDPOINTS_MAX + (int)((dir->next + (size_t)k) % (size_t)count);
        s_broker_t *b = &self->brokers[slot];
        if (*b->endpoint && b->up && !b->bye && streq(b->service, dir->service) &&
            !s_suspect(b, now, self->heartbeat_ms)) {
            dir->next = (size_t)(slot - VZ_ENDPOINTS_MAX) + 1;
            return slot;
        }
    }
    return -1;
}

//  A call: to a worker of its service directly when it may go so
//  (idempotent, direct on, the directory lists one that is up), else to a
//  broker. Following a service's directory starts with its first such call.
static int s_send_encoded(vz_client_t *self, const char *service, bool direct_ok,
                          const uint8_t *buf, size_t len)
{
    //  Link events change rarely: a send reads them at most every
    //  S_DRAIN_MS (vz_client_links and a waiting call read them at once).
    int64_t now = zclock_mono();
    if (now - self->drained_ms >= S_DRAIN_MS) {
        self->drained_ms = now;
        s_events(self);
    }
    s_dir_t *dir = self->direct && direct_ok && !streq(service, VZ_BROKER_SERVICE)
                       ? s_dir_find(self, service, true)
                       : NULL;
    if (dir) {
        if (now - dir->asked_ms >= S_DIR_MS)
            s_dir_ask(self, dir, now);
        int slot = s_pick_direct(self, dir, now);
        if (slot >= 0 && s_send_to(self, slot, buf, len) == 0) {
            if (!self->brokers[slot].waiting_since)
                self->brokers[slot].waiting_since = now;
            return 0;
        }
    }
    return s_send_broker(self, buf, len, now);
}

bool vz_client_suspect(const vz_client_t *self, int broker)
{
    assert(self);
    int64_t now = zclock_mono();
    if (broker < 0 || broker >= VZ_CLIENT_SLOTS ||
        !s_suspect(&self->brokers[broker], now, self->heartbeat_ms))
        return false;
    //  Another broker must answer (for a direct slot: any broker can).
    for (int i = 0; i < VZ_ENDPOINTS_MAX; i++) {
        const s_broker_t *b = &self->brokers[i];
        if (i != broker && *b->endpoint && b->up && !s_suspect(b, now, self->heartbeat_ms))
            return true;
    }
    return false;
}

//  Idempotent (a lost direct link is retried like worker_lost), and not
//  pinned to a version: only a broker routes by version (route.version,
//  vz_authctx.h).
static bool s_may_go_direct(const vz_envelope_t *req)
{
    return (req->flags & VZ_FLAG_IDEMPOTENT) && !vz_envelope_ctx_get(req, VZ_AUTHCTX_ROUTE_VERSION);
}

int vz_client_send(vz_client_t *self, const vz_envelope_t *req)
{
    assert(self && req);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = vz_envelope_encode(req, &buf, &len);
    if (rc < 0)
        return rc;
    rc = s_send_encoded(self, req->service, s_may_go_direct(req), buf, len);
    free(buf);
    return rc;
}

//  Read one message; 0 with a response, -EAGAIN when none is waiting or it
//  was not a well-formed REP (dropped: the broker is trusted, but a bug
//  there must not crash us). The first frame names the broker.
static int s_recv_one(vz_client_t *self, vz_response_t **response_p)
{
    zmsg_t *msg = zmsg_recv_nowait(self->sock);
    if (!msg)
        return zsys_interrupted ? -EINTR : -EAGAIN;
    int rc = -EAGAIN;
    //  Anything from a broker shows it alive: no longer waiting on it.
    zframe_t *rid = zmsg_pop(msg);
    int slot = rid && zframe_size(rid) ? zframe_data(rid)[0] - 'A' : -1;
    if (slot >= 0 && slot < VZ_CLIENT_SLOTS && zframe_streq(rid, self->brokers[slot].rid))
        self->brokers[slot].waiting_since = 0;
    else
        slot = -1;
    zframe_destroy(&rid);
    zframe_t *cmd = zmsg_first(msg);
    if (slot >= VZ_ENDPOINTS_MAX && zmsg_size(msg) == 1 && zframe_streq(cmd, VZ_CMD_BYE))
        self->brokers[slot].bye = true; //  a direct worker drains: no new calls
    if (zmsg_size(msg) == 2 && zframe_streq(cmd, VZ_CMD_REPLY)) {
        vz_response_t *response = (vz_response_t *)zmalloc(sizeof(vz_response_t));
        assert(response);
        response->frame = zmsg_last(msg);
        zmsg_remove(msg, response->frame);
        if (vz_envelope_decode(&response->env, zframe_data(response->frame),
                               zframe_size(response->frame), NULL, NULL) != 0 ||
            (response->env.kind != VZ_KIND_REPLY && response->env.kind != VZ_KIND_ERROR))
            vz_response_destroy(&response);
        else if (strncmp(response->env.id, S_DIR_ID, strlen(S_DIR_ID)) == 0) {
            //  Our own directory request's answer, not the caller's.
            s_dir_answer(self, &response->env);
            vz_response_destroy(&response);
        } else {
            *response_p = response;
            rc = 0;
        }
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
static int s_wait(vz_client_t *self, const char *id, int64_t until, bool watch,
                  vz_response_t **response_p)
{
    //  The broker the call went to, and its drops then: a drop since means
    //  it took the request with it (-ENOTCONN).
    int slot = watch ? self->last : -1;
    unsigned drops = slot >= 0 ? self->brokers[slot].drops : 0;
    zmq_pollitem_t items[2] = {{.socket = zsock_resolve(self->sock), .events = ZMQ_POLLIN},
                               {.socket = zsock_resolve(self->events), .events = ZMQ_POLLIN}};
    while (true) {
        if (zsys_interrupted)
            return -EINTR;
        int64_t left = until - zclock_mono();
        if (left <= 0)
            return -ETIMEDOUT;
        int rc = zmq_poll(items, 2, (long)left);
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
        s_events(self);
        if (slot >= 0 && self->brokers[slot].drops != drops)
            return -ENOTCONN;
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
        if (s_send_encoded(self, req->service, s_may_go_direct(req), buf, len) == 0) {
            rc = s_wait(self, req->id, until, true, &response);
            //  The broker dropped with the request: an idempotent call goes
            //  to the next broker at once; another waits out its deadline
            //  (the broker may yet answer it after a restart of the link).
            if (rc == -ENOTCONN && !idempotent)
                rc = s_wait(self, req->id, until, false, &response);
            if (rc == -ENOTCONN)
                continue;
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
        rc = s_wait(self, "", zclock_mono() + backoff, false, &response);
        vz_response_destroy(&response);
        if (rc == -EINTR)
            break;
        rc = -ETIMEDOUT;
        backoff = backoff * 2 > VZ_RETRY_CAP_MS ? VZ_RETRY_CAP_MS : backoff * 2;
    }
    free(buf);
    return *response_p ? 0 : rc;
}
