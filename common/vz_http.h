/*  vz_http - outbound HTTP(S) for daemons that call out (SaaS APIs, webhooks)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One client over libcurl for every daemon that calls out: Stripe, GitHub,
 *  Slack, Discord, PagerDuty, OTLP export, webhooks. It lives in its own
 *  library, vzhttp (not in vzcommon): a daemon that uses it links with
 *  vz_daemon_curl() in CMake, never vz_daemon() (common/CMakeLists.txt).
 *
 *  Threading: one curl multi handle driven by the daemon's zloop, no thread
 *  of its own. curl's sockets become zloop pollers and its timer is a
 *  timerfd poller (zloop timers cannot be cancelled safely from inside a
 *  timer handler, and curl re-arms its timer from within every call), so
 *  every transfer advances in small non-blocking steps between the loop's
 *  other events and every completion callback runs on the reactor thread.
 *  Why not a thread of its own: nothing here blocks that a thread would hide.
 *  Name resolution runs on curl's threaded resolver ("AsynchDNS"), a TLS
 *  handshake costs the reactor well under a millisecond per new connection
 *  (then the connection is reused), and a loop-driven client needs no
 *  copy of each request and reply across threads, no second owner of the
 *  callbacks' state and no shutdown handshake. Every call on a vz_http_t
 *  must come from the thread that runs its loop.
 *
 *  Per call: method, URL, headers and body (all copied at submit), connect
 *  and per-attempt timeouts, a total budget covering retries and waits,
 *  a response size limit (the transfer is aborted past it), TLS
 *  verification always on unless the daemon's setting turns it off.
 *  Connections are kept in the multi handle's cache and reused (TCP
 *  keepalive on); TLS 1.2 is the floor; only http and https URLs are taken
 *  and redirects are not followed.
 *
 *  Retries: only a call that may be repeated (GET, HEAD, PUT, DELETE,
 *  OPTIONS; or any method with an idempotency key, or marked idempotent by
 *  the caller) is retried, and only after a connect failure (refused,
 *  unresolved, connect timeout), a connection reset or empty reply, a 429 or
 *  a 5xx other than 501. The wait is exponential backoff with full jitter
 *  (a uniform draw in [0, min(backoff_max, backoff * 2^(n-1))]), raised to
 *  the server's Retry-After (delta seconds or HTTP-date) when it sent one.
 *  Attempts stop at max_attempts or when the next wait would end past the
 *  call's budget: the caller then gets the last response (with its
 *  Retry-After header) or error.
 *
 *  Proxy: libcurl's default, kept on purpose (CURLOPT_PROXY is never set):
 *  http_proxy (lower case only: curl ignores HTTP_PROXY, the "httpoxy"
 *  guard) for http URLs, https_proxy / HTTPS_PROXY for https URLs
 *  (tunnelled with CONNECT), ALL_PROXY / all_proxy for both, and NO_PROXY /
 *  no_proxy (comma-separated hosts, domain suffixes, IPs or CIDR ranges,
 *  "*" for all) to bypass. curl reads them for every transfer.
 *
 *  Credentials: nothing this module returns for logging carries one. The
 *  response's url and error are redacted: the URL's userinfo is dropped,
 *  query values are masked and, for a request marked secret_path (Slack and
 *  Discord webhooks carry their token in the path), so is the path; the
 *  error text is built from curl's fixed messages, never from its error
 *  buffer. vz_http_redact_header masks Authorization-like header values
 *  for a daemon that logs headers. common/ does not log (STYLE rule 7).
 *
 *  Metrics (when a registry is given), per attempt:
 *    vz_http_client_requests_total{host,class}   class 1xx..5xx or "error"
 *    vz_http_client_request_duration_seconds{host} histogram
 *    vz_http_client_retries_total{host}
 *  host is the request's metrics_host or the URL's host[:port]; after 64
 *  distinct hosts further ones share host="other" (bounded cardinality).
 */
#ifndef VZ_HTTP_H
#define VZ_HTTP_H

#include <czmq.h>
#include "vz_common.h"
#include "vz_config.h"
#include "vz_metrics.h"

//  Error codes (rc of a response), below -4095 so they never equal -errno.
#define VZ_HTTP_ECONNECT -4201  //  name not resolved, connection refused or connect timeout
#define VZ_HTTP_ETIMEOUT -4202  //  connected, but no complete response within the timeout
#define VZ_HTTP_ETLS -4203      //  TLS handshake failed or the peer's certificate did not verify
#define VZ_HTTP_ETOOBIG -4204   //  response larger than max_response (transfer aborted)
#define VZ_HTTP_ERESET -4205    //  connection reset or closed before a complete response
#define VZ_HTTP_EFAILED -4206   //  any other transfer failure (message says which)
#define VZ_HTTP_ECANCELED -4207 //  vz_http_destroy ran while the call was pending

