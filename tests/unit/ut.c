/*  ut - helpers shared by the unit tests: files, CURVE keys, a fake broker
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "ut.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vz_common.h"

// --------------------------------------------------------------------------
//  Files

int ut_tempdir(char *dir, size_t size, const char *tag)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(dir, size, "%s/vz-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

static int s_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

int ut_rmtree(const char *dir)
{
    if (!dir || !*dir)
        return 0;
    //  Depth first, so a directory is removed after what it holds.
    return nftw(dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int ut_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int rc = fputs(text, f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int ut_temp_file(char *path, size_t size, const char *tag, const char *text)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(path, size, "%s/vz-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    if (ut_write(path, text) != 0) {
        unlink(path);
        return -1;
    }
    return 0;
}

char *ut_write_file(const char *dir, const char *name, const char *text)
{
    static char path[512];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path || ut_write(path, text) != 0)
        return NULL;
    return path;
}

// --------------------------------------------------------------------------
//  CURVE keys

zcert_t *ut_cert_load(const char *dir, const char *name)
{
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/secret/%s.key", dir, name);
    zcert_t *cert = vz_curve_cert_load(path, err, sizeof err);
    if (!cert)
        fprintf(stderr, "ut: load %s: %s\n", path, err);
    return cert;
}

ut_keys_t *ut_keys_new(const char *tag, const char *server, const char *peer, bool zap)
{
    ut_keys_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    bool ok = ut_tempdir(self->dir, sizeof self->dir, tag) == 0 &&
              vz_curve_keygen(self->dir, server) == 0 &&
              (!peer || vz_curve_keygen(self->dir, peer) == 0);
    if (ok) {
        self->server = ut_cert_load(self->dir, server);
        self->peer = peer ? ut_cert_load(self->dir, peer) : NULL;
        ok = self->server && (!peer || self->peer);
    }
    if (ok && zap) {
        char allow[300];
        snprintf(allow, sizeof allow, "%s/public", self->dir);
        self->auth = vz_auth_new(allow);
        ok = self->auth != NULL;
    }
    if (!ok)
        ut_keys_destroy(&self);
    return self;
}

int ut_keys_destroy(ut_keys_t **self_p)
{
    ut_keys_t *self = *self_p;
    if (!self)
        return 0;
    vz_auth_destroy(&self->auth);
    zcert_destroy(&self->server);
    zcert_destroy(&self->peer);
    int rc = ut_rmtree(self->dir);
    free(self);
    *self_p = NULL;
    return rc;
}

// --------------------------------------------------------------------------
//  Fake broker

int ut_broker_new(ut_broker_t *self, zcert_t *cert)
{
    memset(self, 0, sizeof *self);
    self->router = vz_curve_server(ZMQ_ROUTER, "tcp://127.0.0.1:0", cert);
    if (!self->router)
        return -1;
    snprintf(self->endpoint, sizeof self->endpoint, "tcp://127.0.0.1:%d",
             vz_curve_bound_port(self->router));
    return 0;
}

void ut_broker_destroy(ut_broker_t *self)
{
    zframe_destroy(&self->rid);
    zsock_destroy(&self->router);
}

zmsg_t *ut_broker_next(ut_broker_t *self, bool skip_hb, int wait_ms)
{
    zpoller_t *poller = zpoller_new(self->router, NULL);
    int64_t end = zclock_mono() + wait_ms;
    zmsg_t *found = NULL;
    while (!found && zclock_mono() < end) {
        if (zpoller_wait(poller, (int)(end - zclock_mono())) != self->router)
            continue;
        zmsg_t *msg = zmsg_recv(self->router);
        if (!msg)
            continue;
        //  Follow the worker: after a reconnect it has a new routing id.
        zframe_destroy(&self->rid);
        self->rid = zmsg_pop(msg);
        bool hb = zmsg_size(msg) == 1 && zframe_streq(zmsg_first(msg), VZ_CMD_HEARTBEAT);
        if (hb && !self->silent)
            ut_broker_send_cmd(self, VZ_CMD_HEARTBEAT);
        if (skip_hb && hb)
            zmsg_destroy(&msg);
        else
            found = msg;
    }
    zpoller_destroy(&poller);
    return found;
}

int ut_broker_send(ut_broker_t *self, zmsg_t **msg_p)
{
    if (!self->rid) {
        zmsg_destroy(msg_p);
        return -1;
    }
    zmsg_pushmem(*msg_p, zframe_data(self->rid), zframe_size(self->rid));
    return zmsg_send(msg_p, self->router);
}

int ut_broker_send_cmd(ut_broker_t *self, const char *cmd)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, cmd);
    return ut_broker_send(self, &msg);
}

int ut_msg_add_env(zmsg_t *msg, const vz_envelope_t *env)
{
    uint8_t *buf;
    size_t len;
    if (vz_envelope_encode(env, &buf, &len) != 0)
        return -1;
    zmsg_addmem(msg, buf, len);
    free(buf);
    return 0;
}

int ut_broker_send_req(ut_broker_t *self, const char *tag, const char *caller,
                       const vz_envelope_t *req)
{
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, VZ_CMD_REQUEST);
    zmsg_addmem(msg, tag, VZ_TAG_SIZE);
    zmsg_addstr(msg, caller);
    if (ut_msg_add_env(msg, req) != 0) {
        zmsg_destroy(&msg);
        return -1;
    }
    return ut_broker_send(self, &msg);
}

int ut_broker_recv_rep(ut_broker_t *self, ut_rep_t *rep, int wait_ms)
{
    memset(rep, 0, sizeof *rep);
    zmsg_t *msg = ut_broker_next(self, true, wait_ms);
    bool ok = msg && zmsg_size(msg) == 3 && zframe_streq(zmsg_first(msg), VZ_CMD_REPLY);
    if (ok) {
        zframe_t *cmd = zmsg_pop(msg), *tag = zmsg_pop(msg);
        ok = zframe_size(tag) == VZ_TAG_SIZE;
        if (ok)
            memcpy(rep->tag, zframe_data(tag), VZ_TAG_SIZE);
        zframe_destroy(&cmd);
        zframe_destroy(&tag);
        rep->frame = zmsg_pop(msg);
        ok = ok && vz_envelope_decode(&rep->env, zframe_data(rep->frame), zframe_size(rep->frame),
                                      NULL, NULL) == 0;
    }
    zmsg_destroy(&msg);
    if (!ok)
        ut_rep_free(rep);
    return ok ? 0 : -1;
}

void ut_rep_free(ut_rep_t *rep)
{
    zframe_destroy(&rep->frame);
}
