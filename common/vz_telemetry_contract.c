/*  vz_telemetry_contract - the body of telemetry.ingest: one reporter snapshot (version 1)
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_telemetry_contract.h"

#include <ctype.h>
#include <czmq.h>
#include <string.h>

#include "vz_common.h"
#include "vz_json.h"
#include "vz_worker.h"

bool vz_tl_name_valid(const char *text)
{
    if (!text || !*text || strlen(text) >= VZ_TL_NAME_MAX)
        return false;
    for (const char *p = text; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

bool vz_tl_hex_id_valid(const char *text, size_t n)
{
    if (!text || strlen(text) != n)
        return false;
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return false;
        nonzero |= text[i] != '0';
    }
    return nonzero;
}

int vz_tl_traceparent_split(const char *tp, char *trace, char *parent)
{
    assert(trace && parent);
    //  version(2) - trace(32) - parent(16) - flags(2): 55 characters.
    if (!tp || strlen(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return -1;
    memcpy(trace, tp + 3, VZ_TL_TRACE_HEX);
    trace[VZ_TL_TRACE_HEX] = '\0';
    memcpy(parent, tp + 36, VZ_TL_SPAN_HEX);
    parent[VZ_TL_SPAN_HEX] = '\0';
    return vz_tl_hex_id_valid(trace, VZ_TL_TRACE_HEX) && vz_tl_hex_id_valid(parent, VZ_TL_SPAN_HEX)
               ? 0
               : -1;
}

void vz_tl_snapshot_destroy(vz_tl_snapshot_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        free((*self_p)->spans);
        free((*self_p)->user_calls);
        free((*self_p)->events);
        free((*self_p)->series);
        free((*self_p)->users);
        free(*self_p);
        *self_p = NULL;
    }
}

//  A non-negative integer member, or -1.
static int s_uint(const vz_json_value_t *object, const char *key, uint64_t *out)
{
    int64_t n = 0;
    if (vz_json_int(vz_json_get(object, key), &n) < 0 || n < 0)
        return -1;
    *out = (uint64_t)n;
    return 0;
}

static int s_series(const vz_json_value_t *item, vz_tl_series_t *row, const char **err)
{
    const char *name = vz_json_get_string(item, VZ_TL_F_NAME, NULL);
    if (!vz_tl_name_valid(name))
        return *err = "series name missing or invalid", -1;
    vz_strlcpy(row->name, name, sizeof row->name);
    if (s_uint(item, VZ_TL_F_COUNT, &row->count) < 0 ||
        vz_json_double(vz_json_get(item, VZ_TL_F_SUM_US), &row->sum_us) < 0 || row->sum_us < 0)
        return *err = "series count or sum_us missing or invalid", -1;
    const vz_json_value_t *codes = vz_json_get(item, VZ_TL_F_CODES);
    if (vz_json_type(codes) != VZ_JSON_OBJECT || vz_json_size(codes) > VZ_TL_CODES)
        return *err = "series codes missing or too many", -1;
    uint64_t total = 0;
    for (size_t i = 0; i < vz_json_size(codes); i++) {
        vz_tl_code_count_t *code = &row->codes[row->ncodes++];
        const char *key = vz_json_key_at(codes, i);
        int64_t n = 0;
        if (!vz_tl_name_valid(key) || vz_json_int(vz_json_at(codes, i), &n) < 0 || n < 0)
            return *err = "series code invalid", -1;
        vz_strlcpy(code->name, key, sizeof code->name);
        code->count = (uint64_t)n;
        total += code->count;
    }
    if (total != row->count)
        return *err = "series codes do not add up to its count", -1;
    const vz_json_value_t *bins = vz_json_get(item, VZ_TL_F_BINS);
    if (vz_json_type(bins) != VZ_JSON_ARRAY || vz_json_size(bins) > VZ_TL_BINS)
        return *err = "series bins missing or too many", -1;
    total = 0;
    for (size_t i = 0; i < vz_json_size(bins); i++) {
        const vz_json_value_t *pair = vz_json_at(bins, i);
        int64_t bin = -1, n = -1;
        if (vz_json_size(pair) != 2 || vz_json_int(vz_json_at(pair, 0), &bin) < 0 ||
            vz_json_int(vz_json_at(pair, 1), &n) < 0 || bin < 0 || bin >= VZ_TL_BINS || n < 0 ||
            n > UINT32_MAX)
            return *err = "series bin invalid", -1;
        row->bin[row->nbins] = (uint16_t)bin;
        row->bin_count[row->nbins++] = (uint32_t)n;
        total += (uint64_t)n;
    }
    if (total != row->count)
        return *err = "series bins do not add up to its count", -1;
    return 0;
}

//  Spans are optional; each is checked whole.
static int s_spans(const vz_json_value_t *root, vz_tl_snapshot_t *self, const char **err)
{
    const vz_json_value_t *spans = vz_json_get(root, VZ_TL_F_SPANS);
    if (!spans)
        return 0;
    if (vz_json_type(spans) != VZ_JSON_ARRAY || vz_json_size(spans) > VZ_TL_SPANS ||
        s_uint(root, VZ_TL_F_SPANS_OVER, &self->spans_over) < 0)
        return *err = "spans invalid or too many", -1;
    self->nspans = vz_json_size(spans);
    self->spans = (vz_tl_span_t *)calloc(self->nspans ? self->nspans : 1, sizeof(vz_tl_span_t));
    assert(self->spans);
    for (size_t i = 0; i < self->nspans; i++) {
        const vz_json_value_t *item = vz_json_at(spans, i);
        vz_tl_span_t *span = &self->spans[i];
        const char *trace = vz_json_get_string(item, VZ_TL_F_TRACE, NULL);
        const char *id = vz_json_get_string(item, VZ_TL_F_SPAN, NULL);
        const char *parent = vz_json_get_string(item, VZ_TL_F_PARENT, NULL);
        const char *name = vz_json_get_string(item, VZ_TL_F_NAME, NULL);
        const char *code = vz_json_get_string(item, VZ_TL_F_CODE, NULL);
        uint64_t start = 0, dur = 0;
        if (!vz_tl_hex_id_valid(trace, VZ_TL_TRACE_HEX) ||
            !vz_tl_hex_id_valid(id, VZ_TL_SPAN_HEX) || !parent ||
            (*parent && !vz_tl_hex_id_valid(parent, VZ_TL_SPAN_HEX)) || !vz_tl_name_valid(name) ||
            !vz_tl_name_valid(code) || s_uint(item, VZ_TL_F_START_US, &start) < 0 ||
            s_uint(item, VZ_TL_F_DUR_US, &dur) < 0 || start > INT64_MAX / 2 || dur > INT64_MAX / 2)
            return *err = "span invalid", -1;
        vz_strlcpy(span->trace, trace, sizeof span->trace);
        vz_strlcpy(span->span, id, sizeof span->span);
        vz_strlcpy(span->parent, parent, sizeof span->parent);
        vz_strlcpy(span->name, name, sizeof span->name);
        vz_strlcpy(span->code, code, sizeof span->code);
        span->start_us = (int64_t)start;
        span->dur_us = (int64_t)dur;
    }
    return 0;
}

//  Business events are optional: name -> count.
static int s_events(const vz_json_value_t *root, vz_tl_snapshot_t *self, const char **err)
{
    const vz_json_value_t *events = vz_json_get(root, VZ_TL_F_EVENTS);
    if (!events)
        return 0;
    if (vz_json_type(events) != VZ_JSON_OBJECT || vz_json_size(events) > VZ_TL_EVENTS)
        return *err = "events invalid or too many", -1;
    self->nevents = vz_json_size(events);
    self->events =
        (vz_tl_code_count_t *)calloc(self->nevents ? self->nevents : 1, sizeof(vz_tl_code_count_t));
    assert(self->events);
    for (size_t i = 0; i < self->nevents; i++) {
        const char *key = vz_json_key_at(events, i);
        int64_t n = 0;
        if (!vz_tl_name_valid(key) || vz_json_int(vz_json_at(events, i), &n) < 0 || n < 0)
            return *err = "event invalid", -1;
        vz_strlcpy(self->events[i].name, key, VZ_TL_NAME_MAX);
        self->events[i].count = (uint64_t)n;
    }
    return 0;
}

static int s_decode(const vz_json_value_t *root, vz_tl_snapshot_t *self, const char **err)
{
    int64_t version = 0;
    if (vz_json_type(root) != VZ_JSON_OBJECT ||
        vz_json_int(vz_json_get(root, VZ_TL_F_VERSION), &version) < 0 || version != VZ_TL_VERSION)
        return *err = "not a version 1 snapshot", -1;
    const char *service = vz_json_get_string(root, VZ_TL_F_SERVICE, NULL);
    if (!vz_tl_name_valid(service))
        return *err = "service missing or invalid", -1;
    vz_strlcpy(self->service, service, sizeof self->service);
    //  The worker's version: optional (older reporters send none).
    const vz_json_value_t *sv = vz_json_get(root, VZ_TL_F_SERVICE_VERSION);
    const char *text = vz_json_string(sv, NULL);
    if (sv && (!text || (*text && !vz_version_valid(text))))
        return *err = "service_version invalid", -1;
    if (text)
        vz_strlcpy(self->version, text, sizeof self->version);
    uint64_t replica, pid, t, interval, seq;
    if (s_uint(root, VZ_TL_F_REPLICA, &replica) < 0 || s_uint(root, VZ_TL_F_PID, &pid) < 0 ||
        s_uint(root, VZ_TL_F_T, &t) < 0 || s_uint(root, VZ_TL_F_INTERVAL, &interval) < 0 ||
        s_uint(root, VZ_TL_F_SEQ, &seq) < 0 || s_uint(root, VZ_TL_F_LOST, &self->lost) < 0 ||
        s_uint(root, VZ_TL_F_DROPPED, &self->dropped) < 0)
        return *err = "a header field is missing or invalid", -1;
    self->replica = (int64_t)replica;
    self->pid = (int64_t)pid;
    self->t_ms = (int64_t)t;
    self->interval_ms = (int64_t)interval;
    self->seq = (int64_t)seq;
    const vz_json_value_t *sat = vz_json_get(root, VZ_TL_F_SAT);
    uint64_t fds = 0;
    if (vz_json_double(vz_json_get(sat, VZ_TL_F_CPU), &self->cpu) < 0 || self->cpu < 0 ||
        s_uint(sat, VZ_TL_F_RSS, &self->rss) < 0 || s_uint(sat, VZ_TL_F_FDS, &fds) < 0)
        return *err = "sat missing or invalid", -1;
    self->fds = (int64_t)fds;
    const vz_json_value_t *series = vz_json_get(root, VZ_TL_F_SERIES);
    if (vz_json_type(series) != VZ_JSON_ARRAY || vz_json_size(series) > VZ_TL_SERIES)
        return *err = "series missing or too many", -1;
    self->nseries = vz_json_size(series);
    self->series =
        (vz_tl_series_t *)calloc(self->nseries ? self->nseries : 1, sizeof(vz_tl_series_t));
    assert(self->series);
    for (size_t i = 0; i < self->nseries; i++)
        if (s_series(vz_json_at(series, i), &self->series[i], err) < 0)
            return -1;
    if (s_spans(root, self, err) < 0 || s_events(root, self, err) < 0)
        return -1;
    //  Users are optional (a daemon that knows none sends none).
    const vz_json_value_t *users = vz_json_get(root, VZ_TL_F_USERS);
    if (!users)
        return 0;
    if (vz_json_type(users) != VZ_JSON_ARRAY || vz_json_size(users) > VZ_TL_USERS ||
        s_uint(root, VZ_TL_F_USERS_OVER, &self->users_over) < 0)
        return *err = "users invalid or too many", -1;
    self->nusers = vz_json_size(users);
    self->users = calloc(self->nusers ? self->nusers : 1, VZ_TL_NAME_MAX);
    assert(self->users);
    for (size_t i = 0; i < self->nusers; i++) {
        const char *user = vz_json_string(vz_json_at(users, i), NULL);
        if (!vz_tl_name_valid(user))
            return *err = "user invalid", -1;
        vz_strlcpy(self->users[i], user, VZ_TL_NAME_MAX);
    }
    //  Calls per user: optional, one per user (1 each without them).
    const vz_json_value_t *calls = vz_json_get(root, VZ_TL_F_USER_CALLS);
    if (calls && (vz_json_type(calls) != VZ_JSON_ARRAY || vz_json_size(calls) != self->nusers))
        return *err = "user_calls must count each user", -1;
    self->user_calls = (uint64_t *)calloc(self->nusers ? self->nusers : 1, sizeof(uint64_t));
    assert(self->user_calls);
    for (size_t i = 0; i < self->nusers; i++) {
        int64_t n = 1;
        if (calls && (vz_json_int(vz_json_at(calls, i), &n) < 0 || n < 0))
            return *err = "user_calls invalid", -1;
        self->user_calls[i] = (uint64_t)n;
    }
    return 0;
}

int vz_tl_snapshot_decode(const void *body, size_t len, vz_tl_snapshot_t **snap_p,
                          const char **reason)
{
    assert(snap_p);
    *snap_p = NULL;
    const char *why = NULL;
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    if (!doc) {
        if (reason)
            *reason = "not JSON";
        return VZ_EMALFORMED;
    }
    vz_tl_snapshot_t *self = (vz_tl_snapshot_t *)zmalloc(sizeof *self);
    assert(self);
    if (s_decode(vz_json_root(doc), self, &why) < 0)
        vz_tl_snapshot_destroy(&self);
    vz_json_destroy(&doc);
    if (!self) {
        if (reason)
            *reason = why;
        return VZ_EMALFORMED;
    }
    *snap_p = self;
    return 0;
}
