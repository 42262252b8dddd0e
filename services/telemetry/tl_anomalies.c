/*  tl_anomalies - telemetry.anomalies: the detector over every series, on demand
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Per series (service|name) the hourly request counts of the last 14 days
 *  (a daily season of 24 points), and per service its requests per minute
 *  over the last 2 hours (no season), go through vz_telemetry_anomaly; the
 *  reply gives each one's latest point: value, forecast, interval, score,
 *  anomaly, and its data-quality flags (gap: an interval without data
 *  between two with; stale: nothing for over 3 steps; impossible).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"
#include "vz_authctx.h"
#include "vz_clock.h"
#include "vz_proto.h"
#include "vz_telemetry_anomaly.h"

#define S_HOURS (14 * 24) //  hourly points per series
#define S_MINUTES 120     //  minute points per service
#define S_REPLY_MAX (512 * 1024)

//  Run the detector over vals (-1 = no data) and write the latest point.
static void s_write(vz_json_writer_t *w, const char *service, const char *name,
                    const char *granularity, const int64_t *vals, size_t n, int64_t first_t,
                    int64_t step, int period, int64_t now_s)
{
    vz_tl_anomaly_config_t c = {.period = period, .non_negative = true, .step = step};
    vz_tl_anomaly_t *det = vz_tl_anomaly_new(&c);
    vz_tl_anomaly_point_t p = {0};
    int flags = 0;
    int64_t last_t = -1;
    size_t fed = 0;
    for (size_t i = 0; i < n; i++) {
        if (vals[i] < 0)
            continue;
        int64_t t = first_t + (int64_t)i * step;
        vz_tl_anomaly_step(det, t, (double)vals[i], &p);
        flags |= p.flags;
        last_t = t;
        fed++;
    }
    if (last_t >= 0 && vz_tl_anomaly_stale(det, last_t, now_s))
        flags |= VZ_TL_DQ_STALE;
    vz_tl_anomaly_destroy(&det);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "service", service);
    vz_json_write_kv_string(w, "name", name);
    vz_json_write_kv_string(w, "granularity", granularity);
    vz_json_write_kv_int(w, "points", (int64_t)fed);
    vz_json_write_kv_int(w, "period", period);
    vz_json_write_kv_int(w, "t", last_t);
    const char *keys[] = {"value", "forecast", "lower", "upper", "score"};
    double values[] = {last_t >= 0 ? (double)vals[(last_t - first_t) / step] : 0, p.forecast,
                       p.lower, p.upper, p.score};
    for (int k = 0; k < 5; k++) {
        vz_json_write_key(w, keys[k]);
        vz_json_write_double(w, values[k]);
    }
    vz_json_write_kv_bool(w, "anomaly", p.anomaly);
    vz_json_write_key(w, "quality");
    vz_json_write_array_begin(w);
    if (flags & VZ_TL_DQ_GAP)
        vz_json_write_string(w, "gap");
    if (flags & VZ_TL_DQ_STALE)
        vz_json_write_string(w, "stale");
    if (flags & VZ_TL_DQ_IMPOSSIBLE)
        vz_json_write_string(w, "impossible");
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
}

int tl_h_anomalies(void *app, const vz_envelope_t *req, vz_reply_t *reply)
{
    tl_t *self = app;
    if (!tl_may(self, req, reply, "telemetry:read"))
        return 0;
    int64_t now_s = vz_clock_now_ms() / 1000;
    zlist_t *names = tl_store_series_names(self->store);
    zlist_t *services = names ? tl_store_services(self->store) : NULL;
    if (!services) {
        zlist_destroy(&names);
        return vz_authctx_reply_error(reply, 503, VZ_ERR_UNAVAILABLE, "redis unavailable");
    }
    vz_json_writer_t *w = vz_json_writer_new(S_REPLY_MAX);
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, "t", now_s);
    vz_json_write_key(w, "series");
    vz_json_write_array_begin(w);
    int64_t *vals = (int64_t *)calloc(S_HOURS, sizeof *vals);
    assert(vals);
    int rc = 0;
    int64_t hour = now_s / 3600, minute = now_s / 60;
    for (const char *member = zlist_first(names); member && rc == 0; member = zlist_next(names)) {
        const char *bar = strchr(member, '|');
        char service[VZ_TL_NAME_MAX], prefix[2 * VZ_TL_NAME_MAX + 16];
        if (!bar || (size_t)(bar - member) >= sizeof service)
            continue;
        memcpy(service, member, (size_t)(bar - member));
        service[bar - member] = '\0';
        snprintf(prefix, sizeof prefix, "{tl}:s:%s:h:", member);
        rc = tl_store_field_range(self->store, prefix, hour - S_HOURS + 1, hour, "n", vals);
        if (rc == 0)
            s_write(w, service, bar + 1, "hour", vals, S_HOURS, (hour - S_HOURS + 1) * 3600, 3600,
                    24, now_s);
    }
    for (const char *svc = zlist_first(services); svc && rc == 0; svc = zlist_next(services)) {
        char prefix[VZ_TL_NAME_MAX + 16];
        snprintf(prefix, sizeof prefix, "{tl}:sm:%s:m:", svc);
        rc = tl_store_field_range(self->store, prefix, minute - S_MINUTES + 1, minute, "n", vals);
        if (rc == 0)
            s_write(w, svc, "_requests", "minute", vals, S_MINUTES, (minute - S_MINUTES + 1) * 60,
                    60, 0, now_s);
    }
    free(vals);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    zlist_destroy(&names);
    zlist_destroy(&services);
    return tl_reply_json(reply, &w, rc);
}
