/*  vz_pool - a small pool of threads for CPU-bound work, answered on the reactor
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  For work that would hold the reactor thread past the broker's liveness
 *  window (a password KDF): the reactor submits a job, one of the pool's
 *  threads runs work(job), and done(job, arg) then runs back on the
 *  reactor thread, from the loop the pool is attached to, where the rest
 *  of the request (Redis, the deferred reply) continues. Sketch:
 *
 *      static void s_work(void *job) { ... pure computation on job ... }
 *      static void s_done(void *job, void *arg) { ... vz_worker_complete ... }
 *      if (vz_pool_submit(pool, s_work, s_done, job) == -EBUSY) ... answer 503
 *
 *  Threads: work runs on a pool thread and must touch only its job (no
 *  zsock, no vz_redis, no vz_reply). Everything else, including submit,
 *  drain and destroy, is reactor-thread only. The queue is bounded: a job
 *  beyond queue_max waiting ones is refused (-EBUSY) rather than queued,
 *  so the caller can tell its client to come back later.
 *  Jobs are the caller's: the pool never frees one; done is the place.
 *  The pool wakes the loop through a pipe polled as a zloop fd poller;
 *  its threads block every signal (SIGTERM reaches the reactor thread).
 */
#ifndef VZ_POOL_H
#define VZ_POOL_H

#include <czmq.h>
#include <stddef.h>

typedef struct vz_pool_t vz_pool_t;

typedef void(vz_pool_work_fn)(void *job);            //  on a pool thread
typedef void(vz_pool_done_fn)(void *job, void *arg); //  on the reactor thread

#define VZ_POOL_THREADS_MAX 64
#define VZ_POOL_QUEUE_MAX 4096

//  threads 1..VZ_POOL_THREADS_MAX, queue_max 0..VZ_POOL_QUEUE_MAX jobs
//  waiting beyond those running. done is called with arg. NULL with errno
//  EINVAL (bad sizes) or from pipe/pthread_create.
vz_pool_t *vz_pool_new(int threads, int queue_max, void *arg);
//  Finish every job (as vz_pool_drain), stop the threads, free; *self_p
//  nulled. It does not touch the loop (which may be destroyed already):
//  never run the loop again after it.
void vz_pool_destroy(vz_pool_t **self_p);

//  Call done for finished jobs from loop. 0 or -1 (zloop_poller failed).
int vz_pool_attach(vz_pool_t *self, zloop_t *loop);

//  Queue job: 0, or -EBUSY when threads and queue are full (nothing is
//  called). After vz_pool_drain the pool runs work and done inline, in
//  this call (the loop no longer runs; a late request still gets served).
int vz_pool_submit(vz_pool_t *self, vz_pool_work_fn *work, vz_pool_done_fn *done, void *job);

//  Wait for every queued and running job and call their done here, now.
//  Blocking; for shutdown, when the loop has stopped (vz_daemon_on_stop).
void vz_pool_drain(vz_pool_t *self);

//  Jobs submitted and not yet done (queued, running or awaiting done).
size_t vz_pool_pending(const vz_pool_t *self);

#endif
