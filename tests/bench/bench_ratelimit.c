/*  bench_ratelimit - decisions per second through the broker vs the Redis ceiling
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One run, one machine: redis-server, vz-broker and vz-ratelimit replicas
 *  on free ports. Rows:
 *    redis-benchmark EVALSHA  the same token-bucket script, 50 connections,
 *                             unpipelined and -P 16 (the ceiling)
 *    hiredis EVALSHA          one connection, one call at a time and with a
 *                             window in flight (what one replica could get)
 *    broker decisions         vz_client -> broker -> vz-ratelimit -> Redis:
 *                             sequential (p50/p99) and pipelined with a window
 *                             of async sends, with 1 and 2 replicas
 *  and the ratios between them. Usage:
 *    bench_ratelimit [sequential=3000] [pipelined=40000] [window=64]
 *  Needs VZ_BIN_DIR (vz-broker, vz-ratelimit) and redis-server, redis-benchmark.
 */
#include <czmq.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/ratelimit/scripts.h"
#include "bench.h"
#include "harness.h"
#include "vz_client.h"
#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_ratelimit_contract.h"
#include "vz_redis.h"

#define S_KEYS 1000 //  distinct client IPs, so the load spreads over buckets
//  Token-bucket arguments of the bench policy: 1,000,000 a minute.
#define S_T_US "60"
#define S_BURST "1000000"

typedef struct {
    vzt_mesh_t *mesh;       //  Redis, vz-broker and the replicas
    int redis_port;         //  redis-server
    const char *endpoint;   //  tcp://127.0.0.1:<broker port>
    const char *broker_key; //  Z85
    zcert_t *cert;          //  "gateway" identity (the mesh's)
} s_mesh_t;

static redisContext *s_redis_connect(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

//  Redis and the broker; the replicas come later (s_start_replica).
static void s_start(s_mesh_t *m)
{
    static const char *const files[] = {
        "ratelimit.cfg",
        "policy\n    bench\n        by = \"ip\"\n        algorithm = \"token_bucket\"\n"
        "        limit = 1000000\n        window = \"60s\"\n",
        NULL};
    char *const env[] = {"VZ_LOG_LEVEL=warn", NULL};
    vzt_mesh_opts_t opts = {.daemons = "",
                            .identities = "ratelimit,gateway",
                            .policy = "identity\n    gateway\n        call = \"ratelimit\"\n"
                                      "    ratelimit\n        serve = \"ratelimit\"\n",
                            .env = env,
                            .files = files,
                            .tag = "bench-ratelimit"};
    m->mesh = vzt_mesh_start(&opts);
    if (!m->mesh) {
        fprintf(stderr, "bench: the mesh did not start\n");
        exit(1);
    }
    m->redis_port = vzt_mesh_redis_port(m->mesh);
    m->endpoint = vzt_mesh_endpoint(m->mesh);
    m->broker_key = vzt_mesh_broker_key(m->mesh);
    m->cert = vzt_mesh_cert(m->mesh, "gateway");
    if (!m->cert)
        abort();
}

static void s_start_replica(s_mesh_t *m, int i)
{
    char *const env[] = {"VZ_WORKER_CREDIT=64", "VZ_RATELIMIT_REPLICAS=2", NULL};
    char tag[16];
    snprintf(tag, sizeof tag, "ratelimit.%d", i);
    if (!vzt_mesh_add(m->mesh, "ratelimit", tag, env, true)) {
        fprintf(stderr, "bench: %s did not become ready\n", tag);
        exit(1);
    }
}

static void s_stop(s_mesh_t *m)
{
    if (vzt_mesh_destroy(&m->mesh) != 0)
        fprintf(stderr, "bench: a daemon did not stop cleanly\n");
}

//  --------------------------------------------------------------------------
//  Redis rows

//  redis-benchmark's requests per second for the token-bucket script.
static double s_redis_benchmark(int port, const char *sha, int n, int pipeline)
{
    char *cmd = vzt_fmt("redis-benchmark -h 127.0.0.1 -p %d -n %d -c 50 -P %d -r %d --csv "
                        "EVALSHA %s 1 vz:rl:rb:__rand_int__ %s %s 1 2>/dev/null",
                        port, n, pipeline, S_KEYS, sha, S_T_US, S_BURST);
    FILE *p = popen(cmd, "r");
    free(cmd);
    double rps = 0;
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        //  "EVALSHA ...","35398.23",...
        char *q = strstr(line, "\",\"");
        if (strncmp(line, "\"EVALSHA", 8) == 0 && q)
            rps = strtod(q + 3, NULL);
    }
    if (p)
        pclose(p);
    return rps;
}

