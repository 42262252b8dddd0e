/*  nt_smtp - libcurl SMTP transfers on a worker thread of their own
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_smtp.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <string.h>

struct nt_smtp_t {
    zactor_t *actor; //  the transfer thread
};

typedef struct {
    char *url; //  copies of the configuration, owned by the thread
    char *user;
    char *password;
    char *ca_file;
    int timeout_ms;
} s_conf_t;

typedef struct {
    const char *data; //  message bytes
    size_t len;       //  total
    size_t pos;       //  bytes given to curl
} s_upload_t;

static size_t s_read(char *buffer, size_t size, size_t nitems, void *arg)
{
    s_upload_t *up = arg;
    size_t n = size * nitems;
    if (n > up->len - up->pos)
        n = up->len - up->pos;
    memcpy(buffer, up->data + up->pos, n);
    up->pos += n;
    return n;
}

static void s_conf_free(s_conf_t *c)
{
    free(c->url);
    free(c->user);
    if (c->password)
        memset(c->password, 0, strlen(c->password));
    free(c->password);
    free(c->ca_file);
    free(c);
}

//  One transfer; fills class, code and reason (static text or curl's
//  fixed message: never its error buffer, which may echo server text).
static void s_transfer(CURL *curl, const s_conf_t *c, const char *from, const char *rcpts,
                       zframe_t *message, nt_smtp_class_t *cls, long *code, char *reason, size_t n)
{
    struct curl_slist *list = NULL;
    char *copy = strdup(rcpts);
    for (char *save = NULL, *r = strtok_r(copy, "\n", &save); r; r = strtok_r(NULL, "\n", &save)) {
        char angle[300];
        snprintf(angle, sizeof angle, "<%s>", r);
        list = curl_slist_append(list, angle);
    }
    free(copy);
    char from_angle[300];
    snprintf(from_angle, sizeof from_angle, "<%s>", from);
    s_upload_t up = {(const char *)zframe_data(message), zframe_size(message), 0};
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, c->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    //  smtp:// must upgrade with STARTTLS or fail; smtps:// is TLS anyway.
    curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->ca_file[0])
        curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
    if (c->user[0]) {
        curl_easy_setopt(curl, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, c->password);
    }
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from_angle);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, list);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, s_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &up);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(c->timeout_ms < 10000 ? c->timeout_ms : 10000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl);
    *code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(list);
    if (rc == CURLE_OK) {
        *cls = NT_SMTP_OK;
        snprintf(reason, n, "accepted");
    } else if (*code >= 500 && *code < 600) {
        *cls = NT_SMTP_PERMANENT;
        snprintf(reason, n, "smtp %ld: %s", *code, curl_easy_strerror(rc));
    } else if (rc == CURLE_USE_SSL_FAILED) {
        *cls = NT_SMTP_TRANSIENT;
        snprintf(reason, n, "server offered no STARTTLS (TLS required): nothing sent");
    } else {
        *cls = NT_SMTP_TRANSIENT;
        if (*code)
            snprintf(reason, n, "smtp %ld: %s", *code, curl_easy_strerror(rc));
        else
            snprintf(reason, n, "%s", curl_easy_strerror(rc));
    }
}

//  The thread: "SEND" tag from rcpts message -> "DONE" tag class code reason.
static void s_actor(zsock_t *pipe, void *arg)
{
    s_conf_t *c = arg;
    CURL *curl = curl_easy_init();
    zsock_signal(pipe, 0);
    while (curl) {
        zmsg_t *msg = zmsg_recv(pipe);
        if (!msg)
            break;
        char *command = zmsg_popstr(msg);
        bool term = !command || streq(command, "$TERM");
        if (!term && streq(command, "SEND") && zmsg_size(msg) == 4) {
            char *tag = zmsg_popstr(msg);
            char *from = zmsg_popstr(msg);
            char *rcpts = zmsg_popstr(msg);
            zframe_t *message = zmsg_pop(msg);
            nt_smtp_class_t cls;
            long code;
            char reason[256];
            s_transfer(curl, c, from, rcpts, message, &cls, &code, reason, sizeof reason);
            zsock_send(pipe, "ssiis", "DONE", tag, (int)cls, (int)code, reason);
            zstr_free(&tag);
            zstr_free(&from);
            zstr_free(&rcpts);
            zframe_destroy(&message);
        }
        zstr_free(&command);
        zmsg_destroy(&msg);
        if (term)
            break;
    }
    if (curl)
        curl_easy_cleanup(curl);
    s_conf_free(c);
    //  This thread's OpenSSL state (its error queue, which a failed TLS
    //  handshake or a dead connection fills) is freed only when asked.
    OPENSSL_thread_stop();
}

nt_smtp_t *nt_smtp_new(const nt_smtp_config_t *config)
{
    if (strncmp(config->url, "smtp://", 7) != 0 && strncmp(config->url, "smtps://", 8) != 0) {
        errno = EINVAL;
        return NULL;
    }
    s_conf_t *c = calloc(1, sizeof *c);
    nt_smtp_t *self = calloc(1, sizeof *self);
    if (!c || !self)
        abort();
    c->url = strdup(config->url);
    c->user = strdup(config->user ? config->user : "");
    c->password = strdup(config->password ? config->password : "");
    c->ca_file = strdup(config->ca_file ? config->ca_file : "");
    c->timeout_ms = config->timeout_ms > 0 ? config->timeout_ms : 30000;
    //  The thread owns c from here and frees it when it ends.
    self->actor = zactor_new(s_actor, c);
    if (!self->actor) {
        s_conf_free(c);
        free(self);
        return NULL;
    }
    return self;
}

void nt_smtp_destroy(nt_smtp_t **self_p)
{
    nt_smtp_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}

zsock_t *nt_smtp_sock(nt_smtp_t *self)
{
    return zactor_sock(self->actor);
}

int nt_smtp_submit(nt_smtp_t *self, const char *tag, const char *from, const char *rcpts,
                   const char *message, size_t len)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "SEND");
    zmsg_addstr(msg, tag);
    zmsg_addstr(msg, from);
    zmsg_addstr(msg, rcpts);
    zmsg_addmem(msg, message, len);
    return zmsg_send(&msg, self->actor);
}

int nt_smtp_result(nt_smtp_t *self, char **tag, nt_smtp_class_t *cls, long *code, char **reason)
{
    char *command = NULL;
    int c = 0, k = 0;
    *tag = *reason = NULL;
    if (zsock_recv(self->actor, "ssiis", &command, tag, &c, &k, reason) < 0 || !command ||
        !streq(command, "DONE")) {
        zstr_free(&command);
        zstr_free(tag);
        zstr_free(reason);
        return -1;
    }
    zstr_free(&command);
    *cls = (nt_smtp_class_t)c;
    *code = k;
    return 0;
}
