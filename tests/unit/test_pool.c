/*  test_pool - vz_pool: work on threads, done on the loop, the queue bound, drain
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "vz_pool.h"

typedef struct {
    int input, output;     //  work squares input into output
    pthread_t worked_on;   //  the thread that ran work
    pthread_t done_on;     //  the thread that ran done
    bool done;             //  done was called
    pthread_mutex_t *gate; //  work holds this while it runs (NULL: none)
} job_t;

typedef struct {
    int done;      //  done calls
    zloop_t *loop; //  ended once `until` jobs are done
    int until;
} app_t;

static void s_work(void *arg)
{
    job_t *job = arg;
    if (job->gate) {
        pthread_mutex_lock(job->gate);
        pthread_mutex_unlock(job->gate);
    }
    job->worked_on = pthread_self();
    job->output = job->input * job->input;
}

static void s_done(void *arg, void *app_arg)
{
    job_t *job = arg;
    app_t *app = app_arg;
    job->done_on = pthread_self();
    job->done = true;
    app->done++;
}

//  Loop timer: end the loop once enough jobs are done (or give up).
static int s_check(zloop_t *loop, int timer_id, void *arg)
{
    app_t *app = arg;
    return app->done >= app->until ? -1 : 0;
}

static int s_give_up(zloop_t *loop, int timer_id, void *arg)
{
    return -1;
}

static void test_bad_sizes(void **state)
{
    assert_null(vz_pool_new(0, 4, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(vz_pool_new(VZ_POOL_THREADS_MAX + 1, 4, NULL));
    assert_null(vz_pool_new(2, -1, NULL));
    assert_null(vz_pool_new(2, VZ_POOL_QUEUE_MAX + 1, NULL));
}

static void test_work_on_threads_done_on_loop(void **state)
{
    app_t app = {.until = 20};
    vz_pool_t *pool = vz_pool_new(2, 32, &app);
    assert_non_null(pool);
    zloop_t *loop = zloop_new();
    assert_int_equal(vz_pool_attach(pool, loop), 0);
    job_t jobs[20];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 20; i++) {
        jobs[i].input = i;
        assert_int_equal(vz_pool_submit(pool, s_work, s_done, &jobs[i]), 0);
    }
    assert_true(vz_pool_pending(pool) > 0);
    zloop_timer(loop, 5, 0, s_check, &app);
    zloop_timer(loop, 30000, 1, s_give_up, NULL); //  a hung pool fails below
    zloop_start(loop);
    assert_int_equal(app.done, 20);
    assert_int_equal(vz_pool_pending(pool), 0);
    for (int i = 0; i < 20; i++) {
        assert_true(jobs[i].done);
        assert_int_equal(jobs[i].output, i * i);
        assert_false(pthread_equal(jobs[i].worked_on, pthread_self()));
        assert_true(pthread_equal(jobs[i].done_on, pthread_self()));
    }
    vz_pool_destroy(&pool);
    assert_null(pool);
    zloop_destroy(&loop);
}

static void test_full_queue_refused_then_drain(void **state)
{
    app_t app = {0};
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate); //  holds the one thread inside work
    vz_pool_t *pool = vz_pool_new(1, 1, &app);
    assert_non_null(pool);
    job_t jobs[3];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 3; i++) {
        jobs[i].input = i + 1;
        jobs[i].gate = &gate;
    }
    //  One running (or about to), one waiting: the third is refused.
    assert_int_equal(vz_pool_submit(pool, s_work, s_done, &jobs[0]), 0);
    assert_int_equal(vz_pool_submit(pool, s_work, s_done, &jobs[1]), 0);
    assert_int_equal(vz_pool_submit(pool, s_work, s_done, &jobs[2]), -EBUSY);
    assert_false(jobs[2].done);
    assert_int_equal(vz_pool_pending(pool), 2);
    pthread_mutex_unlock(&gate);
    //  Drain (no loop at all): both finish and their done runs here.
    vz_pool_drain(pool);
    assert_int_equal(app.done, 2);
    assert_true(jobs[0].done && jobs[1].done);
    assert_int_equal(jobs[1].output, 4);
    //  After drain, a job runs inline in submit.
    jobs[2].gate = NULL;
    assert_int_equal(vz_pool_submit(pool, s_work, s_done, &jobs[2]), 0);
    assert_true(jobs[2].done);
    assert_true(pthread_equal(jobs[2].worked_on, pthread_self()));
    assert_int_equal(app.done, 3);
    vz_pool_destroy(&pool);
    pthread_mutex_destroy(&gate);
}

static void test_destroy_finishes_queued_jobs(void **state)
{
    app_t app = {0};
    vz_pool_t *pool = vz_pool_new(1, 8, &app);
    assert_non_null(pool);
    job_t jobs[5];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 5; i++)
        assert_int_equal(vz_pool_submit(pool, s_work, s_done, &jobs[i]), 0);
    vz_pool_destroy(&pool);
    assert_int_equal(app.done, 5);
    vz_pool_destroy(&pool); //  NULL is fine
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_work_on_threads_done_on_loop),
        cmocka_unit_test(test_full_queue_refused_then_drain),
        cmocka_unit_test(test_destroy_finishes_queued_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
