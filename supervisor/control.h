/*  control - the supervisor's unix control socket, both ends
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Protocol (one request per connection, text, documented in
 *  docs/services/supervisor.md):
 *    request:  one line, words separated by spaces, e.g. "scale echo 3\n"
 *    response: "ok" or "error <reason>" on the first line, then zero or more
 *              non-empty body lines, then an empty line; the server closes.
 *  The socket file is created mode 0600 (owner only): anyone who can
 *  connect can stop the mesh.
 */
#ifndef SUP_CONTROL_H
#define SUP_CONTROL_H

#include <stddef.h>

#define SUP_CONTROL_LINE_MAX 1024 //  longest request line, newline included

//  Bind and listen on path (non-blocking, close-on-exec, mode 0600). A stale
//  socket file is replaced; -EADDRINUSE when a live supervisor answers there.
int sup_control_listen(const char *path);

//  Connect to the socket at path (blocking). fd or -errno.
int sup_control_connect(const char *path);

//  Write all of text to fd (bounded by the socket's send timeout). 0 or -errno.
int sup_control_write(int fd, const char *text);

//  Client side: send line (without newline) over a fresh connection and
//  return the whole response (heap, caller frees) without the final empty
//  line; timeout_ms < 0 waits as long as the server takes. NULL with *rc set
//  (-ECONNREFUSED/-ENOENT: no supervisor; -ETIMEDOUT; -EPROTO: cut short).
char *sup_control_request(const char *path, const char *line, int timeout_ms, int *rc);

#endif
