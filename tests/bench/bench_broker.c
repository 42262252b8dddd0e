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
 *
 *  bench_broker --brokers N [pipelined]: the same round trip through 1, 2 ..
 *  N brokers (at most 3) in one run, every broker a vz-broker process with
 *  the same key pair and policy. Three workers, each with one DEALER per
 *  broker (registered with every broker, as vz_worker does), and three
 *  clients, each with one DEALER connected to every broker (taking them in
 *  turn, as vz_client spreads its calls), each keeping a window of requests in
 *  flight. Prints round trips a second for each N and the ratio to N = 1,
 *  the baseline.
 */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "harness.h"
#include "ut.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_proto.h"

#define S_WINDOW 100    //  requests in flight when pipelined
#define S_BODY 160      //  body bytes: the whole envelope comes to about 200
#define S_MAX_BROKERS 3 //  brokers of the --brokers mode at most
#define S_SPREAD 3      //  workers and clients of the --brokers mode

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
    zsock_t *sock; //  bound ROUTER
} s_peer_args_t;

//  A worker registered with one or more brokers: one DEALER each.
typedef struct {
    zsock_t *socks[S_MAX_BROKERS]; //  connected DEALERs, one per broker
    int n;                         //  how many
} s_worker_args_t;

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

//  Broker worker on every socket of its args: [REQ, tag, caller, envelope]
//  -> [REP, tag, envelope]; HB -> HB.
static void s_worker_actor(zsock_t *pipe, void *arg)
{
    s_worker_args_t *args = (s_worker_args_t *)arg;
    zmq_pollitem_t items[1 + S_MAX_BROKERS] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}};
    for (int i = 0; i < args->n; i++) {
        zstr_sendx(args->socks[i], VZ_CMD_READY, "bench", "1000", NULL);
        items[1 + i] = (zmq_pollitem_t){zsock_resolve(args->socks[i]), 0, ZMQ_POLLIN, 0};
    }
    zsock_signal(pipe, 0);
    zmq_msg_t cmd, tag, caller, body;
    zmq_msg_init(&cmd);
    zmq_msg_init(&tag);
    zmq_msg_init(&caller);
    zmq_msg_init(&body);
    while (zmq_poll(items, 1 + args->n, -1) >= 0 && !(items[0].revents & ZMQ_POLLIN)) {
        for (int i = 1; i <= args->n; i++) {
            void *sock = items[i].socket;
            //  Drain everything readable on this broker's socket.
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

//  count round trips with S_WINDOW in flight; round trips a second.
static double s_pipeline(s_client_t *c, int count, zmq_msg_t *part)
{
    int64_t t0 = bench_usecs();
    int sent = 0, received = 0;
    while (sent < S_WINDOW && sent < count) {
        s_send(c);
        sent++;
    }
    while (received < count) {
        if (s_recv(c, part) < 0)
            break;
        received++;
        if (sent < count) {
            s_send(c);
            sent++;
        }
    }
    return (double)received / ((double)(bench_usecs() - t0) / 1e6);
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

    out->rate = s_pipeline(c, pipelined, &part);
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
    s_peer_args_t args = {router};
    zactor_t *actor = zactor_new(s_echo_actor, &args);
    c->sock = zsock_resolve(dealer);
    c->via_broker = false;
    s_measure(c, sequential, pipelined, out);
    zactor_destroy(&actor);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

//  --------------------------------------------------------------------------
//  CPU time, to tell whether the machine or the broker is the limit.

//  CPU seconds (user + system) of process pid so far; 0 when unreadable.
static double s_cpu_of(int pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    //  Fields after the ")" closing the command: state is field 3, utime 14, stime 15.
    const char *p = strrchr(line, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

//  Busy and total jiffies of the whole machine so far (/proc/stat "cpu").
static void s_machine_cpu(double *busy, double *total)
{
    unsigned long long v[8] = {0};
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    //  user nice system idle iowait irq softirq steal
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return;
    for (int i = 0; i < 8; i++)
        *total += (double)v[i];
    *busy = *total - (double)v[3] - (double)v[4];
}

//  --------------------------------------------------------------------------
//  Brokers.

//  A vz-broker process with its production settings on tcp://127.0.0.1:port
//  (admin on admin_port), keys and policy of dir; NULL when it does not
//  start (log dir/broker.<index>.log).
static vzt_proc_t *s_broker_start(const char *dir, const char *policy, int port, int admin_port,
                                  int index)
{
    char e_cert[VZ_PATH_MAX + 32], e_allow[VZ_PATH_MAX + 32], e_bind[96],
        e_policy[VZ_PATH_MAX + 32], e_admin[48], log[VZ_PATH_MAX];
    snprintf(e_cert, sizeof e_cert, "VZ_CURVE_CERT=%s/secret/broker.key", dir);
    snprintf(e_allow, sizeof e_allow, "VZ_CURVE_ALLOW_DIR=%s/public", dir);
    snprintf(e_bind, sizeof e_bind, "VZ_BROKER_BIND=tcp://127.0.0.1:%d", port);
    snprintf(e_policy, sizeof e_policy, "VZ_BROKER_POLICY=%s", policy);
    snprintf(e_admin, sizeof e_admin, "VZ_ADMIN_PORT=%d", admin_port);
    snprintf(log, sizeof log, "%s/broker.%d.log", dir, index);
    char *const extra[] = {e_cert, e_allow, e_bind, e_policy, e_admin, "VZ_LOG_LEVEL=warn", NULL};
    char *bin = vzt_bin("vz-broker");
    char *const bargv[] = {"vz-broker", NULL};
    vzt_proc_t *broker = vzt_spawn(bin, bargv, extra, log, 10000);
    free(bin);
    if (!broker)
        fprintf(stderr, "bench: vz-broker did not start (log %s)\n", log);
    return broker;
}

//  --------------------------------------------------------------------------
//  --brokers N: clients and workers spread over every broker.

typedef struct {
    zsock_t *sock;      //  DEALER connected to every broker
    const uint8_t *env; //  encoded request
    size_t env_len;     //  its length
    int count;          //  round trips to make after GO
} s_spread_args_t;

//  A client: warms up (every broker's pipe used and answered), signals,
//  waits for GO, makes count round trips, signals again, waits for $TERM.
static void s_spread_client_actor(zsock_t *pipe, void *arg)
{
    s_spread_args_t *args = (s_spread_args_t *)arg;
    s_client_t c = {zsock_resolve(args->sock), true, args->env, args->env_len};
    zmq_msg_t part;
    zmq_msg_init(&part);
    s_pipeline(&c, 2000, &part);
    zsock_signal(pipe, 0);
    char *cmd = zstr_recv(pipe);
    if (cmd && streq(cmd, "GO")) {
        s_pipeline(&c, args->count, &part);
        zsock_signal(pipe, 0);
        zstr_free(&cmd);
        cmd = zstr_recv(pipe); //  $TERM
    }
    zstr_free(&cmd);
    zmq_msg_close(&part);
}

typedef struct {
    double rate;       //  round trips a second
    double broker_cpu; //  CPU of all brokers over the run, % of one core
    double peer_cpu;   //  CPU of this process (clients, workers), % of one core
    double machine;    //  CPU of the whole machine (anyone's), % of one core
} s_spread_t;

//  Round trips a second through n brokers (S_SPREAD workers registered
//  with all, S_SPREAD clients spread over all, pipelined round trips in
//  all) and the CPU it took; rate -1 when a broker does not start or its
//  workers do not register.
static s_spread_t s_run_spread(const char *dir, const char *policy, zcert_t *server,
                               zcert_t *client, zcert_t *wcert, const uint8_t *env, size_t env_len,
                               int pipelined, int n)
{
    s_spread_t res = {-1, 0, 0, 0};
    vzt_proc_t *brokers[S_MAX_BROKERS] = {NULL};
    char endpoint[S_MAX_BROKERS][48], endpoints[S_MAX_BROKERS * 48] = "";
    int admin[S_MAX_BROKERS] = {0};
    s_worker_args_t wargs[S_SPREAD] = {0};
    zactor_t *workers[S_SPREAD] = {NULL};
    s_spread_args_t cargs[S_SPREAD] = {0};
    zactor_t *clients[S_SPREAD] = {NULL};
    const char *key = zcert_public_txt(server);
    for (int i = 0; i < n; i++) {
        int port = vzt_free_port();
        admin[i] = vzt_free_port();
        snprintf(endpoint[i], sizeof endpoint[i], "tcp://127.0.0.1:%d", port);
        //  The callers' list, as VZ_BROKER_ENDPOINTS: comma-separated.
        if (i > 0)
            strcat(endpoints, ",");
        strcat(endpoints, endpoint[i]);
        if (!(brokers[i] = s_broker_start(dir, policy, port, admin[i], i)))
            goto out;
    }
    for (int w = 0; w < S_SPREAD; w++) {
        wargs[w].n = n;
        for (int i = 0; i < n; i++)
            wargs[w].socks[i] = vz_curve_client(ZMQ_DEALER, endpoint[i], wcert, key);
        workers[w] = zactor_new(s_worker_actor, &wargs[w]);
    }
    //  Every broker has every worker before a client sends.
    for (int i = 0; i < n; i++)
        if (!vzt_wait_metric(admin[i], "vz_broker_workers{service=\"bench\"}", S_SPREAD, 10000)) {
            fprintf(stderr, "bench: broker %d: the workers did not register\n", i);
            goto out;
        }
    for (int k = 0; k < S_SPREAD; k++) {
        cargs[k] = (s_spread_args_t){vz_curve_client(ZMQ_DEALER, endpoints, client, key), env,
                                     env_len, pipelined / S_SPREAD};
        clients[k] = zactor_new(s_spread_client_actor, &cargs[k]);
    }
    double b0 = 0, p0 = s_cpu_of(getpid()), m_busy0, m_total0, m_busy1, m_total1;
    s_machine_cpu(&m_busy0, &m_total0);
    for (int i = 0; i < n; i++)
        b0 += s_cpu_of(vzt_proc_pid(brokers[i]));
    int64_t t0 = bench_usecs();
    for (int k = 0; k < S_SPREAD; k++)
        zstr_send(clients[k], "GO");
    for (int k = 0; k < S_SPREAD; k++)
        zsock_wait(clients[k]);
    double wall = (double)(bench_usecs() - t0) / 1e6, b1 = 0;
    for (int i = 0; i < n; i++)
        b1 += s_cpu_of(vzt_proc_pid(brokers[i]));
    res.rate = (double)(pipelined / S_SPREAD * S_SPREAD) / wall;
    res.broker_cpu = 100 * (b1 - b0) / wall;
    res.peer_cpu = 100 * (s_cpu_of(getpid()) - p0) / wall;
    s_machine_cpu(&m_busy1, &m_total1);
    if (m_total1 > m_total0)
        res.machine = 100 * (double)sysconf(_SC_NPROCESSORS_ONLN) * (m_busy1 - m_busy0) /
                      (m_total1 - m_total0);
out:
    for (int k = 0; k < S_SPREAD; k++) {
        zactor_destroy(&clients[k]);
        zsock_destroy(&cargs[k].sock);
    }
    for (int w = 0; w < S_SPREAD; w++) {
        zactor_destroy(&workers[w]);
        for (int i = 0; i < wargs[w].n; i++)
            zsock_destroy(&wargs[w].socks[i]);
    }
    for (int i = 0; i < n; i++)
        vzt_proc_destroy(&brokers[i]);
    return res;
}

static int s_main_spread(const char *dir, const char *policy, zcert_t *server, zcert_t *client,
                         zcert_t *wcert, const uint8_t *env, size_t env_len, int pipelined,
                         int max_brokers)
{
    s_spread_t r[S_MAX_BROKERS + 1] = {{0}};
    for (int n = 1; n <= max_brokers; n++) {
        r[n] = s_run_spread(dir, policy, server, client, wcert, env, env_len, pipelined, n);
        if (r[n].rate < 0)
            return 1;
    }
    printf("\nvz-broker round trips through 1..%d brokers, %zu-byte envelope, %d pipelined "
           "(%d clients spread over every broker, window %d each; %d workers registered with "
           "every broker), %ld cores\n\n",
           max_brokers, env_len, pipelined / S_SPREAD * S_SPREAD, S_SPREAD, S_WINDOW, S_SPREAD,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-8s %14s %8s %12s %12s %12s\n", "brokers", "round trips/s", "ratio", "brokers cpu%",
           "peers cpu%", "machine cpu%");
    for (int n = 1; n <= max_brokers; n++)
        printf("%-8d %14.0f %7.2fx %12.0f %12.0f %12.0f\n", n, r[n].rate, r[n].rate / r[1].rate,
               r[n].broker_cpu, r[n].peer_cpu, r[n].machine);
    printf("\nratio against 1 broker (same run, same clients and workers); cpu%%: of one core\n"
           "over the measured run (brokers: all vz-broker processes; peers: the clients and\n"
           "workers of this program; machine: every process, the bench's and others'); %ld\n"
           "cores = %ld%% at most\n",
           sysconf(_SC_NPROCESSORS_ONLN), 100 * sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}

int main(int argc, char **argv)
{
    //  bench_broker [sequential] [pipelined] | --brokers N [pipelined]
    int max_brokers = 0, sequential = 5000, pipelined = 100000;
    if (argc > 1 && streq(argv[1], "--brokers")) {
        max_brokers = argc > 2 ? atoi(argv[2]) : 0;
        pipelined = argc > 3 ? atoi(argv[3]) : pipelined;
        if (max_brokers < 1 || max_brokers > S_MAX_BROKERS) {
            fprintf(stderr, "usage: bench_broker --brokers 1..%d [pipelined]\n", S_MAX_BROKERS);
            return 2;
        }
    } else {
        sequential = argc > 1 ? atoi(argv[1]) : sequential;
        pipelined = argc > 2 ? atoi(argv[2]) : pipelined;
    }
    if (sequential < 100 || pipelined < S_WINDOW * S_SPREAD) {
        fprintf(stderr, "usage: bench_broker [sequential >= 100] [pipelined >= %d]\n",
                S_WINDOW * S_SPREAD);
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
    int rc = 0;
    if (max_brokers) {
        rc =
            s_main_spread(dir, policy, server, client, wcert, env, env_len, pipelined, max_brokers);
        goto out;
    }
    s_client_t c = {NULL, false, env, env_len};

    s_result_t rows[3] = {
        {"direct plain", 0, 0, 0}, {"direct curve", 0, 0, 0}, {"broker curve", 0, 0, 0}};
    s_run_direct(false, server, client, &c, sequential, pipelined, &rows[0]);
    s_run_direct(true, server, client, &c, sequential, pipelined, &rows[1]);

    //  The real broker, as a process, with its production settings.
    int port = vzt_free_port();
    vzt_proc_t *broker = s_broker_start(dir, policy, port, vzt_free_port(), 0);
    if (!broker) {
        rc = 1;
        goto out;
    }
    char endpoint[48];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    zsock_t *wsock = vz_curve_client(ZMQ_DEALER, endpoint, wcert, zcert_public_txt(server));
    zsock_t *csock = vz_curve_client(ZMQ_DEALER, endpoint, client, zcert_public_txt(server));
    s_worker_args_t wargs = {{wsock}, 1};
    zactor_t *worker = zactor_new(s_worker_actor, &wargs);
    c.sock = zsock_resolve(csock);
    c.via_broker = true;
    s_measure(&c, sequential, pipelined, &rows[2]);
    zactor_destroy(&worker);
    zsock_destroy(&csock);
    zsock_destroy(&wsock);
    vzt_proc_destroy(&broker);

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

out:
    free(env);
    zcert_destroy(&server);
    zcert_destroy(&client);
    zcert_destroy(&wcert);
    vzt_rmrf(dir);
    free(dir);
    return rc;
}
