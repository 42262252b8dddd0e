/*  test_rp_render - the report's HTML, text, charts and PDF from a model written by hand
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The model holds what the services would answer: revenue in two
 *  currencies (one zero-decimal), three days of users, an error code
 *  carrying markup (a service's text must be escaped), the roadmap
 *  unavailable with its reason. The HTML has no <script> or <style>,
 *  every figure formatted, the images where their sections are; the
 *  charts are PNGs of the stated size; the PDF has the text pages and one
 *  page per two charts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rp.h"
#include "rp_chart.h"
#include "rp_render.h"

static const char s_model[] =
    "{\"week\":\"2026-W49\",\"start\":1795996800,\"end\":1796601600,\"generated_at\":1796716800,"
    "\"trigger\":\"schedule\",\"dry_run\":false,\"partial\":[\"roadmap\"],\"sections\":{"
    "\"revenue\":{\"status\":\"ok\",\"reason\":\"\","
    "\"week\":{\"new_subscriptions\":2,\"churn_rate\":0.25,\"currencies\":{\"usd\":{\"revenue\":"
    "123456,\"refunds\":0,\"mrr\":5000,\"arr\":60000},\"jpy\":{\"revenue\":9800,\"mrr\":980,"
    "\"arr\":11760}}},"
    "\"month\":{\"new_subscriptions\":3,\"churn_rate\":0,\"currencies\":{\"usd\":{\"revenue\":"
    "200000}}},"
    "\"year\":{\"new_subscriptions\":9,\"churn_rate\":0.1,\"currencies\":{\"eur\":{\"revenue\":"
    "-150}}},"
    "\"mrr_trend\":[{\"start\":1795392000,\"mrr\":{\"usd\":4000}},{\"start\":1795996800,"
    "\"mrr\":{\"usd\":5000,\"jpy\":980}}]},"
    "\"usage\":{\"status\":\"partial\",\"reason\":\"telemetry.signals: timeout\","
    "\"current\":{\"t\":1796687999,\"dau\":3,\"wau\":11,\"mau\":42,\"window_days\":30,"
    "\"events\":{\"signup\":3,\"login\":9},\"countries\":{}},"
    "\"days\":[{\"day\":\"2026-11-30\",\"dau\":5,\"wau\":9,\"mau\":40},{\"day\":\"2026-12-01\","
    "\"dau\":4,\"wau\":10,\"mau\":41},{\"day\":\"2026-12-06\",\"dau\":3,\"wau\":11,\"mau\":42}],"
    "\"endpoints\":{\"services\":[{\"service\":\"gateway\",\"series\":[{\"name\":\"echo\","
    "\"count\":10,\"error_ratio\":1,\"codes\":{\"200\":7,\"304\":1,\"503\":2}}]}]}},"
    "\"errors\":{\"status\":\"ok\",\"reason\":\"\",\"top\":{\"t\":1,\"errors\":[{\"code\":"
    "\"<script>x</script>\",\"count\":9,\"previous_week\":3,\"change\":2,\"services\":[\"gw\","
    "\"echo\"]},{\"code\":\"timeout\",\"count\":4,\"previous_week\":0,\"change\":null,"
    "\"services\":[]}]},\"rate_trend\":[{\"week\":\"2026-W48\",\"calls\":4,\"errors\":1,"
    "\"rate\":0.25},{\"week\":\"2026-W49\",\"calls\":10,\"errors\":2,\"rate\":0.2}],"
    "\"issues\":[{\"code\":\"timeout\",\"repo\":\"acme/api\",\"number\":12,"
    "\"issue\":{\"state\":\"closed\",\"state_reason\":\"completed\"},\"error\":\"\"},"
    "{\"code\":\"<script>x</script>\",\"repo\":\"acme/web\",\"number\":3,\"issue\":null,"
    "\"error\":\"no_worker: \"}]},"
    "\"roadmap\":{\"status\":\"unavailable\",\"reason\":\"github.roadmap: no_worker: no "
    "worker & <none>\",\"roadmap\":null}}}";

static void test_html_and_text(void **state)
{
    vz_json_t *doc = vz_json_parse(s_model, strlen(s_model), NULL, NULL);
    assert_non_null(doc);
    const rp_image_ref_t images[] = {{"mrr", "cid:mrr-2026-W49@vizmesh", "MRR"},
                                     {"users", "cid:users-2026-W49@vizmesh", "Users"},
                                     {"errors", "cid:errors-2026-W49@vizmesh", "Errors"}};
    char *html = rp_render_html(vz_json_root(doc), images, 3);
    assert_non_null(strstr(html, "Week 2026-W49: Mon 30 Nov 2026 to Sun 06 Dec 2026 (UTC)"));
    assert_non_null(strstr(html, "1234.56 USD"));
    assert_non_null(strstr(html, "9800 JPY"));   //  zero-decimal
    assert_non_null(strstr(html, "-1.50 EUR"));  //  refunds may exceed revenue
    assert_non_null(strstr(html, "600.00 USD")); //  ARR
    assert_non_null(strstr(html, "25.00 %"));    //  churn
    assert_non_null(strstr(html, "&lt;script&gt;x&lt;/script&gt;"));
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<style"));
    assert_non_null(strstr(html, "+200 %"));
    assert_non_null(strstr(html, ">new</td>"));
    assert_non_null(strstr(html, "acme/api#12 closed (completed)"));
    //  2xx and 3xx of the gateway are not errors: 2 of 10.
    assert_non_null(strstr(html, "Error rate: 20.00 %"));
    assert_non_null(strstr(html, ">20.00 %</td>"));
    assert_non_null(strstr(html, "acme/web#3 state unknown"));
    assert_non_null(strstr(html, "gw, echo"));
    assert_non_null(strstr(html, "src=\"cid:mrr-2026-W49@vizmesh\""));
    assert_non_null(strstr(html, "src=\"cid:users-2026-W49@vizmesh\""));
    assert_non_null(strstr(html, "<b>Partial</b>: telemetry.signals: timeout"));
    assert_non_null(strstr(
        html, "<b>Unavailable</b>: github.roadmap: no_worker: no worker &amp; &lt;none&gt;"));
    assert_non_null(strstr(html, "Incomplete sections: roadmap"));
    //  Feature adoption, the largest first; no country known.
    const char *login = strstr(html, "login</td>"), *signup = strstr(html, "signup</td>");
    assert_true(login && signup && login < signup);
    assert_non_null(strstr(html, "Feature adoption (events), last 30 days"));
    assert_non_null(strstr(html, "no country known"));
    free(html);
    char *text = rp_render_text(vz_json_root(doc));
    assert_non_null(strstr(text, "Weekly executive report, week 2026-W49\n"));
    assert_non_null(strstr(text, "DAU 3, WAU 11, MAU 42\n"));
    assert_non_null(strstr(text, "Unavailable: github.roadmap: no_worker: no worker & <none>\n"));
    assert_non_null(strstr(text, "1234.56 USD"));
    free(text);
    vz_json_destroy(&doc);
}

static void test_charts_and_pdf(void **state)
{
    vz_json_t *doc = vz_json_parse(s_model, strlen(s_model), NULL, NULL);
    rp_charts_t charts;
    rp_render_charts(vz_json_root(doc), &charts);
    //  The roadmap is unavailable: no velocity chart.
    assert_int_equal(charts.count, 4);
    assert_string_equal(charts.name[3], "error_rate");
    assert_true(charts.chart[3].series[0].values[0] == 25.0);
    assert_string_equal(charts.chart[3].labels[1], "2026-W49");
    assert_string_equal(charts.name[0], "mrr");
    assert_int_equal(charts.chart[0].count, 2);
    assert_int_equal(charts.chart[0].nseries, 2);
    assert_true(charts.chart[0].series[0].values[1] == 50.0);  //  usd, in units
    assert_true(charts.chart[0].series[1].values[1] == 980.0); //  jpy has no minor unit
    assert_string_equal(charts.chart[1].labels[2], "12-06");
    assert_true(charts.chart[2].bars);
    for (size_t i = 0; i < charts.count; i++) {
        uint8_t *png = NULL;
        size_t len = 0;
        assert_int_equal(rp_chart_png(&charts.chart[i], &png, &len), 0);
        assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
        //  IHDR: width and height, big-endian.
        assert_int_equal((png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19],
                         RP_CHART_WIDTH);
        assert_int_equal((png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23],
                         RP_CHART_HEIGHT);
        free(png);
    }
    //  A long text runs over pages; three charts take two more.
    char *text = malloc(200 * 20 + 1);
    text[0] = '\0';
    for (int i = 0; i < 200; i++)
        strcat(text, "line of the report\n");
    uint8_t *pdf = NULL;
    size_t len = 0;
    int pages = 0;
    assert_int_equal(
        rp_chart_pdf("Weekly report", text, charts.chart, charts.count, &pdf, &len, &pages), 0);
    assert_memory_equal(pdf, "%PDF-", 5);
    assert_int_equal(pages, 4 + 2); //  200 lines at 12 pt: 4 pages of text
    free(pdf);
    free(text);
    vz_json_destroy(&doc);
}

static void test_empty_model(void **state)
{
    //  Nothing at all: every section unavailable, nothing crashes.
    vz_json_t *doc = vz_json_parse("{}", 2, NULL, NULL);
    char *html = rp_render_html(vz_json_root(doc), NULL, 0);
    assert_non_null(strstr(html, "Unavailable"));
    free(html);
    char *text = rp_render_text(vz_json_root(doc));
    assert_non_null(strstr(text, "Unavailable: no data"));
    free(text);
    rp_charts_t charts;
    rp_render_charts(vz_json_root(doc), &charts);
    assert_int_equal(charts.count, 0);
    vz_json_destroy(&doc);
}

static void test_links(void **state)
{
    rp_link_t links[RP_LINKS_MAX];
    char err[160] = "";
    assert_int_equal(rp_links_parse("", links, err, sizeof err), 0);
    assert_int_equal(
        rp_links_parse("internal=acme/api#12, timeout=acme-inc/web.app#7", links, err, sizeof err),
        2);
    assert_string_equal(links[1].code, "timeout");
    assert_string_equal(links[1].owner, "acme-inc");
    assert_string_equal(links[1].repo, "web.app");
    assert_int_equal(links[1].number, 7);
    static const char *const bad[] = {"internal",      "internal=acme#1", "x=acme/api#0",
                                      "x=acme/api#1a", "x=ac me/api#1",   "=acme/api#1",
                                      "x=acme/a\"b#1", "x=/api#1",        "x=acme/#1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rp_links_parse(bad[i], links, err, sizeof err), -EINVAL);
    assert_int_equal(rp_links_parse("a=b/c#1 a=b/c#2 a=b/c#3 a=b/c#4 a=b/c#5 a=b/c#6 a=b/c#7 "
                                    "a=b/c#8 a=b/c#9",
                                    links, err, sizeof err),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html_and_text),
        cmocka_unit_test(test_charts_and_pdf),
        cmocka_unit_test(test_empty_model),
        cmocka_unit_test(test_links),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rp_chart_shutdown();
    return rc;
}
