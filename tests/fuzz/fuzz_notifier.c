/*  fuzz_notifier - libFuzzer target for the notifier.send contract (vz_notifier_contract.h)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The input is a send body as the notifier parses it (the JSON parser
 *  with the notifier's send limits, then vz_nt_send_view). What the view
 *  reads, encoded again by the callers' encoder vz_nt_send_encode, views
 *  to the same fields. The same bytes as a send reply are refused with a
 *  reason, or give an id that vz_nt_id_valid accepts and a reply that
 *  writes and decodes to itself.
 */
#include "fuzz.h"
#include "vz_json.h"
#include "vz_notifier_contract.h"

static bool s_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

//  The string fields of the view, encoded and viewed again.
static void s_round_trip(const vz_nt_send_view_t *v)
{
    vz_nt_send_t send = {.channel = v->channel,
                         .template_name = v->template_name,
                         .to = vz_json_string(v->to, NULL),
                         .severity = v->severity,
                         .idempotency_key = v->idempotency_key,
                         .event_action = v->event_action,
                         .dedup_key = v->dedup_key,
                         .source = v->source};
    size_t len = 0;
    char *body = vz_nt_send_encode(&send, &len);
    FZ_CHECK(body != NULL);
    vz_json_t *doc = vz_json_parse(body, len, NULL, NULL);
    FZ_CHECK(doc != NULL);
    vz_nt_send_view_t again;
    FZ_CHECK(vz_nt_send_view(vz_json_root(doc), &again, NULL) == 0);
    FZ_CHECK(s_same(v->channel, again.channel) && s_same(v->template_name, again.template_name));
    FZ_CHECK(s_same(send.to, vz_json_string(again.to, NULL)));
    FZ_CHECK(s_same(v->severity, again.severity) && s_same(v->source, again.source));
    FZ_CHECK(s_same(v->idempotency_key, again.idempotency_key));
    FZ_CHECK(s_same(v->event_action, again.event_action) && s_same(v->dedup_key, again.dedup_key));
    vz_json_destroy(&doc);
    free(body);
}

static void s_reply(const uint8_t *data, size_t size)
{
    vz_nt_send_reply_t reply;
    const char *reason = NULL;
    int rc = vz_nt_send_reply_decode(data, size, &reply, &reason);
    FZ_CHECK(rc == 0 || (rc == VZ_EMALFORMED && reason));
    if (rc != 0)
        return;
    FZ_CHECK(vz_nt_id_valid(reply.id));
    FZ_CHECK_STR(reply.status, sizeof reply.status);
    vz_json_writer_t *w = vz_json_writer_new(1024);
    vz_nt_send_reply_write(w, &reply);
    size_t len = 0;
    char *body = vz_json_writer_take(w, &len);
    vz_json_writer_destroy(&w);
    vz_nt_send_reply_t again;
    FZ_CHECK(body && vz_nt_send_reply_decode(body, len, &again, NULL) == 0);
    FZ_CHECK(!strcmp(reply.id, again.id) && !strcmp(reply.status, again.status) &&
             reply.duplicate == again.duplicate);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vz_json_limits_t limits = vz_json_limits_default;
    limits.max_size = VZ_NT_SEND_BODY_MAX;
    limits.max_string = VZ_NT_SEND_BODY_MAX;
    vz_json_t *doc = vz_json_parse(data, size, &limits, NULL);
    vz_nt_send_view_t view;
    const char *reason = NULL;
    int rc = vz_nt_send_view(doc ? vz_json_root(doc) : NULL, &view, &reason);
    FZ_CHECK(rc == 0 || (rc == VZ_EMALFORMED && reason));
    if (rc == 0) {
        FZ_CHECK(!view.severity || view.has_severity);
        FZ_CHECK(!view.idempotency_key || view.has_idempotency_key);
        s_round_trip(&view);
    }
    vz_json_destroy(&doc);
    s_reply(data, size);
    return 0;
}
