/*  ut - helpers shared by the unit tests: files, CURVE keys, a fake broker
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A static library (vzunit) linked into every tests/unit program and the
 *  integration tests and benches that want it. Nothing here uses cmocka:
 *  each helper returns 0 / a pointer on success and -1 / NULL on failure,
 *  and the test asserts on that, so a failure is reported at the call site.
 *  Not thread-safe where a static buffer is named; otherwise as the
 *  objects it wraps (a ut_broker_t belongs to one thread).
 */
#ifndef UT_H
#define UT_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#include "vz_curve.h"
#include "vz_envelope.h"
#include "vz_proto.h"

// --------------------------------------------------------------------------
//  Files

//  Make a fresh directory $TMPDIR/vz-<tag>-XXXXXX (/tmp without TMPDIR)
//  into dir (size bytes). 0, or -1 with errno.
int ut_tempdir(char *dir, size_t size, const char *tag);

//  Remove dir and everything below it; 0, or -1 if anything is left.
int ut_rmtree(const char *dir);

//  Write text to path, replacing the file. 0, or -1 with errno.
int ut_write(const char *path, const char *text);

//  Write text to a new file $TMPDIR/vz-<tag>-XXXXXX, its path into path
//  (size bytes). 0, or -1 with errno. The caller unlinks it.
int ut_temp_file(char *path, size_t size, const char *tag, const char *text);

//  Write text to dir/name; the path, in a static buffer valid until the
//  next call, or NULL on failure.
char *ut_write_file(const char *dir, const char *name, const char *text);

// --------------------------------------------------------------------------
//  CURVE keys

//  A key tree in a temporary directory with two identities (a server,
//  e.g. "broker", and a peer, e.g. "svc") and, when asked, the ZAP handler
//  of this process allowing every key in its public/.
typedef struct {
    char dir[256];   //  key tree: public/<name>.key and secret/<name>.key
    vz_auth_t *auth; //  ZAP for this process, or NULL
    zcert_t *server; //  the first identity's certificate (owned)
    zcert_t *peer;   //  the second's (owned); NULL when peer is NULL
} ut_keys_t;

//  Generate the keys (peer may be NULL) in a new directory named by tag,
//  load them and start ZAP if zap. The caller owns the result; NULL on
//  failure, with what was made released.
ut_keys_t *ut_keys_new(const char *tag, const char *server, const char *peer, bool zap);

//  Stop ZAP, free the certificates, remove the tree and free *self_p (NULL
//  is fine); 0, or -1 if the tree could not be removed.
int ut_keys_destroy(ut_keys_t **self_p);

//  Load dir/secret/<name>.key; NULL (reason on stderr) on failure.
zcert_t *ut_cert_load(const char *dir, const char *name);

// --------------------------------------------------------------------------
//  A fake broker for a worker under test: a CURVE ROUTER on an ephemeral
//  loopback port that answers the worker's heartbeats like a real broker
//  (unless silent), so a slow run (valgrind) never looks dead.

//  Append env, encoded, as one frame of msg. 0, or -1 when it does not encode.
int ut_msg_add_env(zmsg_t *msg, const vz_envelope_t *env);

typedef struct {
    zsock_t *router;   //  the broker's socket
    zframe_t *rid;     //  the worker's latest routing id, or NULL
    bool silent;       //  do not answer heartbeats
    char endpoint[64]; //  tcp://127.0.0.1:<port>, for the worker
} ut_broker_t;

//  Bind with cert (borrowed). 0, or -1.
int ut_broker_new(ut_broker_t *self, zcert_t *cert);
void ut_broker_destroy(ut_broker_t *self);

//  The next message from the worker within wait_ms, routing id popped into
//  self->rid; heartbeats are skipped when skip_hb. NULL when none came.
zmsg_t *ut_broker_next(ut_broker_t *self, bool skip_hb, int wait_ms);

//  Send *msg_p (destroyed) to the worker's latest routing id. 0, or -1.
int ut_broker_send(ut_broker_t *self, zmsg_t **msg_p);
int ut_broker_send_cmd(ut_broker_t *self, const char *cmd);

//  Send REQ tag caller <req encoded>; tag is VZ_TAG_SIZE bytes. 0, or -1.
int ut_broker_send_req(ut_broker_t *self, const char *tag, const char *caller,
                       const vz_envelope_t *req);

//  A REP from the worker: its tag and decoded envelope, whose strings and
//  body point into frame (owned; free with ut_rep_free).
typedef struct {
    zframe_t *frame;           //  holds the envelope bytes
    vz_envelope_t env;         //  the decoded reply or error
    char tag[VZ_TAG_SIZE + 1]; //  the request's tag, NUL-terminated
} ut_rep_t;

//  Wait up to wait_ms for REP tag envelope (heartbeats skipped) and decode
//  it into rep. 0, or -1 when none came or it was malformed.
int ut_broker_recv_rep(ut_broker_t *self, ut_rep_t *rep, int wait_ms);
void ut_rep_free(ut_rep_t *rep);

#endif
