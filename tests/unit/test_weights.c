/*  test_weights - the broker's weights file and the RDY version token
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vz_worker.h"
#include "weights.h"

#include "ut.h"

//  Load text from a temp file: weights_load's code; *list_p and *n_p as it sets them.
static int s_load(const char *text, broker_weights_t **list_p, size_t *n_p, char *err, size_t n)
{
    char path[256];
    assert_int_equal(ut_temp_file(path, sizeof path, "weights", text), 0);
    int rc = weights_load(path, list_p, n_p, err, n);
    unlink(path);
    return rc;
}

static void test_valid(void **state)
{
    broker_weights_t *list = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = s_load("echo\n    versions = \"1.3.0=90, 1.4.0-rc.1=10\"\n    sticky = \"sub\"\n"
                    "auth\n    versions = \"2=1\"\n",
                    &list, &n, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].service, "echo");
    assert_string_equal(list[0].sticky, "sub");
    assert_int_equal(list[0].count, 2);
    assert_string_equal(list[0].version[0], "1.3.0");
    assert_int_equal(list[0].weight[0], 90);
    assert_string_equal(list[0].version[1], "1.4.0-rc.1");
    assert_int_equal(list[0].weight[1], 10);
    assert_string_equal(list[1].service, "auth");
    assert_string_equal(list[1].sticky, "");
    assert_int_equal(list[1].weight[0], 1);
    free(list);
}

static void test_invalid(void **state)
{
    static const struct {
        const char *text; //  the file
        const char *why;  //  a word of the reason
    } cases[] = {
        {"echo\n    versions = \"1.0=50 1.0=50\"\n", "twice"},
        {"echo\n    versions = \"1.0=0 1.1=0\"\n", "above 0"},
        {"echo\n    versions = \"\"\n", "above 0"},
        {"echo\n    versions = \"1.0=-1\"\n", "VERSION=WEIGHT"},
        {"echo\n    versions = \"1.0=1000001\"\n", "VERSION=WEIGHT"},
        {"echo\n    versions = \"1.0\"\n", "VERSION=WEIGHT"},
        {"echo\n    versions = \"-1=5\"\n", "VERSION=WEIGHT"},
        {"echo\n    versions = \"1.0=5x\"\n", "VERSION=WEIGHT"},
        {"echo\n    versions = \"1=1 2=1 3=1 4=1 5=1 6=1 7=1 8=1 9=1\"\n", "more than"},
        {"echo\n    versions = \"1=1\"\n    sticky = \"a b\"\n", "sticky"},
        {"ech@o\n    versions = \"1=1\"\n", "service name"},
        {"echo\n    versions = \"1=1\"\necho\n    versions = \"2=1\"\n", "twice"},
        {"echo\n  bad indentation = \n", "ZPL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        broker_weights_t *list = (broker_weights_t *)&list; //  must be reset
        size_t n = 99;
        char err[256] = "";
        int rc = s_load(cases[i].text, &list, &n, err, sizeof err);
        if (rc != -EINVAL || !strstr(err, cases[i].why))
            fail_msg("case %zu: rc %d, reason \"%s\", want \"%s\"", i, rc, err, cases[i].why);
        assert_null(list);
        assert_int_equal(n, 0);
    }
}

static void test_missing_file(void **state)
{
    broker_weights_t *list = NULL;
    size_t n = 5;
    char err[64];
    assert_int_equal(weights_load("/nonexistent/weights.cfg", &list, &n, err, sizeof err), -ENOENT);
    assert_null(list);
    assert_int_equal(n, 0);
}

static void test_version_token(void **state)
{
    assert_true(vz_version_valid("1.4.0"));
    assert_true(vz_version_valid("2.0.0-rc.1+build.7"));
    assert_true(vz_version_valid("v2"));
    assert_true(vz_version_valid("0"));
    assert_false(vz_version_valid(""));
    assert_false(vz_version_valid(NULL));
    assert_false(vz_version_valid(".1"));
    assert_false(vz_version_valid("1,0"));
    assert_false(vz_version_valid("1=0"));
    assert_false(vz_version_valid("1 0"));
    assert_false(vz_version_valid("1\"0"));
    assert_true(vz_version_valid("1234567890123456789012345678901"));   //  31 bytes
    assert_false(vz_version_valid("12345678901234567890123456789012")); //  32
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_version_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
