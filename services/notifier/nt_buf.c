/*  nt_buf - a growing byte buffer for the notifier's builders
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_reserve(nt_buf_t *self, size_t more)
{
    if (self->len + more + 1 <= self->cap)
        return;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < self->len + more + 1)
        cap *= 2;
    char *data = realloc(self->data, cap);
    if (!data)
        abort();
    self->data = data;
    self->cap = cap;
}

void nt_buf_add(nt_buf_t *self, const void *data, size_t n)
{
    s_reserve(self, n);
    if (n)
        memcpy(self->data + self->len, data, n);
    self->len += n;
    self->data[self->len] = '\0';
}

void nt_buf_adds(nt_buf_t *self, const char *text)
{
    nt_buf_add(self, text, strlen(text));
}

void nt_buf_addf(nt_buf_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        abort();
    s_reserve(self, (size_t)n);
    vsnprintf(self->data + self->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    self->len += (size_t)n;
}

char *nt_buf_take(nt_buf_t *self, size_t *len_p)
{
    if (!self->data)
        nt_buf_add(self, "", 0);
    char *out = self->data;
    if (len_p)
        *len_p = self->len;
    *self = (nt_buf_t){0};
    return out;
}

void nt_buf_free(nt_buf_t *self)
{
    free(self->data);
    *self = (nt_buf_t){0};
}
