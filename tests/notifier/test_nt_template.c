/*  test_nt_template - templates: placeholders, HTML escaping, missing variables, injection
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
#include <unistd.h>

#include "nt_template.h"
#include "ut.h"

static const char *s_get(void *arg, const char *name)
{
    const char *const *kv = arg;
    for (size_t i = 0; kv[i]; i += 2)
        if (strcmp(kv[i], name) == 0)
            return kv[i + 1];
    return NULL;
}

static void s_write(const char *dir, const char *file, const char *text)
{
    assert_non_null(ut_write_file(dir, file, text));
}

static void test_expand(void **state)
{
    const char *vars[] = {"name", "<Zoë & \"co\">", "n", "3", NULL};
    nt_buf_t out = {0};
    char missing[64] = "";
    assert_int_equal(nt_template_expand("Hi {{name}}, {{ n }} {{{{x}}", true, s_get, vars, &out,
                                        missing, sizeof missing),
                     0);
    assert_string_equal(out.data, "Hi &lt;Zoë &amp; &quot;co&quot;&gt;, 3 {{x}}");
    nt_buf_free(&out);
    assert_int_equal(
        nt_template_expand("Hi {{name}}", false, s_get, vars, &out, missing, sizeof missing), 0);
    assert_string_equal(out.data, "Hi <Zoë & \"co\">");
    nt_buf_free(&out);
    assert_int_equal(
        nt_template_expand("Hi {{who}}!", false, s_get, vars, &out, missing, sizeof missing),
        -ESRCH);
    assert_string_equal(missing, "who");
    nt_buf_free(&out);
    assert_int_equal(
        nt_template_expand("Hi {{who", false, s_get, vars, &out, missing, sizeof missing), -EINVAL);
    nt_buf_free(&out);
    assert_int_equal(
        nt_template_expand("Hi {{a b}}", false, s_get, vars, &out, missing, sizeof missing),
        -EINVAL);
    nt_buf_free(&out);
}

//  {{{name}}}: the caller's own HTML goes in unescaped, beside escaped values.
static void test_expand_raw(void **state)
{
    const char *vars[] = {"html", "<table><tr><td>5 &amp; 6</td></tr></table>", "n", "<3", NULL};
    nt_buf_t out = {0};
    char missing[64] = "";
    assert_int_equal(nt_template_expand("<body>{{{html}}} {{n}} {{{ n }}}</body>", true, s_get,
                                        vars, &out, missing, sizeof missing),
                     0);
    assert_string_equal(out.data,
                        "<body><table><tr><td>5 &amp; 6</td></tr></table> &lt;3 <3</body>");
    nt_buf_free(&out);
    //  A literal "{{" still wins over a raw placeholder.
    assert_int_equal(
        nt_template_expand("{{{{html}}", true, s_get, vars, &out, missing, sizeof missing), 0);
    assert_string_equal(out.data, "{{html}}");
    nt_buf_free(&out);
    assert_int_equal(
        nt_template_expand("{{{html}}", true, s_get, vars, &out, missing, sizeof missing), -EINVAL);
    nt_buf_free(&out);
    assert_int_equal(
        nt_template_expand("{{{who}}}", true, s_get, vars, &out, missing, sizeof missing), -ESRCH);
    assert_string_equal(missing, "who");
    nt_buf_free(&out);
}

static void test_load_render(void **state)
{
    char dir[512];
    assert_int_equal(ut_tempdir(dir, sizeof dir, "nt_tpl"), 0);
    s_write(dir, "hello.subject", "Hello {{name}}\n");
    s_write(dir, "hello.txt", "Dear {{name}}, you owe {{amount}}.\n");
    s_write(dir, "hello.html", "<p>Dear {{name}}</p>\n");
    s_write(dir, "textonly.subject", "x");
    s_write(dir, "textonly.txt", "only text");
    s_write(dir, "README", "not a template");
    char err[256] = "";
    nt_templates_t *t = nt_templates_load(dir, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(nt_templates_count(t), 2);
    assert_true(nt_templates_has(t, "hello"));
    assert_false(nt_templates_has(t, "../hello"));
    const char *vars[] = {"name", "<b>Bob</b>", "amount", "5 EUR", NULL};
    nt_rendered_t r;
    char missing[64];
    assert_int_equal(nt_template_render(t, "hello", s_get, vars, &r, missing, sizeof missing), 0);
    assert_string_equal(r.subject, "Hello <b>Bob</b>");
    assert_string_equal(r.text, "Dear <b>Bob</b>, you owe 5 EUR.\n");
    assert_string_equal(r.html, "<p>Dear &lt;b&gt;Bob&lt;/b&gt;</p>\n");
    nt_rendered_free(&r);
    //  A missing variable is an error naming it, in any part.
    const char *partial[] = {"name", "Bob", NULL};
    assert_int_equal(nt_template_render(t, "hello", s_get, partial, &r, missing, sizeof missing),
                     -ESRCH);
    assert_string_equal(missing, "amount");
    assert_null(r.subject);
    //  CR/LF into the subject is refused; into the text it is fine.
    const char *inject[] = {"name", "Bob\r\nBcc: x@y.z", "amount", "1", NULL};
    assert_int_equal(nt_template_render(t, "hello", s_get, inject, &r, missing, sizeof missing),
                     -EILSEQ);
    assert_string_equal(missing, "name");
    assert_int_equal(nt_template_render(t, "nope", s_get, vars, &r, missing, sizeof missing),
                     -ENOENT);
    nt_templates_destroy(&t);
    assert_null(t);

    //  A template without a body, or with a malformed placeholder, fails the load.
    s_write(dir, "broken.subject", "x {{oops");
    s_write(dir, "broken.txt", "y");
    assert_null(nt_templates_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "broken"));
    assert_int_equal(ut_rmtree(dir), 0);
}

static void test_shipped_templates(void **state)
{
    char err[256] = "";
    nt_templates_t *t = nt_templates_load(VZ_TEST_SOURCE_DIR "/configs/templates", err, sizeof err);
    if (!t)
        fail_msg("configs/templates: %s", err);
    static const char *const names[] = {"alert",  "digest", "dunning",      "receipt",
                                        "report", "test",   "weekly_report"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_true(nt_templates_has(t, names[i]));
    //  Billing's receipt and dunning with the variables bl_notify.c sends.
    const char *billing[] = {"name",    "Zoë <Z>",  "amount", "12.34 EUR",
                             "invoice", "INV-0042", "url",    "https://pay.example/i?a=1&b=2",
                             NULL};
    nt_rendered_t r;
    char missing[64] = "";
    assert_int_equal(nt_template_render(t, "dunning", s_get, billing, &r, missing, sizeof missing),
                     0);
    assert_string_equal(r.subject, "Payment failed: invoice INV-0042 from vizmesh");
    assert_non_null(strstr(r.text, "12.34 EUR"));
    assert_non_null(strstr(r.text, "https://pay.example/i?a=1&b=2"));
    assert_non_null(strstr(r.html, "href=\"https://pay.example/i?a=1&amp;b=2\""));
    assert_non_null(strstr(r.html, "Zoë &lt;Z&gt;"));
    nt_rendered_free(&r);
    assert_int_equal(nt_template_render(t, "receipt", s_get, billing, &r, missing, sizeof missing),
                     0);
    nt_rendered_free(&r);
    //  The reporter's own HTML and text go through weekly_report as they are.
    const char *report[] = {
        "week", "2026-W49",
        "text", "MRR 1 200 EUR",
        "html", "<table style=\"x\"><tr><td><img src=\"cid:mrr@r\"></td></tr></table>",
        NULL};
    assert_int_equal(
        nt_template_render(t, "weekly_report", s_get, report, &r, missing, sizeof missing), 0);
    assert_string_equal(r.subject, "vizmesh weekly report: 2026-W49");
    assert_string_equal(r.text, "MRR 1 200 EUR\n");
    assert_string_equal(r.html,
                        "<table style=\"x\"><tr><td><img src=\"cid:mrr@r\"></td></tr></table>\n");
    nt_rendered_free(&r);
    nt_templates_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_expand_raw),
        cmocka_unit_test(test_load_render),
        cmocka_unit_test(test_shipped_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
