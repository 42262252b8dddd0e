/*  vz_endpoints - a broker endpoint list, DNS names expanded to every address
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Several brokers serve one mesh; callers and workers are given them as
 *  "tcp://host:port[,tcp://host:port...]". A host that is a name (not an
 *  IP literal, not "*") stands for every address it resolves to, as a
 *  Kubernetes headless Service or compose's service name (Docker's DNS)
 *  gives one address per broker: IPv4 addresses when it has any, else
 *  IPv6, so "localhost" stays one broker rather than two. Each becomes
 *  "tcp://ADDR:port" (IPv6 in brackets); the result is sorted and free of
 *  duplicates, so two resolutions compare entry by entry. A name that does
 *  not resolve now is kept as written: ZeroMQ resolves it again at each
 *  connect, as before this module.
 *  Resolution blocks (getaddrinfo, the resolver's own timeouts): call it
 *  at start and from a slow timer (VZ_ENDPOINTS_RESOLVE_MS), and only when
 *  vz_endpoints_t.names says the list had names.
 */
#ifndef VZ_ENDPOINTS_H
#define VZ_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include "vz_common.h"

#define VZ_ENDPOINTS_MAX 16          //  brokers one party connects to
#define VZ_ENDPOINTS_RESOLVE_MS 5000 //  how often names are resolved again

typedef struct {
    char ep[VZ_ENDPOINTS_MAX][VZ_PATH_MAX]; //  endpoints, sorted
    size_t n;                               //  entries in ep
    bool names;                             //  the list had a name to resolve
    bool unresolved;                        //  a name of it did not resolve (kept as written)
} vz_endpoints_t;

//  Expand list into out. 0, or -EINVAL when the list is empty, an entry is
//  not tcp://host:port (other transports, such as ipc:// and inproc://,
//  are kept as written) or longer than VZ_PATH_MAX, or the expansion has
//  more than VZ_ENDPOINTS_MAX entries.
int vz_endpoints_resolve(const char *list, vz_endpoints_t *out);

//  True when set holds endpoint ep.
bool vz_endpoints_has(const vz_endpoints_t *set, const char *ep);

//  True when ep is tcp://NAME:port with a name rather than an address
//  (one that did not resolve and was kept as written).
bool vz_endpoints_named(const char *ep);

//  A thread of its own that resolves list again after 1, 2 and 4 s, then
//  every VZ_ENDPOINTS_RESOLVE_MS, so the owner's reactor never waits on DNS.
//  The owner takes each new result on its own thread.
typedef struct vz_resolver_t vz_resolver_t;

//  first: the owner's resolution at start (what "new" is measured from).
//  NULL when the thread cannot start.
vz_resolver_t *vz_resolver_new(const char *list, const vz_endpoints_t *first);
//  Stops and joins the thread (waits at most for one resolution).
void vz_resolver_destroy(vz_resolver_t **self_p);
//  True with *out when a resolution since the last take differed from
//  the one before and resolved at least one endpoint (a DNS outage never
//  empties the set); false otherwise. Never blocks on DNS.
bool vz_resolver_take(vz_resolver_t *self, vz_endpoints_t *out);

#endif
