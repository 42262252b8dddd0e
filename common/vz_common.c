/*  vz_common - clock and string helpers shared by every module
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_common.h"
#include "vz_clock.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define S_POOL_BYTES 2048 //  random bytes fetched at once, per thread

static _Thread_local struct {
    uint8_t bytes[S_POOL_BYTES]; //  from getrandom
    size_t left;                 //  unused bytes at the end of bytes
} s_pool;

static pthread_once_t s_pool_once = PTHREAD_ONCE_INIT;

//  In a child the forking thread's pool is a copy of the parent's: drop it,
//  or both processes would hand out the same ids.
static void s_pool_forget(void)
{
    s_pool.left = 0;
}

static void s_pool_init(void)
{
    pthread_atfork(NULL, NULL, s_pool_forget);
}

void vz_random_hex(char *out, size_t hex_chars)
{
    static const char digits[] = "0123456789abcdef";
    assert(out && hex_chars <= 64);
    pthread_once(&s_pool_once, s_pool_init);
    size_t need = (hex_chars + 1) / 2;
    if (s_pool.left < need) {
        //  getrandom only fails before the pool is seeded at boot or on
        //  EINTR: retry briefly, then treat it as the bug it would be.
        size_t got = 0;
        for (int tries = 0; got < S_POOL_BYTES && tries < 100; tries++) {
            ssize_t rc = getrandom(s_pool.bytes + got, S_POOL_BYTES - got, 0);
            if (rc > 0)
                got += (size_t)rc;
        }
        assert(got == S_POOL_BYTES);
        s_pool.left = S_POOL_BYTES;
    }
    const uint8_t *raw = s_pool.bytes + S_POOL_BYTES - s_pool.left;
    for (size_t i = 0; i < hex_chars; i++)
        out[i] = digits[(raw[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
    out[hex_chars] = '\0';
    //  Used bytes are wiped, so no id can be recovered from the pool later.
    memset((void *)raw, 0, need);
    s_pool.left -= need;
}

const char *vz_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case VZ_EMALFORMED:
        return "malformed";
    case VZ_EINTR:
        return "interrupted";
    case VZ_JWT_EALG:
        return "unsupported algorithm";
    case VZ_JWT_EKID:
        return "unknown key";
    case VZ_JWT_ESIG:
        return "bad signature";
    case VZ_JWT_EEXPIRED:
        return "expired";
    case VZ_JWT_ENOTYET:
        return "not yet valid";
    case VZ_JWT_EISS:
        return "wrong issuer";
    case VZ_JWT_EAUD:
        return "wrong audience";
    default:
        break;
    }
    if (rc <= VZ_EPRIVATE && rc >= VZ_ELAST)
        return "daemon error";
    //  strerrordesc_np (glibc 2.32) returns a static text: no buffer, no locale.
    const char *text = rc < 0 && rc > VZ_EFIRST ? strerrordesc_np(-rc) : NULL;
    return text ? text : "unknown error";
}

int64_t vz_now_ms(void)
{
    return vz_clock_wire_ms();
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
