/*  auth - build and tear down the auth service's application object
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include "passwords.h"

auth_t *auth_new(const auth_config_t *config, const char *redis_url, vz_metrics_t *metrics)
{
    auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->metrics = metrics;
    self->redis = vz_redis_new(redis_url, 200, config->redis_timeout_ms, 500);
    self->rt_use = vz_redis_script_new(auth_lua_rt_use);
    self->rt_issue = vz_redis_script_new(auth_lua_rt_issue);
    self->login_fail = vz_redis_script_new(auth_lua_login_fail);
    self->apikey_get = vz_redis_script_new(auth_lua_apikey_get);
    self->bootstrap = vz_redis_script_new(auth_lua_bootstrap);
    //  The dummy hash costs what a real one does, so unknown users take as
    //  long. Made here, once, before the worker serves (no heartbeat yet).
    char random[48];
    self->kdf = vz_pool_new(config->kdf_threads, config->kdf_queue, self);
    bool ok = self->redis && self->rt_use && self->rt_issue && self->login_fail &&
              self->apikey_get && self->bootstrap && self->kdf && auth_keys_new(self) == 0 &&
              auth_random_b64(random, 24) == 0 &&
              auth_password_hash(random, config->iterations, self->dummy_hash,
                                 sizeof self->dummy_hash) == 0;
    if (!ok) {
        auth_destroy(&self);
        return NULL;
    }
    if (metrics) {
        self->login_failed =
            vz_metrics_counter(metrics, "vz_auth_login_failures",
                               "Logins refused for a wrong e-mail or password", NULL);
        self->locked_out = vz_metrics_counter(metrics, "vz_auth_lockouts",
                                              "Logins refused by an account or IP lockout", NULL);
        self->refresh_reuse =
            vz_metrics_counter(metrics, "vz_auth_refresh_reuse",
                               "Refresh tokens presented twice (family revoked)", NULL);
        self->kdf_expired = vz_metrics_counter(
            metrics, "vz_auth_kdf_expired",
            "Password checks not run: the caller's deadline passed while they queued", NULL);
    }
    return self;
}

void auth_destroy(auth_t **self_p)
{
    auth_t *self = *self_p;
    if (!self)
        return;
    //  First: it finishes the jobs still queued, which may use the rest.
    vz_pool_destroy(&self->kdf);
    auth_keys_destroy(self);
    vz_redis_script_destroy(&self->rt_use);
    vz_redis_script_destroy(&self->rt_issue);
    vz_redis_script_destroy(&self->login_fail);
    vz_redis_script_destroy(&self->apikey_get);
    vz_redis_script_destroy(&self->bootstrap);
    vz_redis_destroy(&self->redis);
    explicit_bzero(self->kek, sizeof self->kek);
    free(self);
    *self_p = NULL;
}
