/*  vz-auth - users, JWTs with a JWKS, refresh rotation, API keys, OAuth2 clients
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Thin main: the settings table, the method table, a timer for automatic
 *  key rotation, vz_daemon_serve. The handlers live in one module per
 *  concern (see auth.h); docs/services/auth.md describes the API.
 */
#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "passwords.h"
#include "vz_daemon.h"
#include "vz_ports.h"
#include "vz_proto.h"

#define AUTH_CREDIT 16 //  default broker credit (VZ_WORKER_CREDIT overrides)
#define ROTATE_CHECK_MS 60000
#define JSON_BODY_MAX (16 * 1024)

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_ISSUER", "auth/issuer", VZ_CFG_STR,
                "http://127.0.0.1:" VZ_PORT_TEXT(VZ_PORT_GATEWAY), 0, 0, issuer,
                "iss claim of issued tokens"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_AUDIENCE", "auth/audience", VZ_CFG_STR, "vizmesh", 0, 0,
                audience, "aud claim of issued tokens"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_ACCESS_TTL_S", "auth/access_ttl", VZ_CFG_INT, "900", 60,
                86400, access_ttl_s, "access token lifetime, seconds"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_REFRESH_TTL_S", "auth/refresh_ttl", VZ_CFG_INT, "2592000",
                300, 31536000, refresh_ttl_s, "refresh session (token family) lifetime, seconds"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_PBKDF2_ITERATIONS", "auth/pbkdf2_iterations", VZ_CFG_INT,
                "600000", AUTH_PBKDF2_FLOOR, 10000000, iterations,
                "PBKDF2-HMAC-SHA256 iterations for new password hashes (floor 100000)"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_KDF_THREADS", "auth/kdf_threads", VZ_CFG_INT, "2", 1,
                VZ_POOL_THREADS_MAX, kdf_threads,
                "threads that hash and check passwords off the reactor thread (about the cores)"),
    VZ_CFG_ITEM(
        auth_config_t, "VZ_AUTH_KDF_QUEUE", "auth/kdf_queue", VZ_CFG_INT, "32", 0,
        VZ_POOL_QUEUE_MAX, kdf_queue,
        "password checks that may wait for a KDF thread; more are answered 503 unavailable"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_KEY_ROTATE_S", "auth/key_rotate", VZ_CFG_INT, "86400", 0,
                31536000, rotate_s, "signing key rotation period, seconds; 0 = never"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_LEEWAY_S", "auth/leeway", VZ_CFG_INT, "30", 0, 300,
                leeway_s, "clock skew allowed when checking tokens, seconds"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_LOCK_THRESHOLD", "auth/lock_threshold", VZ_CFG_INT, "5", 1,
                1000, lock_threshold, "failed logins of one account before lockouts start"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_IP_THRESHOLD", "auth/ip_threshold", VZ_CFG_INT, "50", 1,
                100000, ip_threshold, "failed logins from one IP in 15 min before it is refused"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_LOCK_MAX_S", "auth/lock_max", VZ_CFG_INT, "900", 1, 86400,
                lock_max_s,
                "longest account lockout, seconds; an account's failures are forgotten only "
                "after a success or this plus 15 min without one"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_BOOTSTRAP_TTL_S", "auth/bootstrap_ttl", VZ_CFG_INT, "86400",
                60, 604800, bootstrap_ttl_s,
                "lifetime of the one-time admin bootstrap token logged at start while no admin "
                "exists, seconds; registration never grants admin (VZ_AUTH_ADMIN_EMAILS is gone)"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_KEK_FILE", "auth/kek_file", VZ_CFG_STR, "", 0, 0, kek_file,
                "key-encryption key (32 bytes or 64 hex) that encrypts the signing keys in "
                "Redis (AES-256-GCM); \"\" = kept as plain PEM (a warning)"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_KEK_CREATE", "auth/kek_create", VZ_CFG_BOOL, "false", 0, 0,
                kek_create, "write a fresh VZ_AUTH_KEK_FILE (0600) when it does not exist"),
    VZ_CFG_ITEM(auth_config_t, "VZ_AUTH_REDIS_TIMEOUT_MS", "auth/redis_timeout", VZ_CFG_MS, "100",
                5, 5000, redis_timeout_ms, "Redis command timeout"),
};

