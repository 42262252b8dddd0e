/*  vz_clock - one monotonic clock for durations, one settable clock for "what time is it"
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The shift is process-wide state (like the log level): "now" must be the
 *  same answer on every thread, so it cannot live in one object. It is a
 *  frozen instant (0 = running) plus an offset added to the real clock.
 */
#include "vz_clock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int64_t s_frozen_us; //  "now" while frozen, 0 = running
static _Atomic int64_t s_offset_us; //  added to the real clock while running
static _Atomic int64_t s_env_us;    //  VZ_CLOCK_START's shift: "now" only, never the wire

static int64_t s_read(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t vz_clock_mono_us(void)
{
    return s_read(CLOCK_MONOTONIC);
}

int64_t vz_clock_mono_ms(void)
{
    return vz_clock_mono_us() / 1000;
}

int64_t vz_clock_wire_us(void)
{
    int64_t frozen = atomic_load_explicit(&s_frozen_us, memory_order_relaxed);
    if (frozen)
        return frozen;
    return s_read(CLOCK_REALTIME) + atomic_load_explicit(&s_offset_us, memory_order_relaxed);
}

int64_t vz_clock_wire_ms(void)
{
    return vz_clock_wire_us() / 1000;
}

int64_t vz_clock_now_us(void)
{
    return vz_clock_wire_us() + atomic_load_explicit(&s_env_us, memory_order_relaxed);
}

int64_t vz_clock_now_ms(void)
{
    return vz_clock_now_us() / 1000;
}

void vz_clock_test_set(int64_t now_us)
{
    atomic_store(&s_offset_us, 0);
    atomic_store(&s_frozen_us, now_us ? now_us : 1);
}

void vz_clock_test_advance(int64_t delta_us)
{
    if (atomic_load(&s_frozen_us))
        atomic_fetch_add(&s_frozen_us, delta_us);
    else
        atomic_fetch_add(&s_offset_us, delta_us);
}

void vz_clock_test_reset(void)
{
    atomic_store(&s_frozen_us, 0);
    atomic_store(&s_offset_us, 0);
    atomic_store(&s_env_us, 0);
}

int vz_clock_parse_utc(const char *text, int64_t *out_us)
{
    int y, mo, d, h, mi, s, used = 0;
    if (!text || strlen(text) != 20 ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &s, &used) != 6 ||
        used != 20)
        return -EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 || h < 0 || mi < 0 ||
        s < 0)
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    time_t t = timegm(&tm);
    //  timegm normalises 2026-02-30 into March: a date that moved was not a date.
    if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
        return -EINVAL;
    *out_us = (int64_t)t * 1000000;
    return 0;
}

int vz_clock_from_env(const char **start, char *err, size_t errlen)
{
    const char *text = getenv("VZ_CLOCK_START");
    if (!text || !*text)
        return 0;
    const char *gate = getenv("VZ_CLOCK_TEST");
    if (!gate || strcmp(gate, "1") != 0) {
        snprintf(err, errlen,
                 "VZ_CLOCK_START is set but VZ_CLOCK_TEST is not 1: a shifted clock is for "
                 "tests only");
        return -EINVAL;
    }
    int64_t at_us;
    if (vz_clock_parse_utc(text, &at_us) < 0) {
        snprintf(err, errlen, "VZ_CLOCK_START=\"%.40s\": expected YYYY-MM-DDTHH:MM:SSZ (UTC)",
                 text);
        return -EINVAL;
    }
    //  Runs from that instant at the real rate.
    atomic_store(&s_env_us, at_us - s_read(CLOCK_REALTIME));
    if (start)
        *start = text;
    return 1;
}
