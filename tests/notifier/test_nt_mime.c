/*  test_nt_mime - the MIME builder: structure, encodings, line limits, no header injection
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

#include "nt_mime.h"

static const uint8_t s_png[] = {0x89, 'P',  'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0,   0,
                                0,    0x0d, 'I', 'H', 'D',  'R',  0xff, 0x00, 0x10};

//  Every line ends in CRLF, none is longer than max (without CRLF), no
//  bare CR or LF anywhere.
static void s_lines_ok(const char *msg, size_t max)
{
    const char *p = msg;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        if ((size_t)(eol - p) > max)
            fail_msg("line over %zu: %.*s", max, (int)(eol - p), p);
        for (const char *q = p; q < eol; q++)
            assert_true(*q != '\r' && *q != '\n');
        p = eol + 2;
    }
}

//  The header block (up to the first empty line).
static char *s_headers(const char *msg)
{
    const char *end = strstr(msg, "\r\n\r\n");
    assert_non_null(end);
    return strndup(msg, (size_t)(end - msg) + 2);
}

static nt_mail_t s_mail(void)
{
    static const nt_addr_t to[] = {{"Zoë Ünicode-Ñame", "zoe@example.com"},
                                   {"Plain Person", "plain@example.org"}};
    nt_mail_t m = {
        .from = {"vizmesh", "noreply@vizmesh.localhost"},
        .to = to,
        .to_count = 2,
        .subject = "Rechnung für Zoë — ✓ paid",
        .text = "Hello Zoë,\nthank you.\n",
        .html = "<p>Hello Zo&euml;</p>",
        .unique = "n_0123456789abcdef01234567",
        .domain = "vizmesh.localhost",
        .date_s = 1796274000, //  2026-12-03T05:00:00Z, a Thursday
    };
    return m;
}

static void test_alternative(void **state)
{
    nt_mail_t m = s_mail();
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(nt_mime_build(&m, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    s_lines_ok(out, 78);
    char *h = s_headers(out);
    assert_non_null(strstr(h, "Date: Thu, 03 Dec 2026 05:00:00 +0000\r\n"));
    assert_non_null(strstr(h, "Message-ID: <n_0123456789abcdef01234567@vizmesh.localhost>\r\n"));
    assert_non_null(strstr(h, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(h, "From: \"vizmesh\" <noreply@vizmesh.localhost>\r\n"));
    //  Non-ASCII subject and name: encoded words only, no raw 8-bit byte in headers.
    assert_non_null(strstr(h, "Subject: =?UTF-8?B?"));
    assert_non_null(strstr(h, "To: =?UTF-8?B?"));
    assert_non_null(strstr(h, "<zoe@example.com>,\r\n \"Plain Person\" <plain@example.org>"));
    for (const unsigned char *p = (const unsigned char *)h; *p; p++)
        assert_true(*p < 0x80);
    assert_non_null(strstr(h, "Content-Type: multipart/alternative;"));
    free(h);
    //  Text before HTML, both quoted-printable UTF-8.
    const char *text = strstr(out, "Content-Type: text/plain; charset=UTF-8");
    const char *html = strstr(out, "Content-Type: text/html; charset=UTF-8");
    assert_non_null(text);
    assert_non_null(html);
    assert_true(text < html);
    assert_non_null(strstr(out, "Hello Zo=C3=AB,\r\n"));
    assert_null(strstr(out, "multipart/mixed"));
    assert_null(strstr(out, "multipart/related"));
    free(out);
}

static void test_mixed_related(void **state)
{
    nt_mail_t m = s_mail();
    uint8_t big[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    nt_part_t parts[] = {
        {"chart.png", "image/png", s_png, sizeof s_png, "chart1@vizmesh"},
        {"Rechnung März.pdf", "application/pdf", big, sizeof big, NULL},
    };
    m.html = "<img src=\"cid:chart1@vizmesh\">";
    m.parts = parts;
    m.part_count = 2;
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(nt_mime_build(&m, &out, &len), 0);
    s_lines_ok(out, 78);
    const char *mixed = strstr(out, "multipart/mixed");
    const char *related = strstr(out, "multipart/related");
    const char *alt = strstr(out, "multipart/alternative");
    assert_non_null(mixed);
    assert_non_null(related);
    assert_non_null(alt);
    assert_true(mixed < related && related < alt);
    assert_non_null(strstr(out, "Content-ID: <chart1@vizmesh>\r\n"));
    assert_non_null(strstr(out, "Content-Disposition: inline;"));
    assert_non_null(strstr(
        out, "Content-Disposition: attachment;\r\n filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"));
    //  The PNG's base64 is there in full.
    assert_non_null(strstr(out, "iVBORw0KGgoAAAANSUhEUv8AEA=="));
    //  Every boundary opened is closed.
    for (int i = 1; i <= 3; i++) {
        char close[96];
        snprintf(close, sizeof close, "--=_vz_n_0123456789abcdef01234567_%d--\r\n", i);
        assert_non_null(strstr(out, close));
    }
    free(out);
}

static void test_qp(void **state)
{
    //  Long line: soft breaks keep every line within 76; '=' encoded;
    //  trailing space encoded; a leading '.' encoded.
    char line[300];
    memset(line, 'a', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    char *qp = nt_mime_qp(line);
    s_lines_ok(qp, 76);
    assert_non_null(strstr(qp, "=\r\n"));
    free(qp);
    qp = nt_mime_qp("a=b \n.dot\ttab\t\nend");
    assert_string_equal(qp, "a=3Db=20\r\n=2Edot\ttab=09\r\nend\r\n");
    free(qp);
    //  A 3-byte token is never split by a soft break.
    char multi[200] = "";
    for (int i = 0; i < 60; i++)
        strcat(multi, "\xc3\xa9");
    qp = nt_mime_qp(multi);
    s_lines_ok(qp, 76);
    for (const char *p = qp; (p = strstr(p, "=\r\n")); p += 3)
        assert_true(p[-1] != '=' && (p < qp + 2 || p[-2] != '='));
    free(qp);
}

static void test_encoded_words(void **state)
{
    //  80 two-byte characters: several words, none cuts a character.
    char text[200] = "";
    for (int i = 0; i < 80; i++)
        strcat(text, "\xc3\xa9");
    char *w = nt_mime_encode_words(text);
    int words = 0;
    for (const char *p = w; (p = strstr(p, "=?UTF-8?B?")); p++)
        words++;
    assert_true(words >= 4);
    //  Each word decodes to whole characters: 39 bytes is odd, so a word
    //  carries 38 bytes of two-byte characters.
    assert_non_null(strstr(w, "?=\r\n =?UTF-8?B?"));
    char *lines = malloc(strlen(w) + 3);
    strcat(strcpy(lines, w), "\r\n");
    s_lines_ok(lines, 78);
    free(lines);
    char *copy = strdup(w);
    for (char *tok = strtok(copy, " \r\n"); tok; tok = strtok(NULL, " \r\n")) {
        assert_true(strncmp(tok, "=?UTF-8?B?", 10) == 0);
        size_t n = strlen(tok);
        uint8_t *raw = NULL;
        size_t rawlen = 0;
        assert_int_equal(nt_mime_b64_decode(tok + 10, n - 12, &raw, &rawlen), 0);
        assert_int_equal(rawlen % 2, 0);
        free(raw);
    }
    free(copy);
    free(w);
}

static void test_injection_refused(void **state)
{
    nt_mail_t m = s_mail();
    char *out = (char *)1;
    size_t len;
    m.subject = "hi\r\nBcc: victim@example.com";
    assert_int_equal(nt_mime_build(&m, &out, &len), -EINVAL);
    assert_null(out);
    m = s_mail();
    nt_addr_t bad[] = {{"x", "a@b.c\r\nBcc: v@e.com"}};
    m.to = bad;
    m.to_count = 1;
    assert_int_equal(nt_mime_build(&m, &out, &len), -EINVAL);
    nt_addr_t badname[] = {{"Eve\nBcc: v@e.com", "a@b.c"}};
    m.to = badname;
    assert_int_equal(nt_mime_build(&m, &out, &len), -EINVAL);
    m = s_mail();
    nt_part_t part = {"x.png", "image/png\r\nX-Evil: 1", s_png, sizeof s_png, NULL};
    m.parts = &part;
    m.part_count = 1;
    assert_int_equal(nt_mime_build(&m, &out, &len), -EINVAL);
    part.type = "image/png";
    part.content_id = "a>b";
    assert_int_equal(nt_mime_build(&m, &out, &len), -EINVAL);
    m = s_mail();
    m.text = m.html = NULL;
    assert_int_equal(nt_mime_build(&m, &out, &len), -EINVAL);
    //  A name with quotes and backslashes stays one quoted string.
    m = s_mail();
    nt_addr_t quoted[] = {{"A \"B\" \\C", "a@b.c"}};
    m.to = quoted;
    m.to_count = 1;
    assert_int_equal(nt_mime_build(&m, &out, &len), 0);
    assert_non_null(strstr(out, "To: \"A \\\"B\\\" \\\\C\" <a@b.c>\r\n"));
    free(out);
    //  A subject that looks like an encoded word is encoded itself.
    m.subject = "=?UTF-8?B?SGk=?=";
    assert_int_equal(nt_mime_build(&m, &out, &len), 0);
    assert_null(strstr(out, "Subject: =?UTF-8?B?SGk=?="));
    free(out);
}

static void test_addresses(void **state)
{
    assert_true(nt_mime_addr_valid("a@b.c"));
    assert_true(nt_mime_addr_valid("first.last+tag@sub.example.com"));
    assert_false(nt_mime_addr_valid("no-at.example.com"));
    assert_false(nt_mime_addr_valid("@b.c"));
    assert_false(nt_mime_addr_valid("a@"));
    assert_false(nt_mime_addr_valid("a@b@c"));
    assert_false(nt_mime_addr_valid("a b@c.d"));
    assert_false(nt_mime_addr_valid("a@b.c\r\n"));
    assert_false(nt_mime_addr_valid("<a@b.c>"));
    assert_false(nt_mime_addr_valid("a@b..c"));
    assert_false(nt_mime_addr_valid("zoë@b.c"));
    assert_true(nt_mime_type_valid("image/svg+xml"));
    assert_false(nt_mime_type_valid("image"));
    assert_false(nt_mime_type_valid("image/png; name=x"));
    assert_true(nt_mime_cid_valid("chart-1.png@vizmesh"));
    assert_false(nt_mime_cid_valid(""));
}

static void test_b64(void **state)
{
    uint8_t *out;
    size_t len;
    assert_int_equal(nt_mime_b64_decode("aGVsbG8=", 8, &out, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);
    assert_int_equal(nt_mime_b64_decode("", 0, &out, &len), 0);
    assert_int_equal(len, 0);
    free(out);
    assert_int_equal(nt_mime_b64_decode("aGVsbG8", 7, &out, &len), -EINVAL);
    assert_int_equal(nt_mime_b64_decode("aG=sbG8=", 8, &out, &len), -EINVAL);
    assert_int_equal(nt_mime_b64_decode("aGVs\nbG8=", 9, &out, &len), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alternative),
        cmocka_unit_test(test_mixed_related),
        cmocka_unit_test(test_qp),
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_injection_refused),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
