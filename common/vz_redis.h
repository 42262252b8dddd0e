/*  vz_redis - a Redis server or Cluster (AUTH, TLS) with short timeouts and reconnection
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  For workers that must never wait long on Redis: connect and command
 *  timeouts are explicit (tens of milliseconds), a broken connection is
 *  re-established lazily on the next command (at most once per retry_ms
 *  per node), and every reply is type-checked by the caller's helpers
 *  rather than trusted. Lua scripts run with EVALSHA (the SHA computed
 *  here), falling back to EVAL on NOSCRIPT.
 *
 *  Redis Cluster (?cluster=1): the slot map comes from CLUSTER SLOTS (at
 *  the first command, and again after a redirection or a node lost); a
 *  command goes to the primary owning its first key's slot (keyless ones
 *  to any node), over one connection per node opened on first use. What
 *  is retried, within command_timeout_ms and at most 5 hops: MOVED (map
 *  updated, sent to the named node), ASK (ASKING then the command, on the
 *  named node, once), TRYAGAIN, and a node that cannot be connected to
 *  (map reloaded; sent to the slot's new owner once a failover put one
 *  there). Never retried: a command sent whose reply did not come (it may
 *  have run) - NULL, as for one server; an idle connection the server
 *  closed is noticed before sending (reconnected). CLUSTERDOWN answers NULL too. The
 *  caller's keys of one command or script must share a slot (hash tags,
 *  docs/operations/redis-cluster.md); Redis answers CROSSSLOT otherwise.
 *
 *  Sentinel (?sentinel=<master name>): the hosts are Sentinels (AUTH with
 *  sentinel_password, as sentinel_user when given, else none; a Sentinel
 *  refusing them, or answering NOAUTH, makes vz_redis_ensure -EACCES),
 *  asked SENTINEL get-master-addr-by-name at the first
 *  command and again after the primary's connection was lost or refused,
 *  or a command was answered READONLY (a demoted primary: that command is
 *  sent once more, to the primary named then).
 *  Not thread-safe: one vz_redis_t per thread.
 */
#ifndef VZ_REDIS_H
#define VZ_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct vz_redis_t vz_redis_t;

//  url: redis[s]://[[user]:password@]host[:port][,host[:port]...][/db][?query].
//  With a password every connection starts with AUTH (AUTH user password
//  for an ACL user); user and password are percent-decoded. rediss://
//  speaks TLS (1.2 at least) and verifies the server's certificate
//  against the system's CA store, or ca_file, for host (a DNS name, or an
//  IP address in its SANs) or server_name; cert_file and key_file (PEM)
//  present a client certificate (rediss:// only:
//  rediss://host:6380/0?ca_file=/etc/vizmesh/redis-ca.pem). cluster=1 in
//  the query speaks to a Redis Cluster: the hosts (one or more) are seeds
//  the slot map is asked from, and the db must be 0
//  (redis://:pw@10.0.0.1:6379,10.0.0.2:6379?cluster=1); several hosts
//  without it are refused, except with sentinel=<master name> in the
//  query: then the hosts are Sentinels and the primary is the one they
//  name (redis://:pw@s1:26379,s2:26379/0?sentinel=mymaster). The URL's
//  credentials are the primary's; Sentinels behind requirepass take
//  sentinel_password=<pw> (and sentinel_user=<ACL user>) in the query,
//  percent-encoded, as Jedis' sentinelPassword and ioredis'
//  sentinelPassword (...?sentinel=mymaster&sentinel_password=s%40pw).
//  The TLS settings serve every node. Does not connect yet. NULL on a bad URL or a TLS file that
//  does not load (errno EINVAL).
vz_redis_t *vz_redis_new(const char *url, int connect_timeout_ms, int command_timeout_ms,
                         int retry_ms);
void vz_redis_destroy(vz_redis_t **self_p);

//  url with its passwords (the userinfo's, sentinel_password's) replaced by
//  "***", for a log line (n bytes of out).
void vz_redis_redact(const char *url, char *out, size_t n);

