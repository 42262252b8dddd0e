/*  =========================================================================
    bench_mhd - the ceiling of the HTTP benchmarks: a minimal libmicrohttpd server answering 200
    SPDX-License-Identifier: MPL-2.0

    Usage: bench_mhd [PORT [THREADS]]   (PORT 0 = ephemeral, THREADS default 2)
    Prints "port <n>" on stdout once listening, then serves until SIGTERM or
    SIGINT. Thread-pool mode with epoll, as the gateway runs libmicrohttpd;
    every request gets "ok" (200, text/plain), queued on the second call of
    the access handler (on the first, 0.9.75 adds Connection: close).
    tests/bench/run.sh measures it alone and behind nginx.
    =========================================================================
*/

#include <microhttpd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result
s_answer (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) url;
    (void) method;
    (void) version;
    (void) upload_data;
    struct MHD_Response *response = cls;
    //  First call: headers only. Mark the request seen and answer later.
    if (*con_cls == NULL) {
        *con_cls = connection;
        return MHD_YES;
    }
    //  Bodies (none in the bench) are swallowed.
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    return MHD_queue_response (connection, MHD_HTTP_OK, response);
}

int
main (int argc, char *argv[])
{
    long port = argc > 1 ? strtol (argv[1], NULL, 10) : 0;
    long threads = argc > 2 ? strtol (argv[2], NULL, 10) : 2;
    if (port < 0 || port > 65535 || threads < 1 || threads > 64) {
        fprintf (stderr, "usage: bench_mhd [PORT [THREADS]]\n");
        return 1;
    }
    //  Signals are taken synchronously by sigwait below, before any thread
    //  exists, so every pool thread inherits the mask.
    sigset_t stop;
    sigemptyset (&stop);
    sigaddset (&stop, SIGTERM);
    sigaddset (&stop, SIGINT);
    pthread_sigmask (SIG_BLOCK, &stop, NULL);

    static const char body[] = "ok";
    struct MHD_Response *response = MHD_create_response_from_buffer (
        sizeof body - 1, (void *) body, MHD_RESPMEM_PERSISTENT);
    if (!response)
        return 1;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");

    struct MHD_Daemon *daemon = MHD_start_daemon (
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t) port, NULL, NULL,
        s_answer, response, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) threads,
        MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_END);
    if (!daemon) {
        fprintf (stderr, "bench_mhd: cannot listen on port %ld\n", port);
        MHD_destroy_response (response);
        return 111;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    printf ("port %u\n", info ? (unsigned) info->port : 0u);
    fflush (stdout);

    int signo = 0;
    sigwait (&stop, &signo);
    MHD_stop_daemon (daemon);
    MHD_destroy_response (response);
    return 0;
}
