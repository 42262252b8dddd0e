/*  bench - helpers shared by the benchmark programs
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Header-only (each bench is its own executable). Benches link vzharness
 *  (a mesh of daemons: vzt_mesh_start, vzt_fmt) and vzunit (ut.h: keys,
 *  files).
 *  A bench has no test to fail: what cannot be set up ends the program
 *  with a message (exit 1), or abort() when out of memory.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

//  qsort comparator for int64_t latencies.
static inline int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

//  Monotonic microseconds.
static inline int64_t bench_usecs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
