/*  vz_json - a small, strict JSON (RFC 8259) parser and writer
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Parser: vz_json_parse reads a whole document into a read-only tree held
 *  in one arena owned by the vz_json_t; every node, key and string is
 *  borrowed from it and lives until vz_json_destroy. Strictness, because the
 *  bytes come from the network and two parsers that disagree on a document
 *  are a security hole (parser differentials):
 *    - input must be valid UTF-8 (no overlong forms, no surrogates, nothing
 *      above U+10FFFF); a byte order mark is refused;
 *    - \uXXXX escapes are decoded, surrogate pairs combined; a lone
 *      surrogate and \u0000 are refused, so every string is a C string
 *      without embedded NUL;
 *    - raw control characters (< 0x20) inside strings are refused;
 *    - duplicate keys in one object are refused ("duplicate key"): RFC 8259
 *      leaves their meaning open and different parsers pick different ones;
 *    - numbers follow the RFC grammar exactly (no leading zeros, no "+",
 *      no NaN/Infinity, no trailing "."); a number without fraction or
 *      exponent that fits int64 is an integer, every number is also a double
 *      (a finite one: 1e400 is refused);
 *    - one value per document; only whitespace may follow it.
 *  Limits (vz_json_limits_t) bound the input size, nesting depth, string
 *  length (bytes after unescaping), members per array/object and the total
 *  number of nodes, so the memory a hostile document can cost is bounded.
 *
 *  Writer: vz_json_writer_t builds a document into a growing buffer with a
 *  byte cap, inserting commas and colons itself. Strings are escaped ('"',
 *  '\\', control bytes as \u00XX); bytes that are not valid UTF-8 become
 *  U+FFFD, so the output is always valid JSON. The first failure (cap
 *  exceeded, misuse such as a value where a key is due, a non-finite
 *  double) is sticky: later calls do nothing and vz_json_writer_status
 *  reports it, so callers check once at the end.
 *
 *  Neither side keeps global state; a document or writer belongs to one
 *  thread at a time. Different objects may be used on different threads.
 */
#ifndef VZ_JSON_H
#define VZ_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VZ_JSON_NULL = 0,
    VZ_JSON_BOOL,
    VZ_JSON_NUMBER,
    VZ_JSON_STRING,
    VZ_JSON_ARRAY,
    VZ_JSON_OBJECT,
} vz_json_type_t;

typedef struct {
    size_t max_size;    //  input bytes
    size_t max_depth;   //  nesting of arrays/objects (the root container is depth 1)
    size_t max_string;  //  bytes of one string or key after unescaping
    size_t max_members; //  elements of one array or members of one object
    size_t max_nodes;   //  values in the whole document
} vz_json_limits_t;

//  Defaults: 1 MiB, depth 32, 64 KiB strings, 4096 members, 65536 nodes.
extern const vz_json_limits_t vz_json_limits_default;

typedef struct vz_json_t vz_json_t;             //  a parsed document (owns everything)
typedef struct vz_json_value_t vz_json_value_t; //  one node, borrowed from its document

typedef struct {
    size_t offset;      //  byte offset in the input where parsing stopped
    const char *reason; //  static text, e.g. "duplicate key", "invalid UTF-8"
} vz_json_error_t;

//  Parse text (len bytes, need not be NUL-terminated). limits NULL = the
//  defaults. Returns the document, or NULL with *error filled (error may
//  be NULL): a malformed or over-limit document, or out of memory
//  ("out of memory").
vz_json_t *vz_json_parse(const void *text, size_t len, const vz_json_limits_t *limits,
                         vz_json_error_t *error);
void vz_json_destroy(vz_json_t **self_p);

//  The root value (never NULL for a parsed document).
const vz_json_value_t *vz_json_root(const vz_json_t *self);

