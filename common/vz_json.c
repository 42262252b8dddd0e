/*  vz_json - a small, strict JSON (RFC 8259) parser and writer
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The parser is recursive descent bounded by max_depth. Nodes live in an
 *  arena of chunks so pointers handed out stay valid; the children of a
 *  container are gathered on a scratch vector while it is parsed and copied
 *  into the arena once its size is known.
 */
#include "vz_json.h"
#include "vz_common.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const vz_json_limits_t vz_json_limits_default = {
    .max_size = 1024 * 1024,
    .max_depth = 32,
    .max_string = 64 * 1024,
    .max_members = 4096,
    .max_nodes = 65536,
};

struct vz_json_value_t {
    vz_json_type_t type;    //  which of the fields below is meaningful
    bool flag;              //  BOOL value
    bool is_int;            //  NUMBER without fraction/exponent that fits int64
    int64_t integer;        //  NUMBER as int64 when is_int
    double real;            //  NUMBER as double (always)
    const char *text;       //  STRING bytes, NUL-terminated (arena)
    size_t len;             //  STRING length, or ARRAY/OBJECT member count
    vz_json_value_t *items; //  ARRAY/OBJECT children (arena), len of them
    const char **keys;      //  OBJECT keys (arena), len of them
};

typedef struct s_chunk_t {
    struct s_chunk_t *next; //  older chunk
    size_t used;            //  bytes handed out
    size_t size;            //  capacity of data
    max_align_t data[];     //  storage
} s_chunk_t;

struct vz_json_t {
    s_chunk_t *chunks;    //  arena, newest first
    vz_json_value_t root; //  the document's value
};

typedef struct {
    const uint8_t *p;        //  cursor
    const uint8_t *start;    //  input start (offsets in errors)
    const uint8_t *end;      //  input end
    vz_json_limits_t limits; //  in force
    size_t nodes;            //  values created so far
    vz_json_t *doc;          //  arena owner
    const char *reason;      //  first error, static text
    char *scratch;           //  string unescape buffer, max_string + 1
} s_parser_t;

// --------------------------------------------------------------------------
//  Arena

static void *s_alloc(vz_json_t *doc, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    s_chunk_t *chunk = doc->chunks;
    if (!chunk || chunk->size - chunk->used < n) {
        size_t size = n > 16384 ? n : 16384;
        chunk = malloc(sizeof *chunk + size);
        if (!chunk)
            return NULL;
        chunk->size = size;
        chunk->used = 0;
        chunk->next = doc->chunks;
        doc->chunks = chunk;
    }
    void *out = (char *)chunk->data + chunk->used;
    chunk->used += n;
    return out;
}

// --------------------------------------------------------------------------
//  UTF-8

