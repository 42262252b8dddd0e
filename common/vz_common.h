/*  vz_common - error codes, exit codes and limits shared by every module
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Return convention (libuv): 0 success, negative failure. Failures are
 *  -errno values, or one of the VZ_E* codes below, tested with `rc < 0`.
 */
#ifndef VZ_COMMON_H
#define VZ_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Custom error codes: the project's own failures, all in one range far
//  from -errno (Linux errno values stay below 4096, the kernel's MAX_ERRNO;
//  libuv's own codes sit near -4095 for the same reason). Every code in
//  [VZ_ELAST, VZ_EFIRST] is defined here and described by vz_strerror, so
//  `rc < 0` keeps working and no code can be mistaken for an errno value.
#define VZ_EFIRST (-4096) //  first (highest) custom code
#define VZ_EMALFORMED (-4096) //  bytes are not a valid message (every decoder and codec)
#define VZ_EINTR (-4097)      //  interrupted / nothing to read
//  JWT verification failures (vz_jwt.h), distinct, in the order they are checked.
#define VZ_JWT_EMALFORMED VZ_EMALFORMED //  not three base64url parts of JSON objects, bad claims
#define VZ_JWT_EALG (-4110)     //  header alg is not ES256, or a "crit" header
#define VZ_JWT_EKID (-4111)     //  no key with that kid (or no kid)
#define VZ_JWT_ESIG (-4112)     //  signature does not verify
#define VZ_JWT_EEXPIRED (-4113) //  now > exp + leeway (or exp missing)
#define VZ_JWT_ENOTYET (-4114)  //  now < nbf - leeway, or iat in the future beyond leeway
#define VZ_JWT_EISS (-4115)     //  issuer differs
#define VZ_JWT_EAUD (-4116)     //  audience not among aud
//  A daemon's private codes (its own module, e.g. "GW_EWAIT") are numbered
//  from VZ_EPRIVATE down to VZ_ELAST; vz_strerror calls them "daemon error".
#define VZ_EPRIVATE (-4200)
#define VZ_ELAST (-4299) //  last (lowest) custom code

//  A short static text for rc: "ok" for 0, the description of a custom
//  code above, or the system's text for a -errno value. Thread-safe.
const char *vz_strerror(int rc);

//  Daemon exit codes (s6 convention).
#define VZ_EXIT_OK        0    //  clean shutdown
#define VZ_EXIT_PERMANENT 100  //  bad configuration, missing keys: do not restart blindly
#define VZ_EXIT_TEMPORARY 111  //  transient failure: restart with backoff

//  Sizes of the fixed, NUL-terminated name fields used across modules.
#define VZ_NAME_MAX  64   //  service, method, identity names (incl. NUL)
#define VZ_ID_MAX    64   //  request id (incl. NUL)
#define VZ_PATH_MAX  512  //  file paths and endpoint lists in configuration

//  Wall clock in milliseconds since the Unix epoch as envelope deadlines use
//  it: vz_clock_wire_ms (see vz_clock.h), under its older name. Not for
//  durations (vz_clock_mono_ms) nor for a daemon's schedules (vz_clock_now_ms).
int64_t vz_now_ms(void);

//  Copy src into dst (size n, n > 0), always NUL-terminating. Returns
//  -ENAMETOOLONG when src did not fit (dst then holds a truncated copy).
int vz_strlcpy(char *dst, const char *src, size_t n);

//  hex_chars (<= 64) random lowercase hex digits and a NUL into out. The
//  bytes come from the kernel CSPRNG (getrandom) through a small per-thread
//  pool, so an id costs a syscall every 128 ids rather than each time
//  (emptied in a forked child). For ids and trace context, not for keys.
void vz_random_hex(char *out, size_t hex_chars);

//  Length (1..4) of the valid UTF-8 sequence at p, reading at most left
//  (> 0) bytes; 0 when the bytes are not one (overlong form, UTF-16
//  surrogate, beyond U+10FFFF, cut short). ASCII bytes are length 1.
size_t vz_utf8_seq(const uint8_t *p, size_t left);

#endif
