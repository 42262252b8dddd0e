/*  vz_log - structured JSON logging, one line per event on stderr
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A line: {"ts":"2026-11-22T03:09:16.123Z","level":"info","service":"broker",
 *  "request_id":"...","msg":"...", <fields>}. Fields are key/value string
 *  pairs. Values of sensitive keys (password, passwd, secret, token,
 *  authorization, cookie, api_key, apikey, private_key, ...: matched
 *  case-insensitively as a substring of the key) become "[redacted]", and
 *  e-mail addresses in any value or in msg are masked ("j***@example.com").
 *  Strings are JSON-escaped; control bytes become \u00XX.
 *
 *  The service name and level are set once at start by vz_log_init (the one
 *  piece of process-wide state in common/, written before any thread exists).
 *  vz_log_write is thread-safe (one write(2) per line). A vz_logbuf_t
 *  collects lines of a high-volume stream (the gateway's access log) and
 *  writes many with one write(2). Lines stay whole when stderr is a file
 *  opened O_APPEND (the supervisor's logs) or a pipe and a write fits in
 *  PIPE_BUF; a larger write to a pipe may be split by the kernel.
 */
#ifndef VZ_LOG_H
#define VZ_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { VZ_LOG_DEBUG = 0, VZ_LOG_INFO, VZ_LOG_WARN, VZ_LOG_ERROR } vz_log_level_t;

//  Set service name and minimum level. Call once from main before threads.
void vz_log_init(const char *service, vz_log_level_t level);

//  Parse "debug|info|warn|error"; returns 0 and sets *level, or -EINVAL.
int vz_log_level_parse(const char *text, vz_log_level_t *level);

//  True when a line at this level would be written.
bool vz_log_enabled(vz_log_level_t level);

//  Write one line. request_id may be NULL. The variadic part is key, value
//  pairs of const char * terminated by a single NULL key. Use the macros.
void vz_log_write(vz_log_level_t level, const char *request_id, const char *msg, ...);

//  A buffered sink: whole lines, formatted as vz_log_write formats them,
//  collected in a buffer of capacity bytes and written to stderr with one
//  write(2) when the next line would not fit or on vz_logbuf_flush (the
//  owner calls it from a timer, so lines are at most one period late).
//  Lines still in the buffer are lost if the process is killed; destroy
//  flushes. Every call is thread-safe; a writer waits on write(2) only when
//  it filled the buffer (or flushes), never on another thread's write in
//  progress unless the second buffer fills meanwhile (then it waits: no
//  line is dropped). The level check is the same as vz_log_write's.
typedef struct vz_logbuf_t vz_logbuf_t;

//  capacity 0 = no buffer: returns NULL, and vz_logbuf_write(NULL, ...)
//  writes each line at once, like vz_log_write.
vz_logbuf_t *vz_logbuf_new(size_t capacity);
//  Flushes, then frees; idempotent, nulls *self_p.
void vz_logbuf_destroy(vz_logbuf_t **self_p);
//  Write out the lines collected so far; NULL is a no-op.
void vz_logbuf_flush(vz_logbuf_t *self);
//  Add one line (same arguments as vz_log_write after self). self may be NULL.
void vz_logbuf_write(vz_logbuf_t *self, vz_log_level_t level, const char *request_id,
                     const char *msg, ...);

//  Format one line into buf (size n) without writing it; returns the length
//  (excluding NUL) or a negative value when it did not fit. For tests.
int vz_log_format(char *buf, size_t n, vz_log_level_t level, const char *request_id,
                  const char *msg, const char *const *kv, size_t kv_count);

//  Longest value (in input bytes) written into a line; longer values are cut
//  at a UTF-8 boundary and end in "...[truncated]".
#define VZ_LOG_VALUE_MAX 2048

//  Write text as the body of a JSON string (no quotes) into buf (size n):
//  '"' and '\\' escaped, control bytes as \u00XX, bytes that are not valid
//  UTF-8 as \ufffd. No redaction or masking. Returns the length (excluding
//  NUL) or -ENOSPC when it did not fit. Thread-safe.
int vz_json_escape(char *buf, size_t n, const char *text);

//  The level check comes before any argument formatting (Redis serverLog).
//  buf NULL writes the line at once (vz_logbuf_write).
#define vz_log_to_(buf, lvl, rid, ...)                                                             \
    do {                                                                                           \
        if (vz_log_enabled(lvl))                                                                   \
            vz_logbuf_write(buf, lvl, rid, __VA_ARGS__, (const char *)0);                          \
    } while (0)
#define vz_log_(lvl, rid, ...)    vz_log_to_(NULL, lvl, rid, __VA_ARGS__)
#define vz_info_to(buf, rid, ...) vz_log_to_(buf, VZ_LOG_INFO, rid, __VA_ARGS__)
#define vz_debug(rid, ...) vz_log_(VZ_LOG_DEBUG, rid, __VA_ARGS__)
#define vz_info(rid, ...)  vz_log_(VZ_LOG_INFO, rid, __VA_ARGS__)
#define vz_warn(rid, ...)  vz_log_(VZ_LOG_WARN, rid, __VA_ARGS__)
#define vz_error(rid, ...) vz_log_(VZ_LOG_ERROR, rid, __VA_ARGS__)

#endif
