/*  test_nt_chat - Slack, Discord, PagerDuty and webhook payloads, the HMAC signature
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nt_chat.h"
#include "vz_json.h"

static nt_chat_msg_t s_msg(void)
{
    nt_chat_msg_t m = {
        .id = "n_0123456789abcdef01234567",
        .subject = "[critical] disk full",
        .text = "Disk /var is 99% full",
        .severity = "critical",
        .event_action = "trigger",
        .dedup_key = "disk-full-db1",
        .source = "db1",
        .routing_key = "R0UT1NGKEY",
        .data_json = "{\"host\":\"db1\",\"n\":3}",
        .now_ms = 1796274000000,
    };
    return m;
}

//  len_p is read after the builder call has filled it.
static vz_json_t *s_parse(char *text, const size_t *len_p)
{
    vz_json_t *doc = vz_json_parse(text, *len_p, NULL, NULL);
    assert_non_null(doc);
    free(text);
    return doc;
}

static void test_slack(void **state)
{
    nt_chat_msg_t m = s_msg();
    size_t len;
    vz_json_t *doc = s_parse(nt_chat_slack(&m, &len), &len);
    const vz_json_value_t *root = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(root, "text", NULL), m.subject);
    const vz_json_value_t *blocks = vz_json_get(root, "blocks");
    assert_int_equal(vz_json_size(blocks), 2);
    assert_string_equal(vz_json_get_string(vz_json_at(blocks, 0), "type", NULL), "header");
    assert_string_equal(
        vz_json_get_string(vz_json_get(vz_json_at(blocks, 0), "text"), "type", NULL), "plain_text");
    assert_string_equal(
        vz_json_get_string(vz_json_get(vz_json_at(blocks, 1), "text"), "text", NULL), m.text);
    vz_json_destroy(&doc);
    //  The header is cut at 150 bytes, on a character boundary.
    char subject[400] = "";
    for (int i = 0; i < 100; i++)
        strcat(subject, "\xc3\xa9");
    m.subject = subject;
    doc = s_parse(nt_chat_slack(&m, &len), &len);
    size_t n = 0;
    const char *h = vz_json_get_string(
        vz_json_get(vz_json_at(vz_json_get(vz_json_root(doc), "blocks"), 0), "text"), "text", &n);
    assert_non_null(h);
    assert_int_equal(n, 150);
    vz_json_destroy(&doc);
}

static void test_discord(void **state)
{
    nt_chat_msg_t m = s_msg();
    size_t len;
    vz_json_t *doc = s_parse(nt_chat_discord(&m, &len), &len);
    const vz_json_value_t *embed = vz_json_at(vz_json_get(vz_json_root(doc), "embeds"), 0);
    assert_string_equal(vz_json_get_string(embed, "title", NULL), m.subject);
    assert_string_equal(vz_json_get_string(embed, "description", NULL), m.text);
    assert_string_equal(vz_json_get_string(embed, "timestamp", NULL), "2026-12-03T05:00:00Z");
    int64_t color = 0;
    assert_int_equal(vz_json_int(vz_json_get(embed, "color"), &color), 0);
    assert_int_equal(color, 0xD32F2F);
    assert_int_equal(
        vz_json_size(vz_json_get(vz_json_get(vz_json_root(doc), "allowed_mentions"), "parse")), 0);
    vz_json_destroy(&doc);
}

static void test_pagerduty(void **state)
{
    nt_chat_msg_t m = s_msg();
    size_t len;
    vz_json_t *doc = s_parse(nt_chat_pagerduty(&m, &len), &len);
    const vz_json_value_t *root = vz_json_root(doc);
    assert_string_equal(vz_json_get_string(root, "routing_key", NULL), "R0UT1NGKEY");
    assert_string_equal(vz_json_get_string(root, "event_action", NULL), "trigger");
    assert_string_equal(vz_json_get_string(root, "dedup_key", NULL), "disk-full-db1");
    const vz_json_value_t *payload = vz_json_get(root, "payload");
    assert_string_equal(vz_json_get_string(payload, "summary", NULL), m.subject);
    assert_string_equal(vz_json_get_string(payload, "source", NULL), "db1");
    assert_string_equal(vz_json_get_string(payload, "severity", NULL), "critical");
    vz_json_destroy(&doc);
    //  A resolve carries the same dedup key and no payload.
    m.event_action = "resolve";
    doc = s_parse(nt_chat_pagerduty(&m, &len), &len);
    assert_string_equal(vz_json_get_string(vz_json_root(doc), "event_action", NULL), "resolve");
    assert_string_equal(vz_json_get_string(vz_json_root(doc), "dedup_key", NULL), "disk-full-db1");
    assert_null(vz_json_get(vz_json_root(doc), "payload"));
    vz_json_destroy(&doc);
}

static void test_webhook_signature(void **state)
{
    nt_chat_msg_t m = s_msg();
    size_t len;
    char *body = nt_chat_webhook(&m, &len);
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    assert_non_null(doc);
    assert_string_equal(vz_json_get_string(vz_json_root(doc), "id", NULL), m.id);
    assert_string_equal(vz_json_get_string(vz_json_get(vz_json_root(doc), "data"), "host", NULL),
                        "db1");
    vz_json_destroy(&doc);
    //  RFC 4231 test case 2 key/data shape, checked against openssl's own HMAC.
    char sig[160];
    nt_chat_sign("secret", 1700000000, "{}", 2, sig, sizeof sig);
    //  echo -n '1700000000.{}' | openssl dgst -sha256 -hmac secret
    FILE *p = popen("printf '%s' '1700000000.{}' | openssl dgst -sha256 -hmac secret | "
                    "sed 's/.*= //'",
                    "r");
    assert_non_null(p);
    char expect[128] = "";
    assert_non_null(fgets(expect, sizeof expect, p));
    pclose(p);
    expect[strcspn(expect, "\n")] = '\0';
    char want[160];
    snprintf(want, sizeof want, "t=1700000000,v1=%s", expect);
    assert_string_equal(sig, want);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slack),
        cmocka_unit_test(test_discord),
        cmocka_unit_test(test_pagerduty),
        cmocka_unit_test(test_webhook_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
