/*  vz_notifier_contract - the body of notifier.send, its reply, and the names of the methods
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The one definition of what a caller sends to "notifier" to have a
 *  message delivered, used by every caller (the telemetry sink today;
 *  billing, github, reporter next), by the notifier's parser and by the
 *  tests. Field by field, with the other methods (alert, get, dead_list,
 *  dead_retry), in docs/protocol.md, "Service contracts".
 *
 *    send   request  JSON {channel, template: str (required),
 *                          to: str | [str] | [{name, address}],
 *                          data: {name: str | number | bool},
 *                          severity, idempotency_key, event_action,
 *                          dedup_key, source: str,
 *                          attachments: [{name, type, content (base64),
 *                                         content_id}]}
 *           reply    JSON {id, status, duplicate}
 *
 *  The wire is JSON (the gateway passes POST /v1/notifications through
 *  as is). What a field may hold (a configured channel, a known template,
 *  valid addresses, every template variable) is the notifier's to check:
 *  it answers one of the error codes listed in docs/protocol.md. The
 *  limits below are the contract's; the notifier refuses past them.
 *
 *  An e-mail is built from the template's parts: text/plain and text/html
 *  (multipart/alternative), attachments with a content_id inline beside
 *  the HTML that shows them as <img src="cid:ID"> (multipart/related),
 *  the others as files (multipart/mixed). A caller that renders its own
 *  HTML and text (the reporter) passes them as data of a template whose
 *  HTML part takes them unescaped ({{{html}}}, e.g. "weekly_report").
 *
 *  vz_nt_send_encode returns a heap string the caller frees, or NULL when
 *  the body would exceed VZ_NT_SEND_BODY_MAX. Attachments given as raw
 *  bytes are base64-encoded by it. vz_nt_send_view reads a
 *  parsed body without copying (the views borrow from the document).
 *  vz_nt_send_reply_decode reads untrusted bytes and returns 0, or
 *  VZ_EMALFORMED with a static *reason. Any thread; no shared state.
 */
#ifndef VZ_NOTIFIER_CONTRACT_H
#define VZ_NOTIFIER_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vz_common.h"
#include "vz_json.h"

#define VZ_NT_SERVICE "notifier"
#define VZ_NT_METHOD_SEND "send"
#define VZ_NT_METHOD_ALERT "alert"
#define VZ_NT_METHOD_GET "get"
#define VZ_NT_METHOD_DEAD_LIST "dead_list"
#define VZ_NT_METHOD_DEAD_RETRY "dead_retry"

//  send request fields.
#define VZ_NT_F_CHANNEL "channel"
#define VZ_NT_F_TO "to"
#define VZ_NT_F_TEMPLATE "template"
#define VZ_NT_F_DATA "data"
#define VZ_NT_F_SEVERITY "severity"
#define VZ_NT_F_KEY "idempotency_key"
#define VZ_NT_F_EVENT_ACTION "event_action"
#define VZ_NT_F_DEDUP_KEY "dedup_key"
#define VZ_NT_F_SOURCE "source"
#define VZ_NT_F_ATTACHMENTS "attachments"
//  A recipient object, and an attachment.
#define VZ_NT_F_NAME "name"
#define VZ_NT_F_ADDRESS "address"
#define VZ_NT_F_TYPE "type"
#define VZ_NT_F_CONTENT "content"
#define VZ_NT_F_CONTENT_ID "content_id"
//  send reply fields (get's "id" and "status" too).
#define VZ_NT_F_ID "id"
#define VZ_NT_F_STATUS "status"
#define VZ_NT_F_DUPLICATE "duplicate"

//  Limits of a send request.
//  Whole body, attachments in base64: what fits in one mesh envelope
//  (vz_envelope_limits_default.max_frame, 1 MiB) with room for its header.
#define VZ_NT_SEND_BODY_MAX (1024 * 1024 - 32 * 1024)
#define VZ_NT_TO_MAX 50           //  recipients of one e-mail
#define VZ_NT_ATTACH_COUNT_MAX 20 //  attachments of one message
#define VZ_NT_KEY_MAX 128         //  idempotency_key bytes
#define VZ_NT_DEDUP_MAX 255       //  dedup_key bytes
#define VZ_NT_NAME_MAX 255        //  display or attachment name bytes
#define VZ_NT_ID_MAX 27           //  message id "n_" + 24 hex, with the NUL

//  One template variable of "data".
typedef enum { VZ_NT_VAR_STR, VZ_NT_VAR_INT, VZ_NT_VAR_DOUBLE, VZ_NT_VAR_BOOL } vz_nt_var_type_t;

