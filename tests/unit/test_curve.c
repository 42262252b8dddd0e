/*  test_curve - CURVE certificates, ZAP allow directory and secured sockets
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Real handshakes over tcp 127.0.0.1 on ephemeral ports, one zauth actor
 *  for the whole process (ZAP is process-wide). Negative cases wait on a
 *  bounded poll for a message that must not come.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vz_common.h"
#include "vz_curve.h"

#include "ut.h"

#define DENY_WAIT_MS 600   //  how long a refused peer is given to get through
#define ALLOW_WAIT_MS 5000 //  bound on waiting for a legitimate message

typedef struct {
    ut_keys_t *keys;   //  server and alice, allowed by ZAP
    ut_keys_t *others; //  mallory and bob: peers that are not allowed
    const char *dir;   //  key tree with public/ (allowed) and secret/
    const char *other; //  keys of peers that are not allowed
    zcert_t *server;   //  server certificate (keys')
    zcert_t *alice;    //  allowed client (keys')
    zcert_t *mallory;  //  never allowed (others')
} fixture_t;

static int s_group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f || !(f->keys = ut_keys_new("curve", "server", "alice", true)) ||
        !(f->others = ut_keys_new("curve-other", "mallory", "bob", false)))
        return -1;
    f->dir = f->keys->dir;
    f->other = f->others->dir;
    f->server = f->keys->server;
    f->alice = f->keys->peer;
    f->mallory = f->others->server;
    *state = f;
    return 0;
}

static int s_group_teardown(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ut_keys_destroy(&f->keys), 0);
    assert_int_equal(ut_keys_destroy(&f->others), 0);
    free(f);
    return 0;
}

//  A ROUTER server on an ephemeral port; writes its endpoint.
static zsock_t *s_server(fixture_t *f, char *endpoint, size_t n)
{
    zsock_t *server = vz_curve_server(ZMQ_ROUTER, "tcp://127.0.0.1:0", f->server);
    assert_non_null(server);
    int port = vz_curve_bound_port(server);
    assert_true(port > 0);
    snprintf(endpoint, n, "tcp://127.0.0.1:%d", port);
    return server;
}

//  Receive one [routing id, payload] within wait_ms; returns the peer's
//  name (heap) or NULL when nothing came.
static char *s_recv_name(zsock_t *server, int wait_ms)
{
    zpoller_t *poller = zpoller_new(server, NULL);
    char *name = NULL;
    if (zpoller_wait(poller, wait_ms) == server) {
        zframe_t *id = zframe_recv(server);
        zframe_t *payload = zframe_recv(server);
        assert_non_null(payload);
        assert_true(zframe_streq(payload, "hello"));
        char buf[VZ_NAME_MAX];
        assert_int_equal(vz_curve_peer_name(payload, buf, sizeof buf), 0);
        name = strdup(buf);
        zframe_destroy(&id);
        zframe_destroy(&payload);
    }
    zpoller_destroy(&poller);
    return name;
}

//  A CURVE DEALER with cert, expecting server_key, that has said "hello".
static zsock_t *s_hello(const char *ep, zcert_t *cert, const char *server_key)
{
    zsock_t *client = vz_curve_client(ZMQ_DEALER, ep, cert, server_key);
    assert_non_null(client);
    zstr_send(client, "hello");
    return client;
}

//  The server hears "hello" from want within wait_ms; nothing when want is NULL.
static void s_expect_hello(zsock_t *server, const char *want, int wait_ms)
{
    char *name = s_recv_name(server, wait_ms);
    if (want) {
        assert_non_null(name);
        assert_string_equal(name, want);
    } else
        assert_null(name);
    free(name);
}

//  Connect a fresh client with cert and say "hello" until the server hears
//  it or the bound passes. Fresh, because libzmq does not reconnect a
//  connection whose CURVE handshake was refused by ZAP.
static char *s_try_until(fixture_t *f, zsock_t *server, const char *ep, zcert_t *cert, int bound_ms)
{
    int64_t end = zclock_mono() + bound_ms;
    char *name = NULL;
    while (!name && zclock_mono() < end) {
        zsock_t *client = vz_curve_client(ZMQ_DEALER, ep, cert, zcert_public_txt(f->server));
        assert_non_null(client);
        zsock_set_sndtimeo(client, 0);
        zstr_send(client, "hello");
        name = s_recv_name(server, 200);
        zsock_destroy(&client);
    }
    return name;
}

static void test_allowed_client_talks(void **state)
{
    fixture_t *f = *state;
    char ep[64];
    zsock_t *server = s_server(f, ep, sizeof ep);
    char key[41];
    assert_int_equal(vz_curve_server_key(zcert_public_txt(f->server), key), 0);
    zsock_t *client = s_hello(ep, f->alice, key);
    //  Identity is the certificate's name, learned through ZAP.
    s_expect_hello(server, "alice", ALLOW_WAIT_MS);
    zsock_destroy(&client);
    zsock_destroy(&server);
}

static void test_unknown_key_refused(void **state)
{
    fixture_t *f = *state;
    char ep[64];
    zsock_t *server = s_server(f, ep, sizeof ep);
    zsock_t *client = s_hello(ep, f->mallory, zcert_public_txt(f->server));
    s_expect_hello(server, NULL, DENY_WAIT_MS);
    //  The server still works for a known key: the silence was refusal.
    zsock_t *good = s_hello(ep, f->alice, zcert_public_txt(f->server));
    s_expect_hello(server, "alice", ALLOW_WAIT_MS);
    zsock_destroy(&good);
    zsock_destroy(&client);
    zsock_destroy(&server);
}

static void test_plain_client_refused(void **state)
{
    fixture_t *f = *state;
    char ep[64];
    zsock_t *server = s_server(f, ep, sizeof ep);
    zsock_t *client = zsock_new(ZMQ_DEALER);
    zsock_set_linger(client, 0);
    assert_int_equal(zsock_connect(client, "%s", ep), 0);
    zstr_send(client, "hello");
    s_expect_hello(server, NULL, DENY_WAIT_MS);
    zsock_destroy(&client);
    zsock_destroy(&server);
}

static void test_wrong_server_key_refused(void **state)
{
    fixture_t *f = *state;
    char ep[64];
    zsock_t *server = s_server(f, ep, sizeof ep);
    //  Alice is allowed but expects another server: she must not talk.
    zsock_t *client = s_hello(ep, f->alice, zcert_public_txt(f->mallory));
    s_expect_hello(server, NULL, DENY_WAIT_MS);
    zsock_destroy(&client);
    zsock_destroy(&server);
}

static void test_allow_dir_reload(void **state)
{
    fixture_t *f = *state;
    char ep[64], src[600], dst[600];
    zsock_t *server = s_server(f, ep, sizeof ep);
    zcert_t *bob = ut_cert_load(f->other, "bob");
    assert_non_null(bob);

    zsock_t *client = s_hello(ep, bob, zcert_public_txt(f->server));
    s_expect_hello(server, NULL, DENY_WAIT_MS);

    //  Allow bob by dropping his public certificate in: no restart.
    snprintf(src, sizeof src, "%s/public/bob.key", f->other);
    snprintf(dst, sizeof dst, "%s/public/bob.key", f->dir);
    char text[4096];
    FILE *in = fopen(src, "r");
    assert_non_null(in);
    size_t n = fread(text, 1, sizeof text, in);
    fclose(in);
    FILE *out = fopen(dst, "w");
    assert_non_null(out);
    assert_int_equal(fwrite(text, 1, n, out), n);
    assert_int_equal(fclose(out), 0);

    char *name = s_try_until(f, server, ep, bob, ALLOW_WAIT_MS);
    assert_non_null(name);
    assert_string_equal(name, "bob");
    free(name);
    zsock_destroy(&client);

    //  Revoke: new connections with bob's key are refused again.
    assert_int_equal(unlink(dst), 0);
    name = s_try_until(f, server, ep, bob, DENY_WAIT_MS);
    assert_null(name);
    zcert_destroy(&bob);
    zsock_destroy(&server);
}

//  dir/<name>.key_secret in zcert's format with pub's public key and
//  sec's secret key (a pair that may not belong together).
static void s_write_secret(const char *dir, const char *name, zcert_t *pub, zcert_t *sec)
{
    char path[600], text[512];
    snprintf(path, sizeof path, "%s/%s.key_secret", dir, name);
    snprintf(text, sizeof text,
             "metadata\n    name = \"%s\"\ncurve\n    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n",
             name, zcert_public_txt(pub), zcert_secret_txt(sec));
    assert_int_equal(ut_write(path, text), 0);
}

static void test_cert_load_failures(void **state)
{
    fixture_t *f = *state;
    char path[600], err[256];

    err[0] = '\0';
    snprintf(path, sizeof path, "%s/secret/nobody.key", f->dir);
    assert_null(vz_curve_cert_load(path, err, sizeof err));
    assert_non_null(strstr(err, "missing"));

    err[0] = '\0';
    snprintf(path, sizeof path, "%s/public/alice.key", f->dir);
    assert_null(vz_curve_cert_load(path, err, sizeof err));
    assert_non_null(strstr(err, "secret"));

    //  A complete key pair without the name metadata has no identity.
    zcert_t *nameless = zcert_new();
    snprintf(path, sizeof path, "%s/nameless.key", f->other);
    assert_int_equal(zcert_save(nameless, path), 0);
    zcert_destroy(&nameless);
    err[0] = '\0';
    assert_null(vz_curve_cert_load(path, err, sizeof err));
    assert_non_null(strstr(err, "name"));

    //  A secret that does not belong to the public key is refused.
    s_write_secret(f->other, "mixed", f->alice, f->mallory);
    snprintf(path, sizeof path, "%s/mixed.key", f->other);
    err[0] = '\0';
    assert_null(vz_curve_cert_load(path, err, sizeof err));
    assert_true(strlen(err) > 0);
    //  The same file with the right secret loads: the check is not vacuous.
    s_write_secret(f->other, "mixed", f->mallory, f->mallory);
    zcert_t *mixed = vz_curve_cert_load(path, err, sizeof err);
    assert_non_null(mixed);
    assert_string_equal(zcert_meta(mixed, "name"), "mixed");
    zcert_destroy(&mixed);

    err[0] = '\0';
    assert_null(vz_curve_cert_load("", err, sizeof err));
    assert_true(strlen(err) > 0);

    zcert_t *ok = ut_cert_load(f->dir, "alice");
    assert_non_null(ok);
    assert_string_equal(zcert_meta(ok, "name"), "alice");
    zcert_destroy(&ok);
}

//  The whole of a small file (heap) and its length.
static int s_read(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    *text = calloc(1, 4096);
    ssize_t n = read(fd, *text, 4095);
    close(fd);
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? 0 : -1;
}

//  A pipe holding text, write end closed (as the supervisor hands a secret over).
static int s_pipe_with(const char *text, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], text, len), (ssize_t)len);
    close(p[1]);
    return p[0];
}

static void test_cert_read_fd(void **state)
{
    fixture_t *f = *state;
    char path[600], err[256], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/secret/alice.key_secret", f->dir);
    assert_int_equal(s_read(path, &text, &len), 0);

    //  The secret certificate's text loads as the file does, and the fd is closed.
    int fd = s_pipe_with(text, len);
    zcert_t *cert = vz_curve_cert_read_fd(fd, err, sizeof err);
    assert_non_null(cert);
    assert_string_equal(zcert_meta(cert, "name"), "alice");
    assert_string_equal(zcert_public_txt(cert), zcert_public_txt(f->alice));
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    zcert_destroy(&cert);
    free(text);

    //  A public certificate, garbage and nothing at all are refused with a reason.
    snprintf(path, sizeof path, "%s/public/alice.key", f->dir);
    assert_int_equal(s_read(path, &text, &len), 0);
    const struct {
        const char *text; //  what the pipe holds
        size_t len;       //  its length
        const char *why;  //  part of the reason
    } bad[] = {{text, len, "no secret"},
               {"curve\n  x\n", 10, "not a certificate"},
               {"", 0, "not a certificate"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(vz_curve_cert_read_fd(s_pipe_with(bad[i].text, bad[i].len), err, sizeof err));
        assert_non_null(strstr(err, bad[i].why));
        assert_non_null(strstr(err, "fd "));
    }
    free(text);
    err[0] = '\0';
    assert_null(vz_curve_cert_read_fd(-1, err, sizeof err));
    assert_non_null(strstr(err, "unreadable"));
}

static void test_keygen_layout_and_modes(void **state)
{
    fixture_t *f = *state;
    char path[600];
    const struct {
        const char *rel; //  below the key tree
        mode_t mode;     //  its permission bits
    } modes[] = {{"secret", 0700}, {"secret/alice.key_secret", 0600}, {"public/alice.key", 0644}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", f->dir, modes[i].rel);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, modes[i].mode);
    }
    //  No secret half may sit in the public directory.
    snprintf(path, sizeof path, "%s/public/alice.key_secret", f->dir);
    assert_int_not_equal(access(path, F_OK), 0);

    zcert_t *pub = zcert_load(path);
    assert_null(pub);
    snprintf(path, sizeof path, "%s/public/alice.key", f->dir);
    pub = zcert_load(path);
    assert_non_null(pub);
    assert_string_equal(zcert_meta(pub, "name"), "alice");
    assert_string_equal(zcert_public_txt(pub), zcert_public_txt(f->alice));
    zcert_destroy(&pub);

    //  Idempotent: an existing valid pair is kept.
    assert_int_equal(vz_curve_keygen(f->dir, "alice"), 0);
    zcert_t *again = ut_cert_load(f->dir, "alice");
    assert_string_equal(zcert_public_txt(again), zcert_public_txt(f->alice));
    zcert_destroy(&again);

    assert_int_equal(vz_curve_keygen(f->dir, ""), -EINVAL);
    assert_int_equal(vz_curve_keygen(f->dir, "../escape"), -EINVAL);
    assert_int_equal(vz_curve_keygen(f->dir, "a/b"), -EINVAL);
}

static void test_server_key_parsing(void **state)
{
    fixture_t *f = *state;
    char out[41], path[600];
    const char *txt = zcert_public_txt(f->server);
    assert_int_equal(vz_curve_server_key(txt, out), 0);
    assert_string_equal(out, txt);

    snprintf(path, sizeof path, "%s/public/server.key", f->dir);
    memset(out, 0, sizeof out);
    assert_int_equal(vz_curve_server_key(path, out), 0);
    assert_string_equal(out, txt);

    assert_int_equal(vz_curve_server_key("", out), -EINVAL);
    assert_int_equal(vz_curve_server_key("short", out), -ENOENT);
    //  40 characters, one outside the Z85 alphabet: not a key, not a file.
    assert_int_equal(vz_curve_server_key("~123456789012345678901234567890123456789", out), -ENOENT);

    snprintf(path, sizeof path, "%s/garbage.key", f->other);
    assert_int_equal(ut_write(path, "this is not a certificate\n"), 0);
    assert_int_equal(vz_curve_server_key(path, out), -EINVAL);
}

static void test_ports_and_names(void **state)
{
    fixture_t *f = *state;
    zsock_t *server = vz_curve_server(ZMQ_ROUTER, "tcp://127.0.0.1:*", f->server);
    assert_non_null(server);
    assert_true(vz_curve_bound_port(server) > 0);
    //  A second bind to the same port fails without an assert.
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", vz_curve_bound_port(server));
    assert_null(vz_curve_server(ZMQ_ROUTER, ep, f->server));
    assert_null(vz_curve_server(ZMQ_ROUTER, "bogus://x", f->server));
    assert_null(vz_curve_client(ZMQ_DEALER, ep, f->alice, "not-a-key"));

    zframe_t *frame = zframe_new("x", 1);
    char name[VZ_NAME_MAX];
    assert_int_equal(vz_curve_peer_name(frame, name, sizeof name), -ENOENT);
    zframe_destroy(&frame);
    zsock_destroy(&server);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_client_talks),
        cmocka_unit_test(test_unknown_key_refused),
        cmocka_unit_test(test_plain_client_refused),
        cmocka_unit_test(test_wrong_server_key_refused),
        cmocka_unit_test(test_allow_dir_reload),
        cmocka_unit_test(test_cert_load_failures),
        cmocka_unit_test(test_cert_read_fd),
        cmocka_unit_test(test_keygen_layout_and_modes),
        cmocka_unit_test(test_server_key_parsing),
        cmocka_unit_test(test_ports_and_names),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
