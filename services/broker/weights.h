/*  weights - the broker's routing weights file: how a service's requests split between versions
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A ZPL file (VZ_BROKER_WEIGHTS), one child per service:
 *
 *    echo
 *        versions = "1.0.0=90 1.1.0=10"
 *        sticky = "sub"
 *
 *  versions: VERSION=WEIGHT words separated by spaces or commas, in range
 *  order (stable first, canary last: a sticky key keeps its version while
 *  the last version's share only grows); weights 0..1000000, not all 0.
 *  sticky (optional): the ctx key whose value pins a request to a version.
 *  Read and checked whole; the broker applies it with broker_set_weights.
 *  Reread on SIGHUP and, without a signal, when weights_changed sees the
 *  file's stamp move (main.c polls every WEIGHTS_POLL_MS on the reactor):
 *  on Kubernetes the file is a ConfigMap mounted into every broker replica,
 *  which the kubelet swaps whole (a new inode behind the ..data link).
 *  A writer should replace the file whole (write beside it, rename), as
 *  vzctl rollout and the kubelet do: a half-written file that parses is
 *  applied until the next poll. Any thread; no shared state.
 */
#ifndef BROKER_WEIGHTS_H
#define BROKER_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

#define WEIGHTS_SERVICES_MAX 256 //  services one file may weigh
#define WEIGHTS_MAX 1000000      //  largest weight
#define WEIGHTS_POLL_MS 1000     //  how often the broker looks at the file

//  What tells one content of the file from the next without reading it.
typedef struct {
    bool exists;      //  the file is there
    uint64_t dev;     //  device and inode (a replaced file, a swapped link)
    uint64_t ino;     //
    int64_t size;     //  bytes
    int64_t mtime_ns; //  modification time
} weights_stamp_t;

//  Load path into *list_p (heap, caller frees) and *n_p. 0; -ENOENT when
//  the file does not exist (no weights: *n_p 0); -EINVAL with a one-line
//  reason in err for anything else that is wrong.
int weights_load(const char *path, broker_weights_t **list_p, size_t *n_p, char *err,
                 size_t errlen);

//  Stat path (following links) into *stamp: true when it differs from what
//  *stamp held (a file appeared, went, or was modified or replaced).
bool weights_changed(const char *path, weights_stamp_t *stamp);

#endif
