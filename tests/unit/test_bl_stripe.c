/*  test_bl_stripe - Stripe requests built like the SDK's, retry rule, error mapping
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Fixed vectors were captured from the official stripe npm SDK (17.7.0);
 *  test_sdk_equivalence runs the SDK itself (tests/peers/stripe_request.mjs,
 *  which points it at a local server and prints what arrived) for several
 *  operations and compares method, target, body, Stripe-Version and that
 *  the Idempotency-Key travels. Skipped, visibly, without node or the SDK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bl_stripe.h"
#include "test_bl_peer.h"

//  Form text of params (a JSON object literal); the caller frees.
static char *s_form(const char *json)
{
    vz_json_t *doc = vz_json_parse(json, strlen(json), NULL, NULL);
    assert_non_null(doc);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(bl_stripe_form(vz_json_root(doc), &out, &len), 0);
    assert_int_equal(strlen(out), len);
    vz_json_destroy(&doc);
    return out;
}

#define SUB_PARAMS                                                                                 \
    "{\"customer\":\"cus_1\",\"items\":[{\"price\":\"price_1\",\"quantity\":2}],"                  \
    "\"metadata\":{\"user id\":\"u_1&x=y\",\"é\":\"ü\"},\"trial_period_days\":7,"                \
    "\"cancel_at_period_end\":false,\"expand\":[\"latest_invoice.payment_intent\"],"               \
    "\"description\":null}"

//  What the SDK sent for SUB_PARAMS.
#define SUB_FORM                                                                                   \
    "customer=cus_1&items[0][price]=price_1&items[0][quantity]=2&metadata[user%20id]=u_1%26x%3Dy"  \
    "&metadata[%C3%A9]=%C3%BC&trial_period_days=7&cancel_at_period_end=false"                      \
    "&expand[0]=latest_invoice.payment_intent&description="

static void test_form(void **state)
{
    char *form = s_form(SUB_PARAMS);
    assert_string_equal(form, SUB_FORM);
    free(form);
    //  JavaScript key order: index-like keys first, ascending.
    form = s_form("{\"metadata\":{\"b\":\"1\",\"10\":\"x\",\"2\":\"y\",\"02\":\"z\"}}");
    assert_string_equal(form, "metadata[2]=y&metadata[10]=x&metadata[b]=1&metadata[02]=z");
    free(form);
    //  Empty containers vanish; numbers as JavaScript prints them.
    form = s_form("{\"a\":[],\"b\":{},\"c\":12.5,\"d\":-3,\"e\":true,\"f\":\"~*()'! \"}");
    assert_string_equal(form, "c=12.5&d=-3&e=true&f=~%2A%28%29%27%21%20");
    free(form);
    form = s_form("{}");
    assert_string_equal(form, "");
    free(form);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(bl_stripe_form(NULL, &out, &len), 0);
    assert_string_equal(out, "");
    free(out);
    vz_json_t *doc = vz_json_parse("[1]", 3, NULL, NULL);
    assert_int_equal(bl_stripe_form(vz_json_root(doc), &out, &len), -EINVAL);
    assert_null(out);
    vz_json_destroy(&doc);
}

static void test_ops_and_targets(void **state)
{
    char target[256];
    const bl_stripe_op_t *op = bl_stripe_op("subscription_cancel");
    assert_non_null(op);
    assert_string_equal(op->method, "DELETE");
    assert_int_equal(bl_stripe_target(op, "sub_1", "", target, sizeof target), 0);
    assert_string_equal(target, "/v1/subscriptions/sub_1");
    assert_int_equal(bl_stripe_target(op, NULL, "", target, sizeof target), -EINVAL);
    assert_int_equal(bl_stripe_target(op, "a/b", "", target, sizeof target), 0);
    assert_string_equal(target, "/v1/subscriptions/a%2Fb");
    op = bl_stripe_op("invoice_list");
    assert_int_equal(bl_stripe_target(op, NULL, "customer=cus_1&limit=3", target, sizeof target),
                     0);
    assert_string_equal(target, "/v1/invoices?customer=cus_1&limit=3");
    assert_int_equal(bl_stripe_target(op, NULL, "x=1", target, 8), -ENAMETOOLONG);
    op = bl_stripe_op("customer_create");
    assert_int_equal(bl_stripe_target(op, NULL, "email=a", target, sizeof target), 0);
    assert_string_equal(target, "/v1/customers"); //  a POST's form is its body
    assert_null(bl_stripe_op("charge_everything"));
}

static void test_idempotency_key(void **state)
{
    char a[BL_STRIPE_IDEM_MAX], b[BL_STRIPE_IDEM_MAX], c[BL_STRIPE_IDEM_MAX];
    assert_int_equal(bl_stripe_idempotency_key("subscription_create", "u_1/7", a), 0);
    assert_int_equal(bl_stripe_idempotency_key("subscription_create", "u_1/7", b), 0);
    assert_string_equal(a, b); //  a retry after a crash sends the same key
    assert_int_equal(strlen(a), 36);
    assert_true(strncmp(a, "vzb-", 4) == 0);
    assert_int_equal(bl_stripe_idempotency_key("subscription_create", "u_1/8", c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(bl_stripe_idempotency_key("customer_create", "u_1/7", c), 0);
    assert_string_not_equal(a, c);
}

static void test_retry_rule(void **state)
{
    assert_true(bl_stripe_retryable(-1, 0, NULL)); //  network error
    assert_true(bl_stripe_retryable(0, 409, NULL));
    assert_true(bl_stripe_retryable(0, 429, NULL));
    assert_true(bl_stripe_retryable(0, 500, NULL));
    assert_true(bl_stripe_retryable(0, 503, NULL));
    assert_false(bl_stripe_retryable(0, 400, NULL));
    assert_false(bl_stripe_retryable(0, 402, NULL));
    assert_false(bl_stripe_retryable(0, 200, NULL));
    assert_false(bl_stripe_retryable(0, 500, "false")); //  Stripe-Should-Retry wins
    assert_true(bl_stripe_retryable(0, 400, "true"));
    assert_false(bl_stripe_retryable(-1, 0, "false"));
}

static void s_map(long status, const char *body, int want, const char *code)
{
    bl_stripe_error_t e;
    bl_stripe_error(status, body, body ? strlen(body) : 0, &e);
    assert_int_equal(e.status, want);
    assert_string_equal(e.code, code);
}

static void test_error_mapping(void **state)
{
    s_map(402,
          "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
          "\"message\":\"Your card was declined.\"}}",
          402, "card_declined");
    s_map(400, "{\"error\":{\"type\":\"invalid_request_error\",\"param\":\"items\"}}", 400,
          "invalid_request");
    s_map(404, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\"}}",
          404, "not_found");
    s_map(400, "{\"error\":{\"type\":\"idempotency_error\"}}", 409, "conflict");
    s_map(429, "{\"error\":{\"type\":\"rate_limit_error\"}}", 503, "unavailable");
    s_map(429, "not json", 503, "unavailable");
    s_map(500, "{\"error\":{\"type\":\"api_error\"}}", 502, "bad_gateway");
    s_map(502, NULL, 502, "bad_gateway");
    bl_stripe_error_t e;
    const char *auth = "{\"error\":{\"type\":\"authentication_error\","
                       "\"message\":\"Invalid API Key provided: sk_test_****1234\"}}";
    bl_stripe_error(401, auth, strlen(auth), &e);
    assert_int_equal(e.status, 502);
    assert_true(e.operator_alert);
    //  Stripe's message echoes part of the key: our caller never sees it.
    assert_null(strstr(e.message, "sk_"));
    const char *card =
        "{\"error\":{\"type\":\"card_error\",\"message\":\"Your card was declined.\"}}";
    bl_stripe_error(402, card, strlen(card), &e);
    assert_string_equal(e.message, "Your card was declined.");
    const char *rate = "{\"error\":{\"type\":\"rate_limit_error\"}}";
    bl_stripe_error(429, rate, strlen(rate), &e);
    assert_true(e.retry_after);
}

// --------------------------------------------------------------------------
//  The SDK

//  The request peer's JSON line for op with params (and id), parsed; NULL when node fails.
static vz_json_t *s_peer(const char *op, const char *params, const char *id)
{
    char args[2048];
    snprintf(args, sizeof args, "%s '%s' %s", op, params, id ? id : "");
    char *line = bl_peer_run("stripe_request.mjs", args);
    vz_json_t *doc = line ? vz_json_parse(line, strlen(line), NULL, NULL) : NULL;
    free(line);
    return doc;
}

static void test_sdk_equivalence(void **state)
{
    if (!bl_peer_ready())
        skip();
    const struct {
        const char *op, *params, *id;
    } cases[] = {
        {"subscription_create", SUB_PARAMS, NULL},
        {"customer_create",
         "{\"email\":\"ada@example.com\",\"name\":\"Ada Lovelace\",\"metadata\":{\"user\":\"u_1\","
         "\"10\":\"a\",\"2\":\"b\"},\"preferred_locales\":[\"en\",\"fr\"]}",
         NULL},
        {"customer_update",
         "{\"name\":\"Ada King\",\"invoice_settings\":{\"default_payment_method\":"
         "\"pm_1\"}}",
         "cus_1"},
        {"subscription_update",
         "{\"items\":[{\"id\":\"si_1\",\"price\":\"price_2\"}],\"proration_behavior\":"
         "\"create_prorations\",\"cancel_at_period_end\":true}",
         "sub_1"},
        {"subscription_cancel", "{}", "sub_1"},
        {"invoice_list", "{\"customer\":\"cus_1\",\"limit\":3,\"starting_after\":\"in_9\"}", NULL},
        {"checkout_session_create",
         "{\"mode\":\"subscription\",\"customer\":\"cus_1\",\"line_items\":[{\"price\":\"price_1\","
         "\"quantity\":1}],\"success_url\":\"https://example.com/ok?s={CHECKOUT_SESSION_ID}\","
         "\"cancel_url\":\"https://example.com/no\",\"subscription_data\":{\"trial_period_days\":"
         "14}}",
         NULL},
        {"portal_session_create",
         "{\"customer\":\"cus_1\",\"return_url\":\"https://example.com/account\"}", NULL},
        {"payment_intent_create",
         "{\"amount\":2000,\"currency\":\"eur\",\"automatic_payment_methods\":{\"enabled\":true},"
         "\"application_fee_amount\":12}",
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vz_json_t *sdk = s_peer(cases[i].op, cases[i].params, cases[i].id);
        assert_non_null(sdk);
        const vz_json_value_t *r = vz_json_root(sdk);
        const bl_stripe_op_t *op = bl_stripe_op(cases[i].op);
        assert_non_null(op);
        char *form = s_form(cases[i].params);
        char target[2048], sdk_target[2048];
        assert_int_equal(bl_stripe_target(op, cases[i].id, form, target, sizeof target), 0);
        const char *query = vz_json_get_string(r, "query", NULL);
        snprintf(sdk_target, sizeof sdk_target, "%s%s%s", vz_json_get_string(r, "path", NULL),
                 query && *query ? "?" : "", query ? query : "");
        assert_string_equal(vz_json_get_string(r, "method", NULL), op->method);
        assert_string_equal(sdk_target, target);
        bool post = strcmp(op->method, "POST") == 0;
        assert_string_equal(vz_json_get_string(r, "body", NULL), post ? form : "");
        assert_string_equal(vz_json_get_string(r, "stripe_version", NULL), BL_STRIPE_VERSION);
        assert_string_equal(vz_json_get_string(r, "idempotency_key", NULL),
                            post ? "idem_peer" : "");
        assert_string_equal(vz_json_get_string(r, "content_type", NULL),
                            "application/x-www-form-urlencoded");
        free(form);
        vz_json_destroy(&sdk);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_ops_and_targets),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_retry_rule),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_sdk_equivalence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