typedef struct {
    const char *name;      //  variable name
    vz_nt_var_type_t type; //  which of the values below
    const char *s;         //  VZ_NT_VAR_STR
    int64_t i;             //  VZ_NT_VAR_INT
    double d;              //  VZ_NT_VAR_DOUBLE
    bool b;                //  VZ_NT_VAR_BOOL
} vz_nt_var_t;

//  One attachment (e-mail only). Either content (already base64) or
//  bytes/len (raw, encoded by vz_nt_send_encode); content wins when set.
typedef struct {
    const char *name;       //  file name, 1..VZ_NT_NAME_MAX bytes, no CR/LF, quote, slashes
    const char *type;       //  media type "type/subtype", e.g. image/png, application/pdf
    const char *content;    //  the bytes in standard base64, or NULL to use bytes
    const char *content_id; //  inline part id [A-Za-z0-9._@-]{1,128} (cid:), NULL: a file
    const void *bytes;      //  raw bytes when content is NULL (borrowed)
    size_t len;             //  bytes in bytes
} vz_nt_attachment_t;

//  One e-mail recipient with a display name (UTF-8, may be NULL).
typedef struct {
    const char *name;    //  display name, NULL or "" for none
    const char *address; //  plain address
} vz_nt_recipient_t;

//  send request. Strings are borrowed; NULL is an absent field (a
//  non-NULL "" is written as "", as a caller means it).
typedef struct {
    const char *channel;                   //  email | slack | discord | pagerduty | webhook
    const char *template_name;             //  one of configs/templates
    const char *to;                        //  one address (e-mail); NULL for the others
    const vz_nt_var_t *data;               //  ndata template variables, in order
    size_t ndata;                          //  entries in data
    const char *severity;                  //  critical | error | warning | info
    const char *idempotency_key;           //  1..VZ_NT_KEY_MAX printable ASCII
    const char *event_action;              //  PagerDuty: trigger | acknowledge | resolve
    const char *dedup_key;                 //  PagerDuty: 1..VZ_NT_DEDUP_MAX printable ASCII
    const char *source;                    //  who raised it (PagerDuty's source)
    const vz_nt_attachment_t *attachments; //  nattachments entries
    size_t nattachments;                   //  entries in attachments
    const vz_nt_recipient_t *recipients;   //  e-mail: "to" as [{name, address}] (when to is NULL)
    size_t nrecipients;                    //  entries in recipients (1..VZ_NT_TO_MAX)
} vz_nt_send_t;

//  send request as JSON (fields in the order above); NULL when too large.
char *vz_nt_send_encode(const vz_nt_send_t *send, size_t *len_p);

//  A parsed send request as the notifier reads it: each string is NULL
//  when the field is absent or not a string (has_* tells which), each
//  value NULL when absent. Nothing is checked but the shape.
typedef struct {
    const char *channel;
    const char *template_name;
    const char *severity;
    bool has_severity; //  "severity" present, of any type
    const char *idempotency_key;
    bool has_idempotency_key; //  "idempotency_key" present, of any type
    const char *event_action;
    const char *dedup_key;
    const char *source;
    const vz_json_value_t *to;          //  string, array or object
    const vz_json_value_t *data;        //  should be an object
    const vz_json_value_t *attachments; //  should be an array
} vz_nt_send_view_t;

//  0, or VZ_EMALFORMED with *reason when root is not a JSON object.
int vz_nt_send_view(const vz_json_value_t *root, vz_nt_send_view_t *view, const char **reason);

//  An idempotency or dedup key: 1..max bytes, each printable ASCII (no space).
bool vz_nt_key_valid(const char *key, size_t max);
//  trigger, acknowledge or resolve.
bool vz_nt_event_action_valid(const char *action);

//  send reply.
typedef struct {
    char id[VZ_NT_ID_MAX]; //  message id (the earlier one for a repeated key)
    char status[16];       //  "queued"
    bool duplicate;        //  the idempotency key was seen: nothing new stored
} vz_nt_send_reply_t;

//  Write the reply as one JSON object into w (the notifier's handler).
void vz_nt_send_reply_write(vz_json_writer_t *w, const vz_nt_send_reply_t *reply);
//  Every field required; an id that is not "n_" + 24 hex is malformed.
int vz_nt_send_reply_decode(const void *body, size_t len, vz_nt_send_reply_t *reply,
                            const char **reason);
//  Is id a message id ("n_" and 24 lowercase hex digits)?
bool vz_nt_id_valid(const char *id);

#endif
