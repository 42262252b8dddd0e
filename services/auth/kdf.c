/*  kdf - password hashing and checks on a pool of threads, replies deferred
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  See auth.h (kdf.c) for the contract. The pool thread touches only the
 *  job's inputs and outputs; Redis, tokens and the reply stay on the
 *  reactor thread, in the handler's then function.
 */
#include "auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "vz_clock.h"
#include "vz_log.h"
#include "vz_proto.h"

//  Wipe and free a heap copy of a password.
static void s_wipe(char **pw_p)
{
    if (!*pw_p)
        return;
    OPENSSL_cleanse(*pw_p, strlen(*pw_p));
    free(*pw_p);
    *pw_p = NULL;
}

static void s_job_destroy(auth_kdf_t **job_p)
{
    auth_kdf_t *job = *job_p;
    s_wipe(&job->verify_pw);
    s_wipe(&job->hash_pw);
    OPENSSL_cleanse(job->hash, sizeof job->hash);
    if (job->user)
        freeReplyObject(job->user);
    free(job);
    *job_p = NULL;
}

auth_kdf_t *auth_kdf_new(const char *verify_pw, const char *encoded, const char *hash_pw,
                         int iterations)
{
    auth_kdf_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->verify_pw = verify_pw ? strdup(verify_pw) : NULL;
    job->hash_pw = hash_pw ? strdup(hash_pw) : NULL;
    job->iterations = iterations;
    job->hash_below = iterations;
    job->hash_rc = 1;
    vz_strlcpy(job->encoded, encoded ? encoded : "", sizeof job->encoded);
    if ((verify_pw && !job->verify_pw) || (hash_pw && !job->hash_pw))
        s_job_destroy(&job);
    return job;
}

//  Pool thread: the KDF runs, nothing else; not for a caller who gave up
//  while the job queued (its answer would be dropped, its CPU is another's).
static void s_work(void *arg)
{
    auth_kdf_t *job = arg;
    if (job->deadline_ms > 0 && vz_clock_now_ms() >= job->deadline_ms) {
        job->expired = true;
        return;
    }
    if (job->verify_pw)
        job->ok = auth_password_verify(job->verify_pw, job->encoded, &job->stored_iterations);
    bool rehash = !job->verify_pw || (job->ok && job->stored_iterations < job->hash_below);
    if (job->hash_pw && rehash)
        job->hash_rc =
            auth_password_hash(job->hash_pw, job->iterations, job->hash, sizeof job->hash);
}

//  Reactor thread: the handler's second half, then the reply goes out.
static void s_done(void *arg, void *app)
{
    auth_kdf_t *job = arg;
    if (job->expired && ((auth_t *)app)->kdf_expired)
        vz_series_inc(((auth_t *)app)->kdf_expired);
    if (job->expired)
        (void)vz_authctx_reply_error(vz_deferred_reply(job->handle), 0, VZ_ERR_TIMEOUT,
                                     "deadline passed before the password check ran");
    else
        job->then(app, job, vz_deferred_reply(job->handle));
    if (vz_worker_complete_reply(&job->handle) < 0)
        vz_warn(job->id, "reply dropped: broker link replaced during the password check");
    s_job_destroy(&job);
}

int auth_kdf_start(auth_t *self, auth_kdf_t *job, auth_kdf_then_fn *then, vz_reply_t *reply,
                   const vz_envelope_t *req)
{
    if (!job)
        return vz_authctx_reply_error(reply, 0, VZ_ERR_INTERNAL, "out of memory");
    job->then = then;
    vz_strlcpy(job->id, req->id, sizeof job->id);
    job->deadline_ms = req->deadline_ms;
    job->handle = vz_reply_defer(reply, NULL);
    int rc = vz_pool_submit(self->kdf, s_work, s_done, job);
    if (rc < 0) {
        //  Queueing without bound would only answer later than the caller waits.
        vz_reply_t *r = vz_deferred_reply(job->handle);
        vz_authctx_reply_error(r, 503, VZ_ERR_UNAVAILABLE,
                               rc == -EBUSY ? "password checks busy; retry in 1 s"
                                            : "out of memory");
        vz_worker_complete_reply(&job->handle);
        s_job_destroy(&job);
    }
    return 0;
}

void auth_kdf_drain(void *self)
{
    vz_pool_drain(((auth_t *)self)->kdf);
}