//  Settings defaults, one place: the config rows and vz_http_config_init.
#define VZ_HTTP_CONNECT_TIMEOUT_MS 5000
#define VZ_HTTP_TIMEOUT_MS 30000
#define VZ_HTTP_BUDGET_MS 60000
#define VZ_HTTP_MAX_ATTEMPTS 4
#define VZ_HTTP_BACKOFF_MS 250
#define VZ_HTTP_BACKOFF_MAX_MS 10000
#define VZ_HTTP_MAX_RESPONSE 4194304
#define VZ_HTTP_MAX_CONNECTIONS 32

typedef struct {
    char ca_file[VZ_PATH_MAX]; //  PEM bundle replacing the system store; "" = system store
    bool insecure;             //  no TLS verification (vz_http_warning says so)
    int connect_timeout_ms;    //  TCP + TLS handshake, per attempt
    int timeout_ms;            //  one attempt, first byte sent to last byte received
    int budget_ms;             //  one call: every attempt and every wait between them
    int max_attempts;          //  attempts per call, 1 = no retries
    int backoff_ms;            //  ceiling of the first retry's jittered wait
    int backoff_max_ms;        //  ceiling of any jittered wait
    int max_response;          //  response body limit, bytes
    int max_connections;       //  idle connections kept for reuse
} vz_http_config_t;

