/*  test_notifier_contract - notifier.send: encoder, view, keys, reply round trip and refusals
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_common.h"
#include "vz_json.h"
#include "vz_notifier_contract.h"

#define S_ID "n_0123456789abcdef01234567"

//  The exact bytes of a request: the wire the notifier has always read.
static void test_encode_wire(void **state)
{
    vz_nt_var_t data[] = {
        {.name = "slo", .type = VZ_NT_VAR_STR, .s = "api"},
        {.name = "burn_rate", .type = VZ_NT_VAR_DOUBLE, .d = 14.4},
        {.name = "fired_at", .type = VZ_NT_VAR_INT, .i = -3},
        {.name = "ok", .type = VZ_NT_VAR_BOOL, .b = true},
    };
    vz_nt_send_t send = {.channel = "pagerduty",
                         .to = "",
                         .template_name = "slo_alert",
                         .severity = "critical",
                         .idempotency_key = "k/1",
                         .data = data,
                         .ndata = 4};
    size_t len = 0;
    char *body = vz_nt_send_encode(&send, &len);
    assert_string_equal(body, "{\"channel\":\"pagerduty\",\"to\":\"\",\"template\":\"slo_alert\","
                              "\"severity\":\"critical\",\"idempotency_key\":\"k/1\","
                              "\"data\":{\"slo\":\"api\",\"burn_rate\":14.4,\"fired_at\":-3,"
                              "\"ok\":true}}");
    assert_int_equal(len, strlen(body));
    free(body);
    //  Absent fields are not written at all.
    vz_nt_send_t bare = {.channel = "slack", .template_name = "t"};
    body = vz_nt_send_encode(&bare, NULL);
    assert_string_equal(body, "{\"channel\":\"slack\",\"template\":\"t\"}");
    free(body);
}

//  What a caller encodes, the notifier's view reads back field for field.
static void test_round_trip(void **state)
{
    vz_nt_var_t data[] = {{.name = "who", .type = VZ_NT_VAR_STR, .s = "Ann \"A\"\n"}};
    vz_nt_attachment_t attach[] = {
        {.name = "a.txt", .type = "text/plain", .content = "aGk=", .content_id = "c1"}};
    vz_nt_send_t send = {.channel = "email",
                         .to = "ann@example.com",
                         .template_name = "welcome",
                         .data = data,
                         .ndata = 1,
                         .severity = "info",
                         .idempotency_key = "welcome-1",
                         .event_action = "resolve",
                         .dedup_key = "d-1",
                         .source = "billing",
                         .attachments = attach,
                         .nattachments = 1};
    size_t len = 0;
    char *body = vz_nt_send_encode(&send, &len);
    assert_non_null(body);
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    assert_non_null(doc);
    vz_nt_send_view_t v;
    assert_int_equal(vz_nt_send_view(vz_json_root(doc), &v, NULL), 0);
    assert_string_equal(v.channel, "email");
    assert_string_equal(v.template_name, "welcome");
    assert_string_equal(vz_json_string(v.to, NULL), "ann@example.com");
    assert_string_equal(vz_json_get_string(v.data, "who", NULL), "Ann \"A\"\n");
    assert_string_equal(v.severity, "info");
    assert_true(v.has_severity);
    assert_string_equal(v.idempotency_key, "welcome-1");
    assert_true(v.has_idempotency_key);
    assert_string_equal(v.event_action, "resolve");
    assert_string_equal(v.dedup_key, "d-1");
    assert_string_equal(v.source, "billing");
    assert_int_equal(vz_json_size(v.attachments), 1);
    const vz_json_value_t *a = vz_json_at(v.attachments, 0);
    assert_string_equal(vz_json_get_string(a, VZ_NT_F_CONTENT, NULL), "aGk=");
    assert_string_equal(vz_json_get_string(a, VZ_NT_F_CONTENT_ID, NULL), "c1");
    vz_json_destroy(&doc);
    free(body);
}

//  The reporter's message: named recipients, raw bytes of an inline PNG and
//  a PDF attachment, encoded to the wire the notifier reads.
static void test_recipients_and_bytes(void **state)
{
    const uint8_t png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff};
    const uint8_t pdf[] = {'%', 'P', 'D', 'F'};
    vz_nt_recipient_t to[] = {{.name = "Zoë", .address = "zoe@example.com"},
                              {.address = "ops@example.com"}};
    vz_nt_attachment_t attach[] = {
        {.name = "mrr.png",
         .type = "image/png",
         .content_id = "mrr@report",
         .bytes = png,
         .len = sizeof png},
        {.name = "report.pdf", .type = "application/pdf", .bytes = pdf, .len = sizeof pdf},
        {.name = "empty.txt", .type = "text/plain", .bytes = "", .len = 0},
    };
    vz_nt_send_t send = {.channel = "email",
                         .template_name = "weekly_report",
                         .recipients = to,
                         .nrecipients = 2,
                         .attachments = attach,
                         .nattachments = 3};
    size_t len = 0;
    char *body = vz_nt_send_encode(&send, &len);
    assert_string_equal(
        body, "{\"channel\":\"email\",\"to\":[{\"name\":\"Zoë\",\"address\":\"zoe@example.com\"},"
              "{\"name\":\"\",\"address\":\"ops@example.com\"}],\"template\":\"weekly_report\","
              "\"attachments\":[{\"name\":\"mrr.png\",\"type\":\"image/png\",\"content\":"
              "\"iVBORw0KGgoA/w==\",\"content_id\":\"mrr@report\"},{\"name\":\"report.pdf\","
              "\"type\":\"application/pdf\",\"content\":\"JVBERg==\"},{\"name\":\"empty.txt\","
              "\"type\":\"text/plain\",\"content\":\"\"}]}");
    assert_int_equal(len, strlen(body));
    free(body);
    //  A single "to" string wins over the list.
    send.to = "one@example.com";
    send.nattachments = 0;
    body = vz_nt_send_encode(&send, NULL);
    assert_string_equal(body, "{\"channel\":\"email\",\"to\":\"one@example.com\","
                              "\"template\":\"weekly_report\"}");
    free(body);
    //  Raw bytes whose base64 would pass VZ_NT_SEND_BODY_MAX: not encoded.
    uint8_t *big = calloc(1, VZ_NT_SEND_BODY_MAX / 4 * 3 + 3);
    vz_nt_attachment_t huge = {
        .name = "a", .type = "text/plain", .bytes = big, .len = VZ_NT_SEND_BODY_MAX / 4 * 3 + 3};
    vz_nt_send_t over = {.channel = "email", .attachments = &huge, .nattachments = 1};
    assert_null(vz_nt_send_encode(&over, NULL));
    free(big);
}

//  Wrong types: the view is no judge of values, but tells absent from
//  present-and-wrong where the notifier answers differently.
static void test_view_types(void **state)
{
    const char *reason = NULL;
    vz_nt_send_view_t v;
    vz_json_t *doc = vz_json_parse("[1]", 3, NULL, NULL);
    assert_int_equal(vz_nt_send_view(vz_json_root(doc), &v, &reason), VZ_EMALFORMED);
    assert_string_equal(reason, "body must be a JSON object");
    vz_json_destroy(&doc);
    assert_int_equal(vz_nt_send_view(NULL, &v, NULL), VZ_EMALFORMED);
    const char *text = "{\"channel\":1,\"template\":[],\"severity\":2,\"idempotency_key\":null,"
                       "\"event_action\":{},\"data\":\"x\"}";
    doc = vz_json_parse(text, strlen(text), NULL, NULL);
    assert_int_equal(vz_nt_send_view(vz_json_root(doc), &v, NULL), 0);
    assert_null(v.channel);
    assert_null(v.template_name);
    assert_null(v.severity);
    assert_true(v.has_severity);
    assert_null(v.idempotency_key);
    assert_true(v.has_idempotency_key);
    assert_null(v.event_action);
    assert_int_equal(vz_json_type(v.data), VZ_JSON_STRING);
    assert_null(v.to);
    assert_null(v.attachments);
    vz_json_destroy(&doc);
}

//  Key, event action and id limits.
static void test_limits(void **state)
{
    char key[VZ_NT_DEDUP_MAX + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_false(vz_nt_key_valid(key, VZ_NT_DEDUP_MAX)); //  256 bytes
    key[VZ_NT_DEDUP_MAX] = '\0';
    assert_true(vz_nt_key_valid(key, VZ_NT_DEDUP_MAX));
    assert_false(vz_nt_key_valid(key, VZ_NT_KEY_MAX));
    key[VZ_NT_KEY_MAX] = '\0';
    assert_true(vz_nt_key_valid(key, VZ_NT_KEY_MAX));
    assert_false(vz_nt_key_valid("", VZ_NT_KEY_MAX));
    assert_false(vz_nt_key_valid(NULL, VZ_NT_KEY_MAX));
    assert_false(vz_nt_key_valid("a b", VZ_NT_KEY_MAX));
    assert_false(vz_nt_key_valid("a\x7f", VZ_NT_KEY_MAX));
    assert_false(vz_nt_key_valid("caf\xc3\xa9", VZ_NT_KEY_MAX));
    assert_true(vz_nt_event_action_valid("trigger"));
    assert_true(vz_nt_event_action_valid("acknowledge"));
    assert_true(vz_nt_event_action_valid("resolve"));
    assert_false(vz_nt_event_action_valid("Resolve"));
    assert_false(vz_nt_event_action_valid(NULL));
    assert_true(vz_nt_id_valid(S_ID));
    assert_false(vz_nt_id_valid(S_ID "0"));
    assert_false(vz_nt_id_valid("n_0123456789ABCDEF01234567"));
    assert_false(vz_nt_id_valid("x_0123456789abcdef01234567"));
    assert_false(vz_nt_id_valid(NULL));
    //  A body past VZ_NT_SEND_BODY_MAX is not encoded.
    char *big = malloc(VZ_NT_SEND_BODY_MAX + 1);
    memset(big, 'A', VZ_NT_SEND_BODY_MAX);
    big[VZ_NT_SEND_BODY_MAX] = '\0';
    vz_nt_attachment_t attach = {.name = "a", .type = "text/plain", .content = big};
    vz_nt_send_t send = {.channel = "email", .attachments = &attach, .nattachments = 1};
    assert_null(vz_nt_send_encode(&send, NULL));
    free(big);
}

static void test_reply(void **state)
{
    vz_nt_send_reply_t out = {.id = S_ID, .status = "queued", .duplicate = true};
    vz_json_writer_t *w = vz_json_writer_new(512);
    vz_nt_send_reply_write(w, &out);
    size_t len = 0;
    char *body = vz_json_writer_take(w, &len);
    vz_json_writer_destroy(&w);
    assert_string_equal(body, "{\"id\":\"" S_ID "\",\"status\":\"queued\",\"duplicate\":true}");
    vz_nt_send_reply_t back;
    assert_int_equal(vz_nt_send_reply_decode(body, len, &back, NULL), 0);
    assert_string_equal(back.id, S_ID);
    assert_string_equal(back.status, "queued");
    assert_true(back.duplicate);
    //  Every prefix is refused (exact-size copies: ASan sees an overread).
    for (size_t cut = 0; cut < len; cut++) {
        char *part = malloc(cut ? cut : 1);
        memcpy(part, body, cut);
        const char *reason = NULL;
        assert_int_equal(vz_nt_send_reply_decode(part, cut, &back, &reason), VZ_EMALFORMED);
        assert_non_null(reason);
        assert_string_equal(back.id, "");
        free(part);
    }
    free(body);
    const struct {
        const char *body;
        const char *reason;
    } cases[] = {
        {"[]", "not a JSON object"},
        {"{\"id\":7,\"status\":\"queued\",\"duplicate\":false}",
         "id: expected n_ and 24 hex digits"},
        {"{\"id\":\"n_1\",\"status\":\"queued\",\"duplicate\":false}",
         "id: expected n_ and 24 hex digits"},
        {"{\"id\":\"" S_ID "\",\"status\":1,\"duplicate\":false}",
         "status: expected a short string"},
        {"{\"id\":\"" S_ID "\",\"status\":\"0123456789abcdef\",\"duplicate\":false}",
         "status: expected a short string"},
        {"{\"id\":\"" S_ID "\",\"status\":\"queued\",\"duplicate\":0}",
         "duplicate: expected a boolean"},
        {"{\"id\":\"" S_ID "\",\"status\":\"queued\"}", "duplicate: expected a boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *reason = NULL;
        int rc = vz_nt_send_reply_decode(cases[i].body, strlen(cases[i].body), &back, &reason);
        if (rc != VZ_EMALFORMED || !reason || strcmp(reason, cases[i].reason) != 0)
            fail_msg("case %zu: want \"%s\", got %d \"%s\"", i, cases[i].reason, rc,
                     reason ? reason : "");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_wire),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_recipients_and_bytes),
        cmocka_unit_test(test_view_types),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