bool vz_json_utf8_valid(const char *text, size_t len)
{
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        size_t n = vz_utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

// --------------------------------------------------------------------------
//  Parser

static bool s_fail(s_parser_t *self, const char *reason)
{
    if (!self->reason)
        self->reason = reason;
    return false;
}

static void s_skip_ws(s_parser_t *self)
{
    while (self->p < self->end &&
           (*self->p == ' ' || *self->p == '\t' || *self->p == '\n' || *self->p == '\r'))
        self->p++;
}

static int s_hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t s_put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

//  Parse a string at the cursor (on the opening quote) into the arena.
static bool s_string(s_parser_t *self, const char **text_p, size_t *len_p)
{
    assert(*self->p == '"');
    self->p++;
    size_t len = 0, max = self->limits.max_string;
    char *buf = self->scratch;
    while (true) {
        if (self->p >= self->end)
            return s_fail(self, "unterminated string");
        uint8_t c = *self->p;
        if (c == '"') {
            self->p++;
            break;
        }
        if (c < 0x20)
            return s_fail(self, "control character in string");
        if (c == '\\') {
            if (self->end - self->p < 2)
                return s_fail(self, "unterminated string");
            uint8_t e = self->p[1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (simple && e) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                if (len + 1 > max)
                    return s_fail(self, "string too long");
                buf[len++] = map[simple - "\"\\/bfnrt"];
                self->p += 2;
                continue;
            }
            if (e != 'u')
                return s_fail(self, "invalid escape");
            if (self->end - self->p < 6)
                return s_fail(self, "invalid \\u escape");
            int u = s_hex4(self->p + 2);
            if (u < 0)
                return s_fail(self, "invalid \\u escape");
            self->p += 6;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return s_fail(self, "lone surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                //  A high surrogate must be followed by an escaped low one.
                if (self->end - self->p < 6 || self->p[0] != '\\' || self->p[1] != 'u')
                    return s_fail(self, "lone surrogate");
                int low = s_hex4(self->p + 2);
                if (low < 0xDC00 || low > 0xDFFF)
                    return s_fail(self, "lone surrogate");
                self->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
            }
            if (cp == 0)
                return s_fail(self, "NUL in string");
            size_t need = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (len + need > max)
                return s_fail(self, "string too long");
            len += s_put_utf8(buf + len, cp);
            continue;
        }
        size_t n = vz_utf8_seq(self->p, (size_t)(self->end - self->p));
        if (n == 0)
            return s_fail(self, "invalid UTF-8");
        if (len + n > max)
            return s_fail(self, "string too long");
        memcpy(buf + len, self->p, n);
        len += n;
        self->p += n;
    }
    char *text = s_alloc(self->doc, len + 1);
    if (!text)
        return s_fail(self, "out of memory");
    memcpy(text, buf, len);
    text[len] = '\0';
    *text_p = text;
    *len_p = len;
    return true;
}

static bool s_number(s_parser_t *self, vz_json_value_t *out)
{
    const uint8_t *start = self->p, *p = self->p, *end = self->end;
    bool integral = true;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return s_fail(self, "invalid number");
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return s_fail(self, "invalid number");
    if (p < end && *p == '.') {
        integral = false;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return s_fail(self, "invalid number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integral = false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return s_fail(self, "invalid number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t len = (size_t)(p - start);
    if (len > 512)
        return s_fail(self, "number too long");
    char text[513];
    memcpy(text, start, len);
    text[len] = '\0';
    errno = 0;
    out->real = strtod(text, NULL);
    if (!isfinite(out->real))
        return s_fail(self, "number out of range");
    if (integral) {
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == 0) {
            out->is_int = true;
            out->integer = v;
        }
    }
    out->type = VZ_JSON_NUMBER;
    self->p = p;
    return true;
}

static bool s_literal(s_parser_t *self, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(self->end - self->p) < n || memcmp(self->p, word, n) != 0)
        return s_fail(self, "invalid literal");
    self->p += n;
    return true;
}

static int s_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

//  True when keys (n of them) has a repeated key. Small objects compare
//  pairwise; large ones sort a copy so a hostile object stays O(n log n).
static bool s_has_duplicate(const char **keys, size_t n, bool *oom)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (strcmp(keys[i], keys[j]) == 0)
                    return true;
        return false;
    }
    const char **copy = malloc(n * sizeof *copy);
    if (!copy) {
        *oom = true;
        return false;
    }
    memcpy(copy, keys, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, s_key_cmp);
    bool dup = false;
    for (size_t i = 1; i < n && !dup; i++)
        dup = strcmp(copy[i], copy[i - 1]) == 0;
    free(copy);
    return dup;
}

static bool s_value(s_parser_t *self, vz_json_value_t *out, size_t depth);

