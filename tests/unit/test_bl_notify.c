/*  test_bl_notify - the notifier messages billing builds from stored objects
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bl_notify.h"

#define INVOICE(email, currency, paid)                                                             \
    "{\"id\":\"evt_1\",\"type\":\"invoice.paid\",\"created\":1,\"data\":{\"object\":{"             \
    "\"id\":\"in_1\",\"number\":\"INV-1\",\"customer_email\":" email ",\"customer_name\":"         \
    "\"Ada\",\"currency\":\"" currency "\",\"amount_paid\":" paid ",\"amount_due\":500,"           \
    "\"hosted_invoice_url\":\"https://pay.example/in_1\"}}}"

static char *s_msg(const char *kind, const char *stored, const char **method)
{
    return bl_notify_message(kind, "evt_9", stored, stored ? strlen(stored) : 0, method);
}

static void test_receipt_and_dunning(void **state)
{
    const char *method = NULL;
    char *m = s_msg("receipt", INVOICE("\"ada@example.com\"", "eur", "1234"), &method);
    assert_non_null(m);
    assert_string_equal(method, "send");
    //  vz_nt_send_encode's field order.
    assert_string_equal(m,
                        "{\"channel\":\"email\",\"to\":[{\"name\":\"Ada\",\"address\":"
                        "\"ada@example.com\"}],\"template\":\"receipt\",\"idempotency_key\":"
                        "\"billing-evt_9-receipt\",\"data\":{\"name\":\"Ada\",\"amount\":\"12.34 "
                        "EUR\",\"invoice\":\"INV-1\",\"url\":\"https://pay.example/in_1\"}}");
    free(m);
    //  Dunning names the amount due; a zero-decimal currency has no cents.
    m = s_msg("dunning", INVOICE("\"ada@example.com\"", "jpy", "0"), &method);
    assert_non_null(strstr(m, "\"template\":\"dunning\""));
    assert_non_null(strstr(m, "\"amount\":\"500 JPY\""));
    free(m);
    //  Nobody to write to.
    assert_null(s_msg("receipt", INVOICE("null", "eur", "1"), &method));
    assert_null(method);
    assert_null(s_msg("receipt", NULL, &method));
    assert_null(s_msg("mystery", INVOICE("\"a@b.c\"", "eur", "1"), &method));
}

static void test_dispute(void **state)
{
    const char *method = NULL;
    const char *stored = "{\"data\":{\"object\":{\"id\":\"dp_1\",\"charge\":\"ch_1\",\"amount\":"
                         "1000,\"currency\":\"usd\",\"reason\":\"fraudulent\"}}}";
    char *m = s_msg("dispute_alert", stored, &method);
    assert_string_equal(method, "alert");
    assert_string_equal(m, "{\"name\":\"billing_dispute\",\"severity\":\"critical\",\"status\":"
                           "\"firing\",\"summary\":\"Dispute dp_1 on charge ch_1: 10.00 USD "
                           "(fraudulent)\",\"source\":\"billing\",\"key\":\"dispute-dp_1\"}");
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipt_and_dunning),
        cmocka_unit_test(test_dispute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
