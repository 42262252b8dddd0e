/*  fuzz_telemetry - libFuzzer target for the telemetry.ingest snapshot decoder
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The input is a reporter snapshot, decoded with vz_tl_snapshot_decode
 *  (common/vz_telemetry_contract.h) as the sink does. A refusal has a
 *  reason and no snapshot; an accepted snapshot keeps every limit of the
 *  contract: the service, names, codes and users are valid names inside
 *  their capacity, the tables are within VZ_TL_SERIES, VZ_TL_CODES and
 *  VZ_TL_BINS, every bin index is in range, and the codes and the bins of
 *  each series add up to its count.
 */
#include "fuzz.h"
#include "vz_telemetry_contract.h"

static void s_series(const vz_tl_series_t *row)
{
    FZ_CHECK_STR(row->name, sizeof row->name);
    FZ_CHECK(vz_tl_name_valid(row->name));
    FZ_CHECK(row->ncodes <= VZ_TL_CODES && row->nbins <= VZ_TL_BINS && row->sum_us >= 0);
    uint64_t codes = 0, bins = 0;
    for (size_t c = 0; c < row->ncodes; c++) {
        FZ_CHECK(vz_tl_name_valid(row->codes[c].name));
        codes += row->codes[c].count;
    }
    for (size_t b = 0; b < row->nbins; b++) {
        FZ_CHECK(row->bin[b] < VZ_TL_BINS);
        bins += row->bin_count[b];
    }
    FZ_CHECK(codes == row->count && bins == row->count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vz_tl_snapshot_t *snap = NULL;
    const char *reason = NULL;
    int rc = vz_tl_snapshot_decode(data, size, &snap, &reason);
    FZ_CHECK(rc == 0 || rc == VZ_EMALFORMED);
    if (rc != 0) {
        FZ_CHECK(snap == NULL && reason != NULL);
        return 0;
    }
    FZ_CHECK(snap != NULL && vz_tl_name_valid(snap->service));
    FZ_CHECK(snap->nseries <= VZ_TL_SERIES && snap->nusers <= VZ_TL_USERS);
    FZ_CHECK(snap->replica >= 0 && snap->pid >= 0 && snap->cpu >= 0);
    for (size_t i = 0; i < snap->nseries; i++)
        s_series(&snap->series[i]);
    for (size_t i = 0; i < snap->nusers; i++)
        FZ_CHECK(vz_tl_name_valid(snap->users[i]));
    vz_tl_snapshot_destroy(&snap);
    FZ_CHECK(snap == NULL);
    return 0;
}
