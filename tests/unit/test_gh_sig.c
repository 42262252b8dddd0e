/*  test_gh_sig - X-Hub-Signature-256: GitHub's documented example, rotation, refusals
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gh_sig.h"

//  GitHub's "Validating webhook deliveries" test values.
#define DOC_SECRET "It's a Secret to Everybody"
#define DOC_BODY "Hello, World!"
#define DOC_SIG "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static void test_documented_example(void **state)
{
    char sig[GH_SIG_HEADER_LEN + 1];
    assert_int_equal(gh_sig_sign(DOC_SECRET, DOC_BODY, strlen(DOC_BODY), sig), 0);
    assert_string_equal(sig, DOC_SIG);
    gh_sig_config_t c = {.secrets = {DOC_SECRET}, .count = 1};
    assert_int_equal(gh_sig_verify(&c, DOC_SIG, DOC_BODY, strlen(DOC_BODY)), GH_SIG_OK);
    //  Upper-case hex is the same signature.
    char upper[sizeof DOC_SIG];
    strcpy(upper, DOC_SIG);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    assert_int_equal(gh_sig_verify(&c, upper, DOC_BODY, strlen(DOC_BODY)), GH_SIG_OK);
}

static void test_rotation_and_refusals(void **state)
{
    char list[] = " old-secret , " DOC_SECRET ",,  ";
    gh_sig_config_t c;
    assert_int_equal(gh_sig_parse(list, &c), 2);
    assert_string_equal(c.secrets[0], "old-secret");
    assert_int_equal(gh_sig_verify(&c, DOC_SIG, DOC_BODY, strlen(DOC_BODY)), GH_SIG_OK);
    assert_int_equal(gh_sig_verify(&c, NULL, DOC_BODY, 13), GH_SIG_MISSING);
    assert_int_equal(gh_sig_verify(&c, "", DOC_BODY, 13), GH_SIG_MISSING);
    assert_int_equal(gh_sig_verify(&c, "sha1=757107ea", DOC_BODY, 13), GH_SIG_UNPARSABLE);
    char bad[] = DOC_SIG;
    bad[10] = 'z';
    assert_int_equal(gh_sig_verify(&c, bad, DOC_BODY, 13), GH_SIG_UNPARSABLE);
    bad[10] = '0';
    assert_int_equal(gh_sig_verify(&c, bad, DOC_BODY, 13), GH_SIG_MISMATCH);
    assert_int_equal(gh_sig_verify(&c, DOC_SIG, "Hello, World?", 13), GH_SIG_MISMATCH);
    gh_sig_config_t none = {0};
    assert_int_equal(gh_sig_verify(&none, DOC_SIG, DOC_BODY, 13), GH_SIG_MISMATCH);
    assert_string_equal(gh_sig_code(GH_SIG_MISMATCH), "signature_invalid");
    assert_string_equal(gh_sig_code(GH_SIG_BAD_JSON), "invalid_json");
    //  At most GH_SIG_SECRETS_MAX are kept.
    char many[] = "a,b,c,d,e,f";
    assert_int_equal(gh_sig_parse(many, &c), GH_SIG_SECRETS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_example),
        cmocka_unit_test(test_rotation_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
