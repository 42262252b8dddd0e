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
