/*  keys - the public keys the broker hands out for direct calls
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The allow directory (DIR/public, vz_curve.h) names every identity's
 *  public key: each file a public certificate whose "name" metadata is the
 *  identity. Direct calls (docs/protocol.md, "Direct calls") need these
 *  keys in two places: a worker admits a caller by key, and a caller
 *  authenticates a worker by key. The broker is the one party that reads
 *  the directory; it tells workers the keys of their allowed callers (ACL)
 *  and callers the keys of a service's workers (directory). An identity
 *  with two files keeps the first in name order.
 *  Single-threaded (the broker's reactor).
 */
#ifndef BROKER_KEYS_H
#define BROKER_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define KEYS_MAX 256 //  identities read from one directory

typedef struct keys_t keys_t;

//  Read dir (NULL or "": no keys). Never fails: unreadable files are skipped.
keys_t *keys_new(const char *dir);
void keys_destroy(keys_t **self_p);

//  Read the directory again when its modification time moved since the
//  last read (a file added, removed or replaced: what vz_auth follows).
//  True when it was read again.
bool keys_refresh(keys_t *self);

//  The Z85 public key of identity, or NULL.
const char *keys_lookup(const keys_t *self, const char *identity);

//  Identities in name order: 0..keys_count-1.
size_t keys_count(const keys_t *self);
const char *keys_name(const keys_t *self, size_t i);
const char *keys_key(const keys_t *self, size_t i);

#endif
