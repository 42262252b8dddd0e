/*  vz_http - outbound HTTP(S) for daemons that call out (SaaS APIs, webhooks)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  curl's multi "socket" interface on a zloop: curl says which sockets to
 *  watch (s_on_curl_socket) and when to call it back (s_on_curl_timer);
 *  the sockets become zloop pollers and the timer a timerfd poller that
 *  also wakes calls waiting to retry. Every entry from the loop ends in
 *  s_collect, which finishes or reschedules the transfers curl completed.
 */
#include "vz_http.h"
#include "vz_clock.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define S_HEADERS_MAX (64 * 1024) //  bytes of response header lines per attempt
#define S_HOSTS_MAX 64            //  distinct metrics host labels before "other"
#define S_URL_MAX 512             //  redacted URL kept for messages
#define S_REASON_MAX 384          //  why an attempt failed
#define S_ERROR_MAX 1024          //  error message: method, URL, reason, attempts

//  Metric series of one host label, looked up once.
typedef struct {
    vz_series_t *requests[6]; //  by class: 1xx..5xx, then transfer errors
    vz_series_t *latency;     //  attempt duration histogram
    vz_series_t *retries;     //  retries scheduled
} s_host_t;

typedef struct {
    vz_http_t *owner;           //  client it belongs to
    CURL *easy;                 //  one easy handle for every attempt
    struct curl_slist *headers; //  request header lines (owned)
    char method[16];            //  request method
    char url_safe[S_URL_MAX];   //  redacted URL for messages
    uint8_t *body;              //  request body copy (owned) or NULL
    bool retryable;             //  idempotent method, key, or vouched
    int timeout_ms;             //  per attempt
    int budget_ms;              //  whole call
    int max_attempts;           //  attempts allowed
    size_t max_response;        //  body limit
    s_host_t *host;             //  metric series or NULL
    vz_http_done_fn *done;      //  completion callback
    void *arg;                  //  its argument
    void *handle;               //  this call's node in owner->calls
    int attempts;               //  attempts started
    int64_t start_ms;           //  submit time, monotonic
    int64_t attempt_ms;         //  current attempt's start, monotonic
    int64_t retry_at_ms;        //  when waiting to retry: due time; else 0
    bool too_big;               //  this attempt was aborted at the size limit
    uint8_t *rbody;             //  response body of this attempt
    size_t rlen, rcap;          //  bytes used, allocated
    char *rhead;                //  "name\0value\0" pairs of this attempt
    size_t hlen, hcap;          //  bytes used, allocated
    size_t hcount;              //  pairs in rhead
} s_call_t;

struct vz_http_t {
    zloop_t *loop;         //  the daemon's reactor (borrowed)
    vz_http_config_t cfg;  //  settings (copy)
    vz_metrics_t *metrics; //  registry (borrowed) or NULL
    CURLM *multi;          //  one multi handle: connection cache, DNS cache
    int timer_fd;          //  timerfd for curl's timeout and due retries
    int64_t curl_due_ms;   //  when curl wants its timeout action; -1 none
    zlistx_t *calls;       //  pending calls (s_call_t *, owned)
    zhashx_t *hosts;       //  metrics label -> s_host_t (owned)
    int *fds;              //  sockets registered as pollers
    size_t fds_len;        //  entries in fds
    size_t fds_cap;        //  fds allocated
    uint64_t rng;          //  xorshift64* state for jitter
    bool in_done;          //  a completion callback is running
    bool closing;          //  destroy is canceling the pending calls
};

static const char s_insecure_warning[] =
    "TLS verification of outbound HTTPS is off (VZ_HTTP_INSECURE): peers are not authenticated";

