/*  fuzz - what every fuzz target shares: the entry point and the check macro
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Each fuzz_<target>.c defines LLVMFuzzerTestOneInput, the libFuzzer entry
 *  point. The same file is linked with libFuzzer in the clang build
 *  (-DVZ_FUZZ=ON, `make fuzz`) and with replay_main.c in the normal build,
 *  which feeds it every file of the committed corpus (ctest label "fuzz").
 *  Targets keep any state they need in statics set up on the first call,
 *  so neither driver needs an init hook. Single-threaded.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Runs one input. Returns 0; a property that does not hold aborts.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  Abort, so libFuzzer keeps the input and the replay fails, when a
//  property does not hold; the message names it.
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property does not hold: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

//  A string field ends with a NUL inside its capacity.
#define FZ_CHECK_STR(field, cap) FZ_CHECK(strnlen((field), (cap)) < (cap))

#endif
