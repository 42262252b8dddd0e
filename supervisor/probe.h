/*  probe - one non-blocking readiness probe of a running child over TCP
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Two kinds: GET /readyz on a daemon's admin port (a hand-written
 *  HTTP/1.0 request; the server closes after the response) and Redis PING.
 *  The socket is non-blocking so the supervisor's poll loop never waits on
 *  a child: it adds vz_probe_fd/vz_probe_events to its poll set and calls
 *  vz_probe_step when the fd fires or on its tick. Each probe has its own
 *  deadline. Called from the supervisor's single thread only.
 */
#ifndef VZ_PROBE_H
#define VZ_PROBE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    VZ_PROBE_READYZ, //  HTTP GET /readyz: 200 ready, 503 not ready (reason from the JSON body)
    VZ_PROBE_PING,   //  Redis PING: +PONG ready
} vz_probe_kind_t;

typedef enum {
    VZ_PROBE_RUNNING,   //  not finished yet
    VZ_PROBE_READY,     //  the child says it is ready
    VZ_PROBE_NOT_READY, //  the child answered and says it is not ready
    VZ_PROBE_ERROR,     //  no usable answer: refused, timeout, junk
} vz_probe_result_t;

#define VZ_PROBE_REASON_MAX 128 //  reason text, NUL included

typedef struct vz_probe_t vz_probe_t;

//  Start a probe of 127.0.0.1:port that must finish by deadline_ms (on the
//  scale of vz_clock_mono_ms). Never NULL: a socket that
//  cannot even be created yields a probe already finished with an error.
vz_probe_t *vz_probe_new(vz_probe_kind_t kind, int port, int64_t deadline_ms);
void vz_probe_destroy(vz_probe_t **self_p);

//  The fd to poll (-1 once finished) and the events to wait for.
int vz_probe_fd(const vz_probe_t *self);
short vz_probe_events(const vz_probe_t *self);

//  Advance with whatever the socket allows without blocking; checks the
//  deadline against now_ms. Returns the result so far (RUNNING until done).
vz_probe_result_t vz_probe_step(vz_probe_t *self, int64_t now_ms);

//  Why it is not ready or failed (borrowed; "" when ready or running):
//  the "reason" of a 503 body, or a short transport description.
const char *vz_probe_reason(const vz_probe_t *self);

#endif
