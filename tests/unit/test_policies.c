/*  test_policies - the rate-limit policy set: loading, validation, matching, bucket keys
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links ratelimit_core and uses only policies.h. Files go to a temp dir.
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

#include "policies.h"

#include "ut.h"

static const char s_set[] =
    "ratelimit\n    shadow = \"false\"\n"
    "policy\n"
    "    login\n        route = \"auth_login auth_register\"\n"
    "        by = \"ip\"\n        algorithm = \"sliding_window\"\n"
    "        limit = 5\n        window = \"1m\"\n"
    "    paid\n        tier = \"premium\"\n        by = \"key sub+route ip\"\n"
    "        algorithm = \"token_bucket\"\n        limit = 1000\n"
    "        burst = 50\n        window = \"1h\"\n"
    "    quiet\n        route = \"metrics\"\n        limit = 3\n"
    "        window = \"60s\"\n        shadow = \"true\"\n"
    "    rest\n        tier = \"*\"\n        by = \"key sub ip\"\n"
    "        limit = 100\n        window = \"1d\"\n";

//  Write text to a fresh temp file and load it; the file is removed.
static rl_policies_t *s_load(const char *text, char *err, size_t n)
{
    char path[256];
    assert_int_equal(ut_temp_file(path, sizeof path, "policies", text), 0);
    rl_policies_t *set = rl_policies_load(path, err, n);
    unlink(path);
    return set;
}

static vz_rl_check_t s_req(const char *ip, const char *sub, const char *key, const char *tier,
                           const char *route)
{
    vz_rl_check_t req;
    memset(&req, 0, sizeof req);
    snprintf(req.ip, sizeof req.ip, "%s", ip);
    snprintf(req.sub, sizeof req.sub, "%s", sub);
    snprintf(req.key, sizeof req.key, "%s", key);
    snprintf(req.tier, sizeof req.tier, "%s", tier);
    snprintf(req.route, sizeof req.route, "%s", route);
    req.cost = 1;
    return req;
}

static void test_load(void **state)
{
    (void)state;
    char err[256] = "";
    rl_policies_t *set = s_load(s_set, err, sizeof err);
    if (!set)
        fail_msg("refused: %s", err);
    assert_int_equal(rl_policies_count(set), 4);
    assert_false(rl_policies_shadow(set));
    const rl_policy_t *login = rl_policies_at(set, 0);
    assert_string_equal(login->name, "login");
    assert_int_equal(login->algorithm, RL_SLIDING_WINDOW);
    assert_int_equal(login->limit, 5);
    assert_int_equal(login->window_s, 60);
    assert_false(login->shadow);
    const rl_policy_t *paid = rl_policies_at(set, 1);
    assert_int_equal(paid->algorithm, RL_TOKEN_BUCKET);
    assert_int_equal(paid->burst, 50);
    assert_int_equal(paid->window_s, 3600);
    assert_int_equal(paid->by_count, 3);
    assert_true(rl_policies_at(set, 2)->shadow);
    const rl_policy_t *rest = rl_policies_at(set, 3);
    assert_int_equal(rest->window_s, 86400);
    assert_int_equal(rest->algorithm, RL_SLIDING_WINDOW); //  the default
    assert_int_equal(rest->burst, rest->limit);           //  idem, burst = limit
    assert_string_equal(rl_algorithm_name(RL_SLIDING_WINDOW), "sliding_window");
    rl_policies_destroy(&set);
    assert_null(set);
}

static void test_match_in_file_order(void **state)
{
    (void)state;
    char err[256];
    rl_policies_t *set = s_load(s_set, err, sizeof err);
    assert_non_null(set);
    vz_rl_check_t req = s_req("10.0.0.1", "", "", "premium", "auth_login");
    assert_int_equal(rl_policies_match(set, &req), 0); //  login before paid
    req = s_req("10.0.0.1", "u1", "", "premium", "orders");
    assert_int_equal(rl_policies_match(set, &req), 1);
    req = s_req("10.0.0.1", "", "", "free", "metrics");
    assert_int_equal(rl_policies_match(set, &req), 2);
    req = s_req("10.0.0.1", "", "", "free", "orders");
    assert_int_equal(rl_policies_match(set, &req), 3);
    //  Whole words only: "auth_log" is not "auth_login".
    req = s_req("10.0.0.1", "", "", "free", "auth_log");
    assert_int_equal(rl_policies_match(set, &req), 3);
    rl_policies_destroy(&set);

    //  Without a catch-all, a request nobody covers gets -1.
    set = s_load("policy\n    only\n        route = \"a\"\n        limit = 1\n"
                 "        window = \"1s\"\n",
                 err, sizeof err);
    assert_non_null(set);
    req = s_req("10.0.0.1", "", "", "free", "b");
    assert_int_equal(rl_policies_match(set, &req), -1);
    rl_policies_destroy(&set);
}

static void test_bucket_keys(void **state)
{
    (void)state;
    char err[256], key[RL_BUCKET_MAX];
    rl_policies_t *set = s_load(s_set, err, sizeof err);
    assert_non_null(set);
    const rl_policy_t *paid = rl_policies_at(set, 1);
    //  "key sub+route ip": the first alternative whose parts are all there.
    vz_rl_check_t req = s_req("10.0.0.1", "u1", "k9", "premium", "orders");
    assert_int_equal(rl_policies_bucket(paid, &req, key, sizeof key), 0);
    assert_string_equal(key, "vz:rl:paid:key=2:k9");
    req = s_req("10.0.0.1", "u1", "", "premium", "orders");
    assert_int_equal(rl_policies_bucket(paid, &req, key, sizeof key), 0);
    assert_string_equal(key, "vz:rl:paid:sub=2:u1:route=6:orders");
    req = s_req("10.0.0.1", "", "", "premium", "orders");
    assert_int_equal(rl_policies_bucket(paid, &req, key, sizeof key), 0);
    assert_string_equal(key, "vz:rl:paid:ip=8:10.0.0.1");
    //  Parts are length-prefixed: "a:b" + "c" differs from "a" + "b:c".
    char other[RL_BUCKET_MAX];
    req = s_req("", "a:b", "", "premium", "c");
    assert_int_equal(rl_policies_bucket(paid, &req, key, sizeof key), 0);
    req = s_req("", "a", "", "premium", "b:c");
    assert_int_equal(rl_policies_bucket(paid, &req, other, sizeof other), 0);
    assert_string_not_equal(key, other);
    //  Nothing complete: -ENOENT; too small a buffer: -ENAMETOOLONG.
    req = s_req("", "", "", "premium", "orders");
    assert_int_equal(rl_policies_bucket(paid, &req, key, sizeof key), -ENOENT);
    req = s_req("10.0.0.1", "", "", "premium", "orders");
    assert_int_equal(rl_policies_bucket(paid, &req, key, 12), -ENAMETOOLONG);
    rl_policies_destroy(&set);
}

//  The shipped policies key the tiers by subject: twenty API keys of one
//  user share one limit; anonymous callers go by IP.
static void test_shipped_by_subject(void **state)
{
    (void)state;
    char err[256] = "", a[RL_BUCKET_MAX], b[RL_BUCKET_MAX];
    rl_policies_t *set = rl_policies_load(VZ_TEST_SOURCE_DIR "/configs/ratelimit.cfg", err,
                                          sizeof err);
    if (!set)
        fail_msg("configs/ratelimit.cfg refused: %s", err);
    const char *const tiers[] = {"free", "premium"};
    for (size_t i = 0; i < 2; i++) {
        vz_rl_check_t one = s_req("10.0.0.1", "user-1", "key-a", tiers[i], "orders");
        vz_rl_check_t two = s_req("10.0.0.2", "user-1", "key-b", tiers[i], "orders");
        int index = rl_policies_match(set, &one);
        assert_true(index >= 0);
        assert_int_equal(rl_policies_match(set, &two), index);
        const rl_policy_t *policy = rl_policies_at(set, (size_t)index);
        assert_int_equal(rl_policies_bucket(policy, &one, a, sizeof a), 0);
        assert_int_equal(rl_policies_bucket(policy, &two, b, sizeof b), 0);
        assert_string_equal(a, b);
        assert_non_null(strstr(a, "sub=6:user-1"));
    }
    vz_rl_check_t anon = s_req("10.0.0.1", "", "", "anonymous", "orders");
    int index = rl_policies_match(set, &anon);
    assert_true(index >= 0);
    assert_int_equal(rl_policies_bucket(rl_policies_at(set, (size_t)index), &anon, a, sizeof a), 0);
    assert_non_null(strstr(a, "ip=8:10.0.0.1"));
    rl_policies_destroy(&set);
}

static void s_refused(const char *text, const char *needle)
{
    char err[256] = "";
    rl_policies_t *set = s_load(text, err, sizeof err);
    if (set) {
        rl_policies_destroy(&set);
        fail_msg("accepted, expected \"%s\":\n%s", needle, text);
    }
    if (!strstr(err, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, err);
}

static void test_refused(void **state)
{
    (void)state;
    const char *head = "policy\n    p\n";
    const struct {
        const char *lines; //  the body of policy p
        const char *why;   //  expected in the reason
    } cases[] = {
        {"        limit = 10\n        window = \"1m\"\n        algorithm = \"leaky\"\n",
         "algorithm"},
        {"        limit = \"lots\"\n        window = \"1m\"\n", "limit"},
        {"        limit = 0\n        window = \"1m\"\n", "limit"},
        {"        limit = 10\n        window = \"8d\"\n", "window"},
        {"        limit = 10\n        window = \"1m\"\n        by = \"ip+mac\"\n", "by:"},
        {"        limit = 10\n        window = \"1m\"\n        shadow = \"sometimes\"\n", "shadow"},
        {"        limit = 10\n        window = \"1m\"\n        algorithm = \"sliding_window\"\n"
         "        burst = 20\n",
         "burst"},
        {"        limit = 10000000\n        window = \"1s\"\n", "per microsecond"},
    };
    char text[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].lines);
        s_refused(text, cases[i].why);
    }
    s_refused("ratelimit\n    shadow = \"yes\"\npolicy\n    p\n        limit = 1\n"
              "        window = \"1m\"\n",
              "ratelimit/shadow");
    s_refused("policy\n", "expected 1..");
    s_refused("policy\n    p\n        limit = 1\n        window = \"1m\"\n"
              "    p\n        limit = 2\n        window = \"1m\"\n",
              "");
    char err[256] = "";
    assert_null(rl_policies_load("/nonexistent/ratelimit.cfg", err, sizeof err));
    assert_non_null(strstr(err, "cannot read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_match_in_file_order),
        cmocka_unit_test(test_bucket_keys),
        cmocka_unit_test(test_shipped_by_subject),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
