/*  nt_chat - payloads of Slack, Discord, PagerDuty and the signed JSON webhook
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_chat.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vz_json.h"

#define SLACK_HEADER_MAX 150
#define SLACK_SECTION_MAX 3000
#define DISCORD_TITLE_MAX 256
#define DISCORD_DESC_MAX 4096
#define PD_SUMMARY_MAX 1024

//  Severity -> Discord embed colour (red, orange, yellow, blue).
static const struct {
    const char *severity;
    int color;
} s_colors[] = {
    {"critical", 0xD32F2F}, {"error", 0xF57C00}, {"warning", 0xFBC02D}, {"info", 0x1976D2}};

size_t nt_chat_cut(const char *text, size_t max)
{
    size_t n = strlen(text);
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void s_kv_cut(vz_json_writer_t *w, const char *key, const char *text, size_t max)
{
    vz_json_write_key(w, key);
    vz_json_write_string_len(w, text, nt_chat_cut(text, max));
}

static void s_iso(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *s_take(vz_json_writer_t **w_p, size_t *len)
{
    char *out = vz_json_writer_take(*w_p, len);
    vz_json_writer_destroy(w_p);
    return out;
}

//  A Slack block {"type": type, "text": {"type": text_type, "text": text
//  cut to max bytes}}.
static void s_slack_block(vz_json_writer_t *w, const char *type, const char *text_type,
                          const char *text, size_t max)
{
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "type", type);
    vz_json_write_key(w, "text");
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "type", text_type);
    s_kv_cut(w, "text", text, max);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
}

char *nt_chat_slack(const nt_chat_msg_t *m, size_t *len)
{
    vz_json_writer_t *w = vz_json_writer_new(64 * 1024);
    vz_json_write_object_begin(w);
    //  "text" is the notification fallback when blocks are present.
    s_kv_cut(w, "text", m->subject, SLACK_SECTION_MAX);
    vz_json_write_key(w, "blocks");
    vz_json_write_array_begin(w);
    s_slack_block(w, "header", "plain_text", m->subject, SLACK_HEADER_MAX);
    if (m->text && *m->text)
        s_slack_block(w, "section", "mrkdwn", m->text, SLACK_SECTION_MAX);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    return s_take(&w, len);
}

char *nt_chat_discord(const nt_chat_msg_t *m, size_t *len)
{
    int color = 0x607D8B;
    for (size_t i = 0; i < sizeof s_colors / sizeof s_colors[0]; i++)
        if (m->severity && strcmp(m->severity, s_colors[i].severity) == 0)
            color = s_colors[i].color;
    char ts[32];
    s_iso(m->now_ms, ts, sizeof ts);
    vz_json_writer_t *w = vz_json_writer_new(64 * 1024);
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "embeds");
    vz_json_write_array_begin(w);
    vz_json_write_object_begin(w);
    s_kv_cut(w, "title", m->subject, DISCORD_TITLE_MAX);
    s_kv_cut(w, "description", m->text ? m->text : "", DISCORD_DESC_MAX);
    vz_json_write_kv_int(w, "color", color);
    vz_json_write_kv_string(w, "timestamp", ts);
    vz_json_write_object_end(w);
    vz_json_write_array_end(w);
    //  Never ping @everyone or a role from a rendered text.
    vz_json_write_key(w, "allowed_mentions");
    vz_json_write_object_begin(w);
    vz_json_write_key(w, "parse");
    vz_json_write_array_begin(w);
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    return s_take(&w, len);
}

char *nt_chat_pagerduty(const nt_chat_msg_t *m, size_t *len)
{
    const char *action = m->event_action && *m->event_action ? m->event_action : "trigger";
    const char *severity = m->severity && *m->severity ? m->severity : "critical";
    char ts[32];
    s_iso(m->now_ms, ts, sizeof ts);
    vz_json_writer_t *w = vz_json_writer_new(64 * 1024);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "routing_key", m->routing_key);
    vz_json_write_kv_string(w, "event_action", action);
    vz_json_write_kv_string(w, "dedup_key", m->dedup_key && *m->dedup_key ? m->dedup_key : m->id);
    if (strcmp(action, "trigger") == 0) {
        vz_json_write_key(w, "payload");
        vz_json_write_object_begin(w);
        s_kv_cut(w, "summary", m->subject, PD_SUMMARY_MAX);
        vz_json_write_kv_string(w, "source", m->source && *m->source ? m->source : "vizmesh");
        vz_json_write_kv_string(w, "severity", severity);
        vz_json_write_kv_string(w, "timestamp", ts);
        vz_json_write_object_end(w);
    }
    vz_json_write_object_end(w);
    return s_take(&w, len);
}

char *nt_chat_webhook(const nt_chat_msg_t *m, size_t *len)
{
    char ts[32];
    s_iso(m->now_ms, ts, sizeof ts);
    vz_json_t *data =
        m->data_json ? vz_json_parse(m->data_json, strlen(m->data_json), NULL, NULL) : NULL;
    vz_json_writer_t *w = vz_json_writer_new(1024 * 1024);
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, "id", m->id);
    vz_json_write_kv_string(w, "subject", m->subject);
    vz_json_write_kv_string(w, "text", m->text ? m->text : "");
    vz_json_write_kv_string(w, "severity", m->severity ? m->severity : "");
    vz_json_write_kv_string(w, "sent_at", ts);
    //  data as the caller sent it: string members only (what templates use).
    vz_json_write_key(w, "data");
    vz_json_write_object_begin(w);
    const vz_json_value_t *root = data ? vz_json_root(data) : NULL;
    for (size_t i = 0; i < vz_json_size(root); i++) {
        const char *s = vz_json_string(vz_json_at(root, i), NULL);
        if (s)
            vz_json_write_kv_string(w, vz_json_key_at(root, i), s);
    }
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    vz_json_destroy(&data);
    return s_take(&w, len);
}

void nt_chat_sign(const char *secret, int64_t ts_s, const char *body, size_t len, char *out,
                  size_t n)
{
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%lld.", (long long)ts_s);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    //  HMAC over "<t>." then the body, in one buffer (EVP_Q_mac is one-shot).
    unsigned char *msg = malloc((size_t)plen + len + 1);
    if (!msg)
        abort();
    memcpy(msg, prefix, (size_t)plen);
    memcpy(msg + plen, body, len);
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret), msg,
                   (size_t)plen + len, mac, sizeof mac, &mac_len))
        mac_len = 0;
    free(msg);
    char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
    for (size_t i = 0; i < mac_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(out, n, "t=%lld,v1=%s", (long long)ts_s, hex);
}