void vz_http_config_init(vz_http_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg); //  padding too, so configs compare bytewise
    cfg->connect_timeout_ms = VZ_HTTP_CONNECT_TIMEOUT_MS;
    cfg->timeout_ms = VZ_HTTP_TIMEOUT_MS;
    cfg->budget_ms = VZ_HTTP_BUDGET_MS;
    cfg->max_attempts = VZ_HTTP_MAX_ATTEMPTS;
    cfg->backoff_ms = VZ_HTTP_BACKOFF_MS;
    cfg->backoff_max_ms = VZ_HTTP_BACKOFF_MAX_MS;
    cfg->max_response = VZ_HTTP_MAX_RESPONSE;
    cfg->max_connections = VZ_HTTP_MAX_CONNECTIONS;
}

//  ---------------------------------------------------------------------
//  Redaction

bool vz_http_header_is_secret(const char *name)
{
    static const char *const exact[] = {"authorization", "proxy-authorization", "cookie",
                                        "set-cookie"};
    static const char *const parts[] = {"key", "token", "secret", "signature", "password"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strcasecmp(name, exact[i]) == 0)
            return true;
    if (strcasecmp(name, "idempotency-key") == 0)
        return false;
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        if (strcasestr(name, parts[i]))
            return true;
    return false;
}

char *vz_http_redact_header(const char *line, char *out, size_t n)
{
    assert(n > 0);
    const char *colon = strchr(line, ':');
    char name[128];
    size_t name_len = colon ? (size_t)(colon - line) : 0;
    if (colon && name_len < sizeof name) {
        memcpy(name, line, name_len);
        name[name_len] = '\0';
        if (vz_http_header_is_secret(name)) {
            snprintf(out, n, "%s: ***", name);
            return out;
        }
    }
    vz_strlcpy(out, line, n);
    return out;
}

//  Append text to out (size n) at *len, truncating.
static void s_append(char *out, size_t n, size_t *len, const char *text)
{
    if (*len < n - 1) {
        vz_strlcpy(out + *len, text, n - *len);
        *len += strlen(out + *len);
    }
}

