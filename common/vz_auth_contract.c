/*  vz_auth_contract - the msgpack bodies of the auth service's internal methods
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Each message is a field table (vz_mp.h): the table is the contract, the
 *  decoder and encoder both read it.
 */
#include "vz_auth_contract.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "vz_mp.h"

//  A token is the longest value; unknown values may nest a little.
static const vz_mp_limits_t s_limits = {
    .max_string = VZ_JWT_TOKEN_MAX, .max_count = 64, .max_depth = 8};

static const vz_mp_field_t s_key_verify[] = {
    VZ_MP_STR(vz_auth_key_verify_t, key, "key"),
};

static const vz_mp_field_t s_key_identity[] = {
    VZ_MP_BOOL(vz_auth_key_identity_t, valid, "valid"),
    VZ_MP_STR(vz_auth_key_identity_t, sub, "sub"),
    VZ_MP_STR(vz_auth_key_identity_t, scope, "scope"),
    VZ_MP_STR(vz_auth_key_identity_t, tier, "tier"),
    VZ_MP_STR(vz_auth_key_identity_t, kid, "kid"),
};

static const vz_mp_field_t s_introspect[] = {
    VZ_MP_STR(vz_auth_introspect_t, token, "token"),
};

//  "active" first: an inactive answer is that row alone.
static const vz_mp_field_t s_token_info[] = {
    VZ_MP_BOOL(vz_auth_token_info_t, active, "active"),
    VZ_MP_STR(vz_auth_token_info_t, sub, "sub"),
    VZ_MP_STR(vz_auth_token_info_t, scope, "scope"),
    VZ_MP_STR(vz_auth_token_info_t, client_id, "client_id"),
    VZ_MP_STR(vz_auth_token_info_t, token_type, "token_type"),
    VZ_MP_STR(vz_auth_token_info_t, tier, "tier"),
    VZ_MP_INT(vz_auth_token_info_t, exp, "exp", INT64_MAX),
    VZ_MP_INT(vz_auth_token_info_t, iat, "iat", INT64_MAX),
};

static const vz_mp_message_t s_key_verify_msg = {s_key_verify, VZ_MP_COUNT(s_key_verify),
                                                 VZ_MP_ALL(s_key_verify), false, &s_limits};
static const vz_mp_message_t s_key_identity_msg = {s_key_identity, VZ_MP_COUNT(s_key_identity), 1,
                                                   false, &s_limits}; //  valid
static const vz_mp_message_t s_introspect_msg = {s_introspect, VZ_MP_COUNT(s_introspect),
                                                 VZ_MP_ALL(s_introspect), false, &s_limits};
//  active alone when inactive; an active answer carries every claim.
static const vz_mp_message_t s_token_info_msg = {s_token_info, VZ_MP_COUNT(s_token_info), 1, false,
                                                 &s_limits};
static const vz_mp_message_t s_token_inactive_msg = {s_token_info, 1, 1, false, &s_limits};

uint8_t *vz_auth_key_verify_encode(const vz_auth_key_verify_t *request, size_t *len_p)
{
    return vz_mp_encode_message(&s_key_verify_msg, request, len_p);
}

int vz_auth_key_verify_decode(vz_auth_key_verify_t *request, const uint8_t *buf, size_t len,
                              const char **reason)
{
    memset(request, 0, sizeof *request);
    return vz_mp_decode_message(&s_key_verify_msg, request, buf, len, NULL, reason);
}

uint8_t *vz_auth_key_identity_encode(const vz_auth_key_identity_t *identity, size_t *len_p)
{
    return vz_mp_encode_message(&s_key_identity_msg, identity, len_p);
}

//  Hand back a decoder's own refusal.
static int s_refuse(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return VZ_EMALFORMED;
}

int vz_auth_key_identity_decode(vz_auth_key_identity_t *identity, const uint8_t *buf, size_t len,
                                const char **reason)
{
    memset(identity, 0, sizeof *identity);
    int rc = vz_mp_decode_message(&s_key_identity_msg, identity, buf, len, NULL, reason);
    if (rc == 0 && identity->valid && !identity->sub[0])
        return s_refuse(reason, "a valid key without sub");
    return rc;
}

uint8_t *vz_auth_introspect_encode(const vz_auth_introspect_t *request, size_t *len_p)
{
    return vz_mp_encode_message(&s_introspect_msg, request, len_p);
}

int vz_auth_introspect_decode(vz_auth_introspect_t *request, const uint8_t *buf, size_t len,
                              const char **reason)
{
    memset(request, 0, sizeof *request);
    return vz_mp_decode_message(&s_introspect_msg, request, buf, len, NULL, reason);
}

uint8_t *vz_auth_token_info_encode(const vz_auth_token_info_t *info, size_t *len_p)
{
    return vz_mp_encode_message(info->active ? &s_token_info_msg : &s_token_inactive_msg, info,
                                len_p);
}

int vz_auth_token_info_decode(vz_auth_token_info_t *info, const uint8_t *buf, size_t len,
                              const char **reason)
{
    memset(info, 0, sizeof *info);
    uint64_t seen = 0;
    int rc = vz_mp_decode_message(&s_token_info_msg, info, buf, len, &seen, reason);
    const char *missing =
        rc == 0 && info->active
            ? vz_mp_missing(s_token_info, VZ_MP_COUNT(s_token_info), VZ_MP_ALL(s_token_info), seen)
            : NULL;
    return missing ? s_refuse(reason, missing) : rc;
}
