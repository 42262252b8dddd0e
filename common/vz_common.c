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
