/*  test_acl - the worker's ACL: what the brokers list, kept apart per broker
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <czmq.h>

#include "vz_acl.h"

typedef struct {
    void *ctx;
    vz_acl_t *acl;
    char key[3][41]; //  public keys of a, b and c
} s_env_t;

static int s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    e->ctx = zmq_ctx_new();
    e->acl = vz_acl_new(e->ctx);
    assert_non_null(e->acl);
    for (int i = 0; i < 3; i++) {
        zcert_t *cert = zcert_new();
        strcpy(e->key[i], zcert_public_txt(cert));
        zcert_destroy(&cert);
    }
    *state = e;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *e = *state;
    vz_acl_destroy(&e->acl);
    zmq_ctx_term(e->ctx);
    free(e);
    return 0;
}

//  An ACL message: the command, then name/key pairs ("" key: the frame is left out).
static int s_set(s_env_t *e, int source, const char *const *pairs)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "ACL");
    for (size_t i = 0; pairs[i]; i += 2) {
        zmsg_addstr(msg, pairs[i]);
        if (*pairs[i + 1])
            zmsg_addstr(msg, pairs[i + 1]);
    }
    zmsg_first(msg); //  the cursor on the command, as the worker leaves it
    int rc = vz_acl_set(e->acl, source, msg);
    zmsg_destroy(&msg);
    return rc;
}

static void test_brokers_apart(void **state)
{
    s_env_t *e = *state;
    assert_false(vz_acl_ready(e->acl));
    assert_false(vz_acl_allows(e->acl, "a", e->key[0])); //  nobody before a first list
    const char *ab[] = {"a", e->key[0], "b", e->key[1], NULL};
    assert_int_equal(s_set(e, 0, ab), 2);
    assert_true(vz_acl_allows(e->acl, "a", e->key[0]));
    assert_false(vz_acl_allows(e->acl, "a", e->key[1])); //  the name with another's key
    assert_false(vz_acl_allows(e->acl, "c", e->key[2]));
    assert_false(vz_acl_allows(e->acl, "a", NULL));
    //  A second broker that lists only a: b is refused while they disagree.
    const char *a[] = {"a", e->key[0], NULL};
    assert_int_equal(s_set(e, 3, a), 1);
    assert_true(vz_acl_allows(e->acl, "a", e->key[0]));
    assert_false(vz_acl_allows(e->acl, "b", e->key[1]));
    //  That broker gone for good: the first one's word stands alone.
    vz_acl_forget(e->acl, 3);
    assert_true(vz_acl_allows(e->acl, "b", e->key[1]));
    //  A new list replaces the broker's old one whole.
    const char *c[] = {"c", e->key[2], NULL};
    assert_int_equal(s_set(e, 0, c), 1);
    assert_false(vz_acl_allows(e->acl, "a", e->key[0]));
    assert_true(vz_acl_allows(e->acl, "c", e->key[2]));
}

static void test_bad_lists_fail_closed(void **state)
{
    s_env_t *e = *state;
    const char *c[] = {"c", e->key[2], NULL};
    assert_int_equal(s_set(e, 0, c), 1);
    //  A name without its key, a key that is not Z85: that broker lists nobody.
    const char *half[] = {"c", e->key[2], "d", "", NULL};
    assert_int_equal(s_set(e, 0, half), -EINVAL);
    assert_false(vz_acl_allows(e->acl, "c", e->key[2]));
    assert_int_equal(s_set(e, 0, c), 1);
    const char *junk[] = {"c", "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~", NULL};
    assert_int_equal(s_set(e, 0, junk), -EINVAL);
    assert_false(vz_acl_allows(e->acl, "c", e->key[2]));
    //  More identities than VZ_ACL_MAX: refused, not cut.
    static char names[VZ_ACL_MAX + 1][16];
    const char *many[2 * (VZ_ACL_MAX + 1) + 1];
    for (int i = 0; i <= VZ_ACL_MAX; i++) {
        snprintf(names[i], sizeof names[i], "id%d", i);
        many[2 * i] = names[i];
        many[2 * i + 1] = e->key[i % 3];
    }
    many[2 * (VZ_ACL_MAX + 1)] = NULL;
    assert_int_equal(s_set(e, 1, many), -EINVAL);
    assert_false(vz_acl_allows(e->acl, "id0", e->key[0]));
    many[2 * VZ_ACL_MAX] = NULL; //  exactly VZ_ACL_MAX fit
    vz_acl_forget(e->acl, 0);
    assert_int_equal(s_set(e, 1, many), VZ_ACL_MAX);
    assert_true(vz_acl_allows(e->acl, "id5", e->key[5 % 3]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_brokers_apart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_lists_fail_closed, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