char *vz_http_redact_url(const char *url, bool secret_path, char *out, size_t n)
{
    assert(n > 0);
    CURLU *parsed = curl_url();
    assert(parsed);
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    if (!url || curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(parsed, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        vz_strlcpy(out, "(invalid url)", n);
    } else {
        curl_url_get(parsed, CURLUPART_PORT, &port, 0);
        curl_url_get(parsed, CURLUPART_PATH, &path, 0);
        curl_url_get(parsed, CURLUPART_QUERY, &query, 0);
        size_t len = 0;
        out[0] = '\0';
        s_append(out, n, &len, scheme);
        s_append(out, n, &len, "://");
        s_append(out, n, &len, host);
        if (port) {
            s_append(out, n, &len, ":");
            s_append(out, n, &len, port);
        }
        s_append(out, n, &len, secret_path ? "/***" : path ? path : "/");
        //  Keys stay (they say what was asked), values go; a bare item
        //  could itself be a key, so it goes whole.
        for (char *item = query, *next; item; item = next) {
            next = strchr(item, '&');
            if (next)
                *next++ = '\0';
            s_append(out, n, &len, item == query ? "?" : "&");
            char *eq = strchr(item, '=');
            if (eq)
                *eq = '\0';
            s_append(out, n, &len, eq ? item : "");
            s_append(out, n, &len, eq ? "=***" : "***");
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(parsed);
    return out;
}

//  ---------------------------------------------------------------------
//  Metrics

static void s_host_free(void **item)
{
    free(*item);
    *item = NULL;
}

//  The series of one host label (created on first use), or NULL without
//  a registry. Past S_HOSTS_MAX labels, new hosts share "other".
static s_host_t *s_host(vz_http_t *self, const char *label)
{
    if (!self->metrics)
        return NULL;
    char name[128];
    vz_strlcpy(name, label, sizeof name);
    //  vz_metrics splits labels at ',' and '=': keep them out of values.
    for (char *p = name; *p; p++)
        if (*p == ',' || *p == '=' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = '_';
    s_host_t *host = zhashx_lookup(self->hosts, name);
    if (host)
        return host;
    if (zhashx_size(self->hosts) >= S_HOSTS_MAX) {
        vz_strlcpy(name, "other", sizeof name);
        if ((host = zhashx_lookup(self->hosts, name)))
            return host;
    }
    host = calloc(1, sizeof *host);
    assert(host);
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "error"};
    char labels[256];
    for (size_t i = 0; i < 6; i++) {
        snprintf(labels, sizeof labels, "host=%s,class=%s", name, classes[i]);
        host->requests[i] =
            vz_metrics_counter(self->metrics, "vz_http_client_requests",
                               "outbound HTTP attempts by host and status class", labels);
    }
    snprintf(labels, sizeof labels, "host=%s", name);
    host->latency = vz_metrics_histogram(self->metrics, "vz_http_client_request_duration_seconds",
                                         "outbound HTTP attempt duration", labels, NULL, 0);
    host->retries = vz_metrics_counter(self->metrics, "vz_http_client_retries",
                                       "outbound HTTP retries scheduled", labels);
    zhashx_insert(self->hosts, name, host);
    return host;
}

//  ---------------------------------------------------------------------
//  The loop's side: pollers and the timer

static int s_on_timer_fd(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static void s_collect(vz_http_t *self);

static int64_t s_call_due(vz_http_t *self)
{
    int64_t due = self->curl_due_ms;
    for (s_call_t *call = zlistx_first(self->calls); call; call = zlistx_next(self->calls))
        if (call->retry_at_ms && (due < 0 || call->retry_at_ms < due))
            due = call->retry_at_ms;
    return due;
}

//  Arm the timerfd for the earliest of curl's timeout and due retries.
static void s_arm(vz_http_t *self)
{
    int64_t due = s_call_due(self);
    struct itimerspec spec = {0};
    if (due >= 0) {
        spec.it_value.tv_sec = due / 1000;
        spec.it_value.tv_nsec = (long)(due % 1000) * 1000000L;
        if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0)
            spec.it_value.tv_nsec = 1; //  all zero would disarm
    }
    int rc = timerfd_settime(self->timer_fd, TFD_TIMER_ABSTIME, &spec, NULL);
    assert(rc == 0);
}

//  curl's CURLMOPT_TIMERFUNCTION: only record and arm; curl forbids
//  calling it back from here.
static int s_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    vz_http_t *self = userp;
    self->curl_due_ms = timeout_ms < 0 ? -1 : vz_clock_mono_ms() + timeout_ms;
    s_arm(self);
    return 0;
}

static void s_unwatch(vz_http_t *self, int fd)
{
    for (size_t i = 0; i < self->fds_len; i++)
        if (self->fds[i] == fd) {
            zmq_pollitem_t item = {NULL, fd, 0, 0};
            zloop_poller_end(self->loop, &item);
            self->fds[i] = self->fds[--self->fds_len];
            return;
        }
}

//  curl's CURLMOPT_SOCKETFUNCTION: (re)register fd for the events curl
//  wants. zloop has no "modify", so a change is an end and a new poller.
static int s_on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    vz_http_t *self = userp;
    s_unwatch(self, fd);
    if (what == CURL_POLL_REMOVE)
        return 0;
    short events =
        (what & CURL_POLL_IN ? ZMQ_POLLIN : 0) | (what & CURL_POLL_OUT ? ZMQ_POLLOUT : 0);
    zmq_pollitem_t item = {NULL, fd, events, 0};
    if (zloop_poller(self->loop, &item, s_on_socket, self) < 0)
        return -1;
    //  Errors go to curl (CURL_CSELECT_ERR), not to zloop's poller killer.
    zloop_poller_set_tolerant(self->loop, &item);
    if (self->fds_len == self->fds_cap) {
        self->fds_cap = self->fds_cap * 2 + 8;
        self->fds = realloc(self->fds, self->fds_cap * sizeof *self->fds);
        assert(self->fds);
    }
    self->fds[self->fds_len++] = fd;
    return 0;
}

static int s_on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    vz_http_t *self = arg;
    int flags = (item->revents & ZMQ_POLLIN ? CURL_CSELECT_IN : 0) |
                (item->revents & ZMQ_POLLOUT ? CURL_CSELECT_OUT : 0) |
                (item->revents & ZMQ_POLLERR ? CURL_CSELECT_ERR : 0);
    int running = 0;
    curl_multi_socket_action(self->multi, item->fd, flags, &running);
    s_collect(self);
    return 0;
}

