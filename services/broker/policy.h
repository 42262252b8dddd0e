/*  policy - the broker's call policy: which identity may call or serve which service
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Loaded from a ZPL file (format documented in configs/policy.cfg):
 *
 *    identity
 *        gateway
 *            call = "echo auth ratelimit"
 *        echo
 *            serve = "echo"
 *
 *  Lists are separated by spaces or commas; "*" matches any service. An
 *  identity absent from the file is unknown and refused everything. A policy
 *  is immutable once loaded; a reload builds a new one and swaps it in.
 *  Single-threaded (the broker's reactor).
 */
#ifndef BROKER_POLICY_H
#define BROKER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct policy_t policy_t;

//  Load and validate path. NULL with a one-line reason in err when the file
//  is missing, not ZPL, has no "identity" section, or holds a bad name.
//  Caller owns the result.
policy_t *policy_load(const char *path, char *err, size_t errlen);
void policy_destroy(policy_t **self_p);

//  True when identity appears in the policy at all.
bool policy_known(const policy_t *self, const char *identity);
//  True when identity may send requests to service.
bool policy_may_call(const policy_t *self, const char *identity, const char *service);
//  True when identity may register as a worker of service.
bool policy_may_serve(const policy_t *self, const char *identity, const char *service);
//  Number of identities (for logs).
size_t policy_size(const policy_t *self);

//  True when name is a valid service, method or identity name: 1 to
//  VZ_NAME_MAX-1 bytes of [A-Za-z0-9_.-]. The broker checks every name a
//  peer sends against this before it reaches a table, a metric label or a
//  log line; "*" is not a name (only the policy file uses it, as a wildcard).
bool policy_name_valid(const char *name);

#endif
