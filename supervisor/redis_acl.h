/*  redis_acl - one Redis ACL user per service of the mesh, for the built-in Redis
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The built-in redis-server runs with <state_dir>/redis/users.acl: the
 *  default user is off (every connection must AUTH; it keeps all rights
 *  only because Redis replays the AOF as that user), and each
 *  service has a user of its own name whose password is derived from a
 *  secret kept in <state_dir>/redis/secret (made once, owner-only):
 *  HMAC-SHA256(secret, name), 32 hex characters, so it is stable across
 *  restarts without a file per service. A daemon known to keep state in
 *  Redis may touch only its own key prefix ({auth}:*, vz:rl:*, {billing}:*,
 *  {nt}:*, {tl}:*) and no @dangerous command; every other service may only
 *  PING and SELECT. The daemon gets its URL in VZ_REDIS_URL
 *  (redis://NAME:PASSWORD@127.0.0.1:PORT). A user "vz-supervisor" may
 *  PING (the readiness probe) and reload the file (ACL LOAD) after
 *  `vzctl update` added a service. The default user is off (with every
 *  right, for the AOF replay); "probe" may only PING (health checks).
 *  Supervisor thread only. sup_redis_acl_cmd gives compose and Kubernetes
 *  the same users from this module's table, with passwords kept in files.
 */
#ifndef SUP_REDIS_ACL_H
#define SUP_REDIS_ACL_H

#include <stddef.h>
#include <stdio.h>

#include "mesh_config.h"

//  The key pattern rule of daemon ("auth" -> "~{auth}:*"), "" when it keeps
//  no keys in Redis. The one table of prefixes.
const char *sup_redis_acl_daemon_keys(const char *daemon);

//  The key pattern rule of svc ("~{auth}:*"), "" when it keeps no keys.
//  Known by the daemon its command runs (vz-auth ...), else by its name.
const char *sup_redis_acl_keys(const sup_mesh_service_t *svc);

//  Write <state_dir>/redis/users.acl (mode 0600, atomically) for every
//  service of cfg, making the secret first if there is none. 0, or -errno
//  with err.
int sup_redis_acl_write(const sup_mesh_config_t *cfg, char *err, size_t errlen);

//  The file's path (redis-server --aclfile).
void sup_redis_acl_path(const sup_mesh_config_t *cfg, char *out, size_t n);

//  VZ_REDIS_URL of service name: redis://name:password@127.0.0.1:port.
//  0, or -errno when the secret cannot be read.
int sup_redis_acl_url(const sup_mesh_config_t *cfg, const char *name, int port, char *out,
                      size_t n);

//  The line "AUTH vz-supervisor <password>\r\n" (the readiness probe
//  sends it before PING) into out. 0, or -errno when the secret cannot be read.
int sup_redis_acl_auth(const sup_mesh_config_t *cfg, char *out, size_t n);

//  Ask the running Redis on port to reload the file (ACL LOAD, as
//  vz-supervisor, within 200 ms). 0, or -errno (Redis not up yet: it
//  reads the file when it starts).
int sup_redis_acl_reload(const sup_mesh_config_t *cfg, int port);

//  `vzctl redis-acl DIR NAME... [--k8s]`, the same users for compose and
//  Kubernetes: NAME is a service and its daemon (auth, ratelimit, ...).
//  Makes DIR (0755) when absent and DIR/NAME.password (48 random hex
//  characters, 0600) for each NAME without one; an existing file's first
//  line is the password. Writes to out the ACL file (the supervisor's
//  rights: default PING only, each NAME its own key prefix, or PING and
//  SELECT), or with --k8s the Secrets vizmesh-redis-acl (key users.acl) and
//  vizmesh-redis-NAME (key password) as YAML. 0, 1 (failed, said on
//  stderr) or 2 (usage).
int sup_redis_acl_cmd(int argc, char **argv, FILE *out);

#endif
