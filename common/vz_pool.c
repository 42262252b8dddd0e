/*  vz_pool - a small pool of threads for CPU-bound work, answered on the reactor
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct s_job_t {
    vz_pool_work_fn *work;
    vz_pool_done_fn *done;
    void *job;
    struct s_job_t *next;
} s_job_t;

struct vz_pool_t {
    pthread_mutex_t lock;     //  guards everything below but threads/fds
    pthread_cond_t wake;      //  a job was queued, or stop
    pthread_cond_t finished;  //  a job was finished (for drain)
    s_job_t *queue, *tail;    //  waiting jobs, FIFO
    s_job_t *done, *done_end; //  finished jobs awaiting done, FIFO
    size_t queued;            //  jobs in queue
    size_t running;           //  jobs a thread is working on
    size_t pending;           //  submitted and done not yet called
    int queue_max;            //  refuse beyond this many waiting
    int nthreads;             //  threads started
    bool stop;                //  threads exit when the queue is empty
    bool inline_mode;         //  after drain: submit runs the job itself
    void *arg;                //  done's argument
    int fds[2];               //  wake-up pipe: threads write, the loop reads
    zloop_t *loop;            //  attached loop or NULL
    pthread_t threads[VZ_POOL_THREADS_MAX];
};

static void *s_thread(void *arg)
{
    vz_pool_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (true) {
        while (!self->queue && !self->stop)
            pthread_cond_wait(&self->wake, &self->lock);
        if (!self->queue)
            break;
        s_job_t *job = self->queue;
        self->queue = job->next;
        if (!self->queue)
            self->tail = NULL;
        self->queued--;
        self->running++;
        pthread_mutex_unlock(&self->lock);
        job->work(job->job);
        pthread_mutex_lock(&self->lock);
        self->running--;
        job->next = NULL;
        if (self->done_end)
            self->done_end->next = job;
        else
            self->done = job;
        self->done_end = job;
        pthread_cond_broadcast(&self->finished);
        //  One byte per job; a full pipe already wakes the loop, so EAGAIN is fine.
        ssize_t w = write(self->fds[1], "", 1);
        (void)w;
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

vz_pool_t *vz_pool_new(int threads, int queue_max, void *arg)
{
    if (threads < 1 || threads > VZ_POOL_THREADS_MAX || queue_max < 0 ||
        queue_max > VZ_POOL_QUEUE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    vz_pool_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->queue_max = queue_max;
    self->arg = arg;
    if (pipe(self->fds) < 0) {
        free(self);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(self->fds[i], F_SETFL, fcntl(self->fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(self->fds[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->finished, NULL);
    //  Signals stay with the reactor thread: a SIGTERM taken by a pool
    //  thread would not interrupt the loop's poll.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int i = 0; i < threads && rc == 0; i++) {
        rc = pthread_create(&self->threads[i], NULL, s_thread, self);
        self->nthreads += rc == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        vz_pool_destroy(&self);
        errno = rc;
        return NULL;
    }
    return self;
}

//  Take the finished jobs and call their done, in order, outside the lock.
static void s_reap(vz_pool_t *self)
{
    pthread_mutex_lock(&self->lock);
    s_job_t *job = self->done;
    self->done = self->done_end = NULL;
    pthread_mutex_unlock(&self->lock);
    while (job) {
        s_job_t *next = job->next;
        job->done(job->job, self->arg);
        free(job);
        pthread_mutex_lock(&self->lock);
        self->pending--;
        pthread_mutex_unlock(&self->lock);
        job = next;
    }
}

static int s_readable(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    vz_pool_t *self = arg;
    char buf[256];
    while (read(item->fd, buf, sizeof buf) > 0)
        ;
    s_reap(self);
    return 0;
}

int vz_pool_attach(vz_pool_t *self, zloop_t *loop)
{
    assert(self && loop && !self->loop);
    zmq_pollitem_t item = {.fd = self->fds[0], .events = ZMQ_POLLIN};
    if (zloop_poller(loop, &item, s_readable, self) < 0)
        return -1;
    self->loop = loop;
    return 0;
}

int vz_pool_submit(vz_pool_t *self, vz_pool_work_fn *work, vz_pool_done_fn *done, void *job)
{
    assert(self && work && done);
    if (self->inline_mode) {
        work(job);
        done(job, self->arg);
        return 0;
    }
    s_job_t *entry = calloc(1, sizeof *entry);
    if (!entry)
        return -ENOMEM;
    *entry = (s_job_t){.work = work, .done = done, .job = job};
    pthread_mutex_lock(&self->lock);
    //  Idle threads take queued jobs at once; only the excess counts.
    size_t idle = (size_t)self->nthreads - self->running;
    size_t waiting = self->queued + 1;
    if (waiting > idle && waiting - idle > (size_t)self->queue_max) {
        pthread_mutex_unlock(&self->lock);
        free(entry);
        return -EBUSY;
    }
    if (self->tail)
        self->tail->next = entry;
    else
        self->queue = entry;
    self->tail = entry;
    self->queued++;
    self->pending++;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

void vz_pool_drain(vz_pool_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    while (self->queued || self->running)
        pthread_cond_wait(&self->finished, &self->lock);
    pthread_mutex_unlock(&self->lock);
    s_reap(self);
    self->inline_mode = true;
}

size_t vz_pool_pending(const vz_pool_t *self)
{
    assert(self);
    pthread_mutex_lock((pthread_mutex_t *)&self->lock);
    size_t n = self->pending;
    pthread_mutex_unlock((pthread_mutex_t *)&self->lock);
    return n;
}

void vz_pool_destroy(vz_pool_t **self_p)
{
    vz_pool_t *self = *self_p;
    if (!self)
        return;
    vz_pool_drain(self);
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    for (int i = 0; i < self->nthreads; i++)
        pthread_join(self->threads[i], NULL);
    close(self->fds[0]);
    close(self->fds[1]);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->finished);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
