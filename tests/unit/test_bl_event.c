/*  test_bl_event - event types, ordering ranks and the fields billing reads
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Bodies are shaped like Stripe's fixture objects (subscription items
 *  with price.recurring, invoice status_transitions, the 2025 API's
 *  invoice parent.subscription_details).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "bl_event.h"

static void test_types(void **state)
{
    const char *handled[] = {"customer.created",
                             "customer.updated",
                             "customer.deleted",
                             "customer.subscription.created",
                             "customer.subscription.updated",
                             "customer.subscription.deleted",
                             "customer.subscription.trial_will_end",
                             "invoice.created",
                             "invoice.finalized",
                             "invoice.paid",
                             "invoice.payment_failed",
                             "invoice.voided",
                             "invoice.marked_uncollectible",
                             "checkout.session.completed",
                             "payment_intent.succeeded",
                             "payment_intent.payment_failed",
                             "charge.refunded",
                             "charge.dispute.created"};
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
        assert_non_null(bl_event_type(handled[i]));
    assert_null(bl_event_type("plan.created"));
    assert_null(bl_event_type(NULL));
    //  Lifecycle order within one second.
    assert_true(bl_event_type("customer.subscription.created")->rank <
                bl_event_type("customer.subscription.updated")->rank);
    assert_true(bl_event_type("customer.subscription.updated")->rank <
                bl_event_type("customer.subscription.deleted")->rank);
    assert_true(bl_event_type("invoice.finalized")->rank < bl_event_type("invoice.paid")->rank);
    //  Side effects for the notifier.
    assert_string_equal(bl_event_type("invoice.paid")->notify, "receipt");
    assert_string_equal(bl_event_type("invoice.payment_failed")->notify, "dunning");
    assert_string_equal(bl_event_type("charge.dispute.created")->notify, "dispute_alert");
    assert_null(bl_event_type("customer.created")->notify);
    assert_string_equal(bl_event_kind_name(BL_KIND_SUBSCRIPTION), "subscription");
    assert_string_equal(bl_event_kind_name(BL_KIND_UNKNOWN), "unknown");
}

static void test_monthly(void **state)
{
    assert_int_equal(bl_event_monthly(2000, "month", 1), 2000);
    assert_int_equal(bl_event_monthly(999, "month", 3), 333);
    assert_int_equal(bl_event_monthly(120000, "year", 1), 10000);
    assert_int_equal(bl_event_monthly(1000, "year", 1), 83);   //  83.33
    assert_int_equal(bl_event_monthly(1010, "year", 1), 84);   //  84.17
    assert_int_equal(bl_event_monthly(1000, "week", 1), 4333); //  4333.33
    assert_int_equal(bl_event_monthly(100, "day", 1), 3042);   //  3041.67
    assert_int_equal(bl_event_monthly(6, "year", 1), 1);       //  0.5 rounds up
    assert_int_equal(bl_event_monthly(100, "fortnight", 1), -1);
    assert_int_equal(bl_event_monthly(100, "month", 0), -1);
    assert_int_equal(bl_event_monthly(100, NULL, 1), -1);
    assert_true(bl_event_paying("active"));
    assert_true(bl_event_paying("past_due"));
    assert_false(bl_event_paying("trialing"));
    assert_false(bl_event_paying("canceled"));
}

static void test_subscription(void **state)
{
    const char *body =
        "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"customer.subscription.updated\","
        "\"created\":1700000100,\"data\":{\"object\":{\"id\":\"sub_1\",\"object\":\"subscription\","
        "\"customer\":\"cus_1\",\"status\":\"active\",\"currency\":\"USD\",\"items\":{\"data\":["
        "{\"quantity\":2,\"price\":{\"unit_amount\":1500,\"recurring\":{\"interval\":\"month\","
        "\"interval_count\":1}}},"
        "{\"quantity\":1,\"price\":{\"unit_amount\":24000,\"recurring\":{\"interval\":\"year\","
        "\"interval_count\":2}}},"
        "{\"quantity\":1,\"price\":{\"unit_amount\":null},\"plan\":{\"amount\":600,"
        "\"interval\":\"month\",\"interval_count\":1}}]}}}}";
    bl_event_t ev;
    assert_int_equal(bl_event_read(body, strlen(body), &ev), 0);
    assert_non_null(ev.row);
    assert_int_equal(ev.row->kind, BL_KIND_SUBSCRIPTION);
    assert_string_equal(ev.id, "evt_1");
    assert_string_equal(ev.object, "sub_1");
    assert_string_equal(ev.customer, "cus_1");
    assert_string_equal(ev.status, "active");
    assert_string_equal(ev.currency, "usd"); //  lowercased
    assert_int_equal(ev.created, 1700000100);
    //  3000 + 24000/24 + 600 (legacy plan when the price has no amount)
    assert_int_equal(ev.mrr, 4600);
}

static void test_invoice_and_others(void **state)
{
    const char *paid =
        "{\"id\":\"evt_2\",\"type\":\"invoice.paid\",\"created\":1700000200,\"data\":{\"object\":"
        "{\"id\":\"in_1\",\"customer\":\"cus_1\",\"status\":\"paid\",\"currency\":\"eur\","
        "\"amount_paid\":4200,\"status_transitions\":{\"paid_at\":1700000150},\"subscription\":"
        "null,\"parent\":{\"subscription_details\":{\"subscription\":\"sub_9\"}}}}}";
    bl_event_t ev;
    assert_int_equal(bl_event_read(paid, strlen(paid), &ev), 0);
    assert_int_equal(ev.row->kind, BL_KIND_INVOICE);
    assert_int_equal(ev.amount, 4200);
    assert_int_equal(ev.at, 1700000150);
    assert_string_equal(ev.subscription, "sub_9");

    const char *gone = "{\"id\":\"evt_3\",\"type\":\"customer.deleted\",\"created\":5,\"data\":"
                       "{\"object\":{\"id\":\"cus_1\",\"deleted\":true}}}";
    assert_int_equal(bl_event_read(gone, strlen(gone), &ev), 0);
    assert_string_equal(ev.status, "deleted");
    assert_string_equal(ev.customer, "cus_1");

    const char *refund =
        "{\"id\":\"evt_4\",\"type\":\"charge.refunded\",\"created\":6,\"data\":"
        "{\"object\":{\"id\":\"ch_1\",\"amount_refunded\":700,\"currency\":\"usd\"}}}";
    assert_int_equal(bl_event_read(refund, strlen(refund), &ev), 0);
    assert_int_equal(ev.amount, 700);
    assert_int_equal(ev.at, 6);

    //  Unknown types are read (to be counted); a handled one needs an object id.
    const char *plan = "{\"id\":\"evt_5\",\"type\":\"plan.created\",\"created\":7,\"data\":{}}";
    assert_int_equal(bl_event_read(plan, strlen(plan), &ev), 0);
    assert_null(ev.row);
    const char *bare = "{\"id\":\"evt_6\",\"type\":\"invoice.paid\",\"created\":8,\"data\":{}}";
    assert_int_equal(bl_event_read(bare, strlen(bare), &ev), -EINVAL);
    assert_int_equal(bl_event_read("nope", 4, &ev), -EINVAL);
    assert_int_equal(bl_event_read("{\"id\":\"e\",\"type\":\"x\"}", 22, &ev), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_monthly),
        cmocka_unit_test(test_subscription),
        cmocka_unit_test(test_invoice_and_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
