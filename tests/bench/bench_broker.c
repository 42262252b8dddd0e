/*  bench_broker - round trips through vz-broker against a direct DEALER/ROUTER pair
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Same machine, same run, same ~200-byte msgpack envelope. Rows:
 *    direct plain  DEALER -> ROUTER echo, no CURVE (raw zsock: bench only)
 *    direct curve  the same with CURVE
 *    broker curve  DEALER -> vz-broker -> worker DEALER and back (two CURVE hops)
 *  For each: sequential round trips (p50, p99) and pipelined throughput with
 *  a window of requests in flight. Usage: bench_broker [sequential] [pipelined]
 *  (counts; defaults 5000 and 100000). Needs VZ_BIN_DIR for vz-broker.
 */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "harness.h"
#include "ut.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_proto.h"

#define S_WINDOW 100 //  requests in flight when pipelined
#define S_BODY 160   //  body bytes: the whole envelope comes to about 200

typedef struct {
    const char *name; //  row label
    double p50_us;    //  sequential round trip, median
    double p99_us;    //  sequential round trip, 99th percentile
    double rate;      //  pipelined round trips per second
} s_result_t;

//  --------------------------------------------------------------------------
//  Peers. Every loop uses zmq_msg_t so the bench measures the transport and
//  the broker, not allocation in the peers.

typedef struct {
    zsock_t *sock; //  bound ROUTER (direct) or connected DEALER (worker)
    bool worker;   //  speaks the worker side of vz_proto.h
} s_peer_args_t;

//  Direct echo: [rid, payload] back as it came.
static void s_echo_actor(zsock_t *pipe, void *arg)
{
    s_peer_args_t *args = (s_peer_args_t *)arg;
    void *sock = zsock_resolve(args->sock);
    zsock_signal(pipe, 0);
    zmq_pollitem_t items[] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}, {sock, 0, ZMQ_POLLIN, 0}};
    zmq_msg_t part;
    zmq_msg_init(&part);
    while (zmq_poll(items, 2, -1) >= 0 && !(items[0].revents & ZMQ_POLLIN)) {
        //  Drain everything readable before polling again.
        while (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) >= 0) {
            int more = zmq_msg_more(&part);
            zmq_msg_send(&part, sock, more ? ZMQ_SNDMORE : 0);
        }
    }
    zmq_msg_close(&part);
}

//  Broker worker: [REQ, tag, caller, envelope] -> [REP, tag, envelope]; HB -> HB.
static void s_worker_actor(zsock_t *pipe, void *arg)
{
    s_peer_args_t *args = (s_peer_args_t *)arg;
    void *sock = zsock_resolve(args->sock);
    zstr_sendx(args->sock, VZ_CMD_READY, "bench", "1000", NULL);
    zsock_signal(pipe, 0);
    zmq_pollitem_t items[] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}, {sock, 0, ZMQ_POLLIN, 0}};
    zmq_msg_t cmd, tag, caller, body;
    zmq_msg_init(&cmd);
    zmq_msg_init(&tag);
    zmq_msg_init(&caller);
    zmq_msg_init(&body);
    while (zmq_poll(items, 2, -1) >= 0 && !(items[0].revents & ZMQ_POLLIN)) {
        while (zmq_msg_recv(&cmd, sock, ZMQ_DONTWAIT) >= 0) {
            if (zmq_msg_size(&cmd) == 3 && memcmp(zmq_msg_data(&cmd), "REQ", 3) == 0) {
                zmq_msg_recv(&tag, sock, 0);
                zmq_msg_recv(&caller, sock, 0);
                zmq_msg_recv(&body, sock, 0);
                zmq_send(sock, VZ_CMD_REPLY, 3, ZMQ_SNDMORE);
                zmq_msg_send(&tag, sock, ZMQ_SNDMORE);
                zmq_msg_send(&body, sock, 0);
            } else {
                while (zmq_msg_more(&cmd))
                    zmq_msg_recv(&cmd, sock, 0);
                zmq_send(sock, VZ_CMD_HEARTBEAT, 2, 0);
            }
        }
    }
    zmq_msg_close(&cmd);
    zmq_msg_close(&tag);
    zmq_msg_close(&caller);
    zmq_msg_close(&body);
}