//  One hiredis connection: one call at a time, or window calls in flight.
static double s_hiredis(int port, const char *sha, int n, int window, double *p50_us)
{
    redisContext *c = s_redis_connect(port);
    if (!c)
        return 0;
    int64_t *lat = window == 1 ? calloc((size_t)n, sizeof *lat) : NULL;
    char key[64];
    int64_t t0 = bench_usecs();
    int sent = 0, done = 0;
    while (done < n) {
        while (sent < n && sent - done < window) {
            snprintf(key, sizeof key, "vz:rl:hi:%d", sent % S_KEYS);
            redisAppendCommand(c, "EVALSHA %s 1 %s %s %s 1", sha, key, S_T_US, S_BURST);
            sent++;
        }
        int64_t t1 = bench_usecs();
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK || !reply)
            break;
        freeReplyObject(reply);
        if (lat)
            lat[done] = bench_usecs() - t1;
        done++;
    }
    double rate = done / ((double)(bench_usecs() - t0) / 1e6);
    if (lat) {
        qsort(lat, (size_t)done, sizeof *lat, bench_cmp_i64);
        *p50_us = (double)lat[done / 2];
        free(lat);
    }
    redisFree(c);
    return rate;
}

//  --------------------------------------------------------------------------
//  Broker rows

static uint8_t *s_body(int i, size_t *len)
{
    vz_rl_check_t check = {.tier = "anonymous", .route = "bench", .cost = 1};
    snprintf(check.ip, sizeof check.ip, "10.%d.%d.%d", (i / 65536) % 256, (i / 256) % 256, i % 256);
    return vz_rl_check_encode(&check, len);
}

static void s_request(vz_envelope_t *req, const uint8_t *body, size_t len)
{
    if (vz_envelope_request(req, "ratelimit", "check", NULL) != 0)
        abort();
    req->body = body;
    req->body_len = len;
}

static int s_sequential(s_mesh_t *m, int n, double *p50, double *p99, double *rate)
{
    vz_client_config_t config = {
        .endpoints = m->endpoint, .broker_key = m->broker_key, .cert = m->cert};
    vz_client_t *client = vz_client_new(&config);
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    int ok = 0;
    int64_t t0 = bench_usecs();
    for (int i = 0; client && i < n; i++) {
        size_t len;
        uint8_t *body = s_body(i % S_KEYS, &len);
        vz_envelope_t req;
        s_request(&req, body, len);
        vz_response_t *rsp = NULL;
        int64_t t1 = bench_usecs();
        if (vz_client_call(client, &req, 5000, &rsp) == 0 && rsp->env.kind == VZ_KIND_REPLY)
            lat[ok++] = bench_usecs() - t1;
        vz_response_destroy(&rsp);
        free(body);
    }
    *rate = ok / ((double)(bench_usecs() - t0) / 1e6);
    qsort(lat, (size_t)ok, sizeof *lat, bench_cmp_i64);
    *p50 = ok ? (double)lat[ok / 2] : 0;
    *p99 = ok ? (double)lat[ok * 99 / 100] : 0;
    free(lat);
    vz_client_destroy(&client);
    return ok == n ? 0 : -1;
}

//  window requests in flight through vz_client_send / vz_client_recv.
static double s_pipelined(s_mesh_t *m, int n, int window, int *errors)
{
    vz_client_config_t config = {
        .endpoints = m->endpoint, .broker_key = m->broker_key, .cert = m->cert};
    vz_client_t *client = vz_client_new(&config);
    if (!client)
        return 0;
    size_t lens[S_KEYS];
    uint8_t *bodies[S_KEYS];
    for (int i = 0; i < S_KEYS; i++)
        bodies[i] = s_body(i, &lens[i]);
    zpoller_t *poller = zpoller_new(vz_client_sock(client), NULL);
    int sent = 0, done = 0;
    *errors = 0;
    int64_t t0 = bench_usecs();
    while (done < n) {
        while (sent < n && sent - done < window) {
            vz_envelope_t req;
            s_request(&req, bodies[sent % S_KEYS], lens[sent % S_KEYS]);
            vz_client_new_id(req.id, sizeof req.id);
            req.deadline_ms = vz_now_ms() + 10000;
            if (vz_client_send(client, &req) < 0)
                break;
            sent++;
        }
        if (!zpoller_wait(poller, 10000))
            break;
        vz_response_t *rsp = NULL;
        while (vz_client_recv(client, &rsp) == 0 && rsp) {
            if (rsp->env.kind != VZ_KIND_REPLY)
                (*errors)++;
            vz_response_destroy(&rsp);
            done++;
        }
    }
    double rate = done / ((double)(bench_usecs() - t0) / 1e6);
    zpoller_destroy(&poller);
    for (int i = 0; i < S_KEYS; i++)
        free(bodies[i]);
    vz_client_destroy(&client);
    return done == n ? rate : 0;
}

