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

//  Decoder results (Malamute's codec convention).
#define VZ_EINTR     -1   //  interrupted / nothing to read
#define VZ_EMALFORMED -2  //  bytes are not a valid message

//  Daemon exit codes (s6 convention).
#define VZ_EXIT_OK        0    //  clean shutdown
#define VZ_EXIT_PERMANENT 100  //  bad configuration, missing keys: do not restart blindly
#define VZ_EXIT_TEMPORARY 111  //  transient failure: restart with backoff

//  Sizes of the fixed, NUL-terminated name fields used across modules.
#define VZ_NAME_MAX  64   //  service, method, identity names (incl. NUL)
#define VZ_ID_MAX    64   //  request id (incl. NUL)
#define VZ_PATH_MAX  512  //  file paths and endpoint lists in configuration

//  Wall clock in milliseconds since the Unix epoch: vz_clock_now_ms (the
//  settable clock, see vz_clock.h), under its older name. Not for durations:
//  use vz_clock_mono_ms.
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
