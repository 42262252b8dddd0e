/*  test_json - the strict JSON parser and the writer
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_json.h"

static vz_json_t *s_parse(const char *text)
{
    return vz_json_parse(text, strlen(text), NULL, NULL);
}

//  Parsing text must fail with reason.
static void s_refused(const char *text, const char *reason)
{
    vz_json_error_t err;
    vz_json_t *doc = vz_json_parse(text, strlen(text), NULL, &err);
    if (doc)
        fail_msg("accepted: %s", text);
    assert_non_null(err.reason);
    if (reason && strcmp(err.reason, reason) != 0)
        fail_msg("%s: expected \"%s\", got \"%s\"", text, reason, err.reason);
}

static void test_values(void **state)
{
    vz_json_t *doc =
        s_parse(" {\"a\": 1, \"b\": [true, false, null], \"c\": \"x\\ty\", \"d\": -2.5e1,"
                " \"e\": {}, \"f\": [], \"g\": 9223372036854775807, \"h\": 1e3} ");
    assert_non_null(doc);
    const vz_json_value_t *root = vz_json_root(doc);
    assert_int_equal(vz_json_type(root), VZ_JSON_OBJECT);
    assert_int_equal(vz_json_size(root), 8);
    assert_string_equal(vz_json_key_at(root, 2), "c");
    int64_t i = 0;
    assert_int_equal(vz_json_int(vz_json_get(root, "a"), &i), 0);
    assert_int_equal(i, 1);
    assert_int_equal(vz_json_int(vz_json_get(root, "g"), &i), 0);
    assert_true(i == INT64_MAX);
    //  1e3 is a number but not an integer literal.
    assert_int_equal(vz_json_int(vz_json_get(root, "h"), &i), -EINVAL);
    double d = 0;
    assert_int_equal(vz_json_double(vz_json_get(root, "h"), &d), 0);
    assert_true(d == 1000.0);
    assert_int_equal(vz_json_double(vz_json_get(root, "d"), &d), 0);
    assert_true(d == -25.0);
    const vz_json_value_t *b = vz_json_get(root, "b");
    assert_int_equal(vz_json_size(b), 3);
    bool flag = false;
    assert_int_equal(vz_json_bool(vz_json_at(b, 0), &flag), 0);
    assert_true(flag);
    assert_int_equal(vz_json_type(vz_json_at(b, 2)), VZ_JSON_NULL);
    assert_null(vz_json_at(b, 3));
    size_t len = 0;
    assert_string_equal(vz_json_get_string(root, "c", &len), "x\ty");
    assert_int_equal(len, 3);
    assert_null(vz_json_get_string(root, "a", NULL));
    assert_null(vz_json_get(root, "missing"));
    assert_null(vz_json_get(vz_json_get(root, "missing"), "deeper"));
    assert_int_equal(vz_json_size(vz_json_get(root, "e")), 0);
    //  Beyond int64: a double only.
    vz_json_destroy(&doc);
    assert_null(doc);
    doc = s_parse("92233720368547758070");
    assert_non_null(doc);
    assert_int_equal(vz_json_int(vz_json_root(doc), &i), -EINVAL);
    vz_json_destroy(&doc);
    doc = s_parse("\"top\"");
    assert_string_equal(vz_json_string(vz_json_root(doc), NULL), "top");
    vz_json_destroy(&doc);
}

static void test_unicode(void **state)
{
    vz_json_t *doc = s_parse("[\"\\u00e9\\u20ac\\ud83d\\ude00\", \"é€😀\", \"\\/\\\\\\\"\"]");
    assert_non_null(doc);
    const vz_json_value_t *root = vz_json_root(doc);
    assert_string_equal(vz_json_string(vz_json_at(root, 0), NULL), "é€😀");
    assert_string_equal(vz_json_string(vz_json_at(root, 1), NULL), "é€😀");
    assert_string_equal(vz_json_string(vz_json_at(root, 2), NULL), "/\\\"");
    vz_json_destroy(&doc);

    s_refused("\"\\ud83d\"", "lone surrogate");
    s_refused("\"\\ude00\"", "lone surrogate");
    s_refused("\"\\ud83d\\u0041\"", "lone surrogate");
    s_refused("\"\\u0000\"", "NUL in string");
    s_refused("\"\\u12g4\"", "invalid \\u escape");
    s_refused("\"\\x\"", "invalid escape");
    s_refused("\"\xc3\x28\"", "invalid UTF-8");          //  bad continuation
    s_refused("\"\xc0\xaf\"", "invalid UTF-8");          //  overlong '/'
    s_refused("\"\xe0\x80\xaf\"", "invalid UTF-8");      //  overlong, 3 bytes
    s_refused("\"\xed\xa0\x80\"", "invalid UTF-8");      //  encoded surrogate
    s_refused("\"\xf4\x90\x80\x80\"", "invalid UTF-8");  //  above U+10FFFF
    s_refused("\"\xff\"", "invalid UTF-8");
    s_refused("\"a\tb\"", "control character in string");
    s_refused("\xef\xbb\xbf{}", "byte order mark");
    assert_true(vz_json_utf8_valid("é€😀", strlen("é€😀")));
    assert_false(vz_json_utf8_valid("\xc3", 1));
}

static void test_grammar(void **state)
{
    s_refused("", "unexpected end");
    s_refused("   ", "unexpected end");
    s_refused("{\"a\":1,}", "expected a key");
    s_refused("[1,]", "unexpected character");
    s_refused("[1 2]", "expected ',' or ']'");
    s_refused("{\"a\" 1}", "expected ':'");
    s_refused("{a:1}", "expected a key");
    s_refused("{\"a\":1,\"a\":2}", "duplicate key");
    s_refused("{\"a\":1} x", "trailing bytes");
    s_refused("{} {}", "trailing bytes");
    s_refused("01", "trailing bytes");
    s_refused("+1", "unexpected character");
    s_refused("1.", "invalid number");
    s_refused(".5", "unexpected character");
    s_refused("1e", "invalid number");
    s_refused("-", "invalid number");
    s_refused("NaN", "unexpected character");
    s_refused("Infinity", "unexpected character");
    s_refused("1e400", "number out of range");
    s_refused("tru", "invalid literal");
    s_refused("nul", "invalid literal");
    s_refused("\"abc", "unterminated string");
    s_refused("[\"a\"", "expected ',' or ']'");
    s_refused("'a'", "unexpected character");
    vz_json_error_t err;
    assert_null(vz_json_parse("[1]\0", 4, NULL, &err));
    assert_string_equal(err.reason, "trailing bytes");
    assert_int_equal(err.offset, 3);
}

//  Writes an object of 100 members k0..k98 plus last_key into text.
static void s_big_object(char *text, size_t n, const char *last_key)
{
    size_t used = (size_t)snprintf(text, n, "{");
    for (int i = 0; i < 99; i++)
        used += (size_t)snprintf(text + used, n - used, "\"k%d\":%d,", i, i);
    snprintf(text + used, n - used, "\"%s\":0}", last_key);
}

static void test_duplicates_large(void **state)
{
    //  Large objects take the sorted path.
    char text[4096];
    s_big_object(text, sizeof text, "k7");
    s_refused(text, "duplicate key");
    s_big_object(text, sizeof text, "k99");
    vz_json_t *doc = s_parse(text);
    assert_non_null(doc);
    assert_int_equal(vz_json_size(vz_json_root(doc)), 100);
    vz_json_destroy(&doc);
}

static void test_limits(void **state)
{
    vz_json_limits_t limits = vz_json_limits_default;
    vz_json_error_t err;
    limits.max_depth = 3;
    vz_json_t *doc = vz_json_parse("[[[1]]]", 7, &limits, &err);
    assert_non_null(doc);
    vz_json_destroy(&doc);
    assert_null(vz_json_parse("[[[[1]]]]", 9, &limits, &err));
    assert_string_equal(err.reason, "nesting too deep");

    limits = vz_json_limits_default;
    limits.max_string = 3;
    doc = vz_json_parse("\"abc\"", 5, &limits, &err);
    assert_non_null(doc);
    vz_json_destroy(&doc);
    assert_null(vz_json_parse("\"abcd\"", 6, &limits, &err));
    assert_string_equal(err.reason, "string too long");
    assert_null(vz_json_parse("{\"abcd\":1}", 10, &limits, &err));
    assert_null(vz_json_parse("\"ab\\u20ac\"", 10, &limits, &err));

    limits = vz_json_limits_default;
    limits.max_members = 2;
    assert_null(vz_json_parse("[1,2,3]", 7, &limits, &err));
    assert_string_equal(err.reason, "too many members");

    limits = vz_json_limits_default;
    limits.max_nodes = 3;
    assert_null(vz_json_parse("[1,[2,3]]", 9, &limits, &err));
    assert_string_equal(err.reason, "too many values");

    limits = vz_json_limits_default;
    limits.max_size = 4;
    assert_null(vz_json_parse("[1,2]", 5, &limits, &err));
    assert_string_equal(err.reason, "document too large");

    //  Deep nesting at the default limit fails cleanly rather than overflowing the stack.
    size_t n = 100000;
    char *deep = malloc(n);
    memset(deep, '[', n);
    assert_null(vz_json_parse(deep, n, NULL, &err));
    assert_string_equal(err.reason, "nesting too deep");
    free(deep);
}

static void test_writer(void **state)
{
    vz_json_writer_t *w = vz_json_writer_new(0);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "s", "a\"b\\c\n\x01é");
    vz_json_write_kv_int(w, "i", -42);
    vz_json_write_kv_bool(w, "t", true);
    vz_json_write_key(w, "arr");
    vz_json_write_array_begin(w);
    vz_json_write_uint(w, 18446744073709551615ull);
    vz_json_write_double(w, 0.1);
    vz_json_write_null(w);
    vz_json_write_object_begin(w);
    vz_json_write_object_end(w);
    vz_json_write_array_end(w);
    vz_json_write_key(w, "bad");
    vz_json_write_string_len(w, "x\xff", 2);
    vz_json_write_object_end(w);
    assert_true(vz_json_writer_done(w));
    size_t len = 0;
    char *out = vz_json_writer_take(w, &len);
    assert_non_null(out);
    assert_string_equal(out, "{\"s\":\"a\\\"b\\\\c\\n\\u0001é\",\"i\":-42,\"t\":true,"
                             "\"arr\":[18446744073709551615,0.1,null,{}],\"bad\":\"x\\ufffd\"}");
    assert_int_equal(len, strlen(out));
    //  What the writer produces, the parser reads back.
    vz_json_t *doc = vz_json_parse(out, len, NULL, NULL);
    assert_non_null(doc);
    assert_string_equal(vz_json_get_string(vz_json_root(doc), "s", NULL), "a\"b\\c\n\x01é");
    vz_json_destroy(&doc);
    free(out);

    //  Misuse is sticky.
    vz_json_write_object_begin(w);
    vz_json_write_int(w, 1); //  a value where a key is due
    assert_int_equal(vz_json_writer_status(w), -EINVAL);
    assert_null(vz_json_writer_take(w, NULL));
    vz_json_writer_destroy(&w);
    assert_null(w);

    w = vz_json_writer_new(0);
    vz_json_write_array_begin(w);
    vz_json_write_object_end(w);
    assert_int_equal(vz_json_writer_status(w), -EINVAL);
    vz_json_writer_destroy(&w);

    w = vz_json_writer_new(0);
    vz_json_write_double(w, 1.0 / 0.0);
    assert_int_equal(vz_json_writer_status(w), -EINVAL);
    vz_json_writer_destroy(&w);

    w = vz_json_writer_new(0);
    vz_json_write_int(w, 1);
    vz_json_write_int(w, 2); //  a second top-level value
    assert_int_equal(vz_json_writer_status(w), -EINVAL);
    vz_json_writer_destroy(&w);

    w = vz_json_writer_new(0);
    vz_json_write_array_begin(w);
    assert_false(vz_json_writer_done(w));
    vz_json_writer_destroy(&w);

    w = vz_json_writer_new(8);
    vz_json_write_string(w, "0123456789");
    assert_int_equal(vz_json_writer_status(w), -ENOSPC);
    vz_json_writer_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),          cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_grammar),         cmocka_unit_test(test_duplicates_large),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
