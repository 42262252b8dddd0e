/*  test_github_contract - github's methods: requests, reply round trips and refusals
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_common.h"
#include "vz_github_contract.h"
#include "vz_json.h"

//  Names: logins and repository names as GitHub allows them, nothing else.
static void test_names(void **state)
{
    assert_true(vz_gh_owner_valid("octo-org"));
    assert_false(vz_gh_owner_valid(""));
    assert_false(vz_gh_owner_valid("a/b"));
    assert_false(vz_gh_owner_valid("0123456789012345678901234567890123456789"));
    assert_true(vz_gh_repo_name_valid("hello.world_1"));
    assert_false(vz_gh_repo_name_valid(".."));
    assert_true(vz_gh_full_name_valid("octo/hello"));
    assert_false(vz_gh_full_name_valid("octo"));
    assert_false(vz_gh_full_name_valid("/hello"));
    assert_false(vz_gh_full_name_valid("octo/hel lo"));
    int weeks = 0;
    assert_int_equal(vz_gh_weeks_parse(NULL, &weeks), 0);
    assert_int_equal(weeks, VZ_GH_WEEKS_DEFAULT);
    assert_int_equal(vz_gh_weeks_parse("12", &weeks), 0);
    assert_int_equal(weeks, 12);
    assert_int_equal(vz_gh_weeks_parse("0", &weeks), VZ_EMALFORMED);
    assert_int_equal(vz_gh_weeks_parse("53", &weeks), VZ_EMALFORMED);
    assert_int_equal(vz_gh_weeks_parse("4x", &weeks), VZ_EMALFORMED);
    assert_int_equal(vz_gh_weeks_parse("-1", &weeks), VZ_EMALFORMED);
}

//  What a caller encodes, the service decodes; bad fields are named.
static void test_requests(void **state)
{
    vz_gh_insights_req_t in = {.owner = "octo", .repo = "hello", .weeks = 0};
    size_t len = 0;
    char *body = vz_gh_insights_req_encode(&in, &len);
    assert_string_equal(body, "{\"owner\":\"octo\",\"repo\":\"hello\",\"weeks\":4}");
    vz_gh_insights_req_t out;
    const char *why = NULL;
    assert_int_equal(vz_gh_insights_req_decode(body, len, &out, &why), 0);
    assert_string_equal(out.owner, "octo");
    assert_int_equal(out.weeks, 4);
    free(body);
    const char *bad = "{\"owner\":\"octo\",\"repo\":\"hello\",\"weeks\":99}";
    assert_int_equal(vz_gh_insights_req_decode(bad, strlen(bad), &out, &why), VZ_EMALFORMED);
    assert_string_equal(why, "weeks: expected 1..52");
    bad = "{\"owner\":\"oc to\",\"repo\":\"hello\"}";
    assert_int_equal(vz_gh_insights_req_decode(bad, strlen(bad), &out, &why), VZ_EMALFORMED);
    assert_string_equal(why, "owner: expected a login");
    assert_int_equal(vz_gh_insights_req_decode("[1]", 3, &out, &why), VZ_EMALFORMED);

    vz_gh_roadmap_req_t road = {.repo = "", .weeks = 8}, road2;
    body = vz_gh_roadmap_req_encode(&road, &len);
    assert_string_equal(body, "{\"weeks\":8}");
    assert_int_equal(vz_gh_roadmap_req_decode(body, len, &road2, &why), 0);
    assert_string_equal(road2.repo, "");
    assert_int_equal(road2.weeks, 8);
    free(body);
    assert_int_equal(vz_gh_roadmap_req_decode("", 0, &road2, &why), 0);
    assert_int_equal(road2.weeks, VZ_GH_WEEKS_DEFAULT);
    bad = "{\"repo\":\"nope\"}";
    assert_int_equal(vz_gh_roadmap_req_decode(bad, strlen(bad), &road2, &why), VZ_EMALFORMED);

    vz_gh_issue_state_req_t is = {.owner = "octo", .repo = "hello", .number = 42}, is2;
    body = vz_gh_issue_state_req_encode(&is, &len);
    assert_int_equal(vz_gh_issue_state_req_decode(body, len, &is2, &why), 0);
    assert_int_equal(is2.number, 42);
    free(body);
    bad = "{\"owner\":\"octo\",\"repo\":\"hello\",\"number\":0}";
    assert_int_equal(vz_gh_issue_state_req_decode(bad, strlen(bad), &is2, &why), VZ_EMALFORMED);
    assert_string_equal(why, "number: expected an issue number");
}

//  Links an error report may carry.
static void test_issue_url(void **state)
{
    vz_gh_issue_state_req_t q;
    assert_int_equal(vz_gh_issue_url_parse("https://github.com/octo/hello/issues/12", &q), 0);
    assert_string_equal(q.owner, "octo");
    assert_string_equal(q.repo, "hello");
    assert_int_equal(q.number, 12);
    assert_int_equal(
        vz_gh_issue_url_parse("https://github.com/octo/hello.js/pull/7/files#diff", &q), 0);
    assert_int_equal(q.number, 7);
    assert_int_equal(vz_gh_issue_url_parse("https://github.com/octo/hello/issues/3?x=1", &q), 0);
    const char *bad[] = {"http://github.com/octo/hello/issues/1",
                         "https://github.com/octo/hello/commits/1",
                         "https://github.com/octo/hello/issues/0",
                         "https://github.com/octo/hello/issues/1x",
                         "https://github.com/octo/hello/issues/",
                         "https://github.com/oc to/hello/issues/1",
                         "https://github.com/octo//issues/1",
                         "https://github.com.evil/octo/hello/issues/1",
                         NULL};
    for (size_t i = 0; bad[i]; i++)
        if (vz_gh_issue_url_parse(bad[i], &q) != VZ_EMALFORMED)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(vz_gh_issue_url_parse(NULL, &q), VZ_EMALFORMED);
}

static char *s_written(void (*fn)(vz_json_writer_t *, const void *), const void *reply, size_t *len)
{
    vz_json_writer_t *w = vz_json_writer_new(1 << 20);
    fn(w, reply);
    char *body = vz_json_writer_take(w, len);
    vz_json_writer_destroy(&w);
    assert_non_null(body);
    return body;
}

static void s_w_repos(vz_json_writer_t *w, const void *r)
{
    vz_gh_repos_reply_write(w, r);
}
static void s_w_insights(vz_json_writer_t *w, const void *r)
{
    vz_gh_insights_reply_write(w, r);
}
static void s_w_roadmap(vz_json_writer_t *w, const void *r)
{
    vz_gh_roadmap_reply_write(w, r);
}
static void s_w_issue(vz_json_writer_t *w, const void *r)
{
    vz_gh_issue_state_reply_write(w, r);
}

//  Every reply the service writes, a caller decodes back field for field.
static void test_reply_round_trip(void **state)
{
    vz_gh_repo_t repos[] = {{"octo/hello", 7, 3, 1, 1764720000}};
    vz_gh_repos_reply_t rr = {.configured = true, .repos = repos, .nrepos = 1};
    size_t len;
    char *body = s_written(s_w_repos, &rr, &len);
    vz_gh_repos_reply_t *rr2 = NULL;
    assert_int_equal(vz_gh_repos_reply_decode(body, len, &rr2, NULL), 0);
    assert_true(rr2->configured);
    assert_int_equal(rr2->nrepos, 1);
    assert_string_equal(rr2->repos[0].full_name, "octo/hello");
    assert_int_equal(rr2->repos[0].open_issues, 3);
    vz_gh_repos_reply_destroy(&rr2);
    free(body);

    vz_gh_milestone_t ms[] = {{1, "v1.0", "open", 2, 5}};
    vz_gh_environment_t env[] = {{"production", 3, 2, 1, "success", 1764720000}};
    vz_gh_workflow_t ci[] = {{"CI", 4, 3, 1, 0.75}};
    vz_gh_week_t vel[] = {{"2026-W49", 5, 2}, {"2026-W48", 1, 0}};
    vz_gh_insights_reply_t ir = {.repo = "octo/hello",
                                 .weeks = 2,
                                 .issues_open = 3,
                                 .issues_closed = 6,
                                 .pulls_open = 1,
                                 .pulls_closed = 1,
                                 .pulls_merged = 2,
                                 .milestones = ms,
                                 .nmilestones = 1,
                                 .deploy_total = 3,
                                 .deploy_success = 2,
                                 .deploy_failure = 1,
                                 .environments = env,
                                 .nenvironments = 1,
                                 .ci = ci,
                                 .nci = 1,
                                 .velocity = vel,
                                 .nvelocity = 2};
    body = s_written(s_w_insights, &ir, &len);
    vz_gh_insights_reply_t *ir2 = NULL;
    const char *why = NULL;
    assert_int_equal(vz_gh_insights_reply_decode(body, len, &ir2, &why), 0);
    assert_int_equal(ir2->pulls_merged, 2);
    assert_string_equal(ir2->milestones[0].title, "v1.0");
    assert_string_equal(ir2->environments[0].last_state, "success");
    assert_true(ir2->ci[0].pass_rate == 0.75);
    assert_int_equal(ir2->nvelocity, 2);
    assert_string_equal(ir2->velocity[1].week, "2026-W48");
    vz_gh_insights_reply_destroy(&ir2);
    free(body);

    vz_gh_item_t done[] = {{"octo/hello", 12, "pull", "Fix it", "closed",
                            "https://github.com/octo/hello/pull/12", "", 1764720000}};
    vz_gh_roadmap_reply_t rm = {
        .weeks = 2, .completed = done, .ncompleted = 1, .velocity = vel, .nvelocity = 2};
    body = s_written(s_w_roadmap, &rm, &len);
    vz_gh_roadmap_reply_t *rm2 = NULL;
    assert_int_equal(vz_gh_roadmap_reply_decode(body, len, &rm2, &why), 0);
    assert_int_equal(rm2->ncompleted, 1);
    assert_int_equal(rm2->nblocked, 0);
    assert_string_equal(rm2->completed[0].kind, "pull");
    vz_gh_roadmap_reply_destroy(&rm2);
    free(body);

    vz_gh_issue_state_reply_t is = {.repo = "octo/hello",
                                    .number = 3,
                                    .kind = "issue",
                                    .state = "closed",
                                    .state_reason = "completed",
                                    .title = "Crash",
                                    .url = "https://github.com/octo/hello/issues/3",
                                    .updated_at = 5};
    body = s_written(s_w_issue, &is, &len);
    vz_gh_issue_state_reply_t is2;
    assert_int_equal(vz_gh_issue_state_reply_decode(body, len, &is2, &why), 0);
    assert_string_equal(is2.state_reason, "completed");
    assert_false(is2.merged);
    free(body);
}

//  Untrusted replies: each broken field is refused with a reason, nothing leaks.
static void test_reply_refusals(void **state)
{
    const char *why = NULL;
    vz_gh_repos_reply_t *rr = NULL;
    const char *bad = "{\"configured\":true,\"repos\":[{\"full_name\":\"x\"}]}";
    assert_int_equal(vz_gh_repos_reply_decode(bad, strlen(bad), &rr, &why), VZ_EMALFORMED);
    assert_null(rr);
    assert_string_equal(why, "repos: full_name invalid");
    assert_int_equal(vz_gh_repos_reply_decode("nope", 4, &rr, &why), VZ_EMALFORMED);
    vz_gh_insights_reply_t *ir = NULL;
    bad = "{\"repo\":\"a/b\",\"weeks\":1,\"issues\":{\"open\":-1,\"closed\":0}}";
    assert_int_equal(vz_gh_insights_reply_decode(bad, strlen(bad), &ir, &why), VZ_EMALFORMED);
    assert_string_equal(why, "issues: counts");
    vz_gh_roadmap_reply_t *rm = NULL;
    bad = "{\"weeks\":1,\"completed\":[{\"repo\":\"a/b\",\"number\":1,\"kind\":\"epic\","
          "\"title\":\"t\",\"state\":\"open\",\"url\":\"u\",\"milestone\":null,"
          "\"updated_at\":1}],\"in_progress\":[],\"blocked\":[],\"velocity\":[]}";
    assert_int_equal(vz_gh_roadmap_reply_decode(bad, strlen(bad), &rm, &why), VZ_EMALFORMED);
    assert_string_equal(why, "item: kind expected issue or pull");
    vz_gh_issue_state_reply_t is;
    bad = "{\"repo\":\"a/b\",\"number\":1,\"kind\":\"issue\",\"state\":\"open\","
          "\"merged\":\"no\",\"title\":\"t\",\"url\":\"u\",\"updated_at\":1}";
    assert_int_equal(vz_gh_issue_state_reply_decode(bad, strlen(bad), &is, &why), VZ_EMALFORMED);
    assert_string_equal(why, "merged: expected a boolean");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),          cmocka_unit_test(test_requests),
        cmocka_unit_test(test_issue_url),      cmocka_unit_test(test_reply_round_trip),
        cmocka_unit_test(test_reply_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
