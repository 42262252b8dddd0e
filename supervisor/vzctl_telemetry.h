/*  vzctl_telemetry - the `vzctl telemetry` subcommand (replay)
 *  SPDX-License-Identifier: MPL-2.0
 */
#ifndef VZCTL_TELEMETRY_H
#define VZCTL_TELEMETRY_H

//  argv after "telemetry": "replay" FILE [options]. Returns the exit code.
int vzctl_telemetry(int argc, char **argv);

//  `vzctl slo` and `vzctl alerts` (what = "slo" or "alerts"): the
//  telemetry API through the gateway; ports is the supervisor's "ports"
//  answer (NULL when unreachable; then --url is needed). Exit code.
int vzctl_telemetry_show(const char *what, int argc, char **argv, const char *ports);

//  GET base ("http://HOST:PORT") + path over plain HTTP/1.1 (10 s timeout),
//  with token as a bearer JWT or an API key (NULL = none): the body (heap,
//  caller frees) and *status, or NULL with a message on stderr.
char *vzctl_http_get(const char *base, const char *path, const char *token, int *status);

#endif