//  ---------------------------------------------------------------------
//  Calls and attempts

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    s_call_t *call = userp;
    size_t len = size * nmemb;
    if (call->rlen + len > call->max_response) {
        call->too_big = true;
        return 0; //  aborts the transfer: CURLE_WRITE_ERROR
    }
    if (call->rlen + len + 1 > call->rcap) {
        call->rcap = (call->rlen + len + 1) * 2;
        call->rbody = realloc(call->rbody, call->rcap);
        assert(call->rbody);
    }
    memcpy(call->rbody + call->rlen, data, len);
    call->rlen += len;
    call->rbody[call->rlen] = '\0';
    return len;
}

//  One header line of a response. A status line starts a new response
//  (interim 1xx, a proxy's CONNECT answer): only the last one is kept.
static size_t s_on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    s_call_t *call = userp;
    size_t len = size * nmemb;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        call->hlen = call->hcount = 0;
        return len;
    }
    char *colon = memchr(data, ':', len);
    if (!colon || data[0] == ' ' || data[0] == '\t')
        return len; //  blank line ending the block, or obsolete folding
    if (call->hlen + len + 2 > S_HEADERS_MAX) {
        call->too_big = true;
        return 0;
    }
    if (call->hlen + len + 2 > call->hcap) {
        call->hcap = (call->hlen + len + 2) * 2;
        call->rhead = realloc(call->rhead, call->hcap);
        assert(call->rhead);
    }
    size_t name_len = (size_t)(colon - data);
    const char *value = colon + 1;
    const char *end = data + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char *out = call->rhead + call->hlen;
    memcpy(out, data, name_len);
    out[name_len] = '\0';
    memcpy(out + name_len + 1, value, (size_t)(end - value));
    out[name_len + 1 + (end - value)] = '\0';
    call->hlen += name_len + 1 + (size_t)(end - value) + 1;
    call->hcount++;
    //  A declared length past the limit ends the transfer before the body.
    if (strcasecmp(out, "content-length") == 0 &&
        strtoull(out + name_len + 1, NULL, 10) > call->max_response) {
        call->too_big = true;
        return 0;
    }
    return len;
}

static bool s_method_idempotent(const char *method)
{
    static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof safe / sizeof *safe; i++)
        if (streq(method, safe[i]))
            return true;
    return false;
}

static void s_call_free(s_call_t *call)
{
    curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    free(call->body);
    free(call->rbody);
    free(call->rhead);
    free(call);
}

static void s_finish(vz_http_t *self, s_call_t *call, int rc, const char *error);

//  Start the next attempt: fresh response buffers, the attempt timeout cut
//  to what is left of the budget. Returns 0, or -EIO when curl refused it.
static int s_attempt(vz_http_t *self, s_call_t *call)
{
    int64_t now = vz_clock_mono_ms();
    int64_t left = call->start_ms + call->budget_ms - now;
    long timeout = (long)(left < call->timeout_ms ? left : call->timeout_ms);
    curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS, timeout > 0 ? timeout : 1L);
    call->rlen = call->hlen = call->hcount = 0;
    call->too_big = false;
    call->retry_at_ms = 0;
    call->attempts++;
    call->attempt_ms = now;
    return curl_multi_add_handle(self->multi, call->easy) == CURLM_OK ? 0 : -EIO;
}

//  A uniform draw in [0, ceiling], ceiling doubling per attempt (full jitter).
static int64_t s_backoff(vz_http_t *self, int attempts)
{
    int64_t ceiling = self->cfg.backoff_ms;
    for (int i = 1; i < attempts && ceiling < self->cfg.backoff_max_ms; i++)
        ceiling *= 2;
    if (ceiling > self->cfg.backoff_max_ms)
        ceiling = self->cfg.backoff_max_ms;
    self->rng ^= self->rng >> 12;
    self->rng ^= self->rng << 25;
    self->rng ^= self->rng >> 27;
    uint64_t draw = self->rng * 2685821657736338717ULL;
    return (int64_t)(draw % (uint64_t)(ceiling + 1));
}

