/*  nt_mime - RFC 5322 / MIME messages as mail clients expect them
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A pure module: no I/O, no clock, no randomness. The caller passes the
 *  date and a unique token (the notification id), so one input always
 *  gives the same bytes and the tests can compare them.
 *
 *  Shape of a message (each level only when needed):
 *    multipart/mixed                  when there are attachments
 *      multipart/related              when there are inline parts (cid:)
 *        multipart/alternative        when there are both text and HTML
 *          text/plain; charset=UTF-8  quoted-printable
 *          text/html;  charset=UTF-8  quoted-printable
 *        image/png (Content-ID)       base64, disposition inline
 *      application/pdf                base64, disposition attachment
 *  Lines end in CRLF and never exceed 76 characters in bodies (soft
 *  breaks, 76-column base64) nor 78 in headers built here; boundaries
 *  start with "=_", which neither encoding can produce. Non-ASCII subjects
 *  and display names become RFC 2047 encoded words (UTF-8, B), cut on
 *  character boundaries; non-ASCII file names use RFC 2231 (filename*).
 *
 *  No header injection: every header value is either validated
 *  (addresses, content ids, media types: a fixed alphabet) or encoded
 *  (subjects, names), so a CR or LF in any input can never start a
 *  header line of its own. Input that cannot be made safe is refused.
 *
 *  Threads: no state; any thread.
 */
#ifndef NT_MIME_H
#define NT_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NT_MIME_ADDR_MAX 254 //  longest address (RFC 5321 path limit)

//  A mailbox: display name (UTF-8, may be NULL or "") and address.
typedef struct {
    const char *name;
    const char *addr;
} nt_addr_t;

//  An attachment, or an inline part when content_id is set.
typedef struct {
    const char *name;       //  file name, UTF-8 (required)
    const char *type;       //  media type, "type/subtype" (required)
    const uint8_t *data;    //  content (borrowed)
    size_t len;             //  bytes in data
    const char *content_id; //  non-empty: inline, referenced from HTML as cid:<id>
} nt_part_t;

typedef struct {
    nt_addr_t from;         //  sender
    const nt_addr_t *to;    //  recipients (at least one)
    size_t to_count;        //  entries in to
    const char *subject;    //  UTF-8, one line
    const char *text;       //  text/plain body or NULL
    const char *html;       //  text/html body or NULL (one of text, html required)
    const nt_part_t *parts; //  attachments and inline parts, any order
    size_t part_count;      //  entries in parts
    const char *unique;     //  [A-Za-z0-9._-]{1,64}: Message-ID local part and boundaries
    const char *domain;     //  Message-ID domain ([A-Za-z0-9.-])
    int64_t date_s;         //  Date header, Unix seconds
} nt_mail_t;

//  True for an address this module will write: one '@' with a non-empty
//  local part and domain, printable ASCII without spaces, quotes, angle
//  brackets, commas, semicolons, parentheses or backslashes, at most
//  NT_MIME_ADDR_MAX bytes. (Quoted local parts and SMTPUTF8 are refused.)
bool nt_mime_addr_valid(const char *addr);

//  True for a content id: [A-Za-z0-9._@-]{1,128}.
bool nt_mime_cid_valid(const char *cid);

//  True for a media type "type/subtype" of RFC 6838 restricted-name
//  characters (no parameters).
bool nt_mime_type_valid(const char *type);

//  Build the message. 0 and *out (heap, caller frees, NUL-terminated,
//  *len bytes), or -EINVAL when an input is refused (bad address, CR/LF in
//  a subject or name, bad content id or type, no body, unique or domain
//  not of their alphabet); *out is then NULL.
int nt_mime_build(const nt_mail_t *mail, char **out, size_t *len);

//  Append text as RFC 2047 encoded words ("=?UTF-8?B?...?=") folded with
//  CRLF SP, each word at most 64 characters, never cutting a UTF-8
//  sequence. For tests and for other headers. Returns a heap string.
char *nt_mime_encode_words(const char *text);

//  Strict base64 (RFC 4648 §4, padded, no whitespace) of text into *out
//  (heap, caller frees) and *len. 0, or -EINVAL for anything else.
int nt_mime_b64_decode(const char *text, size_t text_len, uint8_t **out, size_t *len);

//  Quoted-printable (RFC 2045 §6.7) of text with CRLF line breaks ("\n" or
//  "\r\n" in the input are hard breaks); lines at most 76 characters.
//  Returns a heap string.
char *nt_mime_qp(const char *text);

#endif