//  Array or object at the cursor. Children gather on a heap vector that
//  grows by doubling, then move into the arena.
static bool s_container(s_parser_t *self, vz_json_value_t *out, size_t depth, bool object)
{
    if (depth > self->limits.max_depth)
        return s_fail(self, "nesting too deep");
    self->p++;
    out->type = object ? VZ_JSON_OBJECT : VZ_JSON_ARRAY;
    vz_json_value_t *items = NULL;
    const char **keys = NULL;
    size_t count = 0, cap = 0;
    bool ok = true;
    char close = object ? '}' : ']';
    s_skip_ws(self);
    if (self->p < self->end && *self->p == close)
        self->p++;
    else
        while (ok) {
            if (count == self->limits.max_members) {
                ok = s_fail(self, "too many members");
                break;
            }
            if (count == cap) {
                cap = cap ? cap * 2 : 8;
                vz_json_value_t *grown = realloc(items, cap * sizeof *items);
                const char **kgrown = object ? realloc(keys, cap * sizeof *keys) : NULL;
                if (grown)
                    items = grown;
                if (kgrown)
                    keys = kgrown;
                if (!grown || (object && !kgrown)) {
                    ok = s_fail(self, "out of memory");
                    break;
                }
            }
            s_skip_ws(self);
            if (object) {
                size_t klen;
                if (self->p >= self->end || *self->p != '"') {
                    ok = s_fail(self, "expected a key");
                    break;
                }
                if (!(ok = s_string(self, &keys[count], &klen)))
                    break;
                s_skip_ws(self);
                if (self->p >= self->end || *self->p != ':') {
                    ok = s_fail(self, "expected ':'");
                    break;
                }
                self->p++;
                s_skip_ws(self);
            }
            if (!(ok = s_value(self, &items[count], depth + 1)))
                break;
            count++;
            s_skip_ws(self);
            if (self->p < self->end && *self->p == ',') {
                self->p++;
                continue;
            }
            if (self->p < self->end && *self->p == close) {
                self->p++;
                break;
            }
            ok = s_fail(self, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    if (ok && object) {
        bool oom = false;
        if (s_has_duplicate(keys, count, &oom))
            ok = s_fail(self, "duplicate key");
        else if (oom)
            ok = s_fail(self, "out of memory");
    }
    if (ok && count > 0) {
        out->items = s_alloc(self->doc, count * sizeof *items);
        out->keys = object ? s_alloc(self->doc, count * sizeof *keys) : NULL;
        if (!out->items || (object && !out->keys))
            ok = s_fail(self, "out of memory");
        else {
            memcpy(out->items, items, count * sizeof *items);
            if (object)
                memcpy(out->keys, keys, count * sizeof *keys);
        }
    }
    out->len = count;
    free(items);
    free(keys);
    return ok;
}

static bool s_value(s_parser_t *self, vz_json_value_t *out, size_t depth)
{
    memset(out, 0, sizeof *out);
    if (++self->nodes > self->limits.max_nodes)
        return s_fail(self, "too many values");
    s_skip_ws(self);
    if (self->p >= self->end)
        return s_fail(self, "unexpected end");
    switch (*self->p) {
    case '{':
        return s_container(self, out, depth, true);
    case '[':
        return s_container(self, out, depth, false);
    case '"':
        out->type = VZ_JSON_STRING;
        return s_string(self, &out->text, &out->len);
    case 't':
        out->type = VZ_JSON_BOOL;
        out->flag = true;
        return s_literal(self, "true");
    case 'f':
        out->type = VZ_JSON_BOOL;
        return s_literal(self, "false");
    case 'n':
        out->type = VZ_JSON_NULL;
        return s_literal(self, "null");
    default:
        if (*self->p == '-' || (*self->p >= '0' && *self->p <= '9'))
            return s_number(self, out);
        return s_fail(self, "unexpected character");
    }
}

vz_json_t *vz_json_parse(const void *text, size_t len, const vz_json_limits_t *limits,
                         vz_json_error_t *error)
{
    assert(text || len == 0);
    s_parser_t parser = {
        .p = text,
        .start = text,
        .end = (const uint8_t *)text + len,
        .limits = limits ? *limits : vz_json_limits_default,
    };
    vz_json_error_t local;
    if (!error)
        error = &local;
    error->offset = 0;
    error->reason = NULL;
    if (len > parser.limits.max_size) {
        error->reason = "document too large";
        return NULL;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        error->reason = "byte order mark";
        return NULL;
    }
    vz_json_t *self = calloc(1, sizeof *self);
    parser.scratch = malloc(parser.limits.max_string + 4);
    if (!self || !parser.scratch) {
        free(self);
        free(parser.scratch);
        error->reason = "out of memory";
        return NULL;
    }
    parser.doc = self;
    bool ok = s_value(&parser, &self->root, 1);
    if (ok) {
        s_skip_ws(&parser);
        if (parser.p != parser.end)
            ok = s_fail(&parser, "trailing bytes");
    }
    free(parser.scratch);
    if (!ok) {
        error->offset = (size_t)(parser.p - parser.start);
        error->reason = parser.reason;
        vz_json_destroy(&self);
        return NULL;
    }
    return self;
}

void vz_json_destroy(vz_json_t **self_p)
{
    assert(self_p);
    vz_json_t *self = *self_p;
    if (!self)
        return;
    while (self->chunks) {
        s_chunk_t *next = self->chunks->next;
        free(self->chunks);
        self->chunks = next;
    }
    free(self);
    *self_p = NULL;
}

const vz_json_value_t *vz_json_root(const vz_json_t *self)
{
    assert(self);
    return &self->root;
}

vz_json_type_t vz_json_type(const vz_json_value_t *value)
{
    return value ? value->type : VZ_JSON_NULL;
}

const vz_json_value_t *vz_json_get(const vz_json_value_t *object, const char *key)
{
    if (!object || object->type != VZ_JSON_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < object->len; i++)
        if (strcmp(object->keys[i], key) == 0)
            return &object->items[i];
    return NULL;
}

size_t vz_json_size(const vz_json_value_t *value)
{
    if (!value || (value->type != VZ_JSON_ARRAY && value->type != VZ_JSON_OBJECT))
        return 0;
    return value->len;
}

const vz_json_value_t *vz_json_at(const vz_json_value_t *value, size_t i)
{
    return i < vz_json_size(value) ? &value->items[i] : NULL;
}

const char *vz_json_key_at(const vz_json_value_t *object, size_t i)
{
    if (!object || object->type != VZ_JSON_OBJECT || i >= object->len)
        return NULL;
    return object->keys[i];
}

const char *vz_json_string(const vz_json_value_t *value, size_t *len_p)
{
    if (!value || value->type != VZ_JSON_STRING)
        return NULL;
    if (len_p)
        *len_p = value->len;
    return value->text;
}

int vz_json_bool(const vz_json_value_t *value, bool *out)
{
    if (!value || value->type != VZ_JSON_BOOL)
        return -EINVAL;
    *out = value->flag;
    return 0;
}

int vz_json_int(const vz_json_value_t *value, int64_t *out)
{
    if (!value || value->type != VZ_JSON_NUMBER || !value->is_int)
        return -EINVAL;
    *out = value->integer;
    return 0;
}

int vz_json_double(const vz_json_value_t *value, double *out)
{
    if (!value || value->type != VZ_JSON_NUMBER)
        return -EINVAL;
    *out = value->real;
    return 0;
}

const char *vz_json_get_string(const vz_json_value_t *object, const char *key, size_t *len_p)
{
    return vz_json_string(vz_json_get(object, key), len_p);
}

// --------------------------------------------------------------------------
//  Writer

#define WRITER_DEPTH 32

struct vz_json_writer_t {
    char *buf;                  //  output, NUL-terminated
    size_t len;                 //  bytes used
    size_t cap;                 //  bytes allocated
    size_t max;                 //  output cap
    int status;                 //  first failure, sticky
    size_t depth;               //  open containers
    bool object[WRITER_DEPTH];  //  per level: object (true) or array
    size_t count[WRITER_DEPTH]; //  per level: values written
    bool key_due;               //  in an object, the next call must be a key
    bool done;                  //  the top-level value is complete
};

vz_json_writer_t *vz_json_writer_new(size_t max_bytes)
{
    vz_json_writer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max = max_bytes ? max_bytes : 1024 * 1024;
    self->cap = 256;
    self->buf = malloc(self->cap);
    if (!self->buf) {
        free(self);
        return NULL;
    }
    self->buf[0] = '\0';
    return self;
}

void vz_json_writer_destroy(vz_json_writer_t **self_p)
{
    assert(self_p);
    vz_json_writer_t *self = *self_p;
    if (!self)
        return;
    free(self->buf);
    free(self);
    *self_p = NULL;
}

static void s_wfail(vz_json_writer_t *self, int rc)
{
    if (self->status == 0)
        self->status = rc;
}

static void s_put(vz_json_writer_t *self, const char *data, size_t n)
{
    if (self->status)
        return;
    if (self->len + n > self->max) {
        s_wfail(self, -ENOSPC);
        return;
    }
    if (self->len + n + 1 > self->cap) {
        size_t cap = self->cap;
        while (cap < self->len + n + 1)
            cap *= 2;
        char *grown = realloc(self->buf, cap);
        if (!grown) {
            s_wfail(self, -ENOMEM);
            return;
        }
        self->buf = grown;
        self->cap = cap;
    }
    memcpy(self->buf + self->len, data, n);
    self->len += n;
    self->buf[self->len] = '\0';
}

//  Before any value: check the grammar state and write the separator.
static bool s_before_value(vz_json_writer_t *self)
{
    if (self->status)
        return false;
    if (self->done || (self->depth > 0 && self->object[self->depth - 1] && self->key_due)) {
        s_wfail(self, -EINVAL);
        return false;
    }
    if (self->depth > 0 && !self->object[self->depth - 1] && self->count[self->depth - 1] > 0)
        s_put(self, ",", 1);
    return self->status == 0;
}

static void s_after_value(vz_json_writer_t *self)
{
    if (self->depth == 0)
        self->done = true;
    else {
        self->count[self->depth - 1]++;
        self->key_due = self->object[self->depth - 1];
    }
}

static void s_escaped(vz_json_writer_t *self, const char *text, size_t len)
{
    const uint8_t *p = (const uint8_t *)text;
    s_put(self, "\"", 1);
    size_t i = 0;
    while (i < len && !self->status) {
        //  Copy the longest run that needs no escaping in one go.
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            s_put(self, text + i, run - i);
            i = run;
            continue;
        }
        uint8_t c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            s_put(self, esc, 2);
            i++;
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (named)
                s_put(self, named, 2);
            else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                s_put(self, esc, 6);
            }
            i++;
        } else {
            size_t n = vz_utf8_seq(p + i, len - i);
            if (n == 0) {
                s_put(self, "\\ufffd", 6);
                i++;
            } else {
                s_put(self, text + i, n);
                i += n;
            }
        }
    }
    s_put(self, "\"", 1);
}

