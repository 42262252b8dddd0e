/*  test_log - vz_log: JSON validity, redaction, e-mail masking, truncation
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vz_log.h"

//  A small strict JSON checker: enough to prove every line parses. Strings
//  must not hold raw control bytes and must be valid UTF-8.
typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} json_t;

static bool j_value(json_t *j);

static void j_ws(json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool j_string(json_t *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end)
                return false;
            if (*j->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (j->p + i >= j->end || !strchr("0123456789abcdefABCDEF", j->p[i]))
                        return false;
                j->p += 5;
            } else if (strchr("\"\\/bfnrt", *j->p))
                j->p++;
            else
                return false;
            continue;
        }
        if (c < 0x80) {
            j->p++;
            continue;
        }
        int need = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 && c < 0xE0 ? 1 : -1;
        if (need < 0 || c > 0xF4 || j->p + need >= j->end)
            return false;
        for (int i = 1; i <= need; i++)
            if ((j->p[i] & 0xC0) != 0x80)
                return false;
        j->p += need + 1;
    }
    return false;
}

static bool j_object(json_t *j)
{
    j->p++;
    j_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return true;
    }
    for (;;) {
        j_ws(j);
        if (!j_string(j))
            return false;
        j_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return false;
        j->p++;
        if (!j_value(j))
            return false;
        j_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return true;
        }
        return false;
    }
}

static bool j_value(json_t *j)
{
    j_ws(j);
    if (j->p >= j->end)
        return false;
    if (*j->p == '{')
        return j_object(j);
    if (*j->p == '"')
        return j_string(j);
    if ((size_t)(j->end - j->p) >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
        return true;
    }
    return false;
}

static bool json_valid(const char *text)
{
    json_t j = {(const unsigned char *)text, (const unsigned char *)text + strlen(text)};
    if (!j_value(&j))
        return false;
    j_ws(&j);
    return j.p == j.end;
}

static char *format(const char *msg, const char *const *kv, size_t kv_count)
{
    static char line[65536];
    int len = vz_log_format(line, sizeof line, VZ_LOG_INFO, "req-1", msg, kv, kv_count);
    assert_true(len > 0);
    assert_int_equal((size_t)len, strlen(line));
    if (!json_valid(line))
        fail_msg("not valid JSON: %s", line);
    return line;
}

//  Every fragment of has is in line and none of lacks (NULL-terminated
//  lists; either may be NULL).
static void s_expect(const char *line, const char *const *has, const char *const *lacks)
{
    for (size_t i = 0; has && has[i]; i++)
        if (!strstr(line, has[i]))
            fail_msg("no %s in %s", has[i], line);
    for (size_t i = 0; lacks && lacks[i]; i++)
        if (strstr(line, lacks[i]))
            fail_msg("%s in %s", lacks[i], line);
}

static void test_checker_rejects(void **state)
{
    //  The checker itself must be able to say no.
    assert_false(json_valid("{\"a\":\"b\x01\"}"));
    assert_false(json_valid("{\"a\":\"\xff\"}"));
    assert_false(json_valid("{\"a\":\"b}"));
    assert_false(json_valid("{\"a\":\"\\x\"}"));
    assert_true(json_valid("{\"a\":\"\\u00e9 \xc3\xa9\",\"b\":null}"));
}

static void test_basic_line(void **state)
{
    vz_log_init("broker", VZ_LOG_INFO);
    const char *kv[] = {"service_name", "echo", "empty", NULL};
    char *line = format("started", kv, 4);
    static const char *const has[] = {"\"level\":\"info\"",
                                      "\"service\":\"broker\"",
                                      "\"request_id\":\"req-1\"",
                                      "\"msg\":\"started\"",
                                      "\"service_name\":\"echo\"",
                                      "\"empty\":null",
                                      NULL};
    s_expect(line, has, NULL);
    assert_memory_equal(line, "{\"ts\":\"", 7);
    assert_int_equal(line[7 + 23], 'Z');
    //  YYYY-MM-DDTHH:MM:SS.mmmZ, and the cached seconds match the clock.
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd')
            assert_true(line[7 + i] >= '0' && line[7 + i] <= '9');
        else
            assert_int_equal(line[7 + i], shape[i]);
    }
    for (int round = 0; round < 3; round++) {
        time_t before = time(NULL);
        char *again = format("started", kv, 4);
        time_t after = time(NULL);
        struct tm tm;
        char want[2][24];
        gmtime_r(&before, &tm);
        strftime(want[0], sizeof want[0], "%Y-%m-%dT%H:%M:%S", &tm);
        gmtime_r(&after, &tm);
        strftime(want[1], sizeof want[1], "%Y-%m-%dT%H:%M:%S", &tm);
        assert_true(memcmp(again + 7, want[0], 19) == 0 || memcmp(again + 7, want[1], 19) == 0);
    }
}

static void test_redaction(void **state)
{
    static const char *const keys[] = {
        "password",   "X-Api-Key",     "refresh_token", "Authorization", "Cookie",
        "Set-Cookie", "client_secret", "PRIVATE_KEY",   "apikey",        "db_passwd",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *kv[] = {keys[i], "hunter2-value"};
        char *line = format("login", kv, 2);
        if (strstr(line, "hunter2") || !strstr(line, "\"[redacted]\""))
            fail_msg("key %s not redacted: %s", keys[i], line);
    }
    const char *kv[] = {"user_id", "42", "route", "/v1/x"};
    char *line = format("ok", kv, 4);
    assert_non_null(strstr(line, "\"user_id\":\"42\""));
    assert_null(strstr(line, "[redacted]"));
}

static void test_email_masking(void **state)
{
    const char *kv[] = {"to", "Ann <ann.smith+x@mail.example.org>, bob@ex.co"};
    char *line = format("sent mail to john.doe@example.com today", kv, 2);
    static const char *const masked[] = {"sent mail to j***@example.com today",
                                         "Ann <a***@mail.example.org>, b***@ex.co", NULL};
    static const char *const gone[] = {"john.doe", "ann.smith", "bob@", NULL};
    s_expect(line, masked, gone);

    //  Not addresses: left alone.
    const char *kv2[] = {"a", "user@localhost", "b", "x@.com", "c", "@example.com", "d", "end@"};
    line = format("trailing dot john@example.com.", kv2, 8);
    static const char *const kept[] = {"j***@example.com.\"", "\"user@localhost\"", "\"x@.com\"",
                                       "\"@example.com\"",    "\"end@\"",           NULL};
    s_expect(line, kept, NULL);
}

static void test_escaping(void **state)
{
    const char *kv[] = {
        "quote",     "say \"hi\" \\ back",
        "ctl",       "a\nb\tc\r\x01\x1f\x7f",
        "badutf8",   "x\xff\xfey",
        "cut",       "\xe2\x82",
        "overlong",  "\xc0\xaf",
        "surrogate", "\xed\xa0\x80",
        "good",      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "k\"ey\n",   "v",
    };
    char *line = format("m\"sg\x02", kv, sizeof kv / sizeof kv[0]);
    static const char *const has[] = {"\"say \\\"hi\\\" \\\\ back\"",
                                      "\"a\\nb\\tc\\r\\u0001\\u001f\x7f\"",
                                      "\"x\\ufffd\\ufffdy\"",
                                      "\"cut\":\"\\ufffd\\ufffd\"",
                                      "\"overlong\":\"\\ufffd\\ufffd\"",
                                      "\"surrogate\":\"\\ufffd\\ufffd\\ufffd\"",
                                      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
                                      "\"k\\\"ey\\n\":\"v\"",
                                      "\"msg\":\"m\\\"sg\\u0002\"",
                                      NULL};
    s_expect(line, has, NULL);

    char buf[64];
    assert_int_equal(vz_json_escape(buf, sizeof buf, "a\"b"), 4);
    assert_string_equal(buf, "a\\\"b");
    assert_true(vz_json_escape(buf, 4, "abcdef") < 0);
}

static void test_truncation(void **state)
{
    size_t big = 100000;
    char *value = malloc(big + 1);
    memset(value, 'a', big);
    value[big] = '\0';
    //  A multibyte character straddling the cut must not be split.
    memcpy(value + VZ_LOG_VALUE_MAX - 1, "\xe2\x82\xac", 3);
    const char *kv[] = {"body", value};
    char *line = format("long", kv, 2);
    assert_non_null(strstr(line, "...[truncated]\""));
    assert_true(strlen(line) < VZ_LOG_VALUE_MAX + 200);
    assert_null(strstr(line, "\\ufffd"));

    //  Many quotes: the escaped form grows, the line stays valid.
    memset(value, '"', big);
    line = format(value, kv, 2);
    assert_non_null(strstr(line, "...[truncated]"));

    //  Too small a buffer is reported, not overrun.
    char small[40];
    assert_true(vz_log_format(small, sizeof small, VZ_LOG_INFO, NULL, "hello", NULL, 0) < 0);
    free(value);
}

static int s_evaluated;

static const char *side_effect(void)
{
    s_evaluated++;
    return "v";
}

//  Capture what vz_log_write puts on stderr.
static char *capture(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char out[65536];
    size_t len = 0;
    ssize_t rc;
    while ((rc = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)rc;
    close(fds[0]);
    out[len] = '\0';
    return out;
}

static void write_lines(void)
{
    vz_debug(NULL, "hidden", "k", side_effect());
    vz_info("r-9", "visible", "password", "pw", "k", side_effect());
    vz_error(NULL, "error line");
}

static void test_write_and_level(void **state)
{
    vz_log_init("svc", VZ_LOG_INFO);
    s_evaluated = 0;
    char *out = capture(write_lines);
    //  The debug call never evaluated its arguments.
    assert_int_equal(s_evaluated, 1);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_true(json_valid(out));
    assert_non_null(strstr(out, "\"msg\":\"visible\""));
    assert_non_null(strstr(out, "\"password\":\"[redacted]\""));
    char *second = nl + 1;
    nl = strchr(second, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_true(json_valid(second));
    assert_non_null(strstr(second, "\"level\":\"error\""));
    assert_string_equal(nl + 1, "");

    vz_log_init("svc", VZ_LOG_ERROR);
    assert_false(vz_log_enabled(VZ_LOG_WARN));
    assert_true(vz_log_enabled(VZ_LOG_ERROR));
    vz_log_init("svc", VZ_LOG_INFO);
}

static void many_fields(void)
{
    static char big[VZ_LOG_VALUE_MAX];
    memset(big, '\x01', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    //  Each field escapes to ~12 KB: the line must drop fields, not break.
    vz_info(NULL, "many", "a", big, "b", big, "c", big, "d", big);
}

static void test_write_overflow(void **state)
{
    vz_log_init("svc", VZ_LOG_INFO);
    char *out = capture(many_fields);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_true(json_valid(out));
    assert_non_null(strstr(out, "\"msg\":\"many\""));
    assert_non_null(strstr(out, "\"a\":"));
    assert_null(strstr(out, "\"d\":"));
}

static void test_level_parse(void **state)
{
    vz_log_level_t level;
    assert_int_equal(vz_log_level_parse("debug", &level), 0);
    assert_int_equal(level, VZ_LOG_DEBUG);
    assert_int_equal(vz_log_level_parse("WARN", &level), 0);
    assert_int_equal(level, VZ_LOG_WARN);
    assert_int_equal(vz_log_level_parse("error", &level), 0);
    assert_int_equal(level, VZ_LOG_ERROR);
    assert_int_equal(vz_log_level_parse("verbose", &level), -EINVAL);
    assert_int_equal(vz_log_level_parse("", &level), -EINVAL);
    assert_int_equal(vz_log_level_parse(NULL, &level), -EINVAL);
}

//  stderr into a temporary file while a buffered sink is used: more than a
//  pipe holds can be written before anyone reads.
typedef struct {
    FILE *file; //  the temporary file
    int saved;  //  the real stderr
} redirect_t;

static redirect_t s_redirect = {NULL, -1}; //  the one in effect, for s_restore

static redirect_t redirect_start(void)
{
    redirect_t r = {tmpfile(), dup(STDERR_FILENO)};
    assert_non_null(r.file);
    assert_true(r.saved >= 0);
    assert_true(dup2(fileno(r.file), STDERR_FILENO) >= 0);
    s_redirect = r;
    return r;
}

//  Everything written to stderr since start (or the last read), heap, caller frees.
static char *redirect_read(redirect_t *r)
{
    off_t end = lseek(fileno(r->file), 0, SEEK_END);
    assert_true(end >= 0);
    char *text = malloc((size_t)end + 1);
    assert_non_null(text);
    assert_int_equal(pread(fileno(r->file), text, (size_t)end, 0), end);
    text[end] = '\0';
    return text;
}

static void redirect_stop(redirect_t *r)
{
    dup2(r->saved, STDERR_FILENO);
    close(r->saved);
    fclose(r->file);
    s_redirect = (redirect_t){NULL, -1};
}

//  Teardown: a failed assert leaves the test early; give stderr back so
//  cmocka's report and the later tests are seen.
static int s_restore(void **state)
{
    if (s_redirect.file)
        redirect_stop(&s_redirect);
    return 0;
}

//  Count the lines of text, failing on any line that is not whole, valid JSON.
static size_t whole_lines(char *text)
{
    size_t count = 0;
    char *line = text;
    for (char *nl = strchr(line, '\n'); nl; nl = strchr(line, '\n')) {
        *nl = '\0';
        assert_true(json_valid(line));
        *nl = '\n';
        line = nl + 1;
        count++;
    }
    assert_string_equal(line, ""); //  nothing after the last newline
    return count;
}

static void test_logbuf_collects_then_flushes(void **state)
{
    vz_log_init("svc", VZ_LOG_INFO);
    redirect_t r = redirect_start();
    vz_logbuf_t *buf = vz_logbuf_new(4096);
    assert_non_null(buf);
    vz_info_to(buf, "r-1", "access", "status", "200", "token", "t0ps3cret");
    vz_info_to(buf, "r-2", "access", "status", "404", "client_ip", "127.0.0.1");
    vz_logbuf_write(buf, VZ_LOG_DEBUG, NULL, "below the level", (const char *)0);
    char *before = redirect_read(&r);
    assert_string_equal(before, ""); //  collected, not written
    free(before);
    vz_logbuf_flush(buf);
    char *after = redirect_read(&r);
    assert_int_equal(whole_lines(after), 2);
    char *second = strstr(after, "\"request_id\":\"r-2\"");
    assert_non_null(second);
    assert_true(strstr(after, "\"request_id\":\"r-1\"") < second); //  in order
    assert_non_null(strstr(after, "\"token\":\"[redacted]\""));    //  same formatting
    assert_null(strstr(after, "below the level"));
    free(after);
    vz_logbuf_flush(buf); //  nothing new: nothing written
    char *again = redirect_read(&r);
    assert_int_equal(whole_lines(again), 2);
    free(again);
    vz_logbuf_destroy(&buf);
    assert_null(buf);
    vz_logbuf_destroy(&buf);
    redirect_stop(&r);
}

static void test_logbuf_full_and_unbuffered(void **state)
{
    vz_log_init("svc", VZ_LOG_INFO);
    redirect_t r = redirect_start();
    //  A line is ~130 bytes: a 400-byte buffer holds three, so the fourth
    //  writes the first three out, whole.
    vz_logbuf_t *buf = vz_logbuf_new(400);
    char id[16];
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "r-%d", i);
        vz_info_to(buf, id, "access", "status", "200");
    }
    char *text = redirect_read(&r);
    size_t early = whole_lines(text);
    assert_true(early >= 1 && early < 4);
    assert_null(strstr(text, "\"r-3\""));
    free(text);
    //  A line longer than the buffer goes out at once, after what was held.
    static char big[1000];
    memset(big, 'x', sizeof big - 1);
    vz_info_to(buf, "r-big", "access", "path", big);
    text = redirect_read(&r);
    assert_int_equal(whole_lines(text), 5);
    assert_true(strstr(text, "\"r-3\"") < strstr(text, "\"r-big\""));
    free(text);
    vz_logbuf_destroy(&buf); //  flushes (nothing left)
    //  capacity 0: no sink, every line written at once.
    assert_null(vz_logbuf_new(0));
    vz_info_to(NULL, "r-now", "access");
    text = redirect_read(&r);
    assert_int_equal(whole_lines(text), 6);
    assert_non_null(strstr(text, "\"r-now\""));
    free(text);
    redirect_stop(&r);
}

#define WRITERS 4
#define LINES_EACH 2000

static void *s_writer(void *arg)
{
    vz_logbuf_t *buf = arg;
    char id[32], n[16];
    for (int i = 0; i < LINES_EACH; i++) {
        snprintf(id, sizeof id, "w%p-%d", (void *)&id, i);
        snprintf(n, sizeof n, "%d", i);
        vz_info_to(buf, id, "access", "n", n, "path", "/v1/echo");
        if (i % 500 == 0)
            vz_logbuf_flush(buf); //  a flush racing the writers, as the reactor's tick does
    }
    return NULL;
}

static void test_logbuf_threads(void **state)
{
    vz_log_init("svc", VZ_LOG_INFO);
    redirect_t r = redirect_start();
    vz_logbuf_t *buf = vz_logbuf_new(8192);
    pthread_t threads[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_writer, buf), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(threads[i], NULL);
    vz_logbuf_destroy(&buf);
    char *text = redirect_read(&r);
    //  Every line whole and valid: none lost, none interleaved.
    assert_int_equal(whole_lines(text), WRITERS * LINES_EACH);
    free(text);
    redirect_stop(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_rejects),
        cmocka_unit_test(test_basic_line),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_email_masking),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_write_and_level),
        cmocka_unit_test(test_write_overflow),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test_teardown(test_logbuf_collects_then_flushes, s_restore),
        cmocka_unit_test_teardown(test_logbuf_full_and_unbuffered, s_restore),
        cmocka_unit_test_teardown(test_logbuf_threads, s_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
