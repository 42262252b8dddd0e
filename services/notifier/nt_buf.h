/*  nt_buf - a growing byte buffer for the notifier's builders
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The MIME builder, the template renderer and the chat payloads append
 *  text of unknown length; this is the one buffer they share. Out of
 *  memory aborts (STYLE rule 6), so appends cannot fail. The data is
 *  always NUL-terminated (not counted in len). One thread at a time.
 */
#ifndef NT_BUF_H
#define NT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; //  bytes, NUL-terminated; NULL until the first append
    size_t len; //  bytes used
    size_t cap; //  bytes allocated
} nt_buf_t;

//  Append n bytes / a C string / printf-formatted text.
void nt_buf_add(nt_buf_t *self, const void *data, size_t n);
void nt_buf_adds(nt_buf_t *self, const char *text);
void nt_buf_addf(nt_buf_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
//  Take the data (caller frees; "" when empty) and reset the buffer.
char *nt_buf_take(nt_buf_t *self, size_t *len_p);
//  Free the data and reset the buffer.
void nt_buf_free(nt_buf_t *self);

#endif
