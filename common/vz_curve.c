/*  vz_curve - CURVE certificates, ZAP authentication and secured sockets
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_curve.h"
#include "vz_envelope.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vz_common.h"
#include "vz_config.h"

#define VZ_ZAP_DOMAIN "vizmesh"
#define VZ_KEY_TXT 40     //  Z85 text of a 32-byte key
#define VZ_SOCK_HWM 10000 //  messages queued per peer before drop/block
#define VZ_CERT_MAX 16384 //  largest certificate file we read

struct vz_auth_t {
    zactor_t *actor; //  CZMQ zauth actor serving ZAP for the whole process
};

static void s_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, arg);
}

//  A public-only certificate loads fine in CZMQ with an all-zero secret,
//  so "has a secret" means "the secret bytes are not all zero".
static bool s_has_secret(zcert_t *cert)
{
    const byte *key = zcert_secret_key(cert);
    for (size_t i = 0; i < 32; i++)
        if (key[i])
            return true;
    return false;
}

//  The certificate of a parsed ZPL tree (destroyed here), or NULL. A
//  secret key must match the public key.
static zcert_t *s_cert_from(zconfig_t *root)
{
    if (!root)
        return NULL;
    const char *pub = zconfig_get(root, "/curve/public-key", "");
    const char *sec = zconfig_get(root, "/curve/secret-key", "");
    byte public_key[32], secret_key[32] = {0};
    char derived[VZ_KEY_TXT + 1];
    bool ok = strlen(pub) == VZ_KEY_TXT && zmq_z85_decode(public_key, pub);
    if (ok && *sec)
        ok = strlen(sec) == VZ_KEY_TXT && zmq_z85_decode(secret_key, sec) &&
             zmq_curve_public(derived, sec) == 0 && streq(derived, pub);
    zcert_t *cert = ok ? zcert_new_from(public_key, secret_key) : NULL;
    zconfig_t *meta = cert ? zconfig_locate(root, "/metadata") : NULL;
    zconfig_t *item = meta ? zconfig_child(meta) : NULL;
    for (; item; item = zconfig_next(item))
        if (zconfig_name(item) && zconfig_value(item))
            zcert_set_meta(cert, zconfig_name(item), "%s", zconfig_value(item));
    zconfig_destroy(&root);
    return cert;
}

//  zcert_load leaks when a file does not parse (zconfig_load in CZMQ
//  4.2.1), and a path may name anything; so the file goes through the
//  bounded reader.
static zcert_t *s_cert_read_one(const char *path)
{
    return s_cert_from(vz_config_read(path, VZ_CERT_MAX, NULL, 0));
}

//  Like zcert_load: the _secret file beside path wins over path itself.
static zcert_t *s_cert_read(const char *path)
{
    char secret_path[VZ_PATH_MAX + 8];
    if (snprintf(secret_path, sizeof secret_path, "%s_secret", path) < (int)sizeof secret_path) {
        zcert_t *cert = s_cert_read_one(secret_path);
        if (cert)
            return cert;
    }
    return s_cert_read_one(path);
}

//  cert (owned, may be NULL) if it holds a secret and a name, else NULL
//  with the reason; label names where it came from.
static zcert_t *s_cert_checked(zcert_t *cert, const char *path, char *err, size_t errlen)
{
    if (!cert) {
        s_err(err, errlen, "%s: not a certificate, or its keys do not match", path);
        return NULL;
    }
    if (!s_has_secret(cert)) {
        s_err(err, errlen, "%s: no secret key (public certificate only)", path);
        zcert_destroy(&cert);
        return NULL;
    }
    const char *name = zcert_meta(cert, "name");
    if (!name || !*name) {
        s_err(err, errlen, "%s: no \"name\" metadata", path);
        zcert_destroy(&cert);
        return NULL;
    }
    return cert;
}

zcert_t *vz_curve_cert_load(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        s_err(err, errlen, "%sno certificate path given", "");
        return NULL;
    }
    char secret_path[VZ_PATH_MAX + 8];
    snprintf(secret_path, sizeof secret_path, "%s_secret", path);
    if (access(path, R_OK) != 0 && access(secret_path, R_OK) != 0) {
        s_err(err, errlen, "%s: missing or unreadable", path);
        return NULL;
    }
    return s_cert_checked(s_cert_read(path), path, err, errlen);
}

zcert_t *vz_curve_cert_read_fd(int fd, char *err, size_t errlen)
{
    char label[32];
    snprintf(label, sizeof label, "fd %d", fd);
    char *buf = malloc(VZ_CERT_MAX);
    assert(buf);
    size_t len = 0;
    ssize_t n = 0;
    //  Up to end of file: the supervisor wrote the whole file and closed its end.
    while (len < VZ_CERT_MAX &&
           ((n = read(fd, buf + len, VZ_CERT_MAX - len)) > 0 || (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t)n : 0;
    int saved = errno;
    close(fd);
    zcert_t *cert = NULL;
    if (n < 0)
        s_err(err, errlen, "%s: unreadable", label);
    else if (len == VZ_CERT_MAX)
        s_err(err, errlen, "%s: larger than a certificate", label);
    else
        cert = s_cert_checked(s_cert_from(vz_config_parse(buf, len, label, NULL, 0)), label, err,
                              errlen);
    explicit_bzero(buf, VZ_CERT_MAX);
    free(buf);
    errno = saved;
    return cert;
}

static bool s_name_ok(const char *name)
{
    if (!name || !*name || strlen(name) >= VZ_NAME_MAX || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '"' || (unsigned char)*p < 0x20)
            return false;
    return true;
}

static int s_mkdir(const char *path, mode_t mode)
{
    bool created = mkdir(path, mode) == 0;
    if (!created && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    //  Only a directory made here gets the mode (past the umask): an existing
    //  one (`vzctl keys gen .`) belongs to its owner; the secret files are 0600.
    if (created && (st.st_mode & 07777) != mode && chmod(path, mode) != 0)
        return -errno;
    return 0;
}

//  Existing keys are kept so that running keygen twice (supervisor restart)
//  never rotates a key behind the peers' backs.
static bool s_keys_present(const char *secret_path, const char *public_path, const char *name)
{
    zcert_t *cert = vz_curve_cert_load(secret_path, NULL, 0);
    if (!cert)
        return false;
    bool ok = streq(zcert_meta(cert, "name"), name);
    if (ok) {
        zcert_t *pub = s_cert_read_one(public_path);
        ok = pub && streq(zcert_public_txt(pub), zcert_public_txt(cert));
        if (!ok) {
            //  The public half is derivable: rewrite it rather than rotate.
            ok = zcert_save_public(cert, public_path) == 0 && chmod(public_path, 0644) == 0;
        }
        zcert_destroy(&pub);
    }
    zcert_destroy(&cert);
    return ok;
}

int vz_curve_keygen(const char *dir, const char *name)
{
    if (!dir || !*dir || !s_name_ok(name))
        return -EINVAL;
    char pub_dir[VZ_PATH_MAX], sec_dir[VZ_PATH_MAX];
    char pub_path[VZ_PATH_MAX * 2], sec_path[VZ_PATH_MAX * 2], sec_file[VZ_PATH_MAX * 2 + 8];
    if (snprintf(pub_dir, sizeof pub_dir, "%s/public", dir) >= (int)sizeof pub_dir ||
        snprintf(sec_dir, sizeof sec_dir, "%s/secret", dir) >= (int)sizeof sec_dir)
        return -ENAMETOOLONG;
    snprintf(pub_path, sizeof pub_path, "%s/%s.key", pub_dir, name);
    snprintf(sec_path, sizeof sec_path, "%s/%s.key", sec_dir, name);
    snprintf(sec_file, sizeof sec_file, "%s_secret", sec_path);

    int rc = s_mkdir(dir, 0755);
    if (rc == 0)
        rc = s_mkdir(pub_dir, 0755);
    if (rc == 0)
        rc = s_mkdir(sec_dir, 0700);
    if (rc < 0)
        return rc;
    if (s_keys_present(sec_path, pub_path, name))
        return 0;

    zcert_t *cert = zcert_new();
    if (!cert)
        return -ENOMEM;
    zcert_set_meta(cert, "name", "%s", name);
    //  zcert_save would write both halves side by side; the layout keeps
    //  them in different directories, so each half is saved on its own.
    rc = 0;
    if (zcert_save_public(cert, pub_path) != 0 || zcert_save_secret(cert, sec_file) != 0)
        rc = errno ? -errno : -EIO;
    if (rc == 0 && (chmod(sec_file, 0600) != 0 || chmod(pub_path, 0644) != 0))
        rc = -errno;
    zcert_destroy(&cert);
    return rc;
}

static bool s_is_z85_key(const char *text)
{
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    if (strlen(text) != VZ_KEY_TXT)
        return false;
    for (const char *p = text; *p; p++)
        if (!strchr(z85, *p))
            return false;
    return true;
}

int vz_curve_server_key(const char *text_or_path, char out[41])
{
    if (!text_or_path || !*text_or_path)
        return -EINVAL;
    if (s_is_z85_key(text_or_path)) {
        memcpy(out, text_or_path, VZ_KEY_TXT + 1);
        return 0;
    }
    if (access(text_or_path, R_OK) != 0)
        return -ENOENT;
    zcert_t *cert = s_cert_read(text_or_path);
    if (!cert)
        return -EINVAL;
    const char *txt = zcert_public_txt(cert);
    //  An all-zero public key is what CZMQ leaves when the file had none.
    int rc = strspn(txt, "0") == VZ_KEY_TXT ? -EINVAL : 0;
    if (rc == 0)
        memcpy(out, txt, VZ_KEY_TXT + 1);
    zcert_destroy(&cert);
    return rc;
}

vz_auth_t *vz_auth_new(const char *allow_dir)
{
    struct stat st;
    if (!allow_dir || stat(allow_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOENT;
        return NULL;
    }
    vz_auth_t *self = (vz_auth_t *)zmalloc(sizeof(vz_auth_t));
    assert(self);
    self->actor = zactor_new(zauth, NULL);
    if (!self->actor) {
        free(self);
        return NULL;
    }
    //  zauth replies to each command with a signal once it is in effect.
    if (zstr_sendx(self->actor, "CURVE", allow_dir, NULL) != 0 || zsock_wait(self->actor) != 0) {
        vz_auth_destroy(&self);
        return NULL;
    }
    return self;
}

void vz_auth_destroy(vz_auth_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        zactor_destroy(&(*self_p)->actor);
        free(*self_p);
        *self_p = NULL;
    }
}

//  A socket of type with the options every vizmesh socket has and cert
//  applied; NULL when out of resources.
static zsock_t *s_sock_new(int type, zcert_t *cert)
{
    zsock_t *sock = zsock_new(type);
    if (!sock)
        return NULL;
    //  Linger 0: a daemon that stops must not hang on a dead peer.
    zsock_set_linger(sock, 0);
    zsock_set_sndhwm(sock, VZ_SOCK_HWM);
    zsock_set_rcvhwm(sock, VZ_SOCK_HWM);
    //  A stalled CURVE handshake should not hold a connection forever.
    zsock_set_handshake_ivl(sock, 5000);
    zcert_apply(cert, sock);
    return sock;
}

//  Destroy a socket that could not bind or connect; errno is kept (or set
//  to fallback when the failure left none). Returns NULL.
static zsock_t *s_sock_fail(zsock_t **sock_p, int fallback)
{
    int saved = errno;
    zsock_destroy(sock_p);
    errno = saved ? saved : fallback;
    return NULL;
}

zsock_t *vz_curve_server(int type, const char *endpoint, zcert_t *cert)
{
    assert(cert);
    if (!endpoint || !*endpoint) {
        errno = EINVAL;
        return NULL;
    }
    zsock_t *sock = s_sock_new(type, cert);
    if (!sock)
        return NULL;
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, VZ_ZAP_DOMAIN);
    //  No frame of the protocol is larger than an envelope; libzmq drops a
    //  connection that sends more before anything is buffered. Options are
    //  copied into listeners at bind time, so this must come first.
    zsock_set_maxmsgsize(sock, (int)(vz_envelope_limits_default.max_frame + 4096));
    if (zsock_bind(sock, "%s", endpoint) < 0)
        return s_sock_fail(&sock, EINVAL);
    return sock;
}

zsock_t *vz_curve_client_socket(int type, zcert_t *cert, const char *server_key)
{
    assert(cert);
    if (!server_key || !s_is_z85_key(server_key)) {
        errno = EINVAL;
        return NULL;
    }
    zsock_t *sock = s_sock_new(type, cert);
    if (sock)
        zsock_set_curve_serverkey(sock, server_key);
    return sock;
}

zsock_t *vz_curve_client(int type, const char *endpoints, zcert_t *cert, const char *server_key)
{
    assert(cert);
    if (!endpoints || !*endpoints) {
        errno = EINVAL;
        return NULL;
    }
    zsock_t *sock = vz_curve_client_socket(type, cert, server_key);
    if (!sock)
        return NULL;
    char *list = strdup(endpoints);
    assert(list);
    int rc = 0;
    char *save = NULL;
    for (char *ep = strtok_r(list, ", ", &save); ep && rc == 0; ep = strtok_r(NULL, ", ", &save))
        rc = zsock_connect(sock, "%s", ep);
    free(list);
    return rc != 0 ? s_sock_fail(&sock, EINVAL) : sock;
}

int vz_curve_bound_port(zsock_t *sock)
{
    assert(sock);
    char *last = zsock_last_endpoint(sock);
    int port = -1;
    if (last) {
        char *colon = strrchr(last, ':');
        if (colon && colon[1] >= '0' && colon[1] <= '9')
            port = atoi(colon + 1);
        free(last);
    }
    return port;
}

int vz_curve_peer_name(zframe_t *frame, char *out, size_t n)
{
    assert(frame && out && n);
    const char *name = zframe_meta(frame, "name");
    if (!name || !*name) {
        out[0] = '\0';
        return -ENOENT;
    }
    return vz_strlcpy(out, name, n);
}