static const char *s_header_of(const s_call_t *call, const char *name)
{
    const char *found = NULL;
    const char *p = call->rhead;
    for (size_t i = 0; i < call->hcount; i++) {
        const char *value = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            found = value;
        p = value + strlen(value) + 1;
    }
    return found;
}

//  Retry-After in milliseconds from now (delta seconds or HTTP-date), or -1.
static int64_t s_retry_after_ms(const s_call_t *call)
{
    const char *value = s_header_of(call, "Retry-After");
    if (!value || !*value)
        return -1;
    if (value[strspn(value, "0123456789")] == '\0') {
        unsigned long long seconds = strtoull(value, NULL, 10);
        return seconds > 86400ULL * 365 ? INT64_MAX / 2 : (int64_t)seconds * 1000;
    }
    time_t when = curl_getdate(value, NULL);
    if (when < 0)
        return -1;
    int64_t ms = (int64_t)when * 1000 - vz_now_ms();
    return ms > 0 ? ms : 0;
}

//  Map a finished attempt to an rc, and write its reason into reason.
static int s_classify(s_call_t *call, CURLcode code, char *reason, size_t n)
{
    long os_errno = 0;
    curl_easy_getinfo(call->easy, CURLINFO_OS_ERRNO, &os_errno);
    char os_part[128] = "";
    if (os_errno)
        snprintf(os_part, sizeof os_part, " (%s)", strerror((int)os_errno));
    //  curl's fixed text: its error buffer may quote a URL or a host.
    snprintf(reason, n, "%s%s", curl_easy_strerror(code), os_part);
    switch (code) {
    case CURLE_OK:
        reason[0] = '\0';
        return 0;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return VZ_HTTP_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT: {
        curl_off_t pretransfer = 0;
        curl_easy_getinfo(call->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
        if (pretransfer == 0) {
            snprintf(reason, n, "no connection within %d ms", call->owner->cfg.connect_timeout_ms);
            return VZ_HTTP_ECONNECT;
        }
        snprintf(reason, n, "no complete response within %lld ms",
                 (long long)(vz_clock_mono_ms() - call->attempt_ms));
        return VZ_HTTP_ETIMEOUT;
    }
    case CURLE_PEER_FAILED_VERIFICATION: {
        long verify = 0;
        curl_easy_getinfo(call->easy, CURLINFO_SSL_VERIFYRESULT, &verify);
        snprintf(reason, n, "%s: %s", curl_easy_strerror(code),
                 verify ? X509_verify_cert_error_string(verify) : "hostname mismatch");
        return VZ_HTTP_ETLS;
    }
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
        return VZ_HTTP_ETLS;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return VZ_HTTP_ERESET;
    default:
        if (call->too_big || code == CURLE_FILESIZE_EXCEEDED) {
            snprintf(reason, n, "response larger than %zu bytes", call->max_response);
            return VZ_HTTP_ETOOBIG;
        }
        return VZ_HTTP_EFAILED;
    }
}

//  Hand the outcome to the caller and free the call.
static void s_finish(vz_http_t *self, s_call_t *call, int rc, const char *error)
{
    long status = 0;
    if (rc == 0)
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    vz_http_header_t *headers = calloc(call->hcount + 1, sizeof *headers);
    assert(headers);
    const char *p = call->rhead;
    for (size_t i = 0; i < call->hcount; i++) {
        headers[i].name = p;
        headers[i].value = p + strlen(p) + 1;
        p = headers[i].value + strlen(headers[i].value) + 1;
    }
    vz_http_response_t response = {
        .rc = rc,
        .status = status,
        .error = error,
        .url = call->url_safe,
        .method = call->method,
        //  A failed attempt's partial body is no answer: withheld.
        .body = rc == 0 && call->rlen ? call->rbody : (const uint8_t *)"",
        .body_len = rc == 0 ? call->rlen : 0,
        .headers = headers,
        .header_count = call->hcount,
        .attempts = call->attempts,
        .seconds = (double)(vz_clock_mono_ms() - call->start_ms) / 1000.0,
    };
    zlistx_delete(self->calls, call->handle);
    self->in_done = true;
    call->done(&response, call->arg);
    self->in_done = false;
    free(headers);
    s_call_free(call);
}

//  An attempt ended: count it, then retry it or finish the call.
static void s_attempt_done(vz_http_t *self, s_call_t *call, CURLcode code)
{
    curl_multi_remove_handle(self->multi, call->easy);
    char reason[S_REASON_MAX];
    int rc = s_classify(call, code, reason, sizeof reason);
    long status = 0;
    if (rc == 0)
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    int64_t now = vz_clock_mono_ms();
    if (call->host) {
        int cls = rc == 0 && status >= 100 && status < 600 ? (int)(status / 100) - 1 : 5;
        vz_series_inc(call->host->requests[cls]);
        vz_series_observe(call->host->latency, (double)(now - call->attempt_ms) / 1000.0);
    }
    bool again = rc == VZ_HTTP_ECONNECT || rc == VZ_HTTP_ERESET ||
                 (rc == 0 && (status == 429 || (status >= 500 && status <= 599 && status != 501)));
    if (again && call->retryable && call->attempts < call->max_attempts) {
        int64_t wait = s_backoff(self, call->attempts);
        int64_t asked = rc == 0 ? s_retry_after_ms(call) : -1;
        if (asked > wait)
            wait = asked;
        //  Only when the wait leaves time for another attempt.
        if (now + wait < call->start_ms + call->budget_ms) {
            call->retry_at_ms = now + wait > 0 ? now + wait : 1;
            if (call->host)
                vz_series_inc(call->host->retries);
            s_arm(self);
            return;
        }
    }
    char error[S_ERROR_MAX] = "";
    if (rc < 0) {
        char tail[32] = "";
        if (call->attempts > 1)
            snprintf(tail, sizeof tail, " (after %d attempts)", call->attempts);
        snprintf(error, sizeof error, "%s %s: %s%s", call->method, call->url_safe, reason, tail);
    }
    s_finish(self, call, rc, error);
}

//  Finish or reschedule every transfer curl has completed.
static void s_collect(vz_http_t *self)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode code = msg->data.result;
        s_call_t *call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        s_attempt_done(self, call, code);
    }
}

