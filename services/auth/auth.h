/*  auth - the auth service's application object and shared helpers
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One auth_t per process, used only on the reactor thread. Every piece of
 *  state lives in Redis (keys under "{auth}:"), so any replica answers any
 *  request; the only local state is a cache of the signing keys, checked
 *  against a version counter in Redis before each use.
 *
 *  Modules: passwords (KDF), users (register/login/profile, lockout),
 *  admin (the first admin, by a one-time bootstrap token), tokens (access
 *  JWTs, refresh rotation), keys (signing keys, JWKS, rotation), api_keys,
 *  oauth (client credentials, RFC 6749 §5.2 errors, introspection),
 *  request (JSON/msgpack/form helpers, errors, Redis). The auth context,
 *  scopes and JSON replies are common/vz_authctx.h.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "vz_authctx.h"
#include "vz_clock.h"
#include "vz_daemon.h"
#include "vz_json.h"
#include "vz_jwt.h"
#include "vz_pool.h"
#include "vz_redis.h"
#include "vz_worker.h"

#include "passwords.h"

#define AUTH_SERVICE "auth"

typedef struct {
    char issuer[256];           //  iss of issued tokens
    char audience[256];         //  aud of issued tokens
    int access_ttl_s;           //  access token lifetime
    int refresh_ttl_s;          //  refresh-token family lifetime (absolute)
    int iterations;             //  PBKDF2-HMAC-SHA256 iterations for new hashes
    int rotate_s;               //  automatic signing key rotation period, 0 = never
    int leeway_s;               //  clock skew allowed when checking tokens
    int lock_threshold;         //  failed logins per account before lockouts start
    int ip_threshold;           //  failed logins per IP (15 min window) before refusal
    int lock_max_s;             //  longest account lockout
    int bootstrap_ttl_s;        //  lifetime of the admin bootstrap token (admin.c)
    int redis_timeout_ms;       //  Redis command timeout
    int kdf_threads;            //  threads that run the password KDF (kdf.c)
    int kdf_queue;              //  KDF jobs that may wait for a thread; beyond: 503
    char kek_file[VZ_PATH_MAX]; //  key-encryption key of the signing keys, "" = none
    bool kek_create;            //  write a fresh kek_file when it does not exist
} auth_config_t;

typedef struct auth_keys_t auth_keys_t;

typedef struct {
    auth_config_t config;          //  validated settings
    vz_redis_t *redis;             //  shared state
    auth_keys_t *keys;             //  signing key cache (keys.c)
    char dummy_hash[256];          //  hash of a random password, for unknown users
    vz_pool_t *kdf;                //  kdf.c: the KDF threads (attach to the loop)
    vz_metrics_t *metrics;         //  borrowed from the daemon (may be NULL in tests)
    vz_series_t *login_failed;     //  failed logins
    vz_series_t *locked_out;       //  logins refused by a lockout
    vz_series_t *refresh_reuse;    //  refresh-token reuse detections
    vz_series_t *kdf_expired;      //  KDF jobs skipped: deadline passed while queued
    vz_redis_script_t *rt_use;     //  tokens.c: check-and-mark a refresh token
    vz_redis_script_t *rt_issue;   //  tokens.c: store a refresh token in its family
    vz_redis_script_t *login_fail; //  users.c: count a failure, start a lockout
    vz_redis_script_t *apikey_get; //  api_keys.c: key record plus its owner's tier
    vz_redis_script_t *bootstrap;  //  admin.c: redeem the bootstrap token
    bool bootstrap_checked;        //  admin.c: the start check has reached Redis
    unsigned char kek[32];         //  keys.c: key-encryption key of the signing keys
    bool has_kek;                  //  kek is set: private keys are encrypted in Redis
} auth_t;

//  Lua sources, one per script above.
extern const char auth_lua_rt_use[];
extern const char auth_lua_rt_issue[];
extern const char auth_lua_login_fail[];
extern const char auth_lua_apikey_get[];
extern const char auth_lua_bootstrap[];

//  Build the application (Redis handle, scripts, key cache, dummy hash).
//  metrics may be NULL. NULL on failure.
auth_t *auth_new(const auth_config_t *config, const char *redis_url, vz_metrics_t *metrics);
void auth_destroy(auth_t **self_p);

// --------------------------------------------------------------------------
//  request.c

//  Parse the request body as a JSON object (limits for small bodies).
//  NULL after replying invalid_request.
vz_json_t *auth_json_body(const vz_envelope_t *req, vz_reply_t *reply);
//  Optional string member: 0 (absent: *out NULL), or replies
//  validation_failed naming the field and returns -1 when it is not a
//  string or longer than max bytes.
int auth_json_str(const vz_json_value_t *obj, const char *field, size_t max, const char **out,
                  vz_reply_t *reply);
//  "unavailable" (503): Redis did not answer.
int auth_unavailable(vz_reply_t *reply);
//  Reply body (len bytes, heap) and free it. Returns what vz_reply_body does.
int auth_reply_take(vz_reply_t *reply, void *body, size_t len);

//  A credential just created (API key, OAuth client), for its one and only
//  showing: the field names of its id and secret, and its record.
typedef struct {
    const char *id_field, *id;
    const char *secret_field;
    char *secret; //  wiped (secret_size bytes) by auth_reply_credential
    size_t secret_size;
    const char *name, *scope;
    const char *tier;    //  NULL: no tier field
    const char *created; //  unix seconds as text
} auth_credential_t;
//  The 201 reply {id, secret, name, scope[, tier], created} for cred; the
//  secret is wiped whatever happens. Returns what vz_authctx_reply_created does.
int auth_reply_credential(vz_reply_t *reply, const auth_credential_t *cred);

//  A value from application/x-www-form-urlencoded text: 0 and the decoded
//  value in out (size n), -ENOENT when absent, -EINVAL when malformed,
//  repeated (RFC 6749 §3.2) or too long.
int auth_form_get(const char *body, size_t len, const char *name, char *out, size_t n);

//  (The msgpack bodies of api_key_verify and token_introspect are
//  vz_auth_contract.h's.)

//  n random bytes as lowercase hex into out (size >= 2n+1). 0 or -EIO.
int auth_random_hex(char *out, size_t nbytes);
//  n random bytes as base64url into out (size >= 4n/3+2). 0 or -EIO.
int auth_random_b64(char *out, size_t nbytes);
//  SHA-256 of data as lowercase hex (65 bytes with NUL).
void auth_sha256_hex(char out[65], const void *data, size_t len);

//  Redis helpers: argv-style command; NULL (and Redis counted down) when
//  unreachable or an error reply. The caller frees the reply.
redisReply *auth_redis(auth_t *self, int argc, const char **argv);
//  Field of a HGETALL-style flat array reply, or NULL.
const char *auth_hash_field(const redisReply *reply, const char *field);

// --------------------------------------------------------------------------
//  kdf.c: the password KDF off the reactor thread
//
//  A KDF run (~0.25 s) on the reactor thread would stop the worker's
//  heartbeats and every other request, so handlers that hash or verify a
//  password fill an auth_kdf_t, defer their reply and hand the job to the
//  pool (config.kdf_threads threads, config.kdf_queue waiting at most).
//  On a pool thread: verify_pw against encoded (when verify_pw is set),
//  then hash_pw at iterations when hash_pw is set and either nothing was
//  verified or it matched with a stored cost below hash_below. Back on the
//  reactor thread, then(self, job, reply) finishes the request with the
//  usual reply builders on the deferred reply, which is then sent; the job
//  is freed (passwords wiped) afterwards.

typedef struct auth_kdf_t auth_kdf_t;
typedef void(auth_kdf_then_fn)(auth_t *self, auth_kdf_t *job, vz_reply_t *reply);
struct auth_kdf_t {
    char *verify_pw;          //  heap copy (NULL = no check); wiped
    char encoded[256];        //  hash to check it against
    char *hash_pw;            //  heap copy (NULL = no new hash); wiped
    int iterations;           //  cost of the new hash
    int hash_below;           //  with verify_pw: rehash only below this stored cost
    bool ok;                  //  out: verify_pw matched
    int stored_iterations;    //  out: cost of encoded (0 when malformed)
    int hash_rc;              //  out: 0 a new hash in hash, <0 failed, 1 not asked
    char hash[AUTH_HASH_MAX]; //  out: the new encoded hash
    //  Continuation state, for then.
    int64_t deadline_ms;      //  the request's (Unix ms, 0 none): past it the KDF is skipped
    bool expired;             //  out: skipped, nobody waits for the answer
    auth_kdf_then_fn *then;
    vz_deferred_t *handle;
    char id[VZ_ID_MAX];                              //  request id, for logs
    char uid[32];                                    //  user id ("" none)
    char email[256];                                 //  normalised e-mail
    char name[128];                                  //  register/profile: new display name
    bool has_name;                                   //  name was given
    char acct_fail[64], acct_lock[64], ip_fail[128]; //  login: failure counters
    redisReply *user; //  the user's HGETALL (freed with the job), or NULL
};

//  A job (calloc'd) with copies of the passwords (NULL for none) and
//  encoded (NULL = ""). NULL when out of memory.
auth_kdf_t *auth_kdf_new(const char *verify_pw, const char *encoded, const char *hash_pw,
                         int iterations);
//  Start job: defer reply and queue it; then runs later on the reactor
//  thread. 0 (always: the handler returns it). When the pool is full the
//  reply is "unavailable" (503, a retry hint) at once and the job freed.
int auth_kdf_start(auth_t *self, auth_kdf_t *job, auth_kdf_then_fn *then, vz_reply_t *reply,
                   const vz_envelope_t *req);
//  Stop hook (vz_daemon_on_stop): finish the running and queued jobs now.
void auth_kdf_drain(void *self);

// --------------------------------------------------------------------------
//  Handlers (one module each)

int auth_keys_new(auth_t *self);
void auth_keys_destroy(auth_t *self);
//  Use the key-encryption key in path (32 random bytes, or 64 hex
//  characters): private keys are then kept in Redis as AES-256-GCM
//  ciphertext bound to their kid ("enc:v1:<base64 nonce|ciphertext|tag>"),
//  and a plain PEM left from before is still read (and replaced at the next
//  rotation). create: write a fresh one (0600) when path does not exist.
//  0, or -errno with err.
int auth_keys_kek(auth_t *self, const char *path, bool create, char *err, size_t errlen);
//  The current signing key (borrowed, valid until the next keys call), or NULL.
const vz_jwt_key_t *auth_keys_signing(auth_t *self);
//  The public key set (borrowed, same validity), or NULL.
const vz_jwt_keyset_t *auth_keys_public(auth_t *self);
//  Rotate now when the current key is older than min_age_s. 1 rotated, 0 not, -1 Redis.
int auth_keys_rotate(auth_t *self, int min_age_s);
int auth_h_jwks(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_keys_rotate(void *app, const vz_envelope_t *req, vz_reply_t *reply);

typedef struct {
    const char *sub;       //  user id or client id
    const char *scope;     //  granted scopes
    const char *tier;      //  free | premium
    const char *client_id; //  OAuth client or NULL
} auth_grant_t;

//  Sign an access token for grant. *token_p heap; 0, -1 (no key) or
//  -ENAMETOOLONG when a claim does not fit (never cut; scope within
//  VZ_AUTHCTX_VALUE_MAX, so that the gateway can pass it on).
int auth_tokens_access(auth_t *self, const auth_grant_t *grant, char **token_p);
//  Write the token response members (access_token, token_type, expires_in,
//  scope and, when uid is not NULL, a new refresh token of family fam (NULL
//  = a new family)). 0, or -1 after replying.
int auth_tokens_respond(auth_t *self, const auth_grant_t *grant, const char *uid, const char *fam,
                        vz_reply_t *reply);
//  Revoke every refresh family of a user. Number revoked or -1.
int auth_tokens_revoke_user(auth_t *self, const char *uid);
//  Verify one of our access tokens; 0 and claims or a VZ_JWT_E* code.
int auth_tokens_verify(auth_t *self, const char *token, size_t len, vz_jwt_claims_t *claims);
int auth_h_refresh(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_logout(void *app, const vz_envelope_t *req, vz_reply_t *reply);

//  At start: while no admin exists, create the one-time bootstrap token
//  (unless one is pending) and log it once. 0 an admin exists, 1 a token
//  is pending, -1 Redis did not answer (call again later). Sets
//  bootstrap_checked once Redis answered.
int auth_bootstrap_start(auth_t *self);
int auth_h_admin_bootstrap(void *app, const vz_envelope_t *req, vz_reply_t *reply);

int auth_h_register(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_login(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_profile_get(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_profile_update(void *app, const vz_envelope_t *req, vz_reply_t *reply);

int auth_h_api_key_create(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_api_key_list(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_api_key_delete(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_api_key_verify(void *app, const vz_envelope_t *req, vz_reply_t *reply);

int auth_h_client_register(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_oauth_token(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_oauth_introspect(void *app, const vz_envelope_t *req, vz_reply_t *reply);
int auth_h_token_introspect(void *app, const vz_envelope_t *req, vz_reply_t *reply);

#endif