#define VZ_HTTP_STR_(x) #x
#define VZ_HTTP_STR(x) VZ_HTTP_STR_(x)
//  A numeric row: the variable VZ_HTTP_<N> defaults to the macro of the same
//  name above and may range lo..hi.
#define VZ_HTTP_CFG_NUM(T, N, zpl, type, lo, hi, field, help)                                      \
    VZ_CFG_ITEM(T, "VZ_HTTP_" #N, zpl, type, VZ_HTTP_STR(VZ_HTTP_##N), lo, hi, field, help)
//  The settings as vz_config rows, for a daemon's own table: T is its
//  config struct and m the vz_http_config_t member inside it, e.g.
//    static const vz_cfg_item_t items[] = { VZ_HTTP_CFG_ITEMS(app_config_t, http), ... };
//  so they appear in the daemon's --help and docs/configuration.md.
#define VZ_HTTP_CFG_ITEMS(T, m)                                                                    \
    VZ_CFG_ITEM(T, "VZ_HTTP_CA_FILE", "http/ca_file", VZ_CFG_STR, "", 0, 0, m.ca_file,             \
                "CA bundle (PEM) for outbound HTTPS, replacing the system store; \"\" = system"),  \
        VZ_CFG_ITEM(T, "VZ_HTTP_INSECURE", "http/insecure", VZ_CFG_BOOL, "0", 0, 0, m.insecure,    \
                    "skip TLS verification of outbound HTTPS (tests only; logged as a warning)"),  \
        VZ_HTTP_CFG_NUM(T, CONNECT_TIMEOUT_MS, "http/connect_timeout", VZ_CFG_MS, 1, 600000,       \
                        m.connect_timeout_ms,                                                      \
                        "outbound HTTP connect timeout (TCP and TLS), per attempt"),               \
        VZ_HTTP_CFG_NUM(T, TIMEOUT_MS, "http/timeout", VZ_CFG_MS, 1, 3600000, m.timeout_ms,        \
                        "outbound HTTP timeout of one attempt"),                                   \
        VZ_HTTP_CFG_NUM(T, BUDGET_MS, "http/budget", VZ_CFG_MS, 1, 86400000, m.budget_ms,          \
                        "outbound HTTP call budget: all attempts and the waits between them"),     \
        VZ_HTTP_CFG_NUM(T, MAX_ATTEMPTS, "http/max_attempts", VZ_CFG_INT, 1, 20, m.max_attempts,   \
                        "outbound HTTP attempts per call (retries only for idempotent calls)"),    \
        VZ_HTTP_CFG_NUM(T, BACKOFF_MS, "http/backoff", VZ_CFG_MS, 1, 600000, m.backoff_ms,         \
                        "first retry backoff ceiling (doubles each retry, full jitter)"),          \
        VZ_HTTP_CFG_NUM(T, BACKOFF_MAX_MS, "http/backoff_max", VZ_CFG_MS, 1, 3600000,              \
                        m.backoff_max_ms, "largest retry backoff ceiling"),                        \
        VZ_HTTP_CFG_NUM(T, MAX_RESPONSE, "http/max_response", VZ_CFG_INT, 1, 1073741824,           \
                        m.max_response, "largest outbound HTTP response body accepted, bytes"),    \
        VZ_HTTP_CFG_NUM(T, MAX_CONNECTIONS, "http/max_connections", VZ_CFG_INT, 1, 10000,          \
                        m.max_connections, "idle outbound HTTP connections kept for reuse")
#define VZ_HTTP_CFG_COUNT 10

//  Fill cfg with the defaults above (for tests and daemons without a table).
void vz_http_config_init(vz_http_config_t *cfg);

//  One response header, both parts borrowed from the response.
typedef struct {
    const char *name;
    const char *value;
} vz_http_header_t;

//  What a completion callback receives. Everything is borrowed and valid
//  only until the callback returns: copy what you keep.
typedef struct {
    int rc;                          //  0: a response arrived (any status); else VZ_HTTP_E*
    long status;                     //  HTTP status of the last attempt; 0 if none arrived
    const char *error;               //  redacted reason when rc < 0, else ""; never NULL
    const char *url;                 //  the request's URL, redacted for logging
    const char *method;              //  the request's method
    const uint8_t *body;             //  body, NUL-terminated (not counted); "" when rc < 0
    size_t body_len;                 //  bytes in body
    const vz_http_header_t *headers; //  the last response's headers, in arrival order
    size_t header_count;             //  entries in headers
    int attempts;                    //  attempts made (1 = no retry)
    double seconds;                  //  from submit to completion, waits included
} vz_http_response_t;

//  Called once per submitted request, on the reactor thread, never from
//  within vz_http_request itself. It may submit new requests; it must not
//  destroy the client.
typedef void(vz_http_done_fn)(const vz_http_response_t *response, void *arg);

typedef struct {
    const char *method;          //  "GET", "POST", ...; NULL = "GET"
    const char *url;             //  http:// or https:// (userinfo becomes Basic auth)
    const char *const *headers;  //  NULL-terminated "Name: value" lines, or NULL
    const void *body;            //  request body or NULL (copied at submit)
    size_t body_len;             //  bytes in body
    const char *idempotency_key; //  sent as Idempotency-Key; makes the call retryable
    bool idempotent;             //  the caller vouches a repeat is harmless (dedup key in body)
    bool secret_path;            //  the URL path is a credential: mask it in url and error
    const char *metrics_host;    //  metrics host label; NULL = the URL's host[:port]
    int timeout_ms;              //  per attempt; 0 = config
    int budget_ms;               //  whole call; 0 = config
    int max_attempts;            //  0 = config
    size_t max_response;         //  0 = config
    vz_http_done_fn *done;       //  completion callback (required)
    void *arg;                   //  passed to done
} vz_http_request_t;

typedef struct vz_http_t vz_http_t;

//  Create a client driven by loop (borrowed; it must outlive the client).
//  cfg is copied. metrics may be NULL (no metrics). Returns NULL with a
//  message in err when the CA file cannot be read or curl cannot start.
vz_http_t *vz_http_new(zloop_t *loop, const vz_http_config_t *cfg, vz_metrics_t *metrics, char *err,
                       size_t errlen);
//  Ends every pending call with VZ_HTTP_ECANCELED (their callbacks run
//  here, so state they own can be freed), removes the pollers, frees all.
void vz_http_destroy(vz_http_t **self_p);

//  NULL, or a static text the daemon logs once as a warning at start:
//  TLS verification is off (VZ_HTTP_INSECURE). common/ does not log.
const char *vz_http_warning(const vz_http_t *self);

//  Submit a request. Everything in req is copied. Returns 0 (done will be
//  called exactly once, later), or -EINVAL for a URL that is not http(s),
//  a method that is not upper-case letters, a header line that is not
//  "Name: value" on one line, body_len without a body or no callback;
//  -EIO when curl refuses the transfer; -ECANCELED from a callback run by
//  vz_http_destroy (done is then not called).
int vz_http_request(vz_http_t *self, const vz_http_request_t *req);

//  Calls submitted and not yet completed.
size_t vz_http_pending(const vz_http_t *self);

//  Value of the response's last header called name (case-insensitive), or NULL.
const char *vz_http_response_header(const vz_http_response_t *response, const char *name);

//  True for header names whose values are credentials: Authorization,
//  Proxy-Authorization, Cookie, Set-Cookie, and any name containing "key"
//  (except Idempotency-Key), "token", "secret", "signature" or "password".
bool vz_http_header_is_secret(const char *name);

//  "Name: value" into out (size n > 0) with the value replaced by "***"
//  when the name is secret; truncated to fit. Returns out.
char *vz_http_redact_header(const char *line, char *out, size_t n);

//  url without userinfo, query values masked ("?a=***&b=***"), the path
//  masked too when secret_path ("/***"). Text that does not parse as a URL
//  gives "(invalid url)". Truncated to fit out (size n > 0). Returns out.
char *vz_http_redact_url(const char *url, bool secret_path, char *out, size_t n);

#endif