static int s_on_timer_fd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    vz_http_t *self = arg;
    uint64_t expirations;
    if (read(self->timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return 0;
    int64_t now = vz_clock_mono_ms();
    if (self->curl_due_ms >= 0 && now >= self->curl_due_ms) {
        self->curl_due_ms = -1;
        int running = 0;
        curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    //  Start due retries, one scan each: starting one may walk the list
    //  (s_arm) or finish a call, which both upset a running iteration.
    s_call_t *call;
    do {
        for (call = zlistx_first(self->calls); call; call = zlistx_next(self->calls))
            if (call->retry_at_ms && now >= call->retry_at_ms)
                break;
        if (call && s_attempt(self, call) < 0) {
            char error[S_ERROR_MAX];
            snprintf(error, sizeof error, "%s %s: unable to start the transfer", call->method,
                     call->url_safe);
            s_finish(self, call, VZ_HTTP_EFAILED, error);
        }
    } while (call);
    s_collect(self);
    s_arm(self);
    return 0;
}

//  ---------------------------------------------------------------------
//  Public API

vz_http_t *vz_http_new(zloop_t *loop, const vz_http_config_t *cfg, vz_metrics_t *metrics, char *err,
                       size_t errlen)
{
    assert(loop && cfg && err && errlen > 0);
    err[0] = '\0';
    if (cfg->ca_file[0] && access(cfg->ca_file, R_OK) != 0) {
        snprintf(err, errlen, "VZ_HTTP_CA_FILE=\"%s\": cannot read the file (%s)", cfg->ca_file,
                 strerror(errno));
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "unable to initialise libcurl");
        return NULL;
    }
    vz_http_t *self = calloc(1, sizeof *self);
    assert(self);
    self->loop = loop;
    self->cfg = *cfg;
    self->metrics = metrics;
    self->curl_due_ms = -1;
    self->calls = zlistx_new();
    self->hosts = zhashx_new();
    assert(self->calls && self->hosts);
    zhashx_set_destructor(self->hosts, s_host_free);
    if (getrandom(&self->rng, sizeof self->rng, 0) != sizeof self->rng || self->rng == 0)
        self->rng = (uint64_t)zclock_usecs() | 1;
    self->multi = curl_multi_init();
    self->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    zmq_pollitem_t item = {NULL, self->timer_fd, ZMQ_POLLIN, 0};
    if (!self->multi || self->timer_fd < 0 || zloop_poller(loop, &item, s_on_timer_fd, self) < 0) {
        snprintf(err, errlen, "unable to start the HTTP client: %s", strerror(errno));
        vz_http_destroy(&self);
        return NULL;
    }
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, s_on_curl_socket);
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, s_on_curl_timer);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_connections);
    return self;
}

