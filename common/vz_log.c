/*  vz_log - structured JSON logging, one line per event on stderr
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Every string that reaches a line passes one escaper that keeps the line
 *  valid JSON whatever the bytes (control bytes, quotes, broken UTF-8), so
 *  a log shipper never chokes on a hostile value we chose to log.
 */
#include "vz_log.h"
#include "vz_common.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define S_LINE_MAX 16384 //  one line as written; larger lines drop fields
#define S_KEY_MAX 128    //  longest key written
#define S_PAIRS_MAX 32   //  key/value pairs taken from one call

//  The one piece of process-wide state in common/ (see vz_log.h): written
//  by vz_log_init before any thread exists, read-only afterwards.
static char s_service[VZ_NAME_MAX] = "vizmesh";
static vz_log_level_t s_level = VZ_LOG_INFO;

static const char *const s_level_names[] = {"debug", "info", "warn", "error"};

//  Substrings of a key (lower-cased) whose value must never be logged.
static const char *const s_sensitive[] = {
    "password",      "passwd",     "passphrase",  "secret",     "token",
    "authorization", "cookie",     "api_key",     "apikey",     "api-key",
    "private_key",   "privatekey", "private-key", "credential", "jwt",
};

typedef struct {
    char *buf;  //  destination
    size_t cap; //  its size
    size_t len; //  bytes written so far (buf[len] is NUL while !full)
    bool full;  //  something did not fit
} s_out_t;

static void s_put(s_out_t *out, const char *data, size_t len)
{
    if (out->full || out->len + len >= out->cap) {
        out->full = true;
        return;
    }
    memcpy(out->buf + out->len, data, len);
    out->len += len;
    out->buf[out->len] = '\0';
}

static void s_puts(s_out_t *out, const char *text)
{
    s_put(out, text, strlen(text));
}

static void s_escape(s_out_t *out, const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t run = i;
        //  Copy plain ASCII in one go; it is the common case.
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            s_put(out, text + i, run - i);
            i = run;
            continue;
        }
        if (c == '"')
            s_puts(out, "\\\"");
        else if (c == '\\')
            s_puts(out, "\\\\");
        else if (c == '\n')
            s_puts(out, "\\n");
        else if (c == '\r')
            s_puts(out, "\\r");
        else if (c == '\t')
            s_puts(out, "\\t");
        else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            s_puts(out, esc);
        } else {
            size_t len = vz_utf8_seq(p + i, n - i);
            if (len == 0) {
                s_puts(out, "\\ufffd");
                len = 1;
            } else
                s_put(out, text + i, len);
            i += len;
            continue;
        }
        i++;
    }
}

static bool s_is_local(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static bool s_is_domain(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-';
}

//  Escape text, masking e-mail addresses: the local part keeps its first
//  character, so "john@example.com" becomes "j***@example.com". Local-part
//  characters are ASCII, so runs never split a UTF-8 sequence.
static void s_escape_masked(s_out_t *out, const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        if (!s_is_local(p[i])) {
            while (j < n && !s_is_local(p[j]))
                j++;
            s_escape(out, text + i, j - i);
            i = j;
            continue;
        }
        while (j < n && s_is_local(p[j]))
            j++;
        if (j < n && p[j] == '@') {
            size_t end = j + 1;
            while (end < n && s_is_domain(p[end]))
                end++;
            while (end > j + 1 && (p[end - 1] == '.' || p[end - 1] == '-'))
                end--;
            //  A domain needs an inner dot: "a@b" or "a@.b" is not an address.
            bool dotted = false;
            for (size_t d = j + 2; d + 1 < end; d++)
                dotted = dotted || p[d] == '.';
            if (dotted && p[j + 1] != '.') {
                s_put(out, text + i, 1);
                s_puts(out, "***@");
                s_escape(out, text + j + 1, end - j - 1);
                i = end;
                continue;
            }
        }
        s_escape(out, text + i, j - i);
        i = j;
    }
}

//  Write a quoted string, cut at max input bytes on a UTF-8 boundary.
static void s_string(s_out_t *out, const char *text, size_t max, bool mask)
{
    size_t len = strnlen(text, max + 1);
    bool cut = len > max;
    if (cut) {
        len = max;
        //  Back up over continuation bytes so no character is split.
        for (int k = 0; k < 3 && len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80; k++)
            len--;
    }
    s_puts(out, "\"");
    if (mask)
        s_escape_masked(out, text, len);
    else
        s_escape(out, text, len);
    if (cut)
        s_puts(out, "...[truncated]");
    s_puts(out, "\"");
}

