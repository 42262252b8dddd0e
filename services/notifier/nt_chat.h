/*  nt_chat - payloads of Slack, Discord, PagerDuty and the signed JSON webhook
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Pure functions: a message in, the JSON body the service documents out
 *  (heap, caller frees), each text cut to the service's limit on a UTF-8
 *  boundary:
 *    Slack incoming webhook: {"text", "blocks": [header (150), section
 *      mrkdwn (3000)]}
 *    Discord webhook: {"embeds": [{"title" (256), "description" (4096),
 *      "color", "timestamp"}], "allowed_mentions": {"parse": []}}
 *    PagerDuty Events API v2: {"routing_key", "event_action", "dedup_key",
 *      "payload": {"summary" (1024), "source", "severity", "timestamp"}}
 *      (acknowledge and resolve carry no payload)
 *    webhook: {"id", "subject", "text", "severity", "data", "sent_at"},
 *      signed: X-Vizmesh-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of
 *      "<t>.<body>"> (the Stripe scheme: the timestamp stops replays)
 *  Threads: no state; any thread.
 */
#ifndef NT_CHAT_H
#define NT_CHAT_H

#include <stddef.h>
#include <stdint.h>

#define NT_CHAT_SIGNATURE_HEADER "X-Vizmesh-Signature"

typedef struct {
    const char *id;           //  notification id
    const char *subject;      //  rendered subject
    const char *text;         //  rendered text part
    const char *severity;     //  critical | error | warning | info | ""
    const char *event_action; //  PagerDuty: trigger | acknowledge | resolve
    const char *dedup_key;    //  PagerDuty dedup key ("" = the id)
    const char *source;       //  PagerDuty source
    const char *routing_key;  //  PagerDuty integration key
    const char *data_json;    //  the request's data object, as JSON text
    int64_t now_ms;           //  timestamps
} nt_chat_msg_t;

char *nt_chat_slack(const nt_chat_msg_t *m, size_t *len);
char *nt_chat_discord(const nt_chat_msg_t *m, size_t *len);
char *nt_chat_pagerduty(const nt_chat_msg_t *m, size_t *len);
char *nt_chat_webhook(const nt_chat_msg_t *m, size_t *len);

//  The signature header's value for body at ts_s into out (size n >= 96).
void nt_chat_sign(const char *secret, int64_t ts_s, const char *body, size_t len, char *out,
                  size_t n);

//  Length of the longest prefix of text within max bytes that does not
//  cut a UTF-8 sequence.
size_t nt_chat_cut(const char *text, size_t max);

#endif
