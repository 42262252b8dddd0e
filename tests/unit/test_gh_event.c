/*  test_gh_event - payload -> writes, notification rules, roadmap classes, Link, App JWT
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gh_client.h"
#include "gh_event.h"
#include "gh_jwt.h"
#include "gh_rules.h"
#include "vz_json.h"
#include "vz_jwt.h"

static const char s_pr[] =
    "{\"action\":\"closed\",\"number\":5,\"repository\":{\"full_name\":\"octo/hello\"},"
    "\"installation\":{\"id\":9},\"sender\":{\"login\":\"mona\"},"
    "\"pull_request\":{\"number\":5,\"title\":\"Fix\\r\\nit\",\"state\":\"closed\","
    "\"merged\":true,\"merged_at\":\"2026-01-05T10:00:00Z\",\"updated_at\":"
    "\"2026-01-05T10:00:01Z\",\"html_url\":\"https://github.com/octo/hello/pull/5\","
    "\"base\":{\"ref\":\"main\"},\"labels\":[{\"name\":\"WIP\"},{\"name\":\"a|b\"}],"
    "\"milestone\":{\"number\":2,\"title\":\"v1\",\"state\":\"open\",\"open_issues\":3,"
    "\"closed_issues\":4}}}";

//  Is "op key a" (in that order) among the writes?
static bool s_has(const gh_ops_t *ops, char op, const char *key, const char *a)
{
    for (size_t i = 0; i + 3 < ops->n; i += 4)
        if (ops->argv[i][0] == op && strcmp(ops->argv[i + 1], key) == 0 &&
            (!a || strcmp(ops->argv[i + 2], a) == 0))
            return true;
    return false;
}

static void test_pull_request(void **state)
{
    gh_event_t ev;
    assert_int_equal(gh_event_read("pull_request", s_pr, strlen(s_pr), &ev), 0);
    assert_true(ev.handled);
    assert_string_equal(ev.action, "merged");
    assert_string_equal(ev.kind, "pull");
    assert_string_equal(ev.title, "Fix  it"); //  CR and LF never reach a header
    assert_string_equal(ev.labels, "|WIP|");
    assert_string_equal(ev.branch, "main");
    assert_int_equal(ev.milestone, 2);
    gh_ops_t ops = {0};
    gh_event_ops(&ev, s_pr, strlen(s_pr), &ops);
    assert_true(s_has(&ops, 'S', "{github}:repos", "octo/hello"));
    assert_true(s_has(&ops, 'G', "{github}:item:octo/hello:5", NULL));
    assert_true(s_has(&ops, 'H', "{github}:item:octo/hello:5", "merged"));
    assert_true(s_has(&ops, 'H', "{github}:milestone:octo/hello:2", "open_issues"));
    gh_ops_free(&ops);
    assert_int_equal(gh_event_read("pull_request", "[1]", 3, &ev), -1);
    assert_int_equal(gh_event_read("star", "{}", 2, &ev), 0);
    assert_false(ev.handled);
    gh_event_ops(&ev, "{}", 2, &ops);
    assert_int_equal(ops.n, 0);
}

static void test_week(void **state)
{
    char w[16];
    gh_week(1767225600, w, sizeof w); //  2026-01-01: ISO week 1 of 2026
    assert_string_equal(w, "2026-W01");
    gh_week(1735603200, w, sizeof w); //  2024-12-31: ISO week 1 of 2025
    assert_string_equal(w, "2025-W01");
}

static void test_rules(void **state)
{
    char path[] = "/tmp/vz-gh-rules-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "labels\n    blocked = \"blocked, on hold\"\n"
                        "rules\n    prs\n        repository = \"octo/*\"\n"
                        "        event = \"pull_request\"\n        action = \"merged\"\n"
                        "        to = \"a@example.com, b@example.com\"\n"
                        "    pushes\n        event = \"push\"\n        branch = \"main\"\n"
                        "        to = \"c@example.com\"\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    char err[256];
    gh_rules_t *rules = gh_rules_load(path, err, sizeof err);
    assert_non_null(rules);
    assert_int_equal(gh_rules_count(rules), 2);
    gh_event_t ev;
    assert_int_equal(gh_event_read("pull_request", s_pr, strlen(s_pr), &ev), 0);
    gh_ops_t ops = {0};
    assert_int_equal(gh_rules_apply(rules, &ev, "guid-1", "{github}:outbox", &ops), 1);
    vz_json_t *doc = vz_json_parse(ops.argv[3], strlen(ops.argv[3]), NULL, NULL);
    const vz_json_value_t *m = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(m, "idempotency_key", NULL), "github-guid-1-prs");
    assert_string_equal(vz_json_get_string(m, "template", NULL), "github_event");
    assert_int_equal(vz_json_size(vz_json_get(m, "to")), 2);
    assert_string_equal(vz_json_get_string(vz_json_get(m, "data"), "summary", NULL),
                        "Pull request #5 merged by mona");
    vz_json_destroy(&doc);
    gh_ops_free(&ops);
    //  Another owner's repository: no match. A tag push: no match.
    snprintf(ev.repo, sizeof ev.repo, "other/hello");
    assert_int_equal(gh_rules_apply(rules, &ev, "guid-2", "{github}:outbox", &ops), 0);
    const char push[] = "{\"ref\":\"refs/tags/v1\",\"repository\":{\"full_name\":\"o/r\"}}";
    assert_int_equal(gh_event_read("push", push, strlen(push), &ev), 0);
    assert_true(ev.tag);
    assert_int_equal(gh_rules_apply(rules, &ev, "guid-3", "{github}:outbox", &ops), 0);
    assert_int_equal(gh_rules_class(rules, "|x|On Hold|"), GH_CLASS_BLOCKED);
    assert_int_equal(gh_rules_class(rules, "|wip|"), GH_CLASS_IN_PROGRESS);
    assert_int_equal(gh_rules_class(rules, "|x|"), GH_CLASS_NONE);
    gh_rules_destroy(&rules);
    //  A rule without an event is refused, named.
    FILE *f = fopen(path, "w");
    fputs("rules\n    broken\n        to = \"x@example.com\"\n", f);
    fclose(f);
    assert_null(gh_rules_load(path, err, sizeof err));
    assert_non_null(strstr(err, "rule broken: event is required"));
    unlink(path);
}

static void test_link_next(void **state)
{
    char next[256];
    const char *link = "<https://api.github.com/x?page=2>; rel=\"next\", "
                       "<https://api.github.com/x?page=5>; rel=\"last\"";
    assert_int_equal(gh_client_link_next(link, next, sizeof next), 0);
    assert_string_equal(next, "https://api.github.com/x?page=2");
    assert_int_equal(gh_client_link_next("<https://a/x?page=1>; rel=\"prev\"", next, sizeof next),
                     -1);
}

//  The App JWT: RS256 over iat - 60, exp <= 10 minutes, iss the App id.
static void test_app_jwt(void **state)
{
    char path[] = "/tmp/vz-gh-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    FILE *f = fopen(path, "w");
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    char err[256];
    gh_jwt_key_t *key = gh_jwt_key_load(path, err, sizeof err);
    assert_non_null(key);
    char *jwt = gh_jwt_sign(key, "4242", 1700000000);
    assert_non_null(jwt);
    char *dot1 = strchr(jwt, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    assert_non_null(dot2);
    char json[256];
    long n = vz_jwt_b64url_decode(json, sizeof json - 1, dot1 + 1, (size_t)(dot2 - dot1 - 1));
    assert_true(n > 0);
    json[n] = '\0';
    assert_string_equal(json, "{\"iat\":1699999940,\"exp\":1700000540,\"iss\":\"4242\"}");
    //  The signature verifies with the public key.
    unsigned char sig[512];
    long slen = vz_jwt_b64url_decode(sig, sizeof sig, dot2 + 1, strlen(dot2 + 1));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(
        EVP_DigestVerify(md, sig, (size_t)slen, (unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
    EVP_MD_CTX_free(md);
    free(jwt);
    gh_jwt_key_destroy(&key);
    //  Not a key: refused without echoing the file.
    f = fopen(path, "w");
    fputs("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_null(gh_jwt_key_load(path, err, sizeof err));
    assert_null(strstr(err, "nope"));
    EVP_PKEY_free(pkey);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_request), cmocka_unit_test(test_week),
        cmocka_unit_test(test_rules),        cmocka_unit_test(test_link_next),
        cmocka_unit_test(test_app_jwt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
