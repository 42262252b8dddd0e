/*  bl_event - what billing makes of one Stripe event (pure)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Maps an event type to the object kind it updates and to the order of
 *  its kind's lifecycle, and reads from data.object the fields the store
 *  and the revenue figures need. No I/O, no state: any thread.
 *
 *  Ordering (docs/services/billing.md): an object's stored state is that of
 *  its newest event, newest by (event created, type rank, event id): the
 *  rank breaks ties within one second the way the lifecycle runs
 *  (*.created 1 < updates 2 < *.deleted and terminal invoice events 3), the
 *  event id (compared as bytes) makes the order total and deterministic.
 *
 *  Subscription MRR: sum over items of price.unit_amount (or plan.amount)
 *  x quantity, normalised to one month: month / interval_count, year
 *  / (12 x interval_count), week x 52/12, day x 365/12, rounded to the
 *  nearest minor unit (half up), in the subscription's currency.
 */
#ifndef BL_EVENT_H
#define BL_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BL_EVENT_ID_MAX 128
#define BL_EVENT_CUR_MAX 8

typedef enum {
    BL_KIND_UNKNOWN = 0, //  acknowledged and counted, nothing stored
    BL_KIND_CUSTOMER,
    BL_KIND_SUBSCRIPTION,
    BL_KIND_INVOICE,
    BL_KIND_CHECKOUT,
    BL_KIND_PAYMENT_INTENT,
    BL_KIND_CHARGE,
    BL_KIND_DISPUTE,
} bl_kind_t;

//  What a handled type means; the table in bl_event.c lists every one.
typedef struct {
    const char *type;   //  "invoice.paid"
    bl_kind_t kind;     //  object kind it updates
    int rank;           //  tie-break within one second (1..3)
    const char *notify; //  side effect for the notifier, or NULL:
                        //  "receipt" | "dunning" | "dispute_alert"
} bl_event_type_t;

//  The row of type, or NULL for a type billing does not handle.
const bl_event_type_t *bl_event_type(const char *type);
//  Storage name of a kind ("subscription"), "unknown" for BL_KIND_UNKNOWN.
const char *bl_event_kind_name(bl_kind_t kind);

//  The fields read from one event body.
typedef struct {
    const bl_event_type_t *row;      //  NULL: unknown type
    char id[BL_EVENT_ID_MAX];        //  event id
    char type[96];                   //  event type
    int64_t created;                 //  event created
    char object[BL_EVENT_ID_MAX];    //  data.object.id
    char customer[BL_EVENT_ID_MAX];  //  data.object.customer (a customer's own id), or ""
    char status[32];                 //  data.object.status, "deleted" after *.deleted, or ""
    char currency[BL_EVENT_CUR_MAX]; //  data.object.currency (lowercase ISO), or ""
    int64_t amount;                  //  invoice amount_paid, charge amount_refunded, payment_intent
                                     //  amount, dispute amount, checkout amount_total; else 0
    int64_t mrr;                     //  subscription: monthly minor units; else 0
    int64_t at; //  invoice: status_transitions.paid_at (or created of the event
                //  when paid without it); else the event's created
    char subscription[BL_EVENT_ID_MAX]; //  invoice/checkout: its subscription, or ""
    char vz_user[BL_EVENT_ID_MAX];      //  metadata.vz_user: the mesh user it belongs to, or ""
} bl_event_t;

//  Parse body (a verified event) into out. 0, or -EINVAL when it is not an
//  event object (id, type, created) or a handled type lacks data.object.id.
int bl_event_read(const void *body, size_t len, bl_event_t *out);

//  Monthly minor units of amount per interval_count intervals ("day",
//  "week", "month", "year"); -1 for an unknown interval or count < 1.
int64_t bl_event_monthly(int64_t amount, const char *interval, int64_t count);

//  Whether status counts as paying for MRR (active, past_due).
bool bl_event_paying(const char *status);

#endif
