/*  gh_client - GitHub's REST API as the App: App JWT, installation tokens, limits, pages
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "gh_client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gh_jwt.h"
#include "vz_clock.h"
#include "vz_json.h"

#define TOKENS_MAX 64            //  installations whose token is cached
#define TOKEN_MARGIN_S 300       //  a token is renewed this long before expires_at
#define JWT_MARGIN_S 60          //  the App JWT is renewed this long before its exp
#define API_VERSION "2022-11-28" //  X-GitHub-Api-Version
#define LINE_MAX_ 8192           //  one header line (a token of any length fits)
#define SECONDARY_WAIT_MS 60000  //  a secondary limit without retry-after

typedef struct s_call_t s_call_t;

//  One installation's token and the calls waiting for it.
typedef struct {
    gh_client_t *owner;
    int64_t installation;
    char *token;        //  heap, NULL when none
    int64_t expires_at; //  Unix s
    bool fetching;      //  a request for it is in flight
    s_call_t *waiting;  //  calls waiting for it (linked through wait_next)
} s_token_t;

struct s_call_t {
    gh_client_t *owner;
    char method[8];
    char *url;            //  absolute URL
    int64_t installation; //  0 = as the App
    char *body;           //  JSON or NULL
    char *etag;           //  If-None-Match or NULL
    gh_client_done_fn *done;
    void *arg;
    int64_t deadline_ms;   //  monotonic
    bool renewed;          //  a 401 already made it fetch a new token
    int timer;             //  a wait's timer id, 0 when none
    s_call_t *wait_next;   //  in a token's waiting list
    s_call_t *prev, *next; //  every live call (answered at destroy)
};

struct gh_client_t {
    zloop_t *loop;
    vz_http_t *http;
    vz_metrics_t *metrics;
    char base[256];
    char app_id[32];
    char user_agent[128];
    const char *missing; //  setting lacking, NULL when configured
    gh_jwt_key_t *key;
    int budget_ms;
    char *jwt;       //  cached App JWT
    int64_t jwt_exp; //  its exp, Unix s
    s_token_t tokens[TOKENS_MAX];
    int64_t blocked_until; //  primary limit: no call before this Unix ms
    s_call_t *live;
    bool closing;
};

static void s_start(s_call_t *call);

// --------------------------------------------------------------------------
//  Metrics

static void s_count_call(gh_client_t *self, long status)
{
    if (!self->metrics)
        return;
    char labels[32];
    if (status)
        snprintf(labels, sizeof labels, "status=%ld", status);
    else
        snprintf(labels, sizeof labels, "status=error");
    vz_series_inc(vz_metrics_counter(self->metrics, "vz_github_api_calls",
                                     "Calls to GitHub's REST API by status", labels));
}

static void s_count_token(gh_client_t *self, const char *result)
{
    if (!self->metrics)
        return;
    char labels[32];
    snprintf(labels, sizeof labels, "result=%s", result);
    vz_series_inc(vz_metrics_counter(self->metrics, "vz_github_token_refreshes",
                                     "Installation token requests by result", labels));
}

// --------------------------------------------------------------------------
//  Life cycle

gh_client_t *gh_client_new(zloop_t *loop, const vz_http_config_t *http,
                           const gh_client_config_t *config, vz_metrics_t *metrics, char *err,
                           size_t errlen)
{
    gh_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->metrics = metrics;
    self->budget_ms = config->budget_ms > 0 ? config->budget_ms : 30000;
    snprintf(self->base, sizeof self->base, "%s", config->base_url);
    size_t bl = strlen(self->base);
    if (bl && self->base[bl - 1] == '/')
        self->base[bl - 1] = '\0';
    snprintf(self->app_id, sizeof self->app_id, "%s", config->app_id ? config->app_id : "");
    snprintf(self->user_agent, sizeof self->user_agent, "%s", config->user_agent);
    if (!self->app_id[0])
        self->missing = "VZ_GITHUB_APP_ID";
    //  An absent file (an optional Kubernetes Secret not created) means
    //  "not configured"; one that cannot be read or parsed is an error.
    else if (!config->key_file || !config->key_file[0] ||
             (access(config->key_file, F_OK) != 0 && errno == ENOENT))
        self->missing = "VZ_GITHUB_APP_PRIVATE_KEY_FILE";
    else if (!(self->key = gh_jwt_key_load(config->key_file, err, errlen))) {
        free(self);
        return NULL;
    }
    if (metrics) {
        //  The families exist from the start; remaining is -1 until GitHub answers.
        vz_series_set(vz_metrics_gauge(metrics, "vz_github_ratelimit_remaining",
                                       "x-ratelimit-remaining of GitHub's last answer", NULL),
                      -1);
        (void)vz_metrics_counter(metrics, "vz_github_api_calls",
                                 "Calls to GitHub's REST API by status", "status=200");
        (void)vz_metrics_counter(metrics, "vz_github_token_refreshes",
                                 "Installation token requests by result", "result=ok");
    }
    self->http = vz_http_new(loop, http, metrics, err, errlen);
    if (!self->http) {
        gh_jwt_key_destroy(&self->key);
        free(self);
        return NULL;
    }
    return self;
}

static void s_call_free(s_call_t *call)
{
    gh_client_t *self = call->owner;
    if (call->prev)
        call->prev->next = call->next;
    else
        self->live = call->next;
    if (call->next)
        call->next->prev = call->prev;
    free(call->url);
    free(call->body);
    free(call->etag);
    free(call);
}

//  Answer the caller and forget the call.
static void s_finish(s_call_t *call, const gh_client_result_t *result)
{
    if (call->timer)
        zloop_timer_end(call->owner->loop, call->timer);
    call->timer = 0;
    call->done(call->arg, result);
    s_call_free(call);
}

static void s_fail(s_call_t *call, long status, const char *error)
{
    gh_client_result_t r = {.status = status, .body = "", .error = error};
    s_finish(call, &r);
}

void gh_client_destroy(gh_client_t **self_p)
{
    gh_client_t *self = *self_p;
    if (!self)
        return;
    self->closing = true;
    //  In-flight requests end here (their callbacks answer their calls)...
    vz_http_destroy(&self->http);
    //  ...then the ones waiting on a timer or a token.
    while (self->live)
        s_fail(self->live, 0, "client stopped");
    for (size_t i = 0; i < TOKENS_MAX; i++)
        free(self->tokens[i].token);
    free(self->jwt);
    gh_jwt_key_destroy(&self->key);
    free(self);
    *self_p = NULL;
}

bool gh_client_configured(const gh_client_t *self)
{
    return self && !self->missing;
}

const char *gh_client_missing(const gh_client_t *self)
{
    return self ? self->missing : "VZ_GITHUB_APP_ID";
}

const char *gh_client_warning(const gh_client_t *self)
{
    return vz_http_warning(self->http);
}

// --------------------------------------------------------------------------
//  Link header

int gh_client_link_next(const char *link, char *out, size_t n)
{
    //  <url>; rel="next", <url>; rel="last"
    const char *p = link;
    while (p && *p) {
        const char *lt = strchr(p, '<'), *gt = lt ? strchr(lt, '>') : NULL;
        if (!gt)
            return -1;
        const char *end = strchr(gt, ',');
        size_t seg = end ? (size_t)(end - gt) : strlen(gt);
        const char *rel = strstr(gt, "rel=\"next\"");
        if (rel && rel < gt + seg && (size_t)(gt - lt - 1) < n) {
            memcpy(out, lt + 1, (size_t)(gt - lt - 1));
            out[gt - lt - 1] = '\0';
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}

// --------------------------------------------------------------------------
//  Credentials

static const char *s_app_jwt(gh_client_t *self)
{
    int64_t now = vz_clock_now_ms() / 1000;
    if (!self->jwt || now + JWT_MARGIN_S >= self->jwt_exp) {
        free(self->jwt);
        self->jwt = gh_jwt_sign(self->key, self->app_id, now);
        self->jwt_exp = now + GH_JWT_LIFETIME_S;
    }
    return self->jwt;
}

static s_token_t *s_token_slot(gh_client_t *self, int64_t installation)
{
    s_token_t *free_slot = NULL, *oldest = &self->tokens[0];
    for (size_t i = 0; i < TOKENS_MAX; i++) {
        s_token_t *t = &self->tokens[i];
        if (t->installation == installation)
            return t;
        if (!t->installation && !free_slot)
            free_slot = t;
        if (!t->fetching && t->expires_at < oldest->expires_at)
            oldest = t;
    }
    s_token_t *t = free_slot ? free_slot : oldest;
    if (t->fetching)
        return NULL;
    free(t->token);
    memset(t, 0, sizeof *t);
    t->owner = self;
    t->installation = installation;
    return t;
}

//  The token request finished: store it, then send or fail the waiting calls.
static void s_token_done(void *arg, const gh_client_result_t *r)
{
    s_token_t *t = arg;
    gh_client_t *self = t->owner;
    t->fetching = false;
    char *token = NULL;
    int64_t expires = 0;
    if (r->ok) {
        vz_json_t *doc = vz_json_parse(r->body, r->body_len, NULL, NULL);
        const vz_json_value_t *root = doc ? vz_json_root(doc) : NULL;
        const char *text = vz_json_get_string(root, "token", NULL);
        const char *exp = vz_json_get_string(root, "expires_at", NULL);
        if (text && *text && !strpbrk(text, "\r\n") && exp &&
            vz_clock_parse_utc(exp, &expires) == 0) {
            token = strdup(text);
            expires /= 1000000;
        }
        vz_json_destroy(&doc);
    }
    free(t->token);
    t->token = token;
    t->expires_at = token ? expires : 0;
    s_call_t *waiting = t->waiting;
    t->waiting = NULL;
    while (waiting) {
        s_call_t *call = waiting;
        waiting = call->wait_next;
        call->wait_next = NULL;
        if (token)
            s_start(call);
        else
            s_fail(call, r->status, "no installation token");
    }
    s_count_token(self, token ? "ok" : "failed");
}

// --------------------------------------------------------------------------
//  Calls

static int s_wait_timer(zloop_t *loop, int timer_id, void *arg)
{
    s_call_t *call = arg;
    call->timer = 0;
    s_start(call);
    return 0;
}

//  Wait ms before sending call again, if that ends before its deadline.
static void s_wait(s_call_t *call, int64_t ms, long status, const char *error)
{
    if (ms < 0)
        ms = 0;
    if (call->owner->closing || vz_clock_mono_ms() + ms > call->deadline_ms) {
        s_fail(call, status, error);
        return;
    }
    call->timer = zloop_timer(call->owner->loop, (size_t)(ms ? ms : 1), 1, s_wait_timer, call);
    if (call->timer <= 0) {
        call->timer = 0;
        s_fail(call, status, "timer unavailable");
    }
}

static int64_t s_header_int(const vz_http_response_t *resp, const char *name, int64_t def)
{
    const char *v = vz_http_response_header(resp, name);
    char *end = NULL;
    long long n = v ? strtoll(v, &end, 10) : 0;
    return v && end != v ? (int64_t)n : def;
}

static void s_on_response(const vz_http_response_t *resp, void *arg)
{
    s_call_t *call = arg;
    gh_client_t *self = call->owner;
    s_count_call(self, resp->rc == 0 ? resp->status : 0);
    if (resp->rc != 0) {
        //  The network failed: a GET may be sent again within the budget.
        if (!self->closing && strcmp(call->method, "GET") == 0 && resp->rc != VZ_HTTP_ECANCELED)
            s_wait(call, 1000, 0, resp->error);
        else
            s_fail(call, 0, resp->error);
        return;
    }
    int64_t now_ms = vz_clock_now_ms();
    int64_t remaining = s_header_int(resp, "x-ratelimit-remaining", -1);
    int64_t reset = s_header_int(resp, "x-ratelimit-reset", 0);
    int64_t retry_after = s_header_int(resp, "retry-after", -1);
    if (remaining >= 0 && self->metrics)
        vz_series_set(vz_metrics_gauge(self->metrics, "vz_github_ratelimit_remaining",
                                       "x-ratelimit-remaining of GitHub's last answer", NULL),
                      (double)remaining);
    if (remaining == 0 && reset > 0)
        self->blocked_until = reset * 1000;
    long st = resp->status;
    if (st == 401 && call->installation && !call->renewed) {
        //  An expired or revoked installation token: fetch a new one, once.
        s_token_t *t = s_token_slot(self, call->installation);
        if (t && !t->fetching) {
            free(t->token);
            t->token = NULL;
            t->expires_at = 0;
        }
        call->renewed = true;
        s_start(call);
        return;
    }
    if ((st == 403 || st == 429) && retry_after >= 0) {
        s_wait(call, retry_after * 1000, st, "secondary rate limit");
        return;
    }
    if ((st == 403 || st == 429) && remaining == 0 && reset > 0) {
        s_wait(call, reset * 1000 - now_ms, st, "primary rate limit");
        return;
    }
    //  A secondary limit without retry-after: GitHub asks for at least a minute.
    if (st == 429 ||
        (st == 403 && resp->body_len && strstr((const char *)resp->body, "secondary rate limit"))) {
        s_wait(call, SECONDARY_WAIT_MS, st, "secondary rate limit");
        return;
    }
    const char *link = vz_http_response_header(resp, "link");
    char next[2048];
    bool has_next = link && gh_client_link_next(link, next, sizeof next) == 0;
    gh_client_result_t r = {.ok = (st >= 200 && st < 300) || st == 304,
                            .not_modified = st == 304,
                            .status = st,
                            .body = (const char *)resp->body,
                            .body_len = resp->body_len,
                            .next = has_next ? next : NULL,
                            .etag = vz_http_response_header(resp, "etag"),
                            .error = st >= 200 && st < 300 ? "" : "GitHub refused the call"};
    s_finish(call, &r);
}

static void s_send(s_call_t *call, const char *credential)
{
    gh_client_t *self = call->owner;
    char *auth = malloc(strlen(credential) + 32);
    char ua[sizeof self->user_agent + 16], etag[LINE_MAX_];
    if (!auth) {
        s_fail(call, 0, "out of memory");
        return;
    }
    sprintf(auth, "Authorization: Bearer %s", credential);
    snprintf(ua, sizeof ua, "User-Agent: %s", self->user_agent);
    snprintf(etag, sizeof etag, "If-None-Match: %s", call->etag ? call->etag : "");
    const char *headers[8];
    size_t h = 0;
    headers[h++] = "Accept: application/vnd.github+json";
    headers[h++] = "X-GitHub-Api-Version: " API_VERSION;
    headers[h++] = ua;
    headers[h++] = auth;
    if (call->body)
        headers[h++] = "Content-Type: application/json";
    if (call->etag)
        headers[h++] = etag;
    headers[h] = NULL;
    int64_t left = call->deadline_ms - vz_clock_mono_ms();
    vz_http_request_t req = {.method = call->method,
                             .url = call->url,
                             .headers = headers,
                             .body = call->body,
                             .body_len = call->body ? strlen(call->body) : 0,
                             .metrics_host = "github",
                             .budget_ms = (int)(left > 1 ? left : 1),
                             .max_attempts = 1,
                             .done = s_on_response,
                             .arg = call};
    int rc = vz_http_request(self->http, &req);
    memset(auth, 0, strlen(auth));
    free(auth);
    if (rc < 0)
        s_fail(call, 0, "request refused by the HTTP client");
}

//  Send call when the limits and its credential allow.
static void s_start(s_call_t *call)
{
    gh_client_t *self = call->owner;
    int64_t now_ms = vz_clock_now_ms();
    if (self->blocked_until > now_ms) {
        s_wait(call, self->blocked_until - now_ms, 403, "primary rate limit");
        return;
    }
    if (!call->installation) {
        const char *jwt = s_app_jwt(self);
        if (!jwt)
            s_fail(call, 0, "cannot sign the App JWT");
        else
            s_send(call, jwt);
        return;
    }
    s_token_t *t = s_token_slot(self, call->installation);
    if (!t) {
        s_wait(call, 100, 0, "token cache full");
        return;
    }
    if (t->token && now_ms / 1000 + TOKEN_MARGIN_S < t->expires_at) {
        s_send(call, t->token);
        return;
    }
    call->wait_next = t->waiting;
    t->waiting = call;
    if (t->fetching)
        return;
    t->fetching = true;
    char path[96];
    snprintf(path, sizeof path, "/app/installations/%" PRId64 "/access_tokens", call->installation);
    if (gh_client_call(self, "POST", path, 0, NULL, NULL, s_token_done, t) < 0) {
        gh_client_result_t r = {.body = "", .error = "cannot request a token"};
        s_token_done(t, &r);
    }
}

int gh_client_call(gh_client_t *self, const char *method, const char *path, int64_t installation,
                   const char *body, const char *etag, gh_client_done_fn *done, void *arg)
{
    if (!gh_client_configured(self))
        return -ENOKEY;
    if (self->closing)
        return -ECANCELED;
    //  A Link URL must stay on the configured base (the token goes with it).
    bool absolute = strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0;
    if ((absolute && (strncmp(path, self->base, strlen(self->base)) != 0 ||
                      (path[strlen(self->base)] != '/' && path[strlen(self->base)] != '\0'))) ||
        (!absolute && path[0] != '/') || strlen(method) >= 8)
        return -EINVAL;
    s_call_t *call = calloc(1, sizeof *call);
    if (!call)
        return -ENOMEM;
    call->owner = self;
    snprintf(call->method, sizeof call->method, "%s", method);
    call->url = absolute ? strdup(path) : malloc(strlen(self->base) + strlen(path) + 1);
    if (call->url && !absolute)
        sprintf(call->url, "%s%s", self->base, path);
    call->installation = installation;
    call->body = body ? strdup(body) : NULL;
    call->etag = etag ? strdup(etag) : NULL;
    call->done = done;
    call->arg = arg;
    call->deadline_ms = vz_clock_mono_ms() + self->budget_ms;
    call->next = self->live;
    if (self->live)
        self->live->prev = call;
    self->live = call;
    if (!call->url) {
        s_call_free(call);
        return -ENOMEM;
    }
    //  Never inside this call: the first step runs from the loop.
    call->timer = zloop_timer(self->loop, 1, 1, s_wait_timer, call);
    if (call->timer <= 0) {
        s_call_free(call);
        return -ENOMEM;
    }
    return 0;
}
