/*  gh_client - GitHub's REST API as the App: App JWT, installation tokens, limits, pages
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One call = one REST request on the reactor thread through the common
 *  outbound client (vz_http, driven by the daemon's zloop):
 *    - as the App: Authorization: Bearer <App JWT> (gh_jwt: RS256, iat 60 s
 *      in the past, exp 9 minutes ahead, iss the App id), made fresh when
 *      the cached one is within a minute of its end;
 *    - as an installation: Authorization: Bearer <installation token> from
 *      POST /app/installations/{id}/access_tokens, cached per installation
 *      until 5 minutes before its expires_at; calls arriving while it is
 *      being fetched wait for that one request (requested once for many
 *      calls); nothing assumes the token's length or form;
 *    - every request carries Accept: application/vnd.github+json,
 *      X-GitHub-Api-Version: 2022-11-28 and User-Agent;
 *    - limits: after a response with x-ratelimit-remaining 0 no call is
 *      sent until x-ratelimit-reset; a 403 or 429 with retry-after (the
 *      secondary limit) waits that long, one with x-ratelimit-remaining 0
 *      waits until x-ratelimit-reset, a 429 or a 403 naming the secondary
 *      limit without either waits a minute; then the call is sent again,
 *      within budget_ms (else it ends with GitHub's answer); a 401 as an installation drops the
 * cached token and fetches a new one once (an expired or revoked token);
 *    - conditional requests: a call given an etag sends If-None-Match; a
 *      304 is reported as not_modified (and costs no rate limit);
 *    - pagination: the result carries the Link header's rel="next" URL,
 *      which the caller passes back as the next call's path.
 *  The private key and every token are never logged; vz_http redacts what
 *  it reports. Threads: reactor thread only. Every done callback runs
 *  exactly once, never inside gh_client_call; gh_client_destroy runs the
 *  pending ones with ok false and status 0.
 *  Metrics: vz_github_api_calls{status}, vz_github_ratelimit_remaining,
 *  vz_github_token_refreshes{result}.
 */
#ifndef GH_CLIENT_H
#define GH_CLIENT_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "vz_http.h"
#include "vz_metrics.h"

typedef struct {
    const char *base_url;   //  "https://api.github.com" or a test server (copied)
    const char *app_id;     //  the App id, "" = not configured (copied)
    const char *key_file;   //  the App's private key (PEM), "" = not configured
    const char *user_agent; //  User-Agent (copied)
    int budget_ms;          //  one call with its waits
} gh_client_config_t;

typedef struct {
    bool ok;           //  a 2xx (or a 304 when not_modified) arrived
    bool not_modified; //  304 to an If-None-Match
    long status;       //  GitHub's last status, 0 when none arrived
    const char *body;  //  the body (borrowed for the callback), "" when none
    size_t body_len;   //  its length
    const char *next;  //  Link rel="next" URL, or NULL
    const char *etag;  //  ETag of the response, or NULL
    const char *error; //  when !ok: a short reason (never a credential)
} gh_client_result_t;

typedef void(gh_client_done_fn)(void *arg, const gh_client_result_t *result);

typedef struct gh_client_t gh_client_t;

//  loop and metrics are borrowed (metrics may be NULL). Without app_id or
//  key_file the client is unconfigured (gh_client_missing names the
//  setting). NULL with a reason in err when the key file cannot be read
//  or is not an RSA private key, or vz_http cannot start.
gh_client_t *gh_client_new(zloop_t *loop, const vz_http_config_t *http,
                           const gh_client_config_t *config, vz_metrics_t *metrics, char *err,
                           size_t errlen);
void gh_client_destroy(gh_client_t **self_p);

//  True when App id and key are set (NULL: false).
bool gh_client_configured(const gh_client_t *self);
//  The setting a call lacks ("VZ_GITHUB_APP_ID" ...), or NULL when configured.
const char *gh_client_missing(const gh_client_t *self);
//  vz_http's start-up warning (TLS verification off), or NULL.
const char *gh_client_warning(const gh_client_t *self);

//  Start method on path ("/app/hook/deliveries", or a full URL on the
//  base from a Link header) as the App (installation 0) or as installation.
//  body (JSON or NULL) is copied; etag (or NULL) is sent as If-None-Match.
//  0 (done runs later, once), -ENOKEY (not configured), -EINVAL (a URL
//  outside the base), -ECANCELED (from a callback run by gh_client_destroy).
int gh_client_call(gh_client_t *self, const char *method, const char *path, int64_t installation,
                   const char *body, const char *etag, gh_client_done_fn *done, void *arg);

//  The rel="next" URL of a Link header value into out (size n). 0, or -1
//  when there is none. Pure.
int gh_client_link_next(const char *link, char *out, size_t n);

#endif