int main(int argc, char **argv)
{
    int seq = argc > 1 ? atoi(argv[1]) : 3000;
    int pipe = argc > 2 ? atoi(argv[2]) : 40000;
    int window = argc > 3 ? atoi(argv[3]) : 64;
    if (seq < 100 || pipe < 100 || window < 1 || window > 1000) {
        fprintf(stderr, "usage: bench_ratelimit [sequential>=100] [pipelined>=100] [window]\n");
        return 2;
    }
    zsys_init();
    s_mesh_t m = {0};
    s_start(&m);
    vz_redis_script_t *script = vz_redis_script_new(rl_token_bucket_lua);
    const char *sha = vz_redis_script_sha(script);
    redisContext *c = s_redis_connect(m.redis_port);
    redisReply *r = c ? redisCommand(c, "SCRIPT LOAD %s", rl_token_bucket_lua) : NULL;
    if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, sha) != 0) {
        fprintf(stderr, "bench: SCRIPT LOAD failed\n");
        return 1;
    }
    freeReplyObject(r);
    redisFree(c);

    double rb1 = s_redis_benchmark(m.redis_port, sha, pipe * 2, 1);
    double rb16 = s_redis_benchmark(m.redis_port, sha, pipe * 4, 16);
    double hi_p50 = 0, hi_seq = s_hiredis(m.redis_port, sha, pipe / 2, 1, &hi_p50);
    double hi_pipe = s_hiredis(m.redis_port, sha, pipe, window, &(double){0});

    s_start_replica(&m, 0);
    double p50, p99, seq_rate;
    int errors = 0;
    if (s_sequential(&m, seq, &p50, &p99, &seq_rate) < 0)
        fprintf(stderr, "bench: sequential calls failed\n");
    double pipe1 = s_pipelined(&m, pipe, window, &errors);
    s_start_replica(&m, 1);
    int errors2 = 0;
    double pipe2 = s_pipelined(&m, pipe, window, &errors2);

    printf("%-52s %12s %10s %10s\n", "row", "per second", "p50 us", "p99 us");
    printf("%-52s %12.0f\n", "redis-benchmark EVALSHA token bucket, 50 conns", rb1);
    printf("%-52s %12.0f\n", "redis-benchmark EVALSHA token bucket, 50 conns -P 16", rb16);
    printf("%-52s %12.0f %10.0f\n", "hiredis EVALSHA, 1 conn, one at a time", hi_seq, hi_p50);
    char label[80];
    snprintf(label, sizeof label, "hiredis EVALSHA, 1 conn, window %d", window);
    printf("%-52s %12.0f\n", label, hi_pipe);
    printf("%-52s %12.0f %10.0f %10.0f\n", "broker decisions, 1 replica, sequential", seq_rate, p50,
           p99);
    snprintf(label, sizeof label, "broker decisions, 1 replica, window %d", window);
    printf("%-52s %12.0f\n", label, pipe1);
    snprintf(label, sizeof label, "broker decisions, 2 replicas, window %d", window);
    printf("%-52s %12.0f\n", label, pipe2);
    printf("\nratios\n");
    printf("  broker pipelined (best) / redis-benchmark ceiling  %.2f\n",
           (pipe1 > pipe2 ? pipe1 : pipe2) / (rb1 > 0 ? rb1 : 1));
    printf("  broker pipelined 1 replica / sequential            %.2f\n",
           pipe1 / (seq_rate > 0 ? seq_rate : 1));
    printf("  broker 2 replicas / 1 replica                      %.2f\n",
           pipe2 / (pipe1 > 0 ? pipe1 : 1));
    printf("  redis-benchmark -P 16 / -P 1                       %.2f\n",
           rb16 / (rb1 > 0 ? rb1 : 1));
    printf("  hiredis window / one at a time                     %.2f\n",
           hi_pipe / (hi_seq > 0 ? hi_seq : 1));
    if (errors || errors2)
        printf("errors: %d (1 replica), %d (2 replicas)\n", errors, errors2);
    vz_redis_script_destroy(&script);
    s_stop(&m);
    return pipe1 > 0 && pipe2 > 0 ? 0 : 1;
}
