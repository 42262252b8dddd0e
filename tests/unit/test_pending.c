/*  test_pending - vz_pending: ids, matching, expiry and clearing
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "vz_pending.h"

typedef struct {
    vz_pending_entry_t entry; //  filed in the table
    int ended;                //  times the callback saw it
} item_t;

static void s_item(item_t *item, const char *service, const char *method, int64_t expires)
{
    memset(item, 0, sizeof *item);
    item->entry.service = service;
    item->entry.method = method;
    item->entry.expires_ms = expires;
    item->entry.owner = item;
}

static void s_ended(vz_pending_entry_t *entry, void *arg)
{
    ((item_t *)entry->owner)->ended++;
    (*(int *)arg)++;
}

static void s_answer(vz_envelope_t *env, const char *id, const char *service, const char *method)
{
    vz_envelope_init(env, VZ_KIND_REPLY);
    strcpy(env->id, id);
    strcpy(env->service, service);
    strcpy(env->method, method);
}

//  A wanted id is kept unless taken; a repeat gets a fresh one.
static void test_ids(void **state)
{
    vz_pending_t *p = vz_pending_new();
    item_t a, b, c;
    s_item(&a, "auth", "login", 0);
    s_item(&b, "auth", "login", 0);
    s_item(&c, "auth", "login", 0);
    assert_int_equal(vz_pending_add(p, &a.entry, "req-1"), 0);
    assert_string_equal(a.entry.id, "req-1");
    assert_int_equal(vz_pending_add(p, &b.entry, "req-1"), 1);
    assert_int_equal(strlen(b.entry.id), 32);
    assert_int_equal(vz_pending_add(p, &c.entry, NULL), 1);
    assert_string_not_equal(b.entry.id, c.entry.id);
    assert_int_equal(vz_pending_size(p), 3);
    //  Refiling its own id after being taken out keeps it (retries).
    vz_pending_remove(p, &a.entry);
    assert_int_equal(vz_pending_add(p, &a.entry, a.entry.id), 0);
    assert_string_equal(a.entry.id, "req-1");
    //  Choosing without filing: the same rule, nothing added.
    char id[VZ_ID_MAX];
    assert_int_equal(vz_pending_id(p, "req-2", id), 0);
    assert_string_equal(id, "req-2");
    assert_int_equal(vz_pending_id(p, "req-1", id), 1);
    assert_string_not_equal(id, "req-1");
    assert_int_equal(vz_pending_id(p, "", id), 1);
    assert_int_equal(vz_pending_size(p), 3);
    vz_pending_destroy(&p);
    assert_null(p);
}

//  A response matches on id, service and method, and takes the entry out.
static void test_match(void **state)
{
    vz_pending_t *p = vz_pending_new();
    item_t a;
    s_item(&a, "ratelimit", "check", 0);
    vz_pending_add(p, &a.entry, "step");
    vz_envelope_t env;
    s_answer(&env, "step", "echo", "check"); //  a late answer to an earlier step
    assert_null(vz_pending_match(p, &env));
    s_answer(&env, "other", "ratelimit", "check");
    assert_null(vz_pending_match(p, &env));
    assert_int_equal(vz_pending_size(p), 1);
    s_answer(&env, "step", "ratelimit", "check");
    assert_ptr_equal(vz_pending_match(p, &env), &a.entry);
    assert_int_equal(vz_pending_size(p), 0);
    assert_null(vz_pending_match(p, &env)); //  a second answer is late
    vz_pending_remove(p, &a.entry);         //  not filed: no effect
    vz_pending_destroy(&p);
}

//  Expiry takes out exactly the entries due; clear takes the rest.
static void test_expire_and_clear(void **state)
{
    vz_pending_t *p = vz_pending_new();
    item_t items[6];
    for (int i = 0; i < 6; i++) {
        s_item(&items[i], "svc", "m", 100 * i);
        vz_pending_add(p, &items[i].entry, NULL);
    }
    int n = 0;
    assert_int_equal(vz_pending_expire(p, 250, s_ended, &n), 3);
    assert_int_equal(n, 3);
    for (int i = 0; i < 6; i++)
        assert_int_equal(items[i].ended, i <= 2 ? 1 : 0);
    assert_int_equal(vz_pending_expire(p, 250, s_ended, &n), 0);
    assert_int_equal(vz_pending_clear(p, s_ended, &n), 3);
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(items[i].ended, 1);
    assert_int_equal(vz_pending_size(p), 0);
    vz_pending_destroy(&p);
}

//  A broker's link dropped: only the entries sent through it come out.
static void test_clear_broker(void **state)
{
    vz_pending_t *p = vz_pending_new();
    item_t items[6];
    for (int i = 0; i < 6; i++) {
        s_item(&items[i], "svc", "m", 1000);
        items[i].entry.broker = i % 3 - 1; //  -1 (unknown), 0, 1
        vz_pending_add(p, &items[i].entry, NULL);
    }
    int n = 0;
    assert_int_equal(vz_pending_clear_broker(p, 1, s_ended, &n), 2);
    for (int i = 0; i < 6; i++)
        assert_int_equal(items[i].ended, i % 3 == 2 ? 1 : 0);
    assert_int_equal(vz_pending_clear_broker(p, 1, s_ended, &n), 0);
    assert_int_equal(vz_pending_clear_broker(p, 0, s_ended, &n), 2);
    assert_int_equal(vz_pending_size(p), 2);
    assert_int_equal(vz_pending_clear(p, s_ended, &n), 2);
    assert_int_equal(n, 6);
    vz_pending_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_expire_and_clear),
        cmocka_unit_test(test_clear_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
