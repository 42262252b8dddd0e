/*  nt_app - the notifier's application object: tables, secrets, start and stop
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nt.h"
#include "nt_mime.h"
#include "nt_outbox.h"
#include "nt_smtp.h"
#include "vz_common.h"
#include "vz_log.h"

#define SECRET_FILE_MAX 4096

static const nt_channel_info_t s_channels[NT_CH_COUNT] = {
    [NT_CH_EMAIL] = {"email", true, true, "SMTP (or .eml files)"},
    [NT_CH_SLACK] = {"slack", false, false, "Slack incoming webhook"},
    [NT_CH_DISCORD] = {"discord", false, false, "Discord webhook"},
    [NT_CH_PAGERDUTY] = {"pagerduty", false, false, "PagerDuty Events API v2"},
    [NT_CH_WEBHOOK] = {"webhook", false, false, "signed JSON webhook"},
};

static const char *const s_sevs[NT_SEV_COUNT] = {"critical", "error", "warning", "info"};

const nt_channel_info_t *nt_channel_info(nt_channel_t c)
{
    return &s_channels[c];
}

int nt_channel_find(const char *name)
{
    for (int i = 0; i < NT_CH_COUNT; i++)
        if (strcmp(s_channels[i].name, name) == 0)
            return i;
    return -1;
}

const char *nt_sev_name(nt_sev_t s)
{
    return s_sevs[s];
}

int nt_sev_find(const char *name)
{
    for (int i = 0; i < NT_SEV_COUNT; i++)
        if (strcmp(s_sevs[i], name) == 0)
            return i;
    return -1;
}

//  A secret from file (first line) or, when file is "", the environment
//  variable env (removed from the environment once read). 0, or -1 when
//  the file cannot be read.
static int s_secret(const char *file, const char *env, char *out, size_t n)
{
    out[0] = '\0';
    if (file[0]) {
        FILE *f = fopen(file, "r");
        if (!f)
            return -1;
        char line[SECRET_FILE_MAX];
        if (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            vz_strlcpy(out, line, n);
        }
        memset(line, 0, sizeof line);
        fclose(f);
        return 0;
    }
    const char *value = getenv(env);
    if (value) {
        vz_strlcpy(out, value, n);
        unsetenv(env);
    }
    return 0;
}

static void s_metrics(nt_t *self)
{
    if (!self->metrics)
        return;
    for (int c = 0; c < NT_CH_COUNT; c++) {
        char label[48];
        snprintf(label, sizeof label, "channel=%s", s_channels[c].name);
        self->m_queued[c] = vz_metrics_counter(self->metrics, "vz_notifier_queued",
                                               "Messages accepted into the outbox", label);
        self->m_delivered[c] = vz_metrics_counter(self->metrics, "vz_notifier_delivered",
                                                  "Messages the channel accepted", label);
        self->m_retried[c] =
            vz_metrics_counter(self->metrics, "vz_notifier_retried",
                               "Delivery attempts that failed and were retried", label);
        self->m_dead[c] = vz_metrics_counter(self->metrics, "vz_notifier_dead",
                                             "Messages moved to the dead letters", label);
        self->m_latency[c] = vz_metrics_histogram(
            self->metrics, "vz_notifier_delivery_seconds",
            "From acceptance to delivery (retries and delays included)", label, NULL, 0);
    }
    self->m_oldest = vz_metrics_gauge(self->metrics, "vz_notifier_oldest_pending_seconds",
                                      "Age of the oldest message due and not delivered", NULL);
}

nt_t *nt_new(const nt_config_t *config, const char *redis_url, zloop_t *loop, vz_metrics_t *metrics,
             char *err, size_t errlen)
{
    nt_t *self = calloc(1, sizeof *self);
    if (!self)
        abort();
    self->config = *config;
    self->loop = loop;
    self->metrics = metrics;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(self->consumer, sizeof self->consumer, "%s-%d", host, (int)getpid());
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s_metrics(self);
    //  Every mail would be refused by the MIME builder: refuse to start instead.
    if (!nt_mime_addr_valid(config->mail_from) || !nt_mime_addr_valid(config->digest_to) ||
        strpbrk(config->mail_from_name, "\r\n")) {
        snprintf(err, errlen, "VZ_NOTIFIER_MAIL_FROM, _MAIL_FROM_NAME or _DIGEST_TO is not valid");
        goto fail;
    }

    self->templates = nt_templates_load(config->templates, err, errlen);
    if (!self->templates)
        goto fail;
    self->redis = vz_redis_new(redis_url, config->redis_timeout_ms, config->redis_timeout_ms, 500);
    if (!self->redis) {
        snprintf(err, errlen, "bad VZ_REDIS_URL");
        goto fail;
    }
    //  Scripts now; the group too if Redis is up (else from the delivery tick).
    nt_outbox_init(self);
    if (nt_outbox_group(self) < 0)
        vz_warn(NULL, "unable to create the consumer group yet", "reason", "redis unavailable",
                NULL);
    if (s_secret(config->pagerduty_key_file, "VZ_NOTIFIER_PAGERDUTY_KEY", self->pd_key,
                 sizeof self->pd_key) < 0 ||
        s_secret(config->webhook_secret_file, "VZ_NOTIFIER_WEBHOOK_SECRET", self->webhook_secret,
                 sizeof self->webhook_secret) < 0) {
        snprintf(err, errlen, "a secret file cannot be read (PagerDuty key or webhook secret)");
        goto fail;
    }
    self->http = vz_http_new(loop, &config->http, metrics, err, errlen);
    if (!self->http)
        goto fail;
    if (vz_http_warning(self->http))
        vz_warn(NULL, vz_http_warning(self->http), NULL);
    if (config->smtp_url[0]) {
        char password[512];
        if (s_secret(config->smtp_pass_file, "VZ_NOTIFIER_SMTP_PASSWORD", password,
                     sizeof password) < 0) {
            snprintf(err, errlen, "VZ_NOTIFIER_SMTP_PASSWORD_FILE cannot be read");
            goto fail;
        }
        nt_smtp_config_t sc = {config->smtp_url, config->smtp_user, password, config->smtp_ca_file,
                               config->smtp_timeout_ms};
        self->smtp = nt_smtp_new(&sc);
        memset(password, 0, sizeof password);
        if (!self->smtp) {
            snprintf(err, errlen, "VZ_NOTIFIER_SMTP_URL must be smtp:// or smtps://");
            goto fail;
        }
        zloop_reader(loop, nt_smtp_sock(self->smtp), nt_deliver_smtp_ready, self);
    } else {
        char dir[VZ_PATH_MAX + 8];
        snprintf(dir, sizeof dir, "%s/mail", config->state_dir);
        if (zsys_dir_create("%s", dir) < 0) {
            snprintf(err, errlen, "unable to create %s", dir);
            goto fail;
        }
    }
    return self;
fail:
    nt_destroy(&self);
    return NULL;
}

void nt_destroy(nt_t **self_p)
{
    nt_t *self = *self_p;
    if (!self)
        return;
    if (self->smtp && self->loop)
        zloop_reader_end(self->loop, nt_smtp_sock(self->smtp));
    nt_smtp_destroy(&self->smtp);
    //  Ends pending HTTP calls: their entries are recorded as retrying.
    vz_http_destroy(&self->http);
    nt_deliver_fini(self);
    nt_outbox_fini(self);
    vz_redis_destroy(&self->redis);
    nt_templates_destroy(&self->templates);
    memset(self->pd_key, 0, sizeof self->pd_key);
    memset(self->webhook_secret, 0, sizeof self->webhook_secret);
    curl_global_cleanup();
    free(self);
    *self_p = NULL;
}

void nt_reload(void *arg)
{
    nt_t *self = arg;
    char err[512];
    nt_templates_t *fresh = nt_templates_load(self->config.templates, err, sizeof err);
    if (!fresh) {
        vz_warn(NULL, "unable to reload templates: keeping the old set", "reason", err, NULL);
        return;
    }
    nt_templates_destroy(&self->templates);
    self->templates = fresh;
    char count[16];
    snprintf(count, sizeof count, "%zu", nt_templates_count(fresh));
    vz_info(NULL, "templates reloaded", "count", count, NULL);
}