//  Open an object or an array: one more level, a key due first in an object.
static void s_begin(vz_json_writer_t *self, bool object)
{
    assert(self);
    if (!s_before_value(self))
        return;
    if (self->depth == WRITER_DEPTH) {
        s_wfail(self, -EINVAL);
        return;
    }
    s_put(self, object ? "{" : "[", 1);
    self->object[self->depth] = object;
    self->count[self->depth] = 0;
    self->depth++;
    self->key_due = object;
}

void vz_json_write_object_begin(vz_json_writer_t *self)
{
    s_begin(self, true);
}

void vz_json_write_array_begin(vz_json_writer_t *self)
{
    s_begin(self, false);
}

static void s_end(vz_json_writer_t *self, bool object)
{
    assert(self);
    if (self->status)
        return;
    if (self->depth == 0 || self->object[self->depth - 1] != object || (object && !self->key_due)) {
        s_wfail(self, -EINVAL);
        return;
    }
    s_put(self, object ? "}" : "]", 1);
    self->depth--;
    s_after_value(self);
}

void vz_json_write_object_end(vz_json_writer_t *self)
{
    s_end(self, true);
}

void vz_json_write_array_end(vz_json_writer_t *self)
{
    s_end(self, false);
}

void vz_json_write_key(vz_json_writer_t *self, const char *key)
{
    assert(self && key);
    if (self->status)
        return;
    if (self->depth == 0 || !self->object[self->depth - 1] || !self->key_due) {
        s_wfail(self, -EINVAL);
        return;
    }
    if (self->count[self->depth - 1] > 0)
        s_put(self, ",", 1);
    s_escaped(self, key, strlen(key));
    s_put(self, ":", 1);
    self->key_due = false;
}

