/*  gh_test - helpers the github integration tests share (node peers, files, calls as an identity)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Header-only (static inline): tests/integration builds one program per
 *  test_*.c. Each returns a heap value the caller frees, or NULL on
 *  failure; the test asserts on that at the call site.
 */
#ifndef GH_TEST_H
#define GH_TEST_H

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vz_client.h"
#include "vz_github_contract.h"

//  The first line a node peer of tests/peers prints, or NULL when it failed.
static inline char *gh_test_node(const char *script, const char *args)
{
    char *cmd =
        zsys_sprintf("cd '%s/tests/peers' && node %s %s", getenv("VZ_SOURCE_DIR"), script, args);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return NULL;
    char line[4096] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    if (rc != 0 || !got)
        return NULL;
    line[strcspn(line, "\n")] = '\0';
    return strdup(line);
}

//  The bytes of path (NUL-terminated; *len without it), or NULL.
static inline char *gh_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!text)
        return NULL;
    text[got] = '\0';
    if (len)
        *len = got;
    return text;
}

//  github.<method> as identity (the gateway: a trusted ctx; the reporter: a
//  mesh reader), ctx key, value, ..., NULL. The error code into code ("" on
//  success); the error message or the body, or NULL when the call failed.
static inline char *gh_test_call(vzt_mesh_t *m, const char *identity, const char *method,
                                 const char *const *ctx, const void *body, size_t len, char *code,
                                 size_t n)
{
    vz_client_config_t config = {.endpoints = vzt_mesh_endpoint(m),
                                 .broker_key = vzt_mesh_broker_key(m),
                                 .cert = vzt_mesh_cert(m, identity)};
    vz_client_t *client = vz_client_new(&config);
    if (!client)
        return NULL;
    vz_envelope_t req;
    vz_envelope_init(&req, VZ_KIND_REQUEST);
    strcpy(req.service, VZ_GH_SERVICE);
    snprintf(req.method, sizeof req.method, "%s", method);
    req.body = body;
    req.body_len = len;
    vz_response_t *resp = NULL;
    char *out = NULL;
    bool ok = true;
    for (size_t i = 0; ctx && ctx[i] && ok; i += 2)
        ok = vz_envelope_ctx_set(&req, ctx[i], ctx[i + 1]) == 0;
    if (ok && vz_client_call(client, &req, 10000, &resp) == 0) {
        snprintf(code, n, "%s", resp->env.error_code);
        out = code[0] ? strdup(resp->env.error_message) : calloc(1, resp->env.body_len + 1);
        if (!code[0] && resp->env.body_len)
            memcpy(out, resp->env.body, resp->env.body_len);
    }
    vz_response_destroy(&resp);
    vz_client_destroy(&client);
    return out;
}

#endif