static bool s_sensitive_key(const char *key)
{
    char lower[S_KEY_MAX + 1];
    size_t i;
    for (i = 0; key[i] && i < S_KEY_MAX; i++)
        lower[i] = (char)tolower((unsigned char)key[i]);
    lower[i] = '\0';
    for (size_t k = 0; k < sizeof s_sensitive / sizeof s_sensitive[0]; k++)
        if (strstr(lower, s_sensitive[k]))
            return true;
    return false;
}

void vz_log_init(const char *service, vz_log_level_t level)
{
    assert(level >= VZ_LOG_DEBUG && level <= VZ_LOG_ERROR);
    vz_strlcpy(s_service, service ? service : "vizmesh", sizeof s_service);
    s_level = level;
}

int vz_log_level_parse(const char *text, vz_log_level_t *level)
{
    if (!text)
        return -EINVAL;
    for (int i = VZ_LOG_DEBUG; i <= VZ_LOG_ERROR; i++)
        if (strcasecmp(text, s_level_names[i]) == 0) {
            *level = (vz_log_level_t)i;
            return 0;
        }
    if (strcasecmp(text, "warning") == 0) {
        *level = VZ_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

bool vz_log_enabled(vz_log_level_t level)
{
    return level >= s_level;
}

int vz_json_escape(char *buf, size_t n, const char *text)
{
    assert(buf && n > 0 && text);
    s_out_t out = {buf, n, 0, false};
    buf[0] = '\0';
    s_escape(&out, text, strlen(text));
    return out.full ? -ENOSPC : (int)out.len;
}

//  RFC 3339 UTC time with milliseconds into out (>= 25 bytes). The
//  seconds part is formatted once per second and thread (gmtime_r and
//  strftime cost more than the rest of a short line).
static void s_stamp(char *out)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[24];
    static _Thread_local size_t cached_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        cached_len = strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    memcpy(out, cached, cached_len);
    long ms = ts.tv_nsec / 1000000;
    char *p = out + cached_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = '\0';
}

int vz_log_format(char *buf, size_t n, vz_log_level_t level, const char *request_id,
                  const char *msg, const char *const *kv, size_t kv_count)
{
    assert(buf && n > 0 && msg);
    assert(level >= VZ_LOG_DEBUG && level <= VZ_LOG_ERROR);
    s_out_t out = {buf, n, 0, false};
    buf[0] = '\0';

    char stamp[32];
    s_stamp(stamp);

    s_puts(&out, "{\"ts\":\"");
    s_puts(&out, stamp);
    s_puts(&out, "\",\"level\":\"");
    s_puts(&out, s_level_names[level]);
    s_puts(&out, "\",\"service\":");
    s_string(&out, s_service, VZ_NAME_MAX, false);
    if (request_id) {
        s_puts(&out, ",\"request_id\":");
        s_string(&out, request_id, VZ_ID_MAX, true);
    }
    s_puts(&out, ",\"msg\":");
    s_string(&out, msg, VZ_LOG_VALUE_MAX, true);
    for (size_t i = 0; i + 1 < kv_count; i += 2) {
        const char *key = kv[i] ? kv[i] : "(null)";
        s_puts(&out, ",");
        s_string(&out, key, S_KEY_MAX, false);
        s_puts(&out, ":");
        if (!kv[i + 1])
            s_puts(&out, "null");
        else if (s_sensitive_key(key))
            s_puts(&out, "\"[redacted]\"");
        else
            s_string(&out, kv[i + 1], VZ_LOG_VALUE_MAX, true);
    }
    s_puts(&out, "}");
    return out.full ? -ENOSPC : (int)out.len;
}

//  Format one line with its '\n' into line (S_LINE_MAX bytes) from the
//  key/value pairs in ap; returns its length, or 0 when even the fallback
//  did not fit.
static size_t s_vline(char *line, vz_log_level_t level, const char *request_id, const char *msg,
                      va_list ap)
{
    const char *kv[2 * S_PAIRS_MAX] = {0};
    size_t count = 0;
    for (const char *key = va_arg(ap, const char *); key; key = va_arg(ap, const char *)) {
        const char *value = va_arg(ap, const char *);
        if (count < 2 * S_PAIRS_MAX) {
            kv[count++] = key;
            kv[count++] = value;
        }
    }
    //  A line too long for the buffer loses fields from the end rather than
    //  being cut mid-string; the message itself always survives.
    int len = vz_log_format(line, S_LINE_MAX - 1, level, request_id, msg, kv, count);
    while (len < 0 && count > 0) {
        count -= 2;
        len = vz_log_format(line, S_LINE_MAX - 1, level, request_id, msg, kv, count);
    }
    if (len < 0)
        len = vz_log_format(line, S_LINE_MAX - 1, level, NULL, "log line too long", NULL, 0);
    if (len < 0)
        return 0;
    line[len++] = '\n';
    return (size_t)len;
}

//  Whole lines to stderr; a failed write loses them (logging never blocks
//  the caller on an error of its own).
static void s_write_all(const char *data, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t rc = write(STDERR_FILENO, data + off, len - off);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return;
        off += (size_t)rc;
    }
}