void vz_json_write_string_len(vz_json_writer_t *self, const char *text, size_t len)
{
    assert(self && (text || len == 0));
    if (!s_before_value(self))
        return;
    s_escaped(self, text ? text : "", len);
    s_after_value(self);
}

void vz_json_write_string(vz_json_writer_t *self, const char *text)
{
    assert(text);
    vz_json_write_string_len(self, text, strlen(text));
}

static void s_raw_value(vz_json_writer_t *self, const char *text)
{
    if (!s_before_value(self))
        return;
    s_put(self, text, strlen(text));
    s_after_value(self);
}

void vz_json_write_int(vz_json_writer_t *self, int64_t number)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)number);
    s_raw_value(self, text);
}

void vz_json_write_uint(vz_json_writer_t *self, uint64_t number)
{
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)number);
    s_raw_value(self, text);
}

void vz_json_write_double(vz_json_writer_t *self, double number)
{
    if (!isfinite(number)) {
        s_wfail(self, -EINVAL);
        return;
    }
    //  The shortest of %.15g..%.17g that reads back exactly.
    char text[40];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, number);
        if (strtod(text, NULL) == number)
            break;
    }
    s_raw_value(self, text);
}

void vz_json_write_bool(vz_json_writer_t *self, bool flag)
{
    s_raw_value(self, flag ? "true" : "false");
}

