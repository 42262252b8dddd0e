/*  rl_check - one vz-ratelimit "check" call and its decoded answer, for the tests
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Shared by test_ratelimit (one Redis) and test_redis_cluster (a Redis
 *  Cluster with a failover): the includer defines CALL_MS, the call's
 *  timeout, and includes cmocka, vz_client.h, vz_envelope.h and
 *  vz_ratelimit_contract.h first. Static functions: each test program
 *  has its own copy of the same code, compiled from here.
 */
#ifndef RL_CHECK_H
#define RL_CHECK_H

typedef struct {
    bool allowed;         //  decision
    uint64_t limit;       //  policy limit (local one when failing open)
    uint64_t remaining;   //  left
    uint64_t reset;       //  seconds
    uint64_t retry_after; //  seconds
    char policy[64];      //  policy name
    uint64_t window;      //  seconds
    char mode[16];        //  redis | fail_open | fail_closed
    bool shadow;          //  shadow mode
    char error[48];       //  error_code when the call failed, else ""
} answer_t;

//  Decode a "check" reply with the contract's codec (every field required).
static int s_decode(const uint8_t *body, size_t len, answer_t *a)
{
    vz_rl_decision_t d;
    if (vz_rl_decision_decode(&d, body, len, NULL) < 0)
        return -1;
    a->allowed = d.allowed;
    a->limit = d.limit;
    a->remaining = d.remaining;
    a->reset = d.reset;
    a->retry_after = d.retry_after;
    vz_strlcpy(a->policy, d.policy, sizeof a->policy);
    a->window = d.window;
    vz_strlcpy(a->mode, vz_rl_mode_name(d.mode), sizeof a->mode);
    a->shadow = d.shadow;
    return 0;
}

//  A check body for ip/sub/tier/route, cost 1 (caller frees).
static uint8_t *s_check_body(const char *ip, const char *sub, const char *tier, const char *route,
                             size_t *len_p)
{
    vz_rl_check_t check = {.cost = 1};
    assert_int_equal(vz_strlcpy(check.ip, ip, sizeof check.ip), 0);
    assert_int_equal(vz_strlcpy(check.sub, sub, sizeof check.sub), 0);
    assert_int_equal(vz_strlcpy(check.tier, tier, sizeof check.tier), 0);
    assert_int_equal(vz_strlcpy(check.route, route, sizeof check.route), 0);
    return vz_rl_check_encode(&check, len_p);
}

//  One "check"; returns 0 (answer or error in a) or -ETIMEDOUT.
static int s_check_raw(vz_client_t *client, const uint8_t *body, size_t len, answer_t *a)
{
    memset(a, 0, sizeof *a);
    vz_envelope_t req;
    assert_int_equal(vz_envelope_request(&req, "ratelimit", "check", NULL), 0);
    req.body = body;
    req.body_len = len;
    vz_response_t *rsp = NULL;
    int rc = vz_client_call(client, &req, CALL_MS, &rsp);
    if (rc < 0)
        return rc;
    if (rsp->env.kind == VZ_KIND_ERROR)
        vz_strlcpy(a->error, rsp->env.error_code, sizeof a->error);
    else if (s_decode(rsp->env.body, rsp->env.body_len, a) < 0)
        vz_strlcpy(a->error, "bad reply", sizeof a->error);
    vz_response_destroy(&rsp);
    return 0;
}

static int s_check(vz_client_t *client, const char *ip, const char *sub, const char *tier,
                   const char *route, answer_t *a)
{
    size_t len;
    uint8_t *body = s_check_body(ip, sub, tier, route, &len);
    int rc = s_check_raw(client, body, len, a);
    free(body);
    return rc;
}

#endif