static const vz_method_t s_methods[] = {
    {"jwks", auth_h_jwks, VZ_METHOD_IDEMPOTENT, 0},
    {"api_key_verify", auth_h_api_key_verify, VZ_METHOD_IDEMPOTENT, 1024},
    {"token_introspect", auth_h_token_introspect, VZ_METHOD_IDEMPOTENT, 2 * VZ_JWT_TOKEN_MAX},
    {"register", auth_h_register, VZ_METHOD_DEFERRED, JSON_BODY_MAX},
    {"login", auth_h_login, VZ_METHOD_DEFERRED, JSON_BODY_MAX},
    {"refresh", auth_h_refresh, 0, JSON_BODY_MAX},
    {"logout", auth_h_logout, 0, JSON_BODY_MAX},
    {"profile_get", auth_h_profile_get, VZ_METHOD_IDEMPOTENT, JSON_BODY_MAX},
    {"profile_update", auth_h_profile_update, VZ_METHOD_DEFERRED, JSON_BODY_MAX},
    {"api_key_create", auth_h_api_key_create, 0, JSON_BODY_MAX},
    {"api_key_list", auth_h_api_key_list, VZ_METHOD_IDEMPOTENT, JSON_BODY_MAX},
    {"api_key_delete", auth_h_api_key_delete, 0, JSON_BODY_MAX},
    {"oauth_token", auth_h_oauth_token, 0, JSON_BODY_MAX},
    {"oauth_introspect", auth_h_oauth_introspect, 0, 2 * VZ_JWT_TOKEN_MAX},
    {"client_register", auth_h_client_register, 0, JSON_BODY_MAX},
    {"admin_bootstrap", auth_h_admin_bootstrap, 0, JSON_BODY_MAX},
    {"keys_rotate", auth_h_keys_rotate, 0, JSON_BODY_MAX},
};

//  Every replica runs the timer; the rotation script lets only the first win.
//  The admin bootstrap check of the start is retried until Redis answers.
static int s_rotate_timer(zloop_t *loop, int timer_id, void *arg)
{
    auth_t *auth = arg;
    if (auth->config.rotate_s > 0 && auth_keys_rotate(auth, auth->config.rotate_s) < 0)
        vz_warn(NULL, "unable to check signing key rotation", "reason", "redis unavailable");
    if (!auth->bootstrap_checked)
        auth_bootstrap_start(auth);
    return 0;
}

int main(int argc, char **argv)
{
    auth_config_t config;
    vz_daemon_spec_t spec = {
        .service = AUTH_SERVICE,
        .admin_port = VZ_PORT_ADMIN_AUTH,
        .needs_broker = true,
        //  Ready only while Redis answers: every method needs it.
        .needs_redis = true,
        .items = s_items,
        .count = sizeof s_items / sizeof s_items[0],
        .config = &config,
    };
    int code = VZ_EXIT_OK;
    vz_daemon_t *daemon = vz_daemon_new(&spec, argc, argv, &code);
    if (!daemon)
        return code;
    if (config.iterations < AUTH_PBKDF2_DEFAULT)
        vz_warn(NULL, "password hashing below the OWASP 2023 cost", "iterations", "<600000");
    auth_t *auth =
        auth_new(&config, vz_daemon_config(daemon)->redis_url, vz_daemon_metrics(daemon));
    if (!auth) {
        vz_error(NULL, "unable to start auth: bad Redis URL or no crypto");
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    char err[VZ_PATH_MAX + 128];
    if (config.kek_file[0] &&
        auth_keys_kek(auth, config.kek_file, config.kek_create, err, sizeof err) < 0) {
        vz_error(NULL, "unable to load configuration", "setting", "VZ_AUTH_KEK_FILE", "reason",
                 err);
        auth_destroy(&auth);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    if (!config.kek_file[0])
        vz_warn(NULL, "signing keys are kept unencrypted in Redis", "setting", "VZ_AUTH_KEK_FILE");
    //  Create (or load) the signing key now, so the first request is not slower.
    if (!auth_keys_signing(auth))
        vz_warn(NULL, "unable to load signing keys yet", "reason", "redis unavailable");
    //  No admin yet: log the one-time bootstrap token (admin.c).
    if (auth_bootstrap_start(auth) < 0)
        vz_warn(NULL, "unable to check for an admin yet", "reason", "redis unavailable");
    zloop_t *loop = zloop_new();
    zloop_timer(loop, ROTATE_CHECK_MS, 0, s_rotate_timer, auth);
    //  Password KDFs run on the pool (kdf.c) and finish from this loop; at
    //  stop the pool finishes its jobs while the worker can still answer.
    if (vz_pool_attach(auth->kdf, loop) < 0) {
        vz_error(NULL, "unable to start auth: cannot poll the KDF pool");
        zloop_destroy(&loop);
        auth_destroy(&auth);
        vz_daemon_destroy(&daemon);
        return VZ_EXIT_PERMANENT;
    }
    vz_daemon_on_stop(daemon, auth_kdf_drain, auth);
    //  Credit 16: token, key and profile calls are one Redis round trip each
    //  and pipeline well (twice the throughput of credit 1, measured), and a
    //  login's KDF (~0.25 s) no longer holds them: it waits on the pool, so
    //  the credit bounds the logins in flight here, not the reactor's delay.
    code = vz_daemon_serve(daemon, loop, s_methods, sizeof s_methods / sizeof s_methods[0],
                           AUTH_CREDIT, auth);
    zloop_destroy(&loop);
    auth_destroy(&auth);
    vz_daemon_destroy(&daemon);
    return code;
}