// --------------------------------------------------------------------------
//  Buffered sink

//  Two locks so that no writer waits on I/O it did not cause: lock guards
//  the buffer (held for a memcpy), write_lock keeps what leaves in order
//  (held across write(2)). Order: write_lock, then lock.
struct vz_logbuf_t {
    pthread_mutex_t lock;       //  guards data and len
    pthread_mutex_t write_lock; //  guards spare; one writer to stderr at a time
    char *data;                 //  whole lines not yet written
    size_t len;                 //  bytes used in data
    char *spare;                //  the other buffer: filled ones leave through it
    size_t cap;                 //  size of each
};

vz_logbuf_t *vz_logbuf_new(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    vz_logbuf_t *self = calloc(1, sizeof *self);
    assert(self);
    self->data = malloc(capacity);
    self->spare = malloc(capacity);
    assert(self->data && self->spare);
    self->cap = capacity;
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->write_lock, NULL);
    return self;
}

void vz_logbuf_destroy(vz_logbuf_t **self_p)
{
    assert(self_p);
    vz_logbuf_t *self = *self_p;
    if (!self)
        return;
    vz_logbuf_flush(self);
    pthread_mutex_destroy(&self->lock);
    pthread_mutex_destroy(&self->write_lock);
    free(self->data);
    free(self->spare);
    free(self);
    *self_p = NULL;
}

//  Swap the filled buffer out and write it; the caller holds write_lock,
//  so writers keep appending to the other buffer meanwhile.
static void s_swap_out(vz_logbuf_t *self)
{
    pthread_mutex_lock(&self->lock);
    char *full = self->data;
    size_t len = self->len;
    self->data = self->spare;
    self->len = 0;
    self->spare = full;
    pthread_mutex_unlock(&self->lock);
    s_write_all(full, len);
}

void vz_logbuf_flush(vz_logbuf_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->write_lock);
    s_swap_out(self);
    pthread_mutex_unlock(&self->write_lock);
}

//  One line to self's buffer, or straight to stderr when self is NULL.
static void s_vwrite(vz_logbuf_t *self, vz_log_level_t level, const char *request_id,
                     const char *msg, va_list ap)
{
    if (!vz_log_enabled(level))
        return;
    char line[S_LINE_MAX];
    size_t len = s_vline(line, level, request_id, msg, ap);
    if (!self) {
        s_write_all(line, len);
        return;
    }
    //  Formatted outside the locks. A line that fits is copied under lock;
    //  when it does not, this writer swaps the buffer out and writes it (a
    //  line longer than the buffer follows it directly), then tries again.
    for (;;) {
        pthread_mutex_lock(&self->lock);
        if (self->len + len <= self->cap) {
            memcpy(self->data + self->len, line, len);
            self->len += len;
            pthread_mutex_unlock(&self->lock);
            return;
        }
        pthread_mutex_unlock(&self->lock);
        pthread_mutex_lock(&self->write_lock);
        s_swap_out(self);
        bool oversized = len > self->cap;
        if (oversized)
            s_write_all(line, len);
        pthread_mutex_unlock(&self->write_lock);
        if (oversized)
            return;
    }
}

void vz_logbuf_write(vz_logbuf_t *self, vz_log_level_t level, const char *request_id,
                     const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    s_vwrite(self, level, request_id, msg, ap);
    va_end(ap);
}

void vz_log_write(vz_log_level_t level, const char *request_id, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    s_vwrite(NULL, level, request_id, msg, ap);
    va_end(ap);
}