void vz_http_destroy(vz_http_t **self_p)
{
    assert(self_p);
    vz_http_t *self = *self_p;
    if (!self)
        return;
    assert(!self->in_done); //  destroying from a completion callback is API misuse
    self->closing = true;   //  a cancel callback cannot submit more
    s_call_t *call;
    while ((call = zlistx_first(self->calls))) {
        if (!call->retry_at_ms)
            curl_multi_remove_handle(self->multi, call->easy);
        char error[S_ERROR_MAX];
        snprintf(error, sizeof error, "%s %s: canceled (client destroyed)", call->method,
                 call->url_safe);
        s_finish(self, call, VZ_HTTP_ECANCELED, error);
    }
    if (self->multi)
        curl_multi_cleanup(self->multi); //  may still call s_on_curl_socket
    while (self->fds_len)
        s_unwatch(self, self->fds[0]);
    if (self->timer_fd >= 0) {
        zmq_pollitem_t item = {NULL, self->timer_fd, 0, 0};
        zloop_poller_end(self->loop, &item);
        close(self->timer_fd);
    }
    free(self->fds);
    zlistx_destroy(&self->calls);
    zhashx_destroy(&self->hosts);
    free(self);
    curl_global_cleanup();
    *self_p = NULL;
}

const char *vz_http_warning(const vz_http_t *self)
{
    return self->cfg.insecure ? s_insecure_warning : NULL;
}

size_t vz_http_pending(const vz_http_t *self)
{
    return zlistx_size(self->calls);
}

const char *vz_http_response_header(const vz_http_response_t *response, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < response->header_count; i++)
        if (strcasecmp(response->headers[i].name, name) == 0)
            found = response->headers[i].value;
    return found;
}

//  A header line the client may send: "Name: value", a token name, no CR/LF.
static bool s_header_ok(const char *line)
{
    size_t name_len = strcspn(line, ":");
    if (name_len == 0 || line[name_len] != ':' || strpbrk(line, "\r\n"))
        return false;
    for (size_t i = 0; i < name_len; i++)
        if (!isalnum((unsigned char)line[i]) && !strchr("!#$%&'*+-.^_`|~", line[i]))
            return false;
    return true;
}

//  The metrics label of a request: its own, or the URL's host[:port].
static void s_host_label(const vz_http_request_t *req, char *out, size_t n)
{
    if (req->metrics_host) {
        vz_strlcpy(out, req->metrics_host, n);
        return;
    }
    CURLU *parsed = curl_url();
    assert(parsed);
    char *host = NULL, *port = NULL;
    curl_url_set(parsed, CURLUPART_URL, req->url, 0);
    curl_url_get(parsed, CURLUPART_HOST, &host, 0);
    curl_url_get(parsed, CURLUPART_PORT, &port, 0);
    snprintf(out, n, "%s%s%s", host ? host : "unknown", port ? ":" : "", port ? port : "");
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(parsed);
}

