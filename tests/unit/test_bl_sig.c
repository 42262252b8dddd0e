/*  test_bl_sig - Stripe-Signature verification against fixed and SDK-made signatures
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  bl_sig is pure: header, body, secrets and "now" in, a code out. The
 *  fixed vector was produced by the official stripe npm SDK (17.7.0,
 *  webhooks.generateTestHeaderString); test_sdk_cross_check runs the SDK
 *  itself (tests/peers/stripe_webhook.mjs) both ways: headers it signs
 *  verify here, and headers bl_sig_sign makes pass its constructEvent. It is
 *  skipped, visibly, when node or the stripe package is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bl_sig.h"
#include "test_bl_peer.h"

#define T0 1700000000
#define BODY "{\"id\":\"evt_1\",\"type\":\"customer.created\",\"created\":1700000000}"

//  generateTestHeaderString({payload: "{}", secret: "whsec_a", timestamp: T0}).
#define SDK_V1 "04339dc4f01d6541e8d3b7e4bd93cd2d4f680ccb28592270900b08e49cc09e57"

static bl_sig_config_t s_config(const char *a, const char *b)
{
    bl_sig_config_t c = {.secrets = {a, b}, .count = b ? 2 : a ? 1 : 0, .tolerance_s = 300};
    return c;
}

//  "t=<t>,v1=<sig of BODY with secret>" into out.
static void s_header(char *out, size_t n, const char *secret, long t, const char *body)
{
    char hex[65];
    assert_int_equal(bl_sig_sign(secret, t, body, strlen(body), hex), 0);
    snprintf(out, n, "t=%ld,v1=%s", t, hex);
}

static void test_sdk_vector(void **state)
{
    char hex[65];
    assert_int_equal(bl_sig_sign("whsec_a", T0, "{}", 2, hex), 0);
    assert_string_equal(hex, SDK_V1);
    bl_sig_config_t c = s_config("whsec_a", NULL);
    int64_t t = 0;
    assert_int_equal(bl_sig_verify(&c, "t=1700000000,v1=" SDK_V1, "{}", 2, T0 + 5, &t), BL_SIG_OK);
    assert_int_equal(t, T0);
}

static void test_valid_and_rotation(void **state)
{
    char h_old[200], h_new[200], both[400];
    s_header(h_old, sizeof h_old, "whsec_old", T0, BODY);
    s_header(h_new, sizeof h_new, "whsec_new", T0, BODY);
    //  Stripe sends one v1 per active secret while a secret is rolled.
    snprintf(both, sizeof both, "%s,%s", h_old, strchr(h_new, ',') + 1);
    bl_sig_config_t only_new = s_config("whsec_new", NULL);
    bl_sig_config_t only_old = s_config("whsec_old", NULL);
    bl_sig_config_t two = s_config("whsec_other", "whsec_new");
    bl_sig_config_t none = s_config("whsec_other", NULL);
    size_t len = strlen(BODY);
    assert_int_equal(bl_sig_verify(&only_new, h_new, BODY, len, T0, NULL), BL_SIG_OK);
    assert_int_equal(bl_sig_verify(&only_new, both, BODY, len, T0, NULL), BL_SIG_OK);
    assert_int_equal(bl_sig_verify(&only_old, both, BODY, len, T0, NULL), BL_SIG_OK);
    assert_int_equal(bl_sig_verify(&two, h_new, BODY, len, T0, NULL), BL_SIG_OK);
    assert_int_equal(bl_sig_verify(&two, h_old, BODY, len, T0, NULL), BL_SIG_MISMATCH);
    assert_int_equal(bl_sig_verify(&none, both, BODY, len, T0, NULL), BL_SIG_MISMATCH);
    bl_sig_config_t empty = s_config(NULL, NULL);
    assert_int_equal(bl_sig_verify(&empty, h_new, BODY, len, T0, NULL), BL_SIG_MISMATCH);

    //  Other schemes and unknown items are ignored; v0 never verifies.
    char extra[400];
    snprintf(extra, sizeof extra, "t=%d,v0=%s,x=1,%s", T0, strstr(h_new, "v1=") + 3,
             strchr(h_new, ',') + 1);
    assert_int_equal(bl_sig_verify(&only_new, extra, BODY, len, T0, NULL), BL_SIG_OK);
    char v0[200];
    snprintf(v0, sizeof v0, "t=%d,v0=%s,v1=00", T0, strstr(h_new, "v1=") + 3);
    assert_int_equal(bl_sig_verify(&only_new, v0, BODY, len, T0, NULL), BL_SIG_MISMATCH);
}

static void test_tampered(void **state)
{
    char h[200];
    s_header(h, sizeof h, "whsec_a", T0, BODY);
    bl_sig_config_t c = s_config("whsec_a", NULL);
    char body[] = BODY;
    body[10] ^= 1;
    assert_int_equal(bl_sig_verify(&c, h, body, strlen(body), T0, NULL), BL_SIG_MISMATCH);
    //  Re-serialised (same JSON, other bytes): the raw body is what is signed.
    const char *spaced =
        "{\"id\": \"evt_1\", \"type\": \"customer.created\", \"created\": 1700000000}";
    assert_int_equal(bl_sig_verify(&c, h, spaced, strlen(spaced), T0, NULL), BL_SIG_MISMATCH);
    //  One byte shorter, an uppercase signature, another timestamp.
    assert_int_equal(bl_sig_verify(&c, h, BODY, strlen(BODY) - 1, T0, NULL), BL_SIG_MISMATCH);
    char upper[200];
    strcpy(upper, h);
    for (char *p = strstr(upper, "v1=") + 3; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    assert_int_equal(bl_sig_verify(&c, upper, BODY, strlen(BODY), T0, NULL), BL_SIG_MISMATCH);
    char moved[200];
    snprintf(moved, sizeof moved, "t=%d%s", T0 + 1, strchr(h, ','));
    assert_int_equal(bl_sig_verify(&c, moved, BODY, strlen(BODY), T0, NULL), BL_SIG_MISMATCH);
    //  A truncated signature.
    h[strlen(h) - 1] = '\0';
    assert_int_equal(bl_sig_verify(&c, h, BODY, strlen(BODY), T0, NULL), BL_SIG_MISMATCH);
}

static void test_missing_and_unparsable(void **state)
{
    bl_sig_config_t c = s_config("whsec_a", NULL);
    size_t len = strlen(BODY);
    assert_int_equal(bl_sig_verify(&c, NULL, BODY, len, T0, NULL), BL_SIG_MISSING);
    assert_int_equal(bl_sig_verify(&c, "", BODY, len, T0, NULL), BL_SIG_MISSING);
    const char *bad[] = {"garbage",           "t=1700000000",
                         "v1=" SDK_V1,        "t=abc,v1=" SDK_V1,
                         "t=,v1=" SDK_V1,     "t=-5,v1=" SDK_V1,
                         "t=17e8,v1=" SDK_V1, "t=1700000000,t=1700000001,v1=" SDK_V1,
                         "t=1700000000,v1",   ",,,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(bl_sig_verify(&c, bad[i], "{}", 2, T0, NULL), BL_SIG_UNPARSABLE);
    char *huge = malloc(BL_SIG_HEADER_MAX + 2);
    memset(huge, 'a', BL_SIG_HEADER_MAX + 1);
    huge[BL_SIG_HEADER_MAX + 1] = '\0';
    memcpy(huge, "t=1700000000,v1=", 16);
    assert_int_equal(bl_sig_verify(&c, huge, "{}", 2, T0, NULL), BL_SIG_UNPARSABLE);
    free(huge);
}

static void test_tolerance(void **state)
{
    char h[200];
    s_header(h, sizeof h, "whsec_a", T0, BODY);
    bl_sig_config_t c = s_config("whsec_a", NULL);
    size_t len = strlen(BODY);
    assert_int_equal(bl_sig_verify(&c, h, BODY, len, T0 + 300, NULL), BL_SIG_OK);
    assert_int_equal(bl_sig_verify(&c, h, BODY, len, T0 + 301, NULL), BL_SIG_STALE);
    assert_int_equal(bl_sig_verify(&c, h, BODY, len, T0 - 300, NULL), BL_SIG_OK);
    assert_int_equal(bl_sig_verify(&c, h, BODY, len, T0 - 301, NULL), BL_SIG_STALE);
    c.tolerance_s = 10;
    assert_int_equal(bl_sig_verify(&c, h, BODY, len, T0 + 11, NULL), BL_SIG_STALE);
    c.tolerance_s = 0; //  disabled, as the SDK's tolerance 0
    assert_int_equal(bl_sig_verify(&c, h, BODY, len, T0 + 86400, NULL), BL_SIG_OK);
    //  The signature is checked first: a tampered old delivery is a bad signature.
    c.tolerance_s = 300;
    assert_int_equal(bl_sig_verify(&c, h, "{}", 2, T0 + 1000, NULL), BL_SIG_MISMATCH);
}

static void test_event(void **state)
{
    bl_sig_event_t e;
    assert_int_equal(bl_sig_event(BODY, strlen(BODY), &e), BL_SIG_OK);
    assert_string_equal(e.id, "evt_1");
    assert_string_equal(e.type, "customer.created");
    assert_int_equal(e.created, T0);
    assert_false(e.livemode);
    const char *live = "{\"id\":\"evt_2\",\"type\":\"a\",\"created\":5,\"livemode\":true}";
    assert_int_equal(bl_sig_event(live, strlen(live), &e), BL_SIG_OK);
    assert_true(e.livemode);
    const char *bad[] = {"",
                         "not json",
                         "[1]",
                         "{\"id\":\"evt_1\",\"type\":\"a\"}",
                         "{\"id\":1,\"type\":\"a\",\"created\":1}",
                         "{\"id\":\"\",\"type\":\"a\",\"created\":1}",
                         "{\"id\":\"e\",\"type\":\"a\",\"created\":\"1\"}",
                         "{\"id\":\"e\",\"type\":\"a\",\"created\":1.5}",
                         "{\"id\":\"e\",\"type\":\"a\",\"created\":-1}",
                         "{\"id\":\"e\",\"type\":\"a\",\"created\":1,\"livemode\":1}",
                         "{\"id\":\"e\",\"id\":\"f\",\"type\":\"a\",\"created\":1}",
                         "{\"id\":\"e\",\"type\":\"a\",\"created\":1} x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bl_sig_event(bad[i], strlen(bad[i]), &e), BL_SIG_BAD_JSON);
        assert_string_equal(e.id, "");
    }
    char longid[300];
    snprintf(longid, sizeof longid, "{\"id\":\"%0200d\",\"type\":\"a\",\"created\":1}", 7);
    assert_int_equal(bl_sig_event(longid, strlen(longid), &e), BL_SIG_BAD_JSON);
}

static void test_codes_distinct(void **state)
{
    bl_sig_rc_t all[] = {BL_SIG_MISSING, BL_SIG_UNPARSABLE, BL_SIG_MISMATCH, BL_SIG_STALE,
                         BL_SIG_BAD_JSON};
    for (size_t i = 0; i < 5; i++) {
        assert_true(strlen(bl_sig_code(all[i])) > 0);
        assert_true(strlen(bl_sig_message(all[i])) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(bl_sig_code(all[i]), bl_sig_code(all[j]));
    }
    assert_string_equal(bl_sig_code(BL_SIG_OK), "");
}

// --------------------------------------------------------------------------
//  The SDK, both ways

//  One line of output of the webhook peer, or NULL (heap).
static char *s_peer(const char *args)
{
    return bl_peer_run("stripe_webhook.mjs", args);
}

static void test_sdk_cross_check(void **state)
{
    if (!bl_peer_ready())
        skip();
    //  Payloads with multi-byte UTF-8, escapes, spaces and a newline.
    const char *bodies[] = {
        BODY, "{}", "{\"id\":\"evt_ü\",\"type\":\"a\",\"created\":1,\"x\":\"\\u00e9 \\\"q\\\"\"}\n",
        "{ \"id\" : \"evt_3\" ,\n \"type\":\"b\", \"created\": 2 }"};
    char file[] = "/tmp/test_bl_sig_XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    bl_sig_config_t c = s_config("whsec_new", "whsec_old");
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        FILE *f = fopen(file, "w");
        fputs(bodies[i], f);
        fclose(f);
        size_t len = strlen(bodies[i]);
        char args[512];
        //  The SDK signs with two secrets (rotation): accepted by either.
        snprintf(args, sizeof args, "sign whsec_old,whsec_new %d %s", T0 + (int)i, file);
        char *header = s_peer(args);
        assert_non_null(header);
        assert_int_equal(bl_sig_verify(&c, header, bodies[i], len, T0 + (int64_t)i, NULL),
                         BL_SIG_OK);
        bl_sig_config_t other = s_config("whsec_else", NULL);
        assert_int_equal(bl_sig_verify(&other, header, bodies[i], len, T0, NULL), BL_SIG_MISMATCH);
        free(header);

        //  Ours, at the current time (the SDK checks against its clock).
        char hex[65];
        long now = (long)time(NULL);
        assert_int_equal(bl_sig_sign("whsec_new", now, bodies[i], len, hex), 0);
        snprintf(args, sizeof args, "verify whsec_new 't=%ld,v1=%s' %s", now, hex, file);
        char *verdict = s_peer(args);
        assert_non_null(verdict);
        assert_string_equal(strncmp(verdict, "ok", 2) == 0 ? "ok" : verdict, "ok");
        free(verdict);
        //  And a signature of ours with another secret fails there too.
        snprintf(args, sizeof args, "verify whsec_old 't=%ld,v1=%s' %s", now, hex, file);
        verdict = s_peer(args);
        assert_non_null(verdict);
        assert_true(strncmp(verdict, "fail", 4) == 0);
        free(verdict);
    }
    unlink(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdk_vector),     cmocka_unit_test(test_valid_and_rotation),
        cmocka_unit_test(test_tampered),       cmocka_unit_test(test_missing_and_unparsable),
        cmocka_unit_test(test_tolerance),      cmocka_unit_test(test_event),
        cmocka_unit_test(test_codes_distinct), cmocka_unit_test(test_sdk_cross_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
