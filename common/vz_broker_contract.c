/*  vz_broker_contract - the body of the broker's own "services" method
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The outer map's keys are service names, so only the entry is a field
 *  table (vz_mp.h); the outer map is read here.
 */
#include "vz_broker_contract.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "vz_mp.h"

static const vz_mp_limits_t s_limits = {
    .max_string = VZ_NAME_MAX, .max_count = VZ_BROKER_SERVICES_MAX, .max_depth = 8};

//  workers and queue; the name is the key it is filed under.
static const vz_mp_field_t s_entry[] = {
    VZ_MP_UINT(vz_broker_service_t, workers, "workers", UINT64_MAX),
    VZ_MP_UINT(vz_broker_service_t, queue, "queue", UINT64_MAX),
};
#define S_ENTRY_COUNT (sizeof s_entry / sizeof s_entry[0])

uint8_t *vz_broker_services_encode(const vz_broker_service_t *services, size_t n, size_t *len_p)
{
    assert((services || n == 0) && len_p);
    msgpack_sbuffer sb;
    //  Per entry: the name and its header, two keys, two uint64.
    vz_mp_sbuffer_init(&sb, 8 + n * (VZ_NAME_MAX + 40));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        assert(memchr(services[i].name, 0, sizeof services[i].name));
        vz_mp_pack_str(&pk, services[i].name);
        vz_mp_pack_fields_to(&pk, &services[i], s_entry, S_ENTRY_COUNT);
    }
    return vz_mp_sbuffer_take(&sb, len_p);
}

int vz_broker_services_decode(const uint8_t *buf, size_t len, vz_broker_service_t *services,
                              size_t max, size_t *n_p, size_t *total_p, const char **reason)
{
    assert((services || max == 0) && n_p);
    *n_p = 0;
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, len, &s_limits);
    uint32_t count;
    int rc = vz_mp_read_map(&r, &count, "not a map");
    size_t filled = 0;
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        //  Entries past max are read into a scratch slot: checked, not kept.
        vz_broker_service_t scratch, *slot = filled < max ? &services[filled] : &scratch;
        memset(slot, 0, sizeof *slot);
        uint64_t seen = 0;
        rc = vz_mp_read_str_copy(&r, slot->name, sizeof slot->name, "wrong type for service name");
        if (rc == 0 && !slot->name[0])
            rc = vz_mp_fail(&r, "empty service name");
        for (size_t j = 0; rc == 0 && j < filled && slot != &scratch; j++)
            if (strcmp(services[j].name, slot->name) == 0)
                rc = vz_mp_fail(&r, "duplicate service");
        if (rc == 0)
            rc = vz_mp_read_fields(&r, slot, s_entry, S_ENTRY_COUNT, false, &seen);
        const char *missing =
            rc == 0 ? vz_mp_missing(s_entry, S_ENTRY_COUNT, (1u << S_ENTRY_COUNT) - 1, seen) : NULL;
        if (missing)
            rc = vz_mp_fail(&r, missing);
        if (rc == 0 && slot != &scratch)
            filled++;
    }
    if (rc == 0)
        rc = vz_mp_finish(&r);
    if (rc == 0) {
        *n_p = filled;
        if (total_p)
            *total_p = count;
    }
    return vz_mp_done(&r, rc, reason);
}

uint8_t *vz_broker_directory_request_encode(const char *service, size_t *len_p)
{
    assert(service && len_p);
    msgpack_sbuffer sb;
    vz_mp_sbuffer_init(&sb, 8 + strlen(service));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    vz_mp_pack_str(&pk, service);
    return vz_mp_sbuffer_take(&sb, len_p);
}

int vz_broker_directory_request_decode(const uint8_t *buf, size_t len, char *service, size_t cap,
                                       const char **reason)
{
    assert(service && cap);
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, len, &s_limits);
    int rc = vz_mp_read_str_copy(&r, service, cap, "service is not a str");
    if (rc == 0 && !*service)
        rc = vz_mp_fail(&r, "empty service name");
    if (rc == 0)
        rc = vz_mp_finish(&r);
    return vz_mp_done(&r, rc, reason);
}

uint8_t *vz_broker_directory_encode(bool direct, const vz_broker_direct_t *workers, size_t n,
                                    size_t *len_p)
{
    assert((workers || n == 0) && len_p);
    msgpack_sbuffer sb;
    vz_mp_sbuffer_init(&sb, 16 + n * (VZ_ENDPOINT_MAX + 48));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    if (direct)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 2);
        vz_mp_pack_str(&pk, workers[i].endpoint);
        vz_mp_pack_str(&pk, workers[i].key);
    }
    return vz_mp_sbuffer_take(&sb, len_p);
}

bool vz_broker_endpoint_valid(const char *endpoint)
{
    if (!endpoint || strncmp(endpoint, "tcp://", 6) != 0 || strlen(endpoint) >= VZ_ENDPOINT_MAX)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return false;
    for (const char *p = host; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-'))
            return false;
    long port = 0;
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5)
        return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        port = port * 10 + (*p - '0');
    }
    return port >= 1 && port <= 65535;
}

static bool s_key_valid(const char *key)
{
    //  Z85's alphabet (ZeroMQ RFC 32).
    static const char alphabet[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    if (strlen(key) != 40)
        return false;
    for (const char *p = key; *p; p++)
        if (!strchr(alphabet, *p))
            return false;
    return true;
}

int vz_broker_directory_decode(const uint8_t *buf, size_t len, bool *direct,
                               vz_broker_direct_t *workers, size_t max, size_t *n_p,
                               const char **reason)
{
    assert(direct && (workers || max == 0) && n_p);
    *n_p = 0;
    *direct = false;
    static const vz_mp_limits_t limits = {
        .max_string = VZ_ENDPOINT_MAX, .max_count = VZ_BROKER_DIRECT_MAX + 2, .max_depth = 4};
    vz_mp_reader_t r;
    vz_mp_reader_init(&r, buf, len, &limits);
    uint32_t count = 0, n = 0;
    int rc = vz_mp_read_array(&r, &count, "not an array");
    if (rc == 0 && count != 2)
        rc = vz_mp_fail(&r, "directory is not [direct, workers]");
    if (rc == 0)
        rc = vz_mp_read_bool(&r, direct, "direct is not a bool");
    if (rc == 0)
        rc = vz_mp_read_array(&r, &n, "workers is not an array");
    if (rc == 0 && n > max)
        rc = vz_mp_fail(&r, "too many workers");
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        vz_broker_direct_t *w = &workers[i];
        uint32_t pair = 0;
        rc = vz_mp_read_array(&r, &pair, "worker is not an array");
        if (rc == 0 && pair != 2)
            rc = vz_mp_fail(&r, "worker is not [endpoint, key]");
        if (rc == 0)
            rc = vz_mp_read_str_copy(&r, w->endpoint, sizeof w->endpoint, "bad endpoint");
        if (rc == 0)
            rc = vz_mp_read_str_copy(&r, w->key, sizeof w->key, "bad key");
        if (rc == 0 && !vz_broker_endpoint_valid(w->endpoint))
            rc = vz_mp_fail(&r, "bad endpoint");
        if (rc == 0 && !s_key_valid(w->key))
            rc = vz_mp_fail(&r, "bad key");
    }
    if (rc == 0)
        rc = vz_mp_finish(&r);
    if (rc == 0)
        *n_p = n;
    return vz_mp_done(&r, rc, reason);
}
