/*  fake_http - a scripted HTTP/HTTPS server for tests
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Listens on 127.0.0.1 with an ephemeral port, plain or TLS. For TLS it
 *  generates a test CA and a server certificate (SAN IP:127.0.0.1 and
 *  DNS:localhost) with OpenSSL at start and writes the CA certificate to a
 *  temporary PEM file a client can trust (removed on destroy).
 *
 *  One accept thread and one thread per connection (blocking I/O, HTTP/1.1
 *  keep-alive, Content-Length bodies, "Expect: 100-continue" answered, no
 *  body sent to a HEAD).
 *  Every complete request is recorded (method, target as sent: a path, or
 *  an absolute URI when the client talks to it as a proxy, headers, body,
 *  connection number, arrival time), then answered with the next scripted
 *  response in order; when the script is empty the answer is 404 with the
 *  body "no scripted response".
 *
 *  Thread safety: every function may be called from the test's thread while
 *  the server runs; records are never moved or freed before destroy.
 */
#ifndef FAKE_HTTP_H
#define FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fake_http_t fake_http_t;

typedef enum {
    FAKE_HTTP_ANSWER, //  send the response, keep the connection
    FAKE_HTTP_CLOSE,  //  send the response without Content-Length, then close (body ends at EOF)
    FAKE_HTTP_RESET,  //  send nothing: reset the connection (RST)
} fake_http_action_t;

typedef struct {
    int status;                //  e.g. 200
    const char *headers;       //  extra header lines, each ending "\r\n", or NULL
    const void *body;          //  body bytes or NULL
    size_t body_len;           //  bytes in body
    int delay_ms;              //  wait this long after the request arrived before acting
    fake_http_action_t action; //  what to do
} fake_http_reply_t;

typedef struct {
    char *method;    //  "GET", "POST", ...
    char *target;    //  request target as sent ("/path?q" or "http://host/path")
    char *headers;   //  raw header block, "Name: value\r\n" lines
    uint8_t *body;   //  body bytes (NUL-terminated, not counted)
    size_t body_len; //  bytes in body
    int connection;  //  1-based number of the connection it came on
    int64_t at_ms;   //  arrival, monotonic milliseconds (zclock_mono's clock)
} fake_http_request_t;

//  Start a server; tls selects HTTPS with a fresh test CA. NULL on failure.
fake_http_t *fake_http_new(bool tls);
//  Stop the threads (pending delays are cut short), free everything.
void fake_http_destroy(fake_http_t **self_p);

int fake_http_port(const fake_http_t *self);
//  "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" (borrowed).
const char *fake_http_base(const fake_http_t *self);
//  Path of the test CA's PEM file (TLS servers), else NULL (borrowed).
const char *fake_http_ca_file(const fake_http_t *self);

//  Queue one scripted reply; the texts and body are copied.
void fake_http_script(fake_http_t *self, const fake_http_reply_t *reply);
//  Shorthand: queue status with body text (may be NULL), nothing else.
void fake_http_script_status(fake_http_t *self, int status, const char *body);

//  Wait until at least n requests have arrived; false after timeout_ms.
bool fake_http_wait(fake_http_t *self, size_t n, int timeout_ms);
//  Requests recorded so far.
size_t fake_http_count(fake_http_t *self);
//  The i-th recorded request (0-based, i < count), borrowed until destroy.
const fake_http_request_t *fake_http_request(fake_http_t *self, size_t i);
//  Value of header name (case-insensitive) in a recorded request, as a heap
//  string the caller frees, or NULL.
char *fake_http_request_header(const fake_http_request_t *request, const char *name);
//  TCP connections accepted so far.
int fake_http_connections(fake_http_t *self);

#endif
