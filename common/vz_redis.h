/*  vz_redis - one Redis connection (AUTH, TLS) with short timeouts and reconnection
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  For workers that must never wait long on Redis: connect and command
 *  timeouts are explicit (tens of milliseconds), a broken connection is
 *  re-established lazily on the next command (at most once per
 *  retry_ms), and every reply is type-checked by the caller's helpers
 *  rather than trusted. Lua scripts are loaded once (SCRIPT LOAD) and run
 *  with EVALSHA, falling back to EVAL and reloading on NOSCRIPT.
 *  Not thread-safe: one vz_redis_t per thread.
 */
#ifndef VZ_REDIS_H
#define VZ_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct vz_redis_t vz_redis_t;

//  url: redis[s]://[[user]:password@]host[:port][/db][?tls settings].
//  With a password every connection starts with AUTH (AUTH user password
//  for an ACL user); user and password are percent-decoded. rediss://
//  speaks TLS (1.2 at least) and verifies the server's certificate
//  against the system's CA store, or ca_file, for host (a DNS name, or an
//  IP address in its SANs) or server_name; cert_file and key_file (PEM)
//  present a client certificate. The query takes only those four
//  (rediss://host:6380/0?ca_file=/etc/vizmesh/redis-ca.pem). Does not
//  connect yet. NULL on a bad URL or a TLS file that does not load
//  (errno EINVAL).
vz_redis_t *vz_redis_new(const char *url, int connect_timeout_ms, int command_timeout_ms,
                         int retry_ms);
void vz_redis_destroy(vz_redis_t **self_p);

//  url with its password replaced by "***", for a log line (n bytes of out).
void vz_redis_redact(const char *url, char *out, size_t n);

//  True when the last command reached Redis (or a fresh connect succeeded).
bool vz_redis_up(const vz_redis_t *self);

//  Connect now if not connected (respecting retry_ms). 0 or -errno:
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

//  Run count calls (any mix of scripts) pipelined on the one connection:
//  every EVALSHA is written, then the replies are read in order, so the
//  batch costs one round trip. Calls answered NOSCRIPT are sent again as
//  EVAL (pipelined too). Each read waits at most command_timeout_ms. 0 with
//  every reply set (possibly an error reply), or -errno when Redis was
//  unreachable or the connection failed mid-batch: then every reply is
//  NULL and the connection is dropped (some calls may have run).
int vz_redis_eval_batch(vz_redis_t *self, vz_redis_call_t *calls, size_t count);

#endif
