/*  broker - the routing engine: Majordomo-style dispatch over one CURVE ROUTER
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Workers announce RDY <service> <credit> [<version>]; clients send REQ <envelope>; the
 *  broker checks the call policy against the caller's CURVE identity,
 *  queues per service and hands each request to the least-recently-used
 *  ready worker with free credit, tracking it by an 8-byte tag until the
 *  reply, the deadline or the worker's death. Frames: common/vz_proto.h.
 *  With weights set (broker_set_weights) a service's requests are split
 *  between its workers' versions by weight, optionally sticky by a ctx key.
 *
 *  Peers are not trusted beyond their CURVE identity: a service or method
 *  name outside policy_name_valid is malformed; a worker's reply whose
 *  kind, id, service or method differ from the request it was given is
 *  never forwarded (the request is handled as if the worker had lost it);
 *  one identity may create at most services_per_identity services, by
 *  calling or by serving them (docs/services/broker.md).
 *
 *  Everything runs on the reactor thread that owns the zloop; nothing here
 *  is thread-safe, except that metrics series are updated atomically.
 */
#ifndef BROKER_BROKER_H
#define BROKER_BROKER_H

#include <czmq.h>
#include "policy.h"
#include "vz_metrics.h"
#include "vz_proto.h"
#include "vz_telemetry.h"

typedef struct {
    const char *endpoint;      //  where the ROUTER binds (port 0 or * = ephemeral)
    zcert_t *cert;             //  broker certificate (borrowed)
    vz_metrics_t *metrics;     //  registry for the broker's series (borrowed)
    int heartbeat_ms;          //  heartbeat interval to workers; 0 = VZ_HEARTBEAT_MS
    int queue_max;             //  queued requests per service before "overloaded"
    int retry_max;             //  re-dispatches of an idempotent request after worker loss
    int default_timeout_ms;    //  deadline given to requests that carry none; 0 = 30 s
    int services_per_identity; //  services one identity may create; 0 = 16
    const char *allow_dir;     //  public certificates (vz_curve.h): keys for direct calls; NULL = none
} broker_config_t;

typedef struct broker_t broker_t;

#define BROKER_VERSIONS_MAX 8 //  versions of one service at once (weighted or not)

//  The routing weights of one service (docs/services/broker.md, "Versions
//  and weights"): versions in range order (stable first, canary last),
//  weights 0..1000000; sticky is a ctx key ("sub", "kid") whose value pins
//  a request to a version, "" = none.
typedef struct {
    char service[VZ_NAME_MAX];                         //  service name
    char sticky[VZ_NAME_MAX];                          //  ctx key, "" = none
    size_t count;                                      //  versions listed
    char version[BROKER_VERSIONS_MAX][VZ_VERSION_MAX]; //  version tokens
    int weight[BROKER_VERSIONS_MAX];                   //  their weights
} broker_weights_t;

//  Bind the ROUTER (the ZAP handler must already run: vz_auth_new) and take
//  the policy. NULL when the bind fails (errno set); *policy_p is then
//  left to the caller.
broker_t *broker_new(const broker_config_t *config, policy_t **policy_p);
//  Forget everything without notifying anyone (use broker_drain first).
void broker_destroy(broker_t **self_p);

//  TCP port actually bound.
int broker_port(broker_t *self);

//  Register the socket and the heartbeat and deadline timers with loop.
int broker_attach(broker_t *self, zloop_t *loop);

//  Swap in a new policy (takes it). Registered workers stay.
void broker_set_policy(broker_t *self, policy_t **policy_p);

//  Replace the weights of every service with the n entries of weights (n 0:
//  none; then every service routes to any worker, as without versions).
//  Queued requests keep the version they were given; new requests follow
//  the new weights at once. Services named are created like by a RDY,
//  counting against nobody. Returns how many entries could not be applied
//  (a bad name, no free version slot); each is logged.
int broker_set_weights(broker_t *self, const broker_weights_t *weights, size_t n);

//  The answer to a request the broker sent itself (broker_send_self):
//  service it went to, code NULL when the worker replied, else
//  the error code (the worker's, or the broker's own: forbidden, no_worker,
//  timeout, overloaded, unavailable, worker_lost). On the reactor thread,
//  possibly from within broker_send_self.
typedef void(broker_answer_fn)(void *arg, const char *service, const char *code);
void broker_on_answer(broker_t *self, broker_answer_fn *fn, void *arg);

//  Send a request as the broker itself, identity "broker" (VZ_BROKER_SERVICE),
//  never waiting: checked against the call policy and the service bounds,
//  queued and dispatched exactly like a client's request, expiring after
//  timeout_ms (0 = the default timeout). Nobody reads the reply: its outcome
//  goes to the answer hook. body is copied. 0 when taken (a refusal then
//  reaches the hook as if answered), -EINVAL on a bad name, -EMSGSIZE when
//  it does not encode. This is how the broker's telemetry snapshots reach
//  telemetry.ingest (main.c; docs/services/broker.md).
int broker_send_self(broker_t *self, const char *service, const char *method, const void *body,
                     size_t len, int timeout_ms);

//  The reporter that counts the broker's own methods (ping, services): name,
//  code and duration of each. Borrowed; NULL stops it.
void broker_set_telemetry(broker_t *self, vz_telemetry_t *telemetry);

//  Shutdown, after the loop has stopped: queued requests get "unavailable",
//  replies to requests in flight are still forwarded for up to timeout_ms,
//  then what is left gets "unavailable" and every worker gets BYE. Blocking.
void broker_drain(broker_t *self, int timeout_ms);

#endif
