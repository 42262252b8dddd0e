/*  nt_mime - RFC 5322 / MIME messages as mail clients expect them
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_mime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nt_buf.h"

#define QP_LINE 76    //  RFC 2045: encoded lines at most 76 characters
#define B64_LINE 76   //  base64 characters per body line
#define WORD_BYTES 39 //  UTF-8 bytes per encoded word: 52 base64 chars, 64 with the frame
#define UNIQUE_MAX 64
#define CID_MAX 128
#define NAME_MAX_BYTES 255

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char s_hex[] = "0123456789ABCDEF";
static const char *const s_days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const s_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// --------------------------------------------------------------------------
//  Validation

static bool s_in(const char *text, size_t max, const char *extra)
{
    size_t n = strlen(text);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr(extra, c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

bool nt_mime_addr_valid(const char *addr)
{
    if (!addr)
        return false;
    size_t n = strlen(addr);
    const char *at = strchr(addr, '@');
    if (n == 0 || n > NT_MIME_ADDR_MAX || !at || at == addr || at[1] == '\0' || strchr(at + 1, '@'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>,;:()[]\\", c))
            return false;
    }
    //  The domain: dot-separated labels, none empty.
    const char *d = at + 1;
    if (d[0] == '.' || d[strlen(d) - 1] == '.' || strstr(d, ".."))
        return false;
    return true;
}

bool nt_mime_cid_valid(const char *cid)
{
    return cid && s_in(cid, CID_MAX, "._@-");
}

bool nt_mime_type_valid(const char *type)
{
    if (!type)
        return false;
    const char *slash = strchr(type, '/');
    if (!slash || slash == type || slash[1] == '\0' || strchr(slash + 1, '/') || strlen(type) > 127)
        return false;
    for (const char *p = type; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("!#$&-^_.+/", c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

//  True when text is printable ASCII (no controls, no DEL, no 8-bit).
static bool s_printable(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            return false;
    return true;
}

//  True when text holds a CR or LF (a header value must not).
static bool s_has_crlf(const char *text)
{
    return text && strpbrk(text, "\r\n") != NULL;
}

// --------------------------------------------------------------------------
//  Encoders

static void s_b64_block(nt_buf_t *buf, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        char out[4] = {s_b64[(v >> 18) & 63], s_b64[(v >> 12) & 63],
                       i + 1 < n ? s_b64[(v >> 6) & 63] : '=', i + 2 < n ? s_b64[v & 63] : '='};
        nt_buf_add(buf, out, 4);
    }
}

//  Base64 body: 57 input bytes make one 76-character line.
static void s_b64_body(nt_buf_t *buf, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i += B64_LINE / 4 * 3) {
        size_t n = len - i < B64_LINE / 4 * 3 ? len - i : B64_LINE / 4 * 3;
        s_b64_block(buf, data + i, n);
        nt_buf_add(buf, "\r\n", 2);
    }
}

//  Quoted-printable: literal for printable ASCII except '='; space and tab
//  literal unless they end a line; a '.' starting a line is encoded too
//  (an SMTP server that strips dot-stuffing wrongly cannot eat it). A soft
//  break "=" CRLF keeps every line within 76 characters.
static void s_qp(nt_buf_t *buf, const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t col = 0;
    while (*p) {
        if (*p == '\r' && p[1] == '\n')
            p++;
        if (*p == '\n') {
            nt_buf_add(buf, "\r\n", 2);
            col = 0;
            p++;
            continue;
        }
        unsigned char c = *p;
        bool line_end = p[1] == '\0' || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
        bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !line_end);
        if (c == '.' && col == 0)
            literal = false;
        char tok[3] = {(char)c, 0, 0};
        size_t toklen = 1;
        if (!literal) {
            tok[0] = '=';
            tok[1] = s_hex[c >> 4];
            tok[2] = s_hex[c & 15];
            toklen = 3;
        }
        //  Room for the token and, unless the line ends here, a soft break "=".
        size_t room = line_end ? QP_LINE : QP_LINE - 1;
        if (col + toklen > room) {
            nt_buf_add(buf, "=\r\n", 3);
            col = 0;
            if (c == '.') {
                tok[0] = '=', tok[1] = '2', tok[2] = 'E', toklen = 3;
            }
        }
        nt_buf_add(buf, tok, toklen);
        col += toklen;
        p++;
    }
    if (col > 0)
        nt_buf_add(buf, "\r\n", 2);
}

static int s_b64_value(char c)
{
    const char *p = c ? strchr(s_b64, c) : NULL;
    return p ? (int)(p - s_b64) : -1;
}

int nt_mime_b64_decode(const char *text, size_t text_len, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (text_len % 4 != 0)
        return -EINVAL;
    uint8_t *data = malloc(text_len / 4 * 3 + 1);
    if (!data)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < text_len; i += 4) {
        bool last = i + 4 == text_len;
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            //  Padding only at the end of the last group ("xx==" or "xxx=").
            if (c == '=' && last && k >= 2 && (k == 3 || text[i + 3] == '=')) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = s_b64_value(c);
            if (v[k] < 0 || pad) {
                free(data);
                return -EINVAL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        data[n++] = (uint8_t)(w >> 16);
        if (pad < 2)
            data[n++] = (uint8_t)(w >> 8);
        if (pad < 1)
            data[n++] = (uint8_t)w;
    }
    *out = data;
    *len = n;
    return 0;
}

char *nt_mime_qp(const char *text)
{
    nt_buf_t buf = {0};
    s_qp(&buf, text);
    return nt_buf_take(&buf, NULL);
}

//  Encoded words, first on the current line, then each on a folded line.
static void s_words(nt_buf_t *buf, const char *text)
{
    const uint8_t *p = (const uint8_t *)text;
    size_t left = strlen(text);
    bool first = true;
    while (left > 0 || first) {
        size_t n = left < WORD_BYTES ? left : WORD_BYTES;
        //  Never split a UTF-8 sequence: back up to a lead byte.
        while (n < left && n > 0 && (p[n] & 0xC0) == 0x80)
            n--;
        if (n == 0)
            n = left < WORD_BYTES ? left : WORD_BYTES;
        if (!first)
            nt_buf_add(buf, "\r\n ", 3);
        nt_buf_adds(buf, "=?UTF-8?B?");
        s_b64_block(buf, p, n);
        nt_buf_adds(buf, "?=");
        p += n;
        left -= n;
        first = false;
    }
}

char *nt_mime_encode_words(const char *text)
{
    nt_buf_t buf = {0};
    s_words(&buf, text);
    return nt_buf_take(&buf, NULL);
}

//  A subject: as is when short printable ASCII that cannot be mistaken for
//  an encoded word, else encoded words.
static void s_unstructured(nt_buf_t *buf, const char *text)
{
    if (s_printable(text) && strlen(text) <= 66 && !strstr(text, "=?"))
        nt_buf_adds(buf, text);
    else
        s_words(buf, text);
}

//  A display name: a quoted string when printable ASCII, else encoded words.
static void s_display_name(nt_buf_t *buf, const char *name)
{
    if (s_printable(name) && strlen(name) <= 60 && !strstr(name, "=?")) {
        nt_buf_add(buf, "\"", 1);
        for (const char *p = name; *p; p++) {
            if (*p == '"' || *p == '\\')
                nt_buf_add(buf, "\\", 1);
            nt_buf_add(buf, p, 1);
        }
        nt_buf_add(buf, "\"", 1);
    } else
        s_words(buf, name);
}

static void s_mailbox(nt_buf_t *buf, const nt_addr_t *a)
{
    if (a->name && *a->name) {
        s_display_name(buf, a->name);
        nt_buf_add(buf, " ", 1);
    }
    nt_buf_addf(buf, "<%s>", a->addr);
}

//  File name parameter: quoted when a safe ASCII token, else RFC 2231
//  (charset''percent-encoded).
static void s_filename(nt_buf_t *buf, const char *param, const char *name)
{
    if (s_in(name, 70, " ._-+()")) {
        nt_buf_addf(buf, "%s=\"%s\"", param, name);
        return;
    }
    nt_buf_addf(buf, "%s*=UTF-8''", param);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(".-_", *p))
            nt_buf_add(buf, p, 1);
        else
            nt_buf_addf(buf, "%%%c%c", s_hex[*p >> 4], s_hex[*p & 15]);
    }
}

// --------------------------------------------------------------------------
//  Structure

typedef struct {
    const nt_mail_t *mail; //  the input
    nt_buf_t *buf;         //  the output
    int boundaries;        //  boundaries used so far
} s_ctx_t;

static void s_boundary(s_ctx_t *ctx, char *out, size_t n)
{
    snprintf(out, n, "=_vz_%s_%d", ctx->mail->unique, ++ctx->boundaries);
}

static void s_text_part(s_ctx_t *ctx, const char *subtype, const char *body)
{
    nt_buf_addf(ctx->buf,
                "Content-Type: text/%s; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                subtype);
    s_qp(ctx->buf, body);
}

//  The text, the HTML, or both as multipart/alternative (text first: a
//  client shows the last part it understands).
static void s_alternative(s_ctx_t *ctx)
{
    const nt_mail_t *m = ctx->mail;
    if (!m->html) {
        s_text_part(ctx, "plain", m->text);
        return;
    }
    if (!m->text) {
        s_text_part(ctx, "html", m->html);
        return;
    }
    char b[96];
    s_boundary(ctx, b, sizeof b);
    nt_buf_addf(ctx->buf, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", b);
    nt_buf_addf(ctx->buf, "--%s\r\n", b);
    s_text_part(ctx, "plain", m->text);
    nt_buf_addf(ctx->buf, "--%s\r\n", b);
    s_text_part(ctx, "html", m->html);
    nt_buf_addf(ctx->buf, "--%s--\r\n", b);
}

static void s_binary_part(s_ctx_t *ctx, const nt_part_t *part, bool inline_part)
{
    nt_buf_addf(ctx->buf, "Content-Type: %s;\r\n ", part->type);
    s_filename(ctx->buf, "name", part->name);
    nt_buf_adds(ctx->buf, "\r\nContent-Transfer-Encoding: base64\r\n");
    if (inline_part)
        nt_buf_addf(ctx->buf, "Content-ID: <%s>\r\n", part->content_id);
    nt_buf_addf(ctx->buf, "Content-Disposition: %s;\r\n ", inline_part ? "inline" : "attachment");
    s_filename(ctx->buf, "filename", part->name);
    nt_buf_adds(ctx->buf, "\r\n\r\n");
    s_b64_body(ctx->buf, part->data, part->len);
}

static bool s_is_inline(const nt_part_t *part)
{
    return part->content_id && *part->content_id;
}

//  The bodies plus inline parts as multipart/related when there are any.
static void s_related(s_ctx_t *ctx, size_t inline_count)
{
    const nt_mail_t *m = ctx->mail;
    if (inline_count == 0) {
        s_alternative(ctx);
        return;
    }
    char b[96];
    s_boundary(ctx, b, sizeof b);
    nt_buf_addf(ctx->buf, "Content-Type: multipart/related;\r\n boundary=\"%s\"\r\n\r\n", b);
    nt_buf_addf(ctx->buf, "--%s\r\n", b);
    s_alternative(ctx);
    for (size_t i = 0; i < m->part_count; i++)
        if (s_is_inline(&m->parts[i])) {
            nt_buf_addf(ctx->buf, "--%s\r\n", b);
            s_binary_part(ctx, &m->parts[i], true);
        }
    nt_buf_addf(ctx->buf, "--%s--\r\n", b);
}

static bool s_valid(const nt_mail_t *m)
{
    if (!m->subject || s_has_crlf(m->subject) || (!m->text && !m->html) || m->to_count == 0 ||
        !s_in(m->unique ? m->unique : "", UNIQUE_MAX, "._-") ||
        !s_in(m->domain ? m->domain : "", 253, ".-"))
        return false;
    if (!nt_mime_addr_valid(m->from.addr) || s_has_crlf(m->from.name))
        return false;
    for (size_t i = 0; i < m->to_count; i++)
        if (!nt_mime_addr_valid(m->to[i].addr) || s_has_crlf(m->to[i].name) ||
            (m->to[i].name && strlen(m->to[i].name) > NAME_MAX_BYTES))
            return false;
    for (size_t i = 0; i < m->part_count; i++) {
        const nt_part_t *p = &m->parts[i];
        if (!p->name || !*p->name || strlen(p->name) > NAME_MAX_BYTES || s_has_crlf(p->name) ||
            !nt_mime_type_valid(p->type) || (p->len && !p->data) ||
            (s_is_inline(p) && !nt_mime_cid_valid(p->content_id)))
            return false;
    }
    return true;
}

int nt_mime_build(const nt_mail_t *mail, char **out, size_t *len)
{
    *out = NULL;
    if (!s_valid(mail))
        return -EINVAL;
    nt_buf_t buf = {0};
    s_ctx_t ctx = {mail, &buf, 0};

    struct tm tm;
    time_t t = (time_t)mail->date_s;
    gmtime_r(&t, &tm);
    nt_buf_addf(&buf, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", s_days[tm.tm_wday],
                tm.tm_mday, s_months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
    nt_buf_adds(&buf, "From: ");
    s_mailbox(&buf, &mail->from);
    nt_buf_adds(&buf, "\r\nTo: ");
    for (size_t i = 0; i < mail->to_count; i++) {
        if (i > 0)
            nt_buf_adds(&buf, ",\r\n ");
        s_mailbox(&buf, &mail->to[i]);
    }
    nt_buf_adds(&buf, "\r\nSubject: ");
    s_unstructured(&buf, mail->subject);
    nt_buf_addf(&buf, "\r\nMessage-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n", mail->unique,
                mail->domain);

    size_t inline_count = 0, attach_count = 0;
    for (size_t i = 0; i < mail->part_count; i++)
        s_is_inline(&mail->parts[i]) ? inline_count++ : attach_count++;
    if (attach_count == 0)
        s_related(&ctx, inline_count);
    else {
        char b[96];
        s_boundary(&ctx, b, sizeof b);
        nt_buf_addf(&buf, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n", b);
        nt_buf_addf(&buf, "--%s\r\n", b);
        s_related(&ctx, inline_count);
        for (size_t i = 0; i < mail->part_count; i++)
            if (!s_is_inline(&mail->parts[i])) {
                nt_buf_addf(&buf, "--%s\r\n", b);
                s_binary_part(&ctx, &mail->parts[i], false);
            }
        nt_buf_addf(&buf, "--%s--\r\n", b);
    }
    *out = nt_buf_take(&buf, len);
    return 0;
}
