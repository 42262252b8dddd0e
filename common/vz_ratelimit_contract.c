/*  vz_ratelimit_contract - the bodies of the ratelimit service's methods (contract D)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Each message is a field table (vz_mp.h): the table is the contract, the
 *  decoder and encoder both read it.
 */
#include "vz_ratelimit_contract.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "vz_mp.h"

#define S_NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

//  Bodies are small (the service takes at most 4 KiB per check); unknown
//  values may nest a little.
static const vz_mp_limits_t s_limits = {.max_string = 4096, .max_count = 64, .max_depth = 8};
//  A policy set may be long.
static const vz_mp_limits_t s_set_limits = {.max_string = 4096, .max_count = 4096, .max_depth = 8};

//  ENUM members are stored as int (vz_mp.h).
_Static_assert(sizeof(vz_rl_mode_t) == sizeof(int), "vz_rl_mode_t is int-sized");

static const char *const s_modes[] = {"redis", "fail_open", "fail_closed"};

//  check request
static const vz_mp_field_t s_check[] = {
    VZ_MP_STR(vz_rl_check_t, ip, "ip"),
    VZ_MP_STR(vz_rl_check_t, sub, "sub"),
    VZ_MP_STR(vz_rl_check_t, key, "key"),
    VZ_MP_STR(vz_rl_check_t, tier, "tier"),
    VZ_MP_STR(vz_rl_check_t, route, "route"),
    {.key = "cost",
     .type = VZ_MP_F_UINT,
     .offset = offsetof(vz_rl_check_t, cost),
     .size = sizeof(uint64_t),
     .max = VZ_RL_COST_MAX,
     .reason = "cost: expected an integer in 0..1000000"},
};

//  check reply
static const vz_mp_field_t s_decision[] = {
    VZ_MP_BOOL(vz_rl_decision_t, allowed, "allowed"),
    VZ_MP_UINT(vz_rl_decision_t, limit, "limit", UINT64_MAX),
    VZ_MP_UINT(vz_rl_decision_t, remaining, "remaining", UINT64_MAX),
    VZ_MP_UINT(vz_rl_decision_t, reset, "reset", UINT64_MAX),
    VZ_MP_UINT(vz_rl_decision_t, retry_after, "retry_after", UINT64_MAX),
    VZ_MP_STR(vz_rl_decision_t, policy, "policy"),
    VZ_MP_UINT(vz_rl_decision_t, window, "window", UINT32_MAX),
    {.key = "mode",
     .type = VZ_MP_F_ENUM,
     .offset = offsetof(vz_rl_decision_t, mode),
     .size = sizeof(vz_rl_mode_t),
     .names = s_modes,
     .count = VZ_MP_COUNT(s_modes),
     .reason = "mode: expected redis, fail_open or fail_closed"},
    VZ_MP_BOOL(vz_rl_decision_t, shadow, "shadow"),
};

//  One entry of the policies reply.
static const vz_mp_field_t s_policy[] = {
    VZ_MP_STR(vz_rl_policy_desc_t, name, "name"),
    VZ_MP_STR(vz_rl_policy_desc_t, route, "route"),
    VZ_MP_STR(vz_rl_policy_desc_t, tier, "tier"),
    VZ_MP_STR(vz_rl_policy_desc_t, by, "by"),
    VZ_MP_STR(vz_rl_policy_desc_t, algorithm, "algorithm"),
    VZ_MP_UINT(vz_rl_policy_desc_t, limit, "limit", UINT64_MAX),
    VZ_MP_UINT(vz_rl_policy_desc_t, window, "window", UINT32_MAX),
    VZ_MP_UINT(vz_rl_policy_desc_t, burst, "burst", UINT64_MAX),
    VZ_MP_BOOL(vz_rl_policy_desc_t, shadow, "shadow"),
};

const char *vz_rl_mode_name(vz_rl_mode_t mode)
{
    assert((size_t)mode < VZ_MP_COUNT(s_modes));
    return s_modes[mode];
}

static const vz_mp_message_t s_check_msg = {s_check, VZ_MP_COUNT(s_check), 0, true, &s_limits};
static const vz_mp_message_t s_decision_msg = {s_decision, VZ_MP_COUNT(s_decision),
                                               VZ_MP_ALL(s_decision), false, &s_limits};

//  A policy name is 1..63 of S_NAME_CHARS: it goes into HTTP headers.
static bool s_name_ok(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && strspn(name, S_NAME_CHARS) == len;
}