//  --------------------------------------------------------------------------
//  Client side.

typedef struct {
    void *sock;         //  DEALER
    bool via_broker;    //  prefix REQ, expect REP
    const uint8_t *env; //  encoded request
    size_t env_len;     //  its length
} s_client_t;

static void s_send(s_client_t *c)
{
    if (c->via_broker)
        zmq_send(c->sock, VZ_CMD_REQUEST, 3, ZMQ_SNDMORE);
    zmq_send(c->sock, c->env, c->env_len, 0);
}

static int s_recv(s_client_t *c, zmq_msg_t *part)
{
    //  A reply is one frame direct, [REP, envelope] through the broker.
    do {
        if (zmq_msg_recv(part, c->sock, 0) < 0)
            return -1;
    } while (zmq_msg_more(part));
    return 0;
}

static void s_measure(s_client_t *c, int sequential, int pipelined, s_result_t *out)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    //  Warm-up: connections, handshakes, caches.
    for (int i = 0; i < 500; i++) {
        s_send(c);
        s_recv(c, &part);
    }
    int64_t *lat = (int64_t *)malloc(sizeof(int64_t) * (size_t)sequential);
    for (int i = 0; i < sequential; i++) {
        int64_t t0 = bench_usecs();
        s_send(c);
        s_recv(c, &part);
        lat[i] = bench_usecs() - t0;
    }
    qsort(lat, (size_t)sequential, sizeof *lat, bench_cmp_i64);
    out->p50_us = (double)lat[sequential / 2];
    out->p99_us = (double)lat[(size_t)((double)sequential * 0.99)];
    free(lat);

    int64_t t0 = bench_usecs();
    int sent = 0, received = 0;
    while (sent < S_WINDOW && sent < pipelined) {
        s_send(c);
        sent++;
    }
    while (received < pipelined) {
        if (s_recv(c, &part) < 0)
            break;
        received++;
        if (sent < pipelined) {
            s_send(c);
            sent++;
        }
    }
    out->rate = (double)received / ((double)(bench_usecs() - t0) / 1e6);
    zmq_msg_close(&part);
}

//  A direct pair, CURVE or not (server certificate = the broker's, unchecked by ZAP).
static void s_run_direct(bool curve, zcert_t *server, zcert_t *client, s_client_t *c,
                         int sequential, int pipelined, s_result_t *out)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_sndhwm(router, 0);
    zsock_set_rcvhwm(router, 0);
    if (curve) {
        zcert_apply(server, router);
        zsock_set_curve_server(router, 1);
        zcert_apply(client, dealer);
        zsock_set_curve_serverkey(dealer, zcert_public_txt(server));
    }
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    assert(port > 0);
    zsock_connect(dealer, "tcp://127.0.0.1:%d", port);
    s_peer_args_t args = {router, false};
    zactor_t *actor = zactor_new(s_echo_actor, &args);
    c->sock = zsock_resolve(dealer);
    c->via_broker = false;
    s_measure(c, sequential, pipelined, out);
    zactor_destroy(&actor);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

