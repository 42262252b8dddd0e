/*  nt_smtp - libcurl SMTP transfers on a worker thread of their own
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A curl easy SMTP transfer blocks for its whole dialogue, so it runs on a
 *  zactor thread, never on the reactor: the reactor submits a job (message
 *  bytes and envelope addresses, copied into the message) and later reads
 *  its result from the actor's pipe, which it polls with zloop. Jobs run
 *  one at a time in submit order on one curl handle (connection reuse).
 *
 *  Security: smtp:// URLs require STARTTLS (CURLUSESSL_ALL: a server that
 *  does not offer it gets nothing but EHLO and QUIT), smtps:// is TLS from
 *  the first byte; peer and host verification are always on (a CA file may
 *  replace the system store). The password is held only by the actor and
 *  given to curl; it never reaches a log line or a result.
 *
 *  Results: the SMTP reply code of the last command curl saw and a
 *  classification: NT_SMTP_OK, NT_SMTP_TRANSIENT (connect failure,
 *  timeout, 4xx, TLS not offered: worth retrying) or NT_SMTP_PERMANENT
 *  (5xx reply: the server refused this message for good).
 */
#ifndef NT_SMTP_H
#define NT_SMTP_H

#include <czmq.h>
#include <stdbool.h>

typedef enum { NT_SMTP_OK = 0, NT_SMTP_TRANSIENT = 1, NT_SMTP_PERMANENT = 2 } nt_smtp_class_t;

typedef struct {
    const char *url;      //  smtp://host:port or smtps://host:port
    const char *user;     //  AUTH user, "" = no AUTH
    const char *password; //  AUTH password (copied; the caller wipes its copy)
    const char *ca_file;  //  CA bundle, "" = system store
    int timeout_ms;       //  whole transfer
} nt_smtp_config_t;

typedef struct nt_smtp_t nt_smtp_t;

//  Start the thread. NULL when curl cannot start or the URL scheme is not
//  smtp or smtps (errno EINVAL).
nt_smtp_t *nt_smtp_new(const nt_smtp_config_t *config);
//  Stop the thread (waits for the transfer in progress) and free.
void nt_smtp_destroy(nt_smtp_t **self_p);
//  The socket to poll for results (borrowed).
zsock_t *nt_smtp_sock(nt_smtp_t *self);

//  Submit a job: tag comes back with its result; rcpts is a list of
//  addresses separated by "\n"; message is the RFC 5322 text. 0 or -1.
int nt_smtp_submit(nt_smtp_t *self, const char *tag, const char *from, const char *rcpts,
                   const char *message, size_t len);

//  Read one result (when the socket is readable): tag, class, SMTP code
//  and a reason without credentials (heap strings, caller frees). 0 or -1.
int nt_smtp_result(nt_smtp_t *self, char **tag, nt_smtp_class_t *cls, long *code, char **reason);

#endif