//  url with password (percent-encoded) put in: redis://host ->
//  redis://:password@host, redis://user@host -> redis://user:password@host.
//  0, or -EINVAL when url already holds a password or is not redis[s]://,
//  -ENAMETOOLONG when it does not fit n bytes. For passwords kept in a file
//  (VZ_REDIS_PASSWORD_FILE, a mounted Secret) rather than in the URL.
int vz_redis_url_password(const char *url, const char *password, char *out, size_t n);

//  True when the last command reached Redis (or a fresh connect succeeded).
bool vz_redis_up(const vz_redis_t *self);

//  True when the last connect attempt failed because Redis (or a
//  Sentinel) refused the credentials (AUTH); false after a connect that
//  succeeded or failed otherwise. For a readiness reason that says so.
bool vz_redis_refused(const vz_redis_t *self);

//  Connect now if not connected (respecting retry_ms); in a cluster, load
//  the slot map if it is not (or no longer) current. 0 or -errno:
//  -EACCES when Redis refused the credentials, -ECONNREFUSED also for a
//  failed TLS handshake (an untrusted or misnamed certificate).
int vz_redis_ensure(vz_redis_t *self);

//  Run a command (argv style, binary safe). Returns the reply the caller
//  frees with freeReplyObject, or NULL when Redis is unreachable or timed
//  out (the connection is then dropped and retried later). An error reply
//  (REDIS_REPLY_ERROR) is returned as a reply, not NULL.
redisReply *vz_redis_command(vz_redis_t *self, int argc, const char **argv, const size_t *lens);

//  A Lua script registered once; run by SHA with automatic reload.
typedef struct vz_redis_script_t vz_redis_script_t;
vz_redis_script_t *vz_redis_script_new(const char *source);
void vz_redis_script_destroy(vz_redis_script_t **self_p);
//  The script's SHA1 in hex (40 characters), as EVALSHA names it. Borrowed.
const char *vz_redis_script_sha(const vz_redis_script_t *script);
//  EVALSHA script numkeys keys... args...; same reply contract as
//  vz_redis_command.
redisReply *vz_redis_eval(vz_redis_t *self, vz_redis_script_t *script, int nkeys, const char **keys,
                          int nargs, const char **args);

//  One script call of a pipelined batch; reply is filled by
//  vz_redis_eval_batch and freed by the caller (freeReplyObject).
typedef struct {
    vz_redis_script_t *script; //  script to run (borrowed)
    int nkeys;                 //  entries in keys
    const char **keys;         //  KEYS (borrowed)
    int nargs;                 //  entries in args
    const char **args;         //  ARGV (borrowed)
    redisReply *reply;         //  out: as vz_redis_eval would return it
} vz_redis_call_t;

//  Run count calls (any mix of scripts) pipelined: every EVALSHA is
//  written, then the replies are read in order, so the batch costs one
//  round trip (in a cluster one per node its calls' first keys live on;
//  each reply still lands in its call). Calls answered NOSCRIPT are sent
//  again as EVAL (pipelined too); in a cluster, calls redirected are run
//  again one by one as vz_redis_eval would. Each read waits at most
//  command_timeout_ms. 0 with every reply set (possibly an error reply),
//  or -errno when Redis was unreachable or a connection failed mid-batch:
//  then every reply is NULL and that connection is dropped (some calls may
//  have run).
int vz_redis_eval_batch(vz_redis_t *self, vz_redis_call_t *calls, size_t count);

//  The Redis Cluster hash slot (0..16383) of a key of len bytes: CRC16
//  of its hash tag (what is between the first '{' and the next '}', when
//  not empty), else of the whole key.
int vz_redis_key_slot(const char *key, size_t len);

//  Parse a redirection error reply, "MOVED <slot> <host>:<port>" or "ASK
//  <slot> <host>:<port>" (host may be empty: the node that answered), into
//  *ask, *slot, host (n bytes) and *port. 0, or -EINVAL when err is not one.
int vz_redis_redirect_parse(const char *err, bool *ask, int *slot, char *host, size_t n, int *port);

#endif
