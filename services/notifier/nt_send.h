/*  nt_send - validation of a message and its entry into the outbox
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Everything a delivery could trip on is checked here, before the message
 *  is accepted: channel, template, addresses, attachments, every template
 *  variable, header injection. A refusal carries one of the error codes
 *  of the static table below, so nothing malformed reaches a server.
 *  Reactor thread only.
 */
#ifndef NT_SEND_H
#define NT_SEND_H

#include "nt.h"
#include "vz_json.h"
#include "vz_notifier_contract.h"

#define NT_SEND_BODY_MAX VZ_NT_SEND_BODY_MAX //  largest send body (attachments in base64)

//  Refusals, in the order of the table in nt_send.c.
typedef enum {
    NT_E_OK = 0,
    NT_E_REQUEST,    //  invalid_request 400: not a JSON object, a field of the wrong type
    NT_E_CHANNEL,    //  unknown_channel 422
    NT_E_OFF,        //  channel_disabled 422: the channel has no endpoint configured
    NT_E_TEMPLATE,   //  unknown_template 422
    NT_E_ADDRESS,    //  invalid_address 422: CR/LF, no '@', not an address
    NT_E_VARIABLE,   //  missing_variable 422: a placeholder has no value in data
    NT_E_INJECTION,  //  header_injection 422: a value would put CR/LF into a header
    NT_E_ATTACHMENT, //  invalid_attachment 422: name, type, content id or base64 wrong
    NT_E_TOO_LARGE,  //  attachment_too_large 413
    NT_E_SEVERITY,   //  invalid_severity 422
    NT_E_KEY,        //  invalid_idempotency_key 422
    NT_E_DENIED,     //  access_denied 403
    NT_E_REDIS,      //  unavailable 503: the outbox did not answer
    NT_E_COUNT
} nt_err_t;

//  The code and HTTP status of err.
const char *nt_err_code(nt_err_t err);
int nt_err_status(nt_err_t err);

typedef struct {
    char id[NT_ID_MAX]; //  message id (the earlier one for a repeated key)
    bool duplicate;     //  the idempotency key was seen: nothing new stored
    char detail[160];   //  what was wrong, for the error message
} nt_submit_t;

//  Validate a send request (root: the parsed body) and store it. owner is
//  who may read its status; due_ms 0 = at once; cond_alert (may be NULL)
//  makes it a delayed alert route dropped unless that alert still fires.
nt_err_t nt_submit(nt_t *self, const vz_json_value_t *root, const char *owner, int64_t due_ms,
                   const char *cond_alert, nt_submit_t *out);

//  Answer reply with err (code, message = detail, HTTP status).
int nt_reply_err(vz_reply_t *reply, nt_err_t err, const char *detail);

#endif
