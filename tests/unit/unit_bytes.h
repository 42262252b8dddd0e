/*  unit_bytes - byte helpers shared by the codec unit tests
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Header-only: every unit test is its own executable (tests/CMakeLists.txt
 *  builds each test_*.c alone), so these are static inline.
 */
#ifndef UNIT_BYTES_H
#define UNIT_BYTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  An exact-size heap copy of len bytes (1 byte allocated for 0), so that
//  valgrind and ASan see a decoder reading one byte past the end. Aborts
//  when out of memory; the caller frees.
static inline uint8_t *ut_copy(const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    if (len)
        memcpy(copy, data, len);
    return copy;
}

//  Fill junk (cap bytes) with a random length of random bytes; on odd
//  rounds the first byte is first + 0..spread-1 (a container header, so a
//  decoder goes past its first check). Returns the length. Seed with srand.
static inline size_t ut_junk(uint8_t *junk, size_t cap, int round, uint8_t first, int spread)
{
    size_t len = (size_t)(rand() % (int)cap);
    for (size_t i = 0; i < len; i++)
        junk[i] = (uint8_t)rand();
    if (len && round % 2)
        junk[0] = (uint8_t)(first + rand() % spread);
    return len;
}

#endif