void vz_json_write_null(vz_json_writer_t *self)
{
    s_raw_value(self, "null");
}

void vz_json_write_kv_string(vz_json_writer_t *self, const char *key, const char *text)
{
    vz_json_write_key(self, key);
    vz_json_write_string(self, text);
}

void vz_json_write_kv_int(vz_json_writer_t *self, const char *key, int64_t number)
{
    vz_json_write_key(self, key);
    vz_json_write_int(self, number);
}

void vz_json_write_kv_bool(vz_json_writer_t *self, const char *key, bool flag)
{
    vz_json_write_key(self, key);
    vz_json_write_bool(self, flag);
}

int vz_json_writer_status(const vz_json_writer_t *self)
{
    assert(self);
    return self->status;
}

bool vz_json_writer_done(const vz_json_writer_t *self)
{
    assert(self);
    return self->status == 0 && self->done;
}

const char *vz_json_writer_data(const vz_json_writer_t *self, size_t *len_p)
{
    assert(self);
    if (len_p)
        *len_p = self->len;
    return self->buf;
}

char *vz_json_writer_take(vz_json_writer_t *self, size_t *len_p)
{
    assert(self);
    if (!vz_json_writer_done(self))
        return NULL;
    char *fresh = malloc(256);
    if (!fresh)
        return NULL;
    fresh[0] = '\0';
    char *out = self->buf;
    if (len_p)
        *len_p = self->len;
    self->buf = fresh;
    self->cap = 256;
    self->len = 0;
    self->depth = 0;
    self->done = false;
    self->key_due = false;
    return out;
}

//  Recursion depth is the parse's, which vz_json_parse bounds.
void vz_json_write_value(vz_json_writer_t *w, const vz_json_value_t *v)
{
    int64_t i;
    double d;
    bool b;
    switch (vz_json_type(v)) {
    case VZ_JSON_NULL:
        vz_json_write_null(w);
        break;
    case VZ_JSON_BOOL:
        vz_json_bool(v, &b);
        vz_json_write_bool(w, b);
        break;
    case VZ_JSON_NUMBER:
        if (vz_json_int(v, &i) == 0)
            vz_json_write_int(w, i);
        else {
            vz_json_double(v, &d);
            vz_json_write_double(w, d);
        }
        break;
    case VZ_JSON_STRING: {
        size_t len = 0;
        const char *s = vz_json_string(v, &len);
        vz_json_write_string_len(w, s, len);
        break;
    }
    case VZ_JSON_ARRAY:
        vz_json_write_array_begin(w);
        for (size_t k = 0; k < vz_json_size(v); k++)
            vz_json_write_value(w, vz_json_at(v, k));
        vz_json_write_array_end(w);
        break;
    case VZ_JSON_OBJECT:
        vz_json_write_object_begin(w);
        for (size_t k = 0; k < vz_json_size(v); k++) {
            vz_json_write_key(w, vz_json_key_at(v, k));
            vz_json_write_value(w, vz_json_at(v, k));
        }
        vz_json_write_object_end(w);
        break;
    }
}
