/*  fuzz_ratelimit - libFuzzer target for the rate-limit "check" request codec (contract D)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The input is a ratelimit.check body, decoded with vz_rl_check_decode
 *  (common/vz_ratelimit_contract.h). What it accepts must be empty or one
 *  msgpack map that msgpack-c reads using every byte; the fields are C
 *  strings inside their capacities and the cost is in range; packing the
 *  fields again with the contract's encoder (as the gateway does) decodes to the same request. The
 *  request then goes through the shipped policies (configs/ratelimit.cfg)
 *  like the service does: the bucket key of the matching policy, when it
 *  has one, is "vz:rl:<policy>" followed by length-prefixed parts that
 *  read back as the request's own fields, so two callers never share a key.
 */
#include "fuzz.h"
#include "policies.h"
#include "vz_ratelimit_contract.h"

#include <msgpack.h>

static rl_policies_t *s_policies;

static void s_init(void)
{
    if (s_policies)
        return;
    char err[256];
    s_policies = rl_policies_load(FZ_RATELIMIT_FILE, err, sizeof err);
    if (!s_policies)
        fprintf(stderr, "fuzz_ratelimit: %s: %s\n", FZ_RATELIMIT_FILE, err);
    FZ_CHECK(s_policies);
}

//  The request encoded again by the contract decodes to the same fields.
static void s_round_trip(const vz_rl_check_t *req)
{
    size_t len = 0;
    uint8_t *buf = vz_rl_check_encode(req, &len);
    FZ_CHECK(buf != NULL);
    vz_rl_check_t again;
    const char *reason = NULL;
    FZ_CHECK(vz_rl_check_decode(&again, buf, len, &reason) == 0);
    FZ_CHECK(!strcmp(req->ip, again.ip) && !strcmp(req->sub, again.sub));
    FZ_CHECK(!strcmp(req->key, again.key) && !strcmp(req->tier, again.tier));
    FZ_CHECK(!strcmp(req->route, again.route) && req->cost == again.cost);
    free(buf);
}

//  The value of part name in req.
static const char *s_part(const vz_rl_check_t *req, const char *name, size_t len)
{
    static const char *const names[] = {"ip", "sub", "key", "route", "tier"};
    const char *values[] = {req->ip, req->sub, req->key, req->route, req->tier};
    for (size_t i = 0; i < 5; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return values[i];
    return NULL;
}

//  Bucket key of the matching policy read back: ":<part>=<len>:<value>" each.
static void s_bucket(const vz_rl_check_t *req)
{
    int index = rl_policies_match(s_policies, req);
    FZ_CHECK(index >= -1 && index < (int)rl_policies_count(s_policies));
    if (index < 0)
        return;
    const rl_policy_t *policy = rl_policies_at(s_policies, (size_t)index);
    char key[RL_BUCKET_MAX];
    int rc = rl_policies_bucket(policy, req, key, sizeof key);
    FZ_CHECK(rc == 0 || rc == -ENOENT || rc == -ENAMETOOLONG);
    if (rc != 0)
        return;
    FZ_CHECK_STR(key, sizeof key);
    size_t plen = strlen("vz:rl:") + strlen(policy->name);
    FZ_CHECK(strncmp(key, "vz:rl:", 6) == 0 && strncmp(key + 6, policy->name, plen - 6) == 0);
    const char *p = key + plen;
    FZ_CHECK(*p == ':');
    while (*p) {
        FZ_CHECK(*p++ == ':');
        size_t nlen = strcspn(p, "=");
        const char *value = s_part(req, p, nlen);
        FZ_CHECK(value && value[0] && p[nlen] == '=');
        char *end;
        unsigned long vlen = strtoul(p + nlen + 1, &end, 10);
        FZ_CHECK(*end == ':' && vlen == strlen(value) && strncmp(end + 1, value, vlen) == 0);
        p = end + 1 + vlen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_init();
    vz_rl_check_t req;
    const char *reason = NULL;
    if (vz_rl_check_decode(&req, data, size, &reason) != 0) {
        FZ_CHECK(reason != NULL);
        return 0;
    }
    if (size > 0) {
        msgpack_unpacked msg;
        msgpack_unpacked_init(&msg);
        size_t off = 0;
        FZ_CHECK(msgpack_unpack_next(&msg, (const char *)data, size, &off) ==
                 MSGPACK_UNPACK_SUCCESS);
        FZ_CHECK(off == size && msg.data.type == MSGPACK_OBJECT_MAP);
        msgpack_unpacked_destroy(&msg);
    }
    FZ_CHECK_STR(req.ip, sizeof req.ip);
    FZ_CHECK_STR(req.sub, sizeof req.sub);
    FZ_CHECK_STR(req.key, sizeof req.key);
    FZ_CHECK_STR(req.tier, sizeof req.tier);
    FZ_CHECK_STR(req.route, sizeof req.route);
    FZ_CHECK(req.cost <= VZ_RL_COST_MAX);
    s_round_trip(&req);
    s_bucket(&req);
    return 0;
}