//  Accessors accept NULL values (and then answer "absent"), so lookups can
//  be chained: vz_json_get(vz_json_get(root, "a"), "b").
vz_json_type_t vz_json_type(const vz_json_value_t *value); //  VZ_JSON_NULL for NULL
//  Member of an object by key, or NULL (not an object, or no such key).
const vz_json_value_t *vz_json_get(const vz_json_value_t *object, const char *key);
//  Elements of an array or members of an object; 0 for anything else.
size_t vz_json_size(const vz_json_value_t *value);
//  Element i of an array or value of member i of an object (document
//  order), or NULL when out of range.
const vz_json_value_t *vz_json_at(const vz_json_value_t *value, size_t i);
//  Key of member i of an object, or NULL.
const char *vz_json_key_at(const vz_json_value_t *object, size_t i);

//  The string (NUL-terminated, valid UTF-8) and its length, or NULL when
//  value is not a string. len_p may be NULL.
const char *vz_json_string(const vz_json_value_t *value, size_t *len_p);
//  0 and *out, or -EINVAL when the value is not of that type. vz_json_int
//  accepts only integers that fit int64 (not 1.0, not 1e3).
int vz_json_bool(const vz_json_value_t *value, bool *out);
int vz_json_int(const vz_json_value_t *value, int64_t *out);
int vz_json_double(const vz_json_value_t *value, double *out);

//  The member key of object as a string, or NULL when absent or not a string.
const char *vz_json_get_string(const vz_json_value_t *object, const char *key, size_t *len_p);

// --------------------------------------------------------------------------
//  Writer

typedef struct vz_json_writer_t vz_json_writer_t;

//  max_bytes caps the output (0 = 1 MiB). NULL on out of memory.
vz_json_writer_t *vz_json_writer_new(size_t max_bytes);
void vz_json_writer_destroy(vz_json_writer_t **self_p);

//  Containers nest up to 32 levels. Inside an object, each value must be
//  preceded by vz_json_write_key.
void vz_json_write_object_begin(vz_json_writer_t *self);
void vz_json_write_object_end(vz_json_writer_t *self);
void vz_json_write_array_begin(vz_json_writer_t *self);
void vz_json_write_array_end(vz_json_writer_t *self);
void vz_json_write_key(vz_json_writer_t *self, const char *key);
void vz_json_write_string(vz_json_writer_t *self, const char *text);
void vz_json_write_string_len(vz_json_writer_t *self, const char *text, size_t len);
void vz_json_write_int(vz_json_writer_t *self, int64_t number);
void vz_json_write_uint(vz_json_writer_t *self, uint64_t number);
void vz_json_write_double(vz_json_writer_t *self, double number); //  shortest exact form
void vz_json_write_bool(vz_json_writer_t *self, bool flag);
void vz_json_write_null(vz_json_writer_t *self);
//  A parsed value (any type, nested) written back as JSON text.
void vz_json_write_value(vz_json_writer_t *self, const vz_json_value_t *value);
//  Shorthands for a key and its value.
void vz_json_write_kv_string(vz_json_writer_t *self, const char *key, const char *text);
void vz_json_write_kv_int(vz_json_writer_t *self, const char *key, int64_t number);
void vz_json_write_kv_bool(vz_json_writer_t *self, const char *key, bool flag);

//  0 while everything succeeded; else the first failure: -ENOSPC (cap),
//  -EINVAL (misuse: value where a key is due, unbalanced end, non-finite
//  double, too deep), -ENOMEM.
int vz_json_writer_status(const vz_json_writer_t *self);
//  True when the document is complete (one top-level value, every
//  container closed) and status is 0.
bool vz_json_writer_done(const vz_json_writer_t *self);
//  The output so far (borrowed, NUL-terminated); *len_p its length.
const char *vz_json_writer_data(const vz_json_writer_t *self, size_t *len_p);
//  Take the output (caller frees) and reset the writer to empty. NULL when
//  status is not 0 or the document is not complete.
char *vz_json_writer_take(vz_json_writer_t *self, size_t *len_p);

//  Check that text is valid UTF-8 (the parser's rules). For callers that
//  validate strings they got some other way (form bodies, headers).
bool vz_json_utf8_valid(const char *text, size_t len);

#endif
