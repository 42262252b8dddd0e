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
 *  Any thread; no shared state.
 */
#ifndef BROKER_WEIGHTS_H
#define BROKER_WEIGHTS_H

#include <stddef.h>

#include "broker.h"

#define WEIGHTS_SERVICES_MAX 256 //  services one file may weigh
#define WEIGHTS_MAX 1000000      //  largest weight

//  Load path into *list_p (heap, caller frees) and *n_p. 0; -ENOENT when
//  the file does not exist (no weights: *n_p 0); -EINVAL with a one-line
//  reason in err for anything else that is wrong.
int weights_load(const char *path, broker_weights_t **list_p, size_t *n_p, char *err,
                 size_t errlen);

#endif
