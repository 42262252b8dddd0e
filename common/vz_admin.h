/*  vz_admin - the small admin HTTP port every daemon has
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  libmicrohttpd with its own internal thread. Routes:
 *    GET /healthz  200 {"status":"ok"}               while the process runs
 *    GET /readyz   200 {"status":"ready"} or 503 {"status":"not_ready","reason":"..."}
 *    GET /metrics  200 Prometheus text (text/plain; version=0.0.4)
 *    GET /health   the daemon's detailed health, when it set one (vz_admin_set_health)
 *  anything else 404 JSON, a method other than GET/HEAD 405 with Allow.
 *  Readiness is an atomic flag the daemon's reactor sets; the HTTP thread
 *  only reads it and renders the registry (whose updates are atomic).
 */
#ifndef VZ_ADMIN_H
#define VZ_ADMIN_H

#include <stdbool.h>
#include "vz_metrics.h"

typedef struct vz_admin_t vz_admin_t;

//  Listen on addr:port (port 0 = ephemeral). metrics is borrowed and must
//  outlive the admin server. Returns NULL (and sets errno) if bind fails.
vz_admin_t *vz_admin_new(const char *addr, int port, vz_metrics_t *metrics);
void vz_admin_destroy(vz_admin_t **self_p);

//  The port actually bound.
int vz_admin_port(const vz_admin_t *self);

//  GET /health: fn(arg, &healthy) returns the daemon's detailed health
//  document (heap JSON the admin frees; NULL = not known yet, 503
//  {"status":"starting"}), 200 when healthy, else 503. Called on the admin
//  thread: fn must not block, and arg must outlive the admin server
//  (vz_admin_destroy). Without it /health is 404.
typedef char *(vz_admin_health_fn)(void *arg, bool *healthy);
void vz_admin_set_health(vz_admin_t *self, vz_admin_health_fn *fn, void *arg);

//  Set readiness; reason (may be NULL) is copied and shown when not ready.
void vz_admin_set_ready(vz_admin_t *self, bool ready, const char *reason);
bool vz_admin_ready(const vz_admin_t *self);

#endif
