/*  vz_redis - one hiredis connection with short timeouts and reconnection
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

//  url: redis://host:port[/db]. Does not connect yet. NULL on a bad URL
//  (errno EINVAL).
vz_redis_t *vz_redis_new(const char *url, int connect_timeout_ms, int command_timeout_ms,
                         int retry_ms);
void vz_redis_destroy(vz_redis_t **self_p);

//  True when the last command reached Redis (or a fresh connect succeeded).
bool vz_redis_up(const vz_redis_t *self);

//  Connect now if not connected (respecting retry_ms). 0 or -errno.
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

#endif
