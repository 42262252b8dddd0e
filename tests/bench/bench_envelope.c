/*  bench_envelope - nanoseconds per encode and per decode of a typical request
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A ~200-byte request (service, method, 32-char id, traceparent, deadline,
 *  flags, two ctx entries, a small JSON body), encoded and decoded in a loop.
 *  Prints figures only; it asserts nothing about speed, which depends on the
 *  machine. CMake builds it as bin/bench_envelope (tests/bench/CMakeLists.txt;
 *  use a RelWithDebInfo build for figures), or by hand from the repository root:
 *
 *    cc -std=c17 -O2 -D_GNU_SOURCE -Icommon tests/bench/bench_envelope.c \
 *       common/vz_envelope.c $(pkg-config --cflags --libs msgpack) -o /tmp/bench_envelope
 *    /tmp/bench_envelope [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vz_envelope.h"

static double s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 1000000;
    if (iterations <= 0) {
        fprintf(stderr, "usage: bench_envelope [iterations > 0]\n");
        return 1;
    }
    static const char body[] = "{\"user\":\"ada\",\"plan\":\"pro\",\"seats\":3}";
    vz_envelope_t env;
    if (vz_envelope_request(&env, "billing", "subscription.get",
                            "4bf92f3577b34da6a3ce929d0e0e4736") != 0)
        abort();
    strcpy(env.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    env.deadline_ms = 1700000005000;
    env.flags = VZ_FLAG_IDEMPOTENT;
    if (vz_envelope_ctx_set(&env, "sub", "user-42") < 0 ||
        vz_envelope_ctx_set(&env, "tier", "pro") < 0)
        return 1;
    env.body = (const uint8_t *)body;
    env.body_len = sizeof(body) - 1;

    uint8_t *frame;
    size_t len;
    if (vz_envelope_encode(&env, &frame, &len) < 0)
        return 1;

    //  The checksum keeps the compiler from dropping the loops.
    size_t checksum = 0;
    double start = s_now_ns();
    for (long i = 0; i < iterations; i++) {
        uint8_t *buf;
        size_t n;
        if (vz_envelope_encode(&env, &buf, &n) < 0)
            return 1;
        checksum += n + buf[n - 1];
        free(buf);
    }
    double encode_ns = (s_now_ns() - start) / (double)iterations;

    vz_envelope_t out;
    start = s_now_ns();
    for (long i = 0; i < iterations; i++) {
        if (vz_envelope_decode(&out, frame, len, NULL, NULL) < 0)
            return 1;
        checksum += out.body_len;
    }
    double decode_ns = (s_now_ns() - start) / (double)iterations;

    printf("envelope: %zu bytes, %ld iterations\n", len, iterations);
    printf("encode: %.0f ns/op (includes malloc/free of the frame)\n", encode_ns);
    printf("decode: %.0f ns/op (no allocation)\n", decode_ns);
    printf("checksum: %zu\n", checksum);
    free(frame);
    return 0;
}
