/*  nt_deliver - the delivery loop: take messages from the outbox, send them, record the outcome
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A zloop timer (poll_ms) drives everything on the reactor thread:
 *  promote due retries and delayed routes into the stream, every claim_ms/2
 *  claim entries idle for claim_ms (their replica died), then read new
 *  entries up to the in-flight limit. Each entry is "taken" (marked
 *  sending) and handed to its channel: vz_http for Slack, Discord,
 *  PagerDuty and the webhook, the SMTP thread or an .eml file for e-mail.
 *  The outcome ends the entry (delivered, dead) or reschedules it
 *  (retrying) in one script, so the entry is acknowledged only once its
 *  fate is written down: a crash in between redelivers it (at least once).
 *
 *  Backoff per attempt n: a draw in [d/2, d] with d = min(backoff_max,
 *  backoff * 2^(n-1)) ("equal jitter": spread out, never immediate). A 429
 *  (with its Retry-After) or a 5xx or connection failure also pauses that
 *  channel on this replica: its entries are rescheduled to the end of the
 *  pause without an attempt, while the other channels go on. A permanent
 *  refusal (SMTP 5xx, HTTP 4xx) is retried the same way without the
 *  pause; after max_attempts attempts of any kind the message is dead.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nt.h"
#include "nt_chat.h"
#include "nt_mime.h"
#include "nt_outbox.h"
#include "nt_smtp.h"
#include "vz_clock.h"
#include "vz_common.h"
#include "vz_json.h"
#include "vz_log.h"

#define READ_MAX 64 //  entries read or claimed per tick, at most

//  S_REFUSED: the receiver's permanent answer (SMTP 5xx, HTTP 4xx but 408
//  and 429): an attempt like any other, without slowing the channel down
//  (it is about this message). S_BROKEN: the message itself cannot be
//  sent (unreadable, unbuildable): no later attempt could do better.
typedef enum { S_OK, S_TRANSIENT, S_THROTTLED, S_REFUSED, S_BROKEN } s_outcome_t;

struct nt_job_t {
    nt_job_t *next;       //  list of jobs in flight
    nt_t *app;            //  back pointer for callbacks
    nt_entry_t entry;     //  stream entry and message id
    nt_channel_t channel; //  its channel
    int attempts;         //  attempts made before this one
    int64_t created_ms;   //  accepted at (Unix ms), for the latency metric
};

// --------------------------------------------------------------------------
//  Helpers

//  Value of field in a HGETALL reply, "" when absent.
static const char *s_field(const redisReply *r, const char *field)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, field) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            return r->element[i + 1]->str;
    return "";
}

char *nt_mask_addr(const char *addr, char *out, size_t n)
{
    const char *at = strchr(addr, '@');
    snprintf(out, n, "%c***%s", addr[0] ? addr[0] : '?', at ? at : "");
    return out;
}

static int64_t s_backoff(const nt_t *self, int attempts)
{
    int64_t d = self->config.backoff_ms;
    for (int i = 1; i < attempts && d < self->config.backoff_max_ms; i++)
        d *= 2;
    if (d > self->config.backoff_max_ms)
        d = self->config.backoff_max_ms;
    return d / 2 + (int64_t)(randof((int)(d / 2 + 1)));
}

static nt_job_t *s_job_find(nt_t *self, const char *entry)
{
    for (nt_job_t *j = self->jobs; j; j = j->next)
        if (strcmp(j->entry.entry, entry) == 0)
            return j;
    return NULL;
}

static void s_job_remove(nt_t *self, nt_job_t *job)
{
    for (nt_job_t **p = &self->jobs; *p; p = &(*p)->next)
        if (*p == job) {
            *p = job->next;
            self->job_count--;
            break;
        }
    free(job);
}

// --------------------------------------------------------------------------
//  Outcome

//  Record the outcome of job's attempt and free it. retry_after_ms: what a
//  429 asked for (0 = not said).
static void s_done(nt_job_t *job, s_outcome_t outcome, const char *error, int64_t retry_after_ms)
{
    nt_t *self = job->app;
    int64_t now = vz_clock_now_ms();
    const char *channel = nt_channel_info(job->channel)->name;
    //  A 429 is the service pacing us, not a failure of the message.
    int attempts = job->attempts + (outcome == S_THROTTLED ? 0 : 1);
    char count[16];
    snprintf(count, sizeof count, "%d", attempts);
    const char *status = NT_ST_RETRYING;
    int64_t next = 0;
    if (outcome == S_OK)
        status = NT_ST_DELIVERED;
    else if (outcome == S_BROKEN || attempts >= self->config.max_attempts)
        status = NT_ST_DEAD;
    else {
        int64_t delay = outcome == S_THROTTLED && retry_after_ms > 0 ? retry_after_ms
                                                                     : s_backoff(self, attempts);
        next = now + delay;
        //  Slow the whole channel down on this replica; the others go on.
        if (outcome == S_THROTTLED || outcome == S_TRANSIENT)
            if (self->paused_until[job->channel] < next)
                self->paused_until[job->channel] = next;
    }
    if (nt_outbox_finish(self, &job->entry, status, attempts, error, next, now) < 0)
        //  Left pending: claimed again after claim_ms and retried then.
        vz_warn(NULL, "unable to record a delivery outcome", "id", job->entry.id, "reason",
                "redis unavailable", NULL);
    if (strcmp(status, NT_ST_DELIVERED) == 0) {
        vz_info(NULL, "delivered", "id", job->entry.id, "channel", channel, "attempts", count,
                NULL);
        if (self->m_delivered[job->channel])
            vz_series_inc(self->m_delivered[job->channel]);
        if (self->m_latency[job->channel] && job->created_ms > 0 && now >= job->created_ms)
            vz_series_observe(self->m_latency[job->channel], (double)(now - job->created_ms) / 1e3);
    } else if (strcmp(status, NT_ST_DEAD) == 0) {
        vz_warn(NULL, "unable to deliver: dead letter", "id", job->entry.id, "channel", channel,
                "attempts", count, "reason", error, NULL);
        if (self->m_dead[job->channel])
            vz_series_inc(self->m_dead[job->channel]);
    } else {
        vz_info(NULL, "delivery failed, will retry", "id", job->entry.id, "channel", channel,
                "attempts", count, "reason", error, NULL);
        if (self->m_retried[job->channel])
            vz_series_inc(self->m_retried[job->channel]);
    }
    s_job_remove(self, job);
}

// --------------------------------------------------------------------------
//  HTTP channels

static void s_http_done(const vz_http_response_t *res, void *arg)
{
    nt_job_t *job = arg;
    char error[300];
    if (res->rc < 0) {
        snprintf(error, sizeof error, "%s", res->error);
        s_done(job, S_TRANSIENT, error, 0);
        return;
    }
    snprintf(error, sizeof error, "http %ld", res->status);
    if (res->status >= 200 && res->status < 300)
        s_done(job, S_OK, "", 0);
    else if (res->status == 429) {
        const char *ra = vz_http_response_header(res, "Retry-After");
        long s = ra ? strtol(ra, NULL, 10) : 0;
        s_done(job, S_THROTTLED, error, s > 0 && s < 86400 ? s * 1000 : 0);
    } else if (res->status >= 500 || res->status == 408)
        s_done(job, S_TRANSIENT, error, 0);
    else
        s_done(job, S_REFUSED, error, 0);
}

static int s_start_http(nt_t *self, nt_job_t *job, const redisReply *msg)
{
    nt_chat_msg_t m = {
        .id = job->entry.id,
        .subject = s_field(msg, "subject"),
        .text = s_field(msg, "text"),
        .severity = s_field(msg, "severity"),
        .event_action = s_field(msg, "event_action"),
        .dedup_key = s_field(msg, "dedup_key"),
        .source = *s_field(msg, "source") ? s_field(msg, "source") : self->config.alert_source,
        .routing_key = self->pd_key,
        .data_json = s_field(msg, "data"),
        .now_ms = vz_clock_now_ms(),
    };
    size_t len = 0;
    char *body = NULL;
    const char *url = NULL;
    char signature[160] = "";
    switch (job->channel) {
    case NT_CH_SLACK:
        body = nt_chat_slack(&m, &len), url = self->config.slack_url;
        break;
    case NT_CH_DISCORD:
        body = nt_chat_discord(&m, &len), url = self->config.discord_url;
        break;
    case NT_CH_PAGERDUTY:
        body = nt_chat_pagerduty(&m, &len), url = self->config.pagerduty_url;
        break;
    default:
        body = nt_chat_webhook(&m, &len), url = self->config.webhook_url;
        if (self->webhook_secret[0]) {
            char value[128];
            nt_chat_sign(self->webhook_secret, m.now_ms / 1000, body, len, value, sizeof value);
            snprintf(signature, sizeof signature, NT_CHAT_SIGNATURE_HEADER ": %s", value);
        }
    }
    if (!body) {
        s_done(job, S_BROKEN, "payload could not be built", 0);
        return 0;
    }
    const char *headers[] = {"Content-Type: application/json", signature[0] ? signature : NULL,
                             NULL};
    vz_http_request_t req = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = len,
        //  The receiver may drop a repeat (at-least-once delivery).
        .idempotency_key = job->channel == NT_CH_WEBHOOK ? job->entry.id : NULL,
        .secret_path = job->channel == NT_CH_SLACK || job->channel == NT_CH_DISCORD,
        .metrics_host = nt_channel_info(job->channel)->name,
        .max_attempts = 1, //  retries are the outbox's, durable
        .done = s_http_done,
        .arg = job,
    };
    int rc = vz_http_request(self->http, &req);
    free(body);
    if (rc < 0)
        s_done(job, S_BROKEN, "endpoint refused by the HTTP client (bad URL?)", 0);
    return 0;
}

// --------------------------------------------------------------------------
//  E-mail

typedef struct {
    nt_addr_t *to; //  recipients (strings borrowed from docs)
    size_t to_count;
    nt_part_t *parts; //  attachments (data owned)
    size_t part_count;
    vz_json_t *to_doc;  //  parsed "to"
    vz_json_t *att_doc; //  parsed "attachments"
} s_mail_t;

static void s_mail_free(s_mail_t *m)
{
    for (size_t i = 0; i < m->part_count; i++)
        free((void *)m->parts[i].data);
    free(m->parts);
    free(m->to);
    vz_json_destroy(&m->to_doc);
    vz_json_destroy(&m->att_doc);
}

static int s_mail_parse(const redisReply *msg, s_mail_t *m)
{
    memset(m, 0, sizeof *m);
    const char *to = s_field(msg, "to");
    const char *att = s_field(msg, "attachments");
    vz_json_limits_t limits = vz_json_limits_default;
    limits.max_size = limits.max_string = 64 * 1024 * 1024;
    m->to_doc = vz_json_parse(to, strlen(to), NULL, NULL);
    m->att_doc = vz_json_parse(att, strlen(att), &limits, NULL);
    if (!m->to_doc || !m->att_doc)
        return -1;
    const vz_json_value_t *list = vz_json_root(m->to_doc);
    m->to_count = vz_json_size(list);
    m->to = calloc(m->to_count + 1, sizeof *m->to);
    for (size_t i = 0; i < m->to_count; i++) {
        m->to[i].name = vz_json_get_string(vz_json_at(list, i), "name", NULL);
        m->to[i].addr = vz_json_get_string(vz_json_at(list, i), "address", NULL);
    }
    const vz_json_value_t *parts = vz_json_root(m->att_doc);
    m->parts = calloc(vz_json_size(parts) + 1, sizeof *m->parts);
    for (size_t i = 0; i < vz_json_size(parts); i++) {
        const vz_json_value_t *a = vz_json_at(parts, i);
        nt_part_t *p = &m->parts[m->part_count++];
        p->name = vz_json_get_string(a, "name", NULL);
        p->type = vz_json_get_string(a, "type", NULL);
        p->content_id = vz_json_get_string(a, "content_id", NULL);
        size_t len = 0;
        const char *b64 = vz_json_get_string(a, "content", &len);
        uint8_t *data = NULL;
        if (!b64 || nt_mime_b64_decode(b64, len, &data, &p->len) < 0)
            return -1;
        p->data = data;
    }
    return 0;
}

//  No SMTP server configured: the message goes to <state_dir>/mail/<id>.eml
//  (written to a temporary name, then renamed: a reader never sees half).
static int s_write_eml(nt_t *self, const char *id, const char *text, size_t len, char *path,
                       size_t n)
{
    char tmp[VZ_PATH_MAX + 96];
    snprintf(path, n, "%s/mail/%s.eml", self->config.state_dir, id);
    snprintf(tmp, sizeof tmp, "%s/mail/.%s.tmp", self->config.state_dir, id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, text, len);
    int rc = (w == (ssize_t)len && fsync(fd) == 0) ? 0 : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int s_start_email(nt_t *self, nt_job_t *job, const redisReply *msg)
{
    s_mail_t m;
    if (s_mail_parse(msg, &m) < 0 || m.to_count == 0) {
        s_mail_free(&m);
        s_done(job, S_BROKEN, "stored message unreadable", 0);
        return 0;
    }
    const char *text = s_field(msg, "text");
    const char *html = s_field(msg, "html");
    nt_mail_t mail = {
        .from = {self->config.mail_from_name, self->config.mail_from},
        .to = m.to,
        .to_count = m.to_count,
        .subject = s_field(msg, "subject"),
        .text = *text ? text : NULL,
        .html = *html ? html : NULL,
        .parts = m.parts,
        .part_count = m.part_count,
        .unique = job->entry.id,
        .domain = self->config.mail_domain,
        .date_s = vz_clock_now_ms() / 1000,
    };
    char *out = NULL;
    size_t len = 0;
    int rc = nt_mime_build(&mail, &out, &len);
    if (rc < 0) {
        s_mail_free(&m);
        s_done(job, S_BROKEN, "message could not be built", 0);
        return 0;
    }
    if (!self->smtp) {
        char path[VZ_PATH_MAX + 64];
        rc = s_write_eml(self, job->entry.id, out, len, path, sizeof path);
        char masked[NT_MIME_ADDR_MAX + 8];
        nt_mask_addr(m.to[0].addr, masked, sizeof masked);
        if (rc == 0)
            vz_info(NULL, "mail written (no SMTP server configured)", "id", job->entry.id, "to",
                    masked, "path", path, NULL);
        s_done(job, rc == 0 ? S_OK : S_TRANSIENT, rc == 0 ? "" : "unable to write .eml file", 0);
    } else {
        char *rcpts = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&rcpts, &size);
        for (size_t i = 0; i < m.to_count; i++)
            fprintf(f, "%s\n", m.to[i].addr);
        fclose(f);
        if (nt_smtp_submit(self->smtp, job->entry.entry, self->config.mail_from, rcpts, out, len) <
            0)
            s_done(job, S_TRANSIENT, "SMTP thread unavailable", 0);
        free(rcpts);
    }
    free(out);
    s_mail_free(&m);
    return 0;
}

//  The SMTP thread finished a job (zloop reader on its pipe).
int nt_deliver_smtp_ready(zloop_t *loop, zsock_t *sock, void *arg)
{
    nt_t *self = arg;
    char *tag = NULL, *reason = NULL;
    nt_smtp_class_t cls;
    long code;
    if (nt_smtp_result(self->smtp, &tag, &cls, &code, &reason) < 0)
        return 0;
    nt_job_t *job = s_job_find(self, tag);
    if (job)
        s_done(job,
               cls == NT_SMTP_OK          ? S_OK
               : cls == NT_SMTP_PERMANENT ? S_REFUSED
                                          : S_TRANSIENT,
               cls == NT_SMTP_OK ? "" : reason, 0);
    zstr_free(&tag);
    zstr_free(&reason);
    return 0;
}

// --------------------------------------------------------------------------
//  The loop

static void s_start(nt_t *self, const nt_entry_t *entry)
{
    int64_t now = vz_clock_now_ms();
    if (s_job_find(self, entry->entry))
        return; //  ours and still in flight (claimed back after a slow transfer)
    if (!entry->id[0]) {
        nt_outbox_finish(self, entry, "ack", 0, NULL, 0, now);
        return;
    }
    redisReply *msg = nt_outbox_take(self, entry->id, now);
    if (!msg)
        return; //  Redis away: the entry stays pending and is claimed later
    if (msg->type != REDIS_REPLY_ARRAY) {
        //  Ended already, gone, or dropped because its alert resolved.
        if (msg->type == REDIS_REPLY_STATUS && strcmp(msg->str, "dropped") == 0)
            vz_info(NULL, "dropped: its alert resolved before it was due", "id", entry->id, NULL);
        nt_outbox_finish(self, entry, "ack", 0, NULL, 0, now);
        freeReplyObject(msg);
        return;
    }
    int ch = nt_channel_find(s_field(msg, "channel"));
    int attempts = atoi(s_field(msg, "attempts"));
    if (ch < 0) {
        nt_outbox_finish(self, entry, NT_ST_DEAD, attempts, "unknown channel", 0, now);
        freeReplyObject(msg);
        return;
    }
    if (self->paused_until[ch] > now) {
        //  The channel is slowed down: back to the schedule, no attempt spent.
        nt_outbox_finish(self, entry, NT_ST_RETRYING, attempts, s_field(msg, "last_error"),
                         self->paused_until[ch], now);
        freeReplyObject(msg);
        return;
    }
    nt_job_t *job = calloc(1, sizeof *job);
    if (!job)
        abort();
    job->app = self;
    job->entry = *entry;
    job->channel = (nt_channel_t)ch;
    job->attempts = attempts;
    job->created_ms = strtoll(s_field(msg, "created_ms"), NULL, 10);
    job->next = self->jobs;
    self->jobs = job;
    self->job_count++;
    if (ch == NT_CH_EMAIL)
        s_start_email(self, job, msg);
    else
        s_start_http(self, job, msg);
    freeReplyObject(msg);
}

int nt_deliver_tick(zloop_t *loop, int timer_id, void *arg)
{
    nt_t *self = arg;
    int64_t now = vz_clock_now_ms();
    int64_t mono = vz_clock_mono_ms();
    if (!self->group_ready && nt_outbox_group(self) < 0)
        return 0; //  Redis away: try again next tick
    if (nt_outbox_promote(self, now) < 0)
        return 0;
    nt_entry_t entries[READ_MAX];
    //  Keep what this replica still delivers its own (before anyone claims).
    int touch_every = self->config.claim_ms / 3 > 50 ? self->config.claim_ms / 3 : 50;
    if (self->jobs && mono - self->last_touch_ms >= touch_every) {
        self->last_touch_ms = mono;
        const char *ids[READ_MAX];
        size_t n = 0;
        for (nt_job_t *j = self->jobs; j && n < READ_MAX; j = j->next)
            ids[n++] = j->entry.entry;
        nt_outbox_touch(self, ids, n);
    }
    int claim_every = self->config.claim_ms / 2 > 100 ? self->config.claim_ms / 2 : 100;
    if (mono - self->last_claim_ms >= claim_every) {
        self->last_claim_ms = mono;
        int n = nt_outbox_claim(self, entries, READ_MAX);
        for (int i = 0; i < n; i++) {
            if (!s_job_find(self, entries[i].entry))
                vz_info(NULL, "claimed an abandoned delivery", "id", entries[i].id, NULL);
            s_start(self, &entries[i]);
        }
        int64_t oldest = nt_outbox_oldest(self, zclock_time());
        if (oldest >= 0 && self->m_oldest)
            vz_series_set(self->m_oldest, (double)oldest / 1e3);
    }
    size_t room = (size_t)self->config.inflight > self->job_count
                      ? (size_t)self->config.inflight - self->job_count
                      : 0;
    if (room > READ_MAX)
        room = READ_MAX;
    if (room > 0) {
        int n = nt_outbox_read(self, entries, room);
        for (int i = 0; i < n; i++)
            s_start(self, &entries[i]);
    }
    return 0;
}

void nt_deliver_fini(nt_t *self)
{
    while (self->jobs) {
        nt_job_t *job = self->jobs;
        self->jobs = job->next;
        free(job);
    }
    self->job_count = 0;
}
