/*  fuzz_envelope - libFuzzer harness for vz_envelope_decode
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Built with libFuzzer (-DVZ_FUZZ=ON) and as a corpus replay in the normal
 *  build (tests/fuzz/README.md). Beyond "no crash, no sanitizer report",
 *  every input that decodes must satisfy the invariants a receiver relies
 *  on, and re-encoding it must give an envelope that decodes to the same
 *  fields (decode . encode . decode = decode), which catches a decoder that
 *  accepts what the encoder cannot say.
 */
#include "fuzz.h"
#include "vz_envelope.h"

#define CHECK FZ_CHECK

static void s_check_str(const char *field, size_t cap)
{
    FZ_CHECK_STR(field, cap);
}

static void s_check_same(const vz_envelope_t *a, const vz_envelope_t *b)
{
    CHECK(a->kind == b->kind && a->version == b->version);
    CHECK(!strcmp(a->service, b->service) && !strcmp(a->method, b->method));
    CHECK(!strcmp(a->id, b->id) && !strcmp(a->traceparent, b->traceparent));
    CHECK(a->deadline_ms == b->deadline_ms && a->flags == b->flags);
    CHECK(!strcmp(a->error_code, b->error_code));
    CHECK(!strcmp(a->error_message, b->error_message));
    CHECK(a->ctx_count == b->ctx_count);
    for (size_t i = 0; i < a->ctx_count; i++)
        CHECK(!strcmp(a->ctx[i].key, b->ctx[i].key) && !strcmp(a->ctx[i].value, b->ctx[i].value));
    CHECK(a->body_len == b->body_len);
    CHECK(a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vz_envelope_t env;
    const char *reason = NULL;
    int rc = vz_envelope_decode(&env, data, size, NULL, &reason);
    if (rc < 0) {
        CHECK(rc == VZ_EMALFORMED && reason);
        return 0;
    }
    CHECK(reason == NULL);
    CHECK(env.version == VZ_ENVELOPE_VERSION);
    CHECK(env.kind >= VZ_KIND_REQUEST && env.kind <= VZ_KIND_EVENT);
    s_check_str(env.service, sizeof(env.service));
    s_check_str(env.method, sizeof(env.method));
    s_check_str(env.id, sizeof(env.id));
    s_check_str(env.traceparent, sizeof(env.traceparent));
    s_check_str(env.error_code, sizeof(env.error_code));
    s_check_str(env.error_message, sizeof(env.error_message));
    CHECK(env.caller[0] == 0); //  never taken from the sender
    CHECK(env.deadline_ms >= 0);
    CHECK(env.ctx_count <= VZ_CTX_MAX);
    for (size_t i = 0; i < env.ctx_count; i++) {
        s_check_str(env.ctx[i].key, VZ_CTX_KEY_MAX);
        s_check_str(env.ctx[i].value, VZ_CTX_VAL_MAX);
    }
    CHECK((env.body == NULL) == (env.body_len == 0));
    CHECK(env.body == NULL || (env.body >= data && env.body + env.body_len <= data + size));

    uint8_t *again;
    size_t again_len;
    CHECK(vz_envelope_encode(&env, &again, &again_len) == 0);
    vz_envelope_t twice;
    CHECK(vz_envelope_decode(&twice, again, again_len, NULL, NULL) == 0);
    s_check_same(&env, &twice);
    free(again);
    return 0;
}
