/*  fuzz_json - libFuzzer target for the JSON parser and writer (vz_json.h)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Parser: a document that parses must be valid UTF-8, every string in it
 *  a C string of its stated length, and writing the tree out again must
 *  give a document that parses to an equal tree (parse . write . parse =
 *  parse). Tighter limits never accept what the defaults refuse. Writer:
 *  the input without NUL as one string value yields a document the parser
 *  accepts, and that is the input again when the input is valid UTF-8
 *  (bytes that are not become U+FFFD).
 */
#include "fuzz.h"
#include "vz_json.h"

#include <math.h>

static void s_write(vz_json_writer_t *w, const vz_json_value_t *v)
{
    size_t len;
    switch (vz_json_type(v)) {
    case VZ_JSON_NULL:
        vz_json_write_null(w);
        break;
    case VZ_JSON_BOOL: {
        bool b;
        FZ_CHECK(vz_json_bool(v, &b) == 0);
        vz_json_write_bool(w, b);
        break;
    }
    case VZ_JSON_NUMBER: {
        int64_t i;
        double d;
        FZ_CHECK(vz_json_double(v, &d) == 0 && isfinite(d));
        if (vz_json_int(v, &i) == 0)
            vz_json_write_int(w, i);
        else
            vz_json_write_double(w, d);
        break;
    }
    case VZ_JSON_STRING: {
        const char *s = vz_json_string(v, &len);
        FZ_CHECK(s && strlen(s) == len && vz_json_utf8_valid(s, len));
        vz_json_write_string_len(w, s, len);
        break;
    }
    case VZ_JSON_ARRAY:
        vz_json_write_array_begin(w);
        for (size_t i = 0; i < vz_json_size(v); i++)
            s_write(w, vz_json_at(v, i));
        vz_json_write_array_end(w);
        break;
    case VZ_JSON_OBJECT:
        vz_json_write_object_begin(w);
        for (size_t i = 0; i < vz_json_size(v); i++) {
            const char *key = vz_json_key_at(v, i);
            FZ_CHECK(key && vz_json_utf8_valid(key, strlen(key)));
            FZ_CHECK(vz_json_get(v, key) == vz_json_at(v, i)); //  keys are unique
            vz_json_write_key(w, key);
            s_write(w, vz_json_at(v, i));
        }
        vz_json_write_object_end(w);
        break;
    }
}

static void s_check_equal(const vz_json_value_t *a, const vz_json_value_t *b)
{
    FZ_CHECK(vz_json_type(a) == vz_json_type(b));
    FZ_CHECK(vz_json_size(a) == vz_json_size(b));
    bool ba, bb;
    int64_t ia, ib;
    double da, db;
    size_t la, lb;
    switch (vz_json_type(a)) {
    case VZ_JSON_NULL:
        break;
    case VZ_JSON_BOOL:
        FZ_CHECK(vz_json_bool(a, &ba) == 0 && vz_json_bool(b, &bb) == 0 && ba == bb);
        break;
    case VZ_JSON_NUMBER:
        //  Doubles are written in their shortest exact form: the value survives.
        FZ_CHECK(vz_json_double(a, &da) == 0 && vz_json_double(b, &db) == 0);
        FZ_CHECK(da == db || (isnan(da) && isnan(db)));
        if (vz_json_int(a, &ia) == 0)
            FZ_CHECK(vz_json_int(b, &ib) == 0 && ia == ib);
        break;
    case VZ_JSON_STRING: {
        const char *sa = vz_json_string(a, &la), *sb = vz_json_string(b, &lb);
        FZ_CHECK(la == lb && memcmp(sa, sb, la) == 0);
        break;
    }
    case VZ_JSON_ARRAY:
    case VZ_JSON_OBJECT:
        for (size_t i = 0; i < vz_json_size(a); i++) {
            if (vz_json_type(a) == VZ_JSON_OBJECT)
                FZ_CHECK(strcmp(vz_json_key_at(a, i), vz_json_key_at(b, i)) == 0);
            s_check_equal(vz_json_at(a, i), vz_json_at(b, i));
        }
        break;
    }
}

//  The input as one string value, parsed back.
static void s_writer(const uint8_t *data, size_t size)
{
    vz_json_writer_t *w = vz_json_writer_new(0);
    FZ_CHECK(w);
    vz_json_write_string_len(w, (const char *)data, size);
    size_t len = 0;
    char *out = vz_json_writer_take(w, &len);
    vz_json_writer_destroy(&w);
    //  NULL over the cap (6 bytes out per control byte in). A NUL goes out
    //  as \u0000: valid JSON, but the parser refuses it by design.
    if (!out || memchr(data, 0, size)) {
        free(out);
        return;
    }
    vz_json_t *doc = vz_json_parse(out, len, NULL, NULL);
    FZ_CHECK(doc && vz_json_type(vz_json_root(doc)) == VZ_JSON_STRING);
    size_t slen;
    const char *s = vz_json_string(vz_json_root(doc), &slen);
    if (vz_json_utf8_valid((const char *)data, size))
        FZ_CHECK(slen == size && memcmp(s, data, size) == 0);
    vz_json_destroy(&doc);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_writer(data, size);
    vz_json_error_t error = {0};
    vz_json_t *doc = vz_json_parse(data, size, NULL, &error);
    //  Tight limits: never accept what the defaults refuse.
    const vz_json_limits_t tight = {256, 4, 16, 8, 32};
    vz_json_t *small = vz_json_parse(data, size, &tight, NULL);
    FZ_CHECK(!small || doc);
    vz_json_destroy(&small);
    if (!doc) {
        FZ_CHECK(error.reason && error.offset <= size);
        return 0;
    }
    FZ_CHECK(vz_json_utf8_valid((const char *)data, size));
    vz_json_writer_t *w = vz_json_writer_new(0);
    FZ_CHECK(w);
    s_write(w, vz_json_root(doc));
    FZ_CHECK(vz_json_writer_status(w) == 0 && vz_json_writer_done(w));
    size_t len;
    char *out = vz_json_writer_take(w, &len);
    vz_json_writer_destroy(&w);
    FZ_CHECK(out);
    vz_json_t *again = vz_json_parse(out, len, NULL, &error);
    FZ_CHECK(again);
    s_check_equal(vz_json_root(doc), vz_json_root(again));
    vz_json_destroy(&again);
    vz_json_destroy(&doc);
    free(out);
    return 0;
}