uint8_t *vz_rl_check_encode(const vz_rl_check_t *check, size_t *len_p)
{
    return vz_mp_encode_message(&s_check_msg, check, len_p);
}

int vz_rl_check_decode(vz_rl_check_t *check, const uint8_t *buf, size_t len, const char **reason)
{
    assert(check);
    memset(check, 0, sizeof *check);
    check->cost = 1; //  absent cost
    return vz_mp_decode_message(&s_check_msg, check, buf, len, NULL, reason);
}

uint8_t *vz_rl_decision_encode(const vz_rl_decision_t *decision, size_t *len_p)
{
    return vz_mp_encode_message(&s_decision_msg, decision, len_p);
}

int vz_rl_decision_decode(vz_rl_decision_t *decision, const uint8_t *buf, size_t len,
                          const char **reason)
{
    assert(decision);
    memset(decision, 0, sizeof *decision);
    int rc = vz_mp_decode_message(&s_decision_msg, decision, buf, len, NULL, reason);
    if (rc == 0 && !s_name_ok(decision->policy)) {
        if (reason)
            *reason = "policy: expected 1..63 of [A-Za-z0-9_.-]";
        return VZ_EMALFORMED;
    }
    return rc;
}

uint8_t *vz_rl_policies_encode(bool shadow, const vz_rl_policy_desc_t *policies, size_t n,
                               size_t *len_p)
{
    assert((policies || n == 0) && len_p);
    msgpack_sbuffer sb;
    //  Bounded by the entries' capacities (keys and headers under 128 bytes).
    vz_mp_sbuffer_init(&sb, 64 + n * (sizeof(vz_rl_policy_desc_t) + 128));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    vz_mp_pack_kv_bool(&pk, "shadow", shadow);
    vz_mp_pack_str(&pk, "policies");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        vz_mp_pack_fields_to(&pk, &policies[i], s_policy, VZ_MP_COUNT(s_policy));
    return vz_mp_sbuffer_take(&sb, len_p);
}

//  The "policies" array: up to max entries, each with every field.
static int s_read_policies(vz_mp_reader_t *r, vz_rl_policy_desc_t *policies, size_t max,
                           size_t *n_p)
{
    uint32_t n;
    if (vz_mp_read_array(r, &n, "policies: expected an array") < 0)
        return VZ_EMALFORMED;
    if (n > max)
        return vz_mp_fail(r, "policies: more entries than expected");
    for (uint32_t i = 0; i < n; i++) {
        uint64_t seen = 0;
        memset(&policies[i], 0, sizeof policies[i]);
        if (vz_mp_read_fields(r, &policies[i], s_policy, VZ_MP_COUNT(s_policy), false, &seen) < 0)
            return VZ_EMALFORMED;
        const char *missing =
            vz_mp_missing(s_policy, VZ_MP_COUNT(s_policy), VZ_MP_ALL(s_policy), seen);
        if (missing)
            return vz_mp_fail(r, missing);
    }
    *n_p = n;
    return 0;
}

int vz_rl_policies_decode(const uint8_t *buf, size_t len, bool *shadow,
                          vz_rl_policy_desc_t *policies, size_t max, size_t *n_p,
                          const char **reason)
{
    assert(shadow && (policies || max == 0) && n_p);
    *shadow = false;
    *n_p = 0;
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, len, &s_set_limits);
    uint32_t entries;
    bool have_shadow = false, have_list = false;
    int rc = vz_mp_read_map(&r, &entries, "not a map");
    for (uint32_t e = 0; rc == 0 && e < entries; e++) {
        const char *key;
        uint32_t key_len;
        rc = vz_mp_read_str(&r, &key, &key_len, "wrong type for key");
        if (rc < 0)
            break;
        bool *have = vz_mp_key_is(key, key_len, "shadow")     ? &have_shadow
                     : vz_mp_key_is(key, key_len, "policies") ? &have_list
                                                              : NULL;
        if (have && *have)
            rc = vz_mp_fail(&r, "duplicate key");
        else if (have == &have_shadow)
            rc = vz_mp_read_bool(&r, shadow, "wrong type for shadow");
        else if (have == &have_list)
            rc = s_read_policies(&r, policies, max, n_p);
        else
            rc = vz_mp_skip(&r);
        if (have)
            *have = true;
    }
    if (rc == 0)
        rc = vz_mp_finish(&r);
    if (rc == 0 && (!have_shadow || !have_list))
        rc = vz_mp_fail(&r, have_shadow ? "missing policies" : "missing shadow");
    return vz_mp_done(&r, rc, reason);
}