int main(int argc, char **argv)
{
    int sequential = argc > 1 ? atoi(argv[1]) : 5000;
    int pipelined = argc > 2 ? atoi(argv[2]) : 100000;
    if (sequential < 100 || pipelined < S_WINDOW) {
        fprintf(stderr, "usage: bench_broker [sequential >= 100] [pipelined >= %d]\n", S_WINDOW);
        return 2;
    }
    zsys_init();
    char *dir = vzt_tempdir("bench");
    const char *const names[] = {"broker", "bench", "benchw", NULL};
    if (!dir || vzt_keys(dir, names) < 0) {
        fprintf(stderr, "bench: cannot make keys\n");
        return 1;
    }
    char policy[VZ_PATH_MAX];
    snprintf(policy, sizeof policy, "%s/policy.cfg", dir);
    FILE *f = fopen(policy, "w");
    fputs("identity\n    bench\n        call = \"bench\"\n    benchw\n        serve = \"bench\"\n",
          f);
    fclose(f);
    zcert_t *server = ut_cert_load(dir, "broker");
    zcert_t *client = ut_cert_load(dir, "bench");
    zcert_t *wcert = ut_cert_load(dir, "benchw");
    assert(server && client && wcert);

    //  The request every row sends.
    vz_envelope_t req;
    if (vz_envelope_request(&req, "bench", "echo", "0123456789abcdef0123456789abcdef") != 0)
        abort();
    req.deadline_ms = vz_now_ms() + 3600 * 1000;
    uint8_t body[S_BODY];
    memset(body, 'x', sizeof body);
    req.body = body;
    req.body_len = sizeof body;
    uint8_t *env = NULL;
    size_t env_len = 0;
    vz_envelope_encode(&req, &env, &env_len);
    s_client_t c = {NULL, false, env, env_len};

    s_result_t rows[3] = {
        {"direct plain", 0, 0, 0}, {"direct curve", 0, 0, 0}, {"broker curve", 0, 0, 0}};
    s_run_direct(false, server, client, &c, sequential, pipelined, &rows[0]);
    s_run_direct(true, server, client, &c, sequential, pipelined, &rows[1]);

    //  The real broker, as a process, with its production settings.
    int port = vzt_free_port();
    char endpoint[64], e_cert[VZ_PATH_MAX + 32], e_allow[VZ_PATH_MAX + 32], e_bind[96],
        e_policy[VZ_PATH_MAX + 32], log[VZ_PATH_MAX];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    snprintf(e_cert, sizeof e_cert, "VZ_CURVE_CERT=%s/secret/broker.key", dir);
    snprintf(e_allow, sizeof e_allow, "VZ_CURVE_ALLOW_DIR=%s/public", dir);
    snprintf(e_bind, sizeof e_bind, "VZ_BROKER_BIND=%s", endpoint);
    snprintf(e_policy, sizeof e_policy, "VZ_BROKER_POLICY=%s", policy);
    snprintf(log, sizeof log, "%s/broker.log", dir);
    char *const extra[] = {
        e_cert, e_allow, e_bind, e_policy, "VZ_ADMIN_PORT=0", "VZ_LOG_LEVEL=warn", NULL};
    char *bin = vzt_bin("vz-broker");
    char *const bargv[] = {"vz-broker", NULL};
    vzt_proc_t *broker = vzt_spawn(bin, bargv, extra, log, 10000);
    free(bin);
    int rc = 0;
    if (!broker) {
        fprintf(stderr, "bench: vz-broker did not start (log %s)\n", log);
        rc = 1;
    } else {
        zsock_t *wsock = vz_curve_client(ZMQ_DEALER, endpoint, wcert, zcert_public_txt(server));
        zsock_t *csock = vz_curve_client(ZMQ_DEALER, endpoint, client, zcert_public_txt(server));
        s_peer_args_t wargs = {wsock, true};
        zactor_t *worker = zactor_new(s_worker_actor, &wargs);
        c.sock = zsock_resolve(csock);
        c.via_broker = true;
        s_measure(&c, sequential, pipelined, &rows[2]);
        zactor_destroy(&worker);
        zsock_destroy(&csock);
        zsock_destroy(&wsock);
        vzt_proc_destroy(&broker);
    }

    printf(
        "\nvz-broker round trips, %zu-byte envelope, %d sequential, %d pipelined (window %d)\n\n",
        env_len, sequential, pipelined, S_WINDOW);
    printf("%-14s %10s %10s %14s %12s %12s\n", "path", "p50 us", "p99 us", "pipelined/s",
           "p50 ratio", "rate ratio");
    for (int i = 0; i < 3; i++)
        printf("%-14s %10.1f %10.1f %14.0f %11.2fx %11.2fx\n", rows[i].name, rows[i].p50_us,
               rows[i].p99_us, rows[i].rate, rows[i].p50_us / rows[1].p50_us,
               rows[i].rate / rows[1].rate);
    printf("\nratios are against direct curve (same security as the broker path)\n");

    free(env);
    zcert_destroy(&server);
    zcert_destroy(&client);
    zcert_destroy(&wcert);
    vzt_rmrf(dir);
    free(dir);
    return rc;
}
