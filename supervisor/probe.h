/*  probe - one non-blocking readiness probe of a running child over TCP
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Two kinds: GET /readyz on a daemon's admin port (a hand-written
 *  HTTP/1.0 request; the server closes after the response) and Redis PING.
 *  The socket is non-blocking so the supervisor's poll loop never waits on
 *  a child: it adds sup_probe_fd/sup_probe_events to its poll set and calls
 *  sup_probe_step when the fd fires or on its tick. Each probe has its own
 *  deadline. Called from the supervisor's single thread only.
 */
#ifndef SUP_PROBE_H
#define SUP_PROBE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SUP_PROBE_READYZ, //  HTTP GET /readyz: 200 ready, 503 not ready (reason from the JSON body)
    SUP_PROBE_PING,   //  Redis PING: +PONG ready
} sup_probe_kind_t;

typedef enum {
    SUP_PROBE_RUNNING,   //  not finished yet
    SUP_PROBE_READY,     //  the child says it is ready
    SUP_PROBE_NOT_READY, //  the child answered and says it is not ready
    SUP_PROBE_ERROR,     //  no usable answer: refused, timeout, junk
} sup_probe_result_t;

#define SUP_PROBE_REASON_MAX 128 //  reason text, NUL included

typedef struct sup_probe_t sup_probe_t;

//  Start a probe of 127.0.0.1:port that must finish by deadline_ms (on the
//  scale of vz_clock_mono_ms). For PING, auth (copied; NULL = none) is an
//  "AUTH user password\r\n" line sent first, whose answer must be +OK.
//  Never NULL: a socket that
//  cannot even be created yields a probe already finished with an error.
sup_probe_t *sup_probe_new(sup_probe_kind_t kind, int port, const char *auth, int64_t deadline_ms);
void sup_probe_destroy(sup_probe_t **self_p);

//  The fd to poll (-1 once finished) and the events to wait for.
int sup_probe_fd(const sup_probe_t *self);
short sup_probe_events(const sup_probe_t *self);

//  Advance with whatever the socket allows without blocking; checks the
//  deadline against now_ms. Returns the result so far (RUNNING until done).
sup_probe_result_t sup_probe_step(sup_probe_t *self, int64_t now_ms);

//  Why it is not ready or failed (borrowed; "" when ready or running):
//  the "reason" of a 503 body, or a short transport description.
const char *sup_probe_reason(const sup_probe_t *self);

#endif
