/*  test_endpoints - vz_endpoints: broker lists with names expanded
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Names resolve through the C library ("localhost" from /etc/hosts); a
 *  name with several addresses is shown by test_brokers (integration),
 *  which can bind its own /etc/hosts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vz_endpoints.h"

//  IP literals and other transports are kept as written; the result is
//  sorted and free of duplicates.
static void test_literals(void **state)
{
    vz_endpoints_t set;
    assert_int_equal(vz_endpoints_resolve(
                         "tcp://127.0.0.2:5555, tcp://127.0.0.1:5555,tcp://127.0.0.2:5555", &set),
                     0);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.ep[0], "tcp://127.0.0.1:5555");
    assert_string_equal(set.ep[1], "tcp://127.0.0.2:5555");
    assert_false(set.names);
    assert_true(vz_endpoints_has(&set, "tcp://127.0.0.2:5555"));
    assert_false(vz_endpoints_has(&set, "tcp://127.0.0.3:5555"));
    assert_int_equal(vz_endpoints_resolve("tcp://[::1]:7,ipc:///tmp/b.sock,inproc://x", &set), 0);
    assert_int_equal(set.n, 3);
    assert_true(vz_endpoints_has(&set, "tcp://[::1]:7"));
    assert_true(vz_endpoints_has(&set, "ipc:///tmp/b.sock"));
    assert_false(set.names);
}

//  A name stands for its addresses, IPv4 ones first: localhost is one
//  broker (127.0.0.1), not two (and ::1).
static void test_names(void **state)
{
    vz_endpoints_t set;
    assert_int_equal(vz_endpoints_resolve("tcp://localhost:6000", &set), 0);
    assert_true(set.names);
    assert_false(set.unresolved);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.ep[0], "tcp://127.0.0.1:6000");
    //  The same broker named twice is one.
    assert_int_equal(vz_endpoints_resolve("tcp://localhost:6000,tcp://127.0.0.1:6000", &set), 0);
    assert_int_equal(set.n, 1);
    //  A name that does not resolve is kept for ZeroMQ, and flagged.
    assert_int_equal(vz_endpoints_resolve("tcp://no-such-broker.invalid:6000", &set), 0);
    assert_true(set.unresolved);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.ep[0], "tcp://no-such-broker.invalid:6000");
    assert_true(vz_endpoints_named(set.ep[0]));
    assert_false(vz_endpoints_named("tcp://127.0.0.1:6000"));
    assert_false(vz_endpoints_named("tcp://[::1]:6000"));
    assert_false(vz_endpoints_named("ipc:///tmp/x"));
}

static void test_bad(void **state)
{
    vz_endpoints_t set;
    const char *bad[] = {
        "", " , ", "tcp://127.0.0.1", "tcp://127.0.0.1:", "127.0.0.1:5555", "tcp://:5555"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(vz_endpoints_resolve(bad[i], &set), -EINVAL);
    char many[2048] = "";
    for (int i = 0; i <= VZ_ENDPOINTS_MAX; i++) {
        char ep[40];
        snprintf(ep, sizeof ep, "%stcp://127.0.0.%d:1", i ? "," : "", i + 1);
        strcat(many, ep);
    }
    assert_int_equal(vz_endpoints_resolve(many, &set), -EINVAL);
    assert_int_equal(set.n, 0);
}

//  The resolver thread reports nothing while nothing changes, and stops
//  promptly.
static void test_resolver(void **state)
{
    vz_endpoints_t first, out;
    assert_int_equal(vz_endpoints_resolve("tcp://localhost:6000", &first), 0);
    vz_resolver_t *r = vz_resolver_new("tcp://localhost:6000", &first);
    assert_non_null(r);
    assert_false(vz_resolver_take(r, &out));
    vz_resolver_destroy(&r);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_resolver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
