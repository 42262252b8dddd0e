/*  vz_common - clock and string helpers shared by every module
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_common.h"

#include <assert.h>
#include <string.h>
#include <time.h>

int64_t vz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vz_strlcpy(char *dst, const char *src, size_t n)
{
    assert(dst && src && n > 0);
    size_t len = strlen(src);
    if (len < n) {
        memcpy(dst, src, len + 1);
        return 0;
    }
    memcpy(dst, src, n - 1);
    dst[n - 1] = '\0';
    return -ENAMETOOLONG;
}

//  Table-free on purpose: the ranges below are RFC 3629 section 4 exactly.
size_t vz_utf8_seq(const uint8_t *p, size_t left)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}