//  Scheme http or https and a host, or false.
static bool s_url_ok(const char *url)
{
    CURLU *parsed = curl_url();
    assert(parsed);
    char *scheme = NULL, *host = NULL;
    bool ok = url && curl_url_set(parsed, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(parsed, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
              (streq(scheme, "http") || streq(scheme, "https"));
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(parsed);
    return ok;
}

//  Set the easy handle's method and body the way curl expects them.
static void s_set_method(s_call_t *call, size_t body_len)
{
    CURL *easy = call->easy;
    if (streq(call->method, "HEAD")) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        return;
    }
    bool with_body = call->body || streq(call->method, "POST");
    if (with_body) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body ? (char *)call->body : "");
    }
    if (!streq(call->method, with_body ? "POST" : "GET"))
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, call->method);
}

int vz_http_request(vz_http_t *self, const vz_http_request_t *req)
{
    assert(self && req);
    if (self->closing)
        return -ECANCELED;
    const char *method = req->method ? req->method : "GET";
    size_t method_len = strlen(method);
    if (!req->done || !s_url_ok(req->url) || (!req->body && req->body_len) || method_len == 0 ||
        method_len >= 16 || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != method_len)
        return -EINVAL;
    for (const char *const *h = req->headers; h && *h; h++)
        if (!s_header_ok(*h))
            return -EINVAL;
    if (req->idempotency_key && (!*req->idempotency_key || strpbrk(req->idempotency_key, "\r\n")))
        return -EINVAL;
    s_call_t *call = calloc(1, sizeof *call);
    assert(call);
    call->owner = self;
    vz_strlcpy(call->method, method, sizeof call->method);
    vz_http_redact_url(req->url, req->secret_path, call->url_safe, sizeof call->url_safe);
    call->retryable = s_method_idempotent(method) || req->idempotency_key || req->idempotent;
    call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : self->cfg.timeout_ms;
    call->budget_ms = req->budget_ms > 0 ? req->budget_ms : self->cfg.budget_ms;
    call->max_attempts = req->max_attempts > 0 ? req->max_attempts : self->cfg.max_attempts;
    call->max_response = req->max_response ? req->max_response : (size_t)self->cfg.max_response;
    call->done = req->done;
    call->arg = req->arg;
    char label[128];
    s_host_label(req, label, sizeof label);
    call->host = s_host(self, label);
    if (req->body) {
        call->body = malloc(req->body_len + 1);
        assert(call->body);
        memcpy(call->body, req->body, req->body_len);
    }
    for (const char *const *h = req->headers; h && *h; h++)
        call->headers = curl_slist_append(call->headers, *h);
    if (req->idempotency_key) {
        char line[512];
        snprintf(line, sizeof line, "Idempotency-Key: %s", req->idempotency_key);
        call->headers = curl_slist_append(call->headers, line);
    }
    //  No "Expect: 100-continue" round trip before a body.
    call->headers = curl_slist_append(call->headers, "Expect:");
    assert(call->headers);

    CURL *easy = call->easy = curl_easy_init();
    assert(easy);
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    s_set_method(call, req->body_len);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)call);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "vizmesh");
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)self->cfg.connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_response);
    if (self->cfg.ca_file[0]) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, self->cfg.ca_file);
        curl_easy_setopt(easy, CURLOPT_CAPATH, NULL); //  the file replaces the system store
    }
    if (self->cfg.insecure) {
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    call->start_ms = vz_clock_mono_ms();
    call->handle = zlistx_add_end(self->calls, call);
    //  add_handle only arms curl's timer: the transfer (and the callback)
    //  happens later, from the loop, never within this call.
    if (s_attempt(self, call) < 0) {
        zlistx_delete(self->calls, call->handle);
        s_call_free(call);
        return -EIO;
    }
    return 0;
}
