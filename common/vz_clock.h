/*  vz_clock - one monotonic clock for durations, one settable clock for "what time is it"
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Two questions, two clocks:
 *    - "how long did this take / is the timeout due": vz_clock_mono_ms/us,
 *      CLOCK_MONOTONIC. Never jumps, means nothing across processes.
 *    - "what time is it" (deadlines on the wire, token expiry, schedules
 *      like Monday 08:00 UTC, rate and burn-rate windows): vz_clock_now_ms/us,
 *      Unix time, which tests can set.
 *  Use the monotonic clock for every interval measured inside one process;
 *  the wall clock only where the value is compared with a date or leaves
 *  the process.
 *
 *  Test hooks (unit tests): vz_clock_test_set freezes "now" at an instant,
 *  vz_clock_test_advance moves it (frozen or not), vz_clock_test_reset
 *  returns to the real clock. They never touch the monotonic clock.
 *
 *  Integration tests of daemons: VZ_CLOCK_START=2026-12-07T07:59:50Z makes
 *  "now" start at that instant and advance at the real rate. It shifts
 *  vz_clock_now only: the deadlines envelopes carry are compared across
 *  processes that do not share the shift, so they use vz_clock_wire (the
 *  real clock, moved only by the unit-test hooks; vz_now_ms is its older
 *  name). A daemon on a shifted clock still honours its callers' deadlines. It is honoured
 *  only together with VZ_CLOCK_TEST=1 (vz_clock_from_env refuses it alone),
 *  and vz_daemon logs a warning at start while it is active: a production
 *  daemon must never run on a shifted clock.
 *
 *  Thread-safe: every function may be called from any thread (the shift is
 *  two relaxed atomics, read on every call).
 */
#ifndef VZ_CLOCK_H
#define VZ_CLOCK_H

#include <stddef.h>
#include <stdint.h>

//  Monotonic time, for durations and timeouts inside one process.
int64_t vz_clock_mono_ms(void);
int64_t vz_clock_mono_us(void);

//  Wall time since the Unix epoch as envelope deadlines use it: shared by
//  every process of the mesh, moved only by the unit-test hooks below.
int64_t vz_clock_wire_ms(void);
int64_t vz_clock_wire_us(void);

//  "What time is it" for the daemon's own logic (schedules, windows,
//  expiry): the wire clock plus VZ_CLOCK_START's shift, if any.
int64_t vz_clock_now_ms(void);
int64_t vz_clock_now_us(void);

//  Freeze "now" at now_us (Unix microseconds) until the next set, advance
//  or reset. For unit tests.
void vz_clock_test_set(int64_t now_us);
//  Move "now" by delta_us (may be negative), frozen or running.
void vz_clock_test_advance(int64_t delta_us);
//  Back to the real wall clock.
void vz_clock_test_reset(void);

//  Parse "YYYY-MM-DDTHH:MM:SSZ" (UTC, seconds precision) into Unix
//  microseconds. 0, or -EINVAL for anything else.
int vz_clock_parse_utc(const char *text, int64_t *out_us);

//  Apply VZ_CLOCK_START when VZ_CLOCK_TEST=1. Returns 0 when the real clock
//  is in use, 1 when the clock was shifted (then *start holds the setting,
//  borrowed from the environment), or -EINVAL with a message in err (set
//  without VZ_CLOCK_TEST=1, or not an instant).
int vz_clock_from_env(const char **start, char *err, size_t errlen);

#endif
