/*  isolation - uids, owners and secret hand-over that keep the daemons apart
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "isolation.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vz_common.h"

#define S_SECRET_HEX 64  //  characters of a secret file the supervisor makes
#define S_PIPE_MAX 16384 //  largest secret handed over through a pipe

//  One "name uid" line of <state_dir>/uids.
typedef struct {
    char name[VZ_NAME_MAX]; //  service name
    uid_t uid;              //  its uid, for good
} s_entry_t;

//  Read <state_dir>/uids into map (SUP_MESH_MAX_SERVICES * 4 entries at
//  most: removed services keep theirs, so their files stay theirs).
static size_t s_map_read(const char *path, s_entry_t *map, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = 0;
    char line[VZ_NAME_MAX + 32];
    while (n < cap && fgets(line, sizeof line, f)) {
        unsigned long uid;
        char name[VZ_NAME_MAX];
        if (sscanf(line, "%63s %lu", name, &uid) == 2 &&
            vz_strlcpy(map[n].name, name, VZ_NAME_MAX) >= 0) {
            map[n].uid = (uid_t)uid;
            n++;
        }
    }
    fclose(f);
    return n;
}

static int s_map_write(const char *path, const s_entry_t *map, size_t n)
{
    char tmp[VZ_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "# uids of the mesh's services (isolation = uid); kept so files stay theirs\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s %lu\n", map[i].name, (unsigned long)map[i].uid);
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

//  The lowest uid of the range that no entry and no system user holds.
static int s_map_alloc(const sup_mesh_config_t *cfg, const s_entry_t *map, size_t n, uid_t *out)
{
    for (uid_t uid = (uid_t)cfg->uid_base; uid < (uid_t)cfg->uid_base + SUP_ISO_RANGE; uid++) {
        bool taken = getpwuid(uid) != NULL;
        for (size_t i = 0; i < n && !taken; i++)
            taken = map[i].uid == uid;
        if (!taken) {
            *out = uid;
            return 0;
        }
    }
    return -ENOSPC;
}

int sup_iso_assign(sup_mesh_config_t *cfg, char *err, size_t errlen)
{
    assert(cfg && cfg->isolation == SUP_ISOLATION_UID);
    char path[VZ_PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/uids", cfg->state_dir);
    size_t cap = SUP_MESH_MAX_SERVICES * 4;
    s_entry_t *map = calloc(cap, sizeof *map);
    assert(map);
    size_t n = s_map_read(path, map, cap);
    bool changed = false;
    int rc = 0;
    for (size_t i = 0; i < cfg->service_count && rc == 0; i++) {
        sup_mesh_service_t *svc = &cfg->services[i];
        char user[VZ_NAME_MAX + 8];
        snprintf(user, sizeof user, "%s%s", *svc->user ? "" : "vz-",
                 *svc->user ? svc->user : svc->name);
        const struct passwd *pw = getpwnam(user);
        if (pw) {
            svc->uid = pw->pw_uid;
            svc->gid = pw->pw_gid;
            continue;
        }
        if (*svc->user) {
            snprintf(err, errlen, "services/%s/user=\"%s\": no such user", svc->name, svc->user);
            rc = -ENOENT;
            break;
        }
        size_t k = 0;
        while (k < n && strcmp(map[k].name, svc->name))
            k++;
        if (k == n) {
            if (n == cap || s_map_alloc(cfg, map, n, &map[n].uid) < 0) {
                snprintf(err, errlen, "no free uid left in %d..%d for %s (supervisor/uid_base)",
                         cfg->uid_base, cfg->uid_base + SUP_ISO_RANGE - 1, svc->name);
                rc = -ENOSPC;
                break;
            }
            vz_strlcpy(map[n++].name, svc->name, VZ_NAME_MAX);
            changed = true;
        }
        //  A uid of the range has no passwd entry: its group is its uid.
        svc->uid = map[k].uid;
        svc->gid = (gid_t)map[k].uid;
    }
    if (rc == 0 && changed && (rc = s_map_write(path, map, n)) < 0)
        snprintf(err, errlen, "unable to write %s: %s", path, strerror(-rc));
    free(map);
    return rc;
}

//  nftw has no argument pointer: the owner being handed out, and the
//  first error.
static uid_t s_tree_uid;
static gid_t s_tree_gid;
static int s_tree_errno;

static int s_chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    if ((st->st_uid != s_tree_uid || st->st_gid != s_tree_gid) &&
        lchown(path, s_tree_uid, s_tree_gid) < 0) {
        s_tree_errno = errno;
        return 1;
    }
    return 0;
}

int sup_iso_own_tree(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (st.st_uid != uid || st.st_gid != gid) {
        s_tree_uid = uid;
        s_tree_gid = gid;
        s_tree_errno = 0;
        //  FTW_PHYS: a symlink planted inside is changed itself, never followed.
        int rc = nftw(path, s_chown_one, 16, FTW_PHYS | FTW_MOUNT);
        if (rc != 0)
            return -(rc > 0 ? s_tree_errno : errno ? errno : EIO);
    }
    return chmod(path, mode) < 0 ? -errno : 0;
}

int sup_iso_secret_file(const char *path, uid_t uid, gid_t gid, bool own)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
    if (fd >= 0) {
        char hex[S_SECRET_HEX + 1];
        vz_random_hex(hex, S_SECRET_HEX);
        bool ok = write(fd, hex, S_SECRET_HEX) == S_SECRET_HEX && fsync(fd) == 0;
        int saved = errno;
        explicit_bzero(hex, sizeof hex);
        close(fd);
        if (!ok) {
            unlink(path);
            return -(saved ? saved : EIO);
        }
    } else if (errno != EEXIST)
        return -errno;
    return sup_iso_own_file(path, own ? uid : geteuid(), own ? gid : getegid(), 0400);
}

int sup_iso_own_file(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
    //  Through a descriptor: a symlink a service planted is never followed.
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    int rc = fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

bool sup_iso_can_switch(void)
{
    if (geteuid() != 0)
        return false;
    //  CAP_CHOWN (0), CAP_DAC_OVERRIDE (1), CAP_SETGID (6), CAP_SETUID (7).
    const unsigned long long need = 1ULL << 0 | 1ULL << 1 | 1ULL << 6 | 1ULL << 7;
    FILE *f = fopen("/proc/self/status", "re");
    unsigned long long eff = 0;
    char line[128];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = sscanf(line, "CapEff: %llx", &eff) == 1;
    if (f)
        fclose(f);
    return !found || (eff & need) == need;
}

int sup_iso_secret_pipe(const char *path, int *fd)
{
    assert(path && fd);
    int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return -errno;
    char *buf = malloc(S_PIPE_MAX);
    assert(buf);
    ssize_t len = read(in, buf, S_PIPE_MAX);
    int rc = len < 0 ? -errno : len == S_PIPE_MAX ? -EFBIG : 0;
    close(in);
    int p[2] = {-1, -1};
    if (rc == 0 && pipe2(p, O_CLOEXEC) < 0)
        rc = -errno;
    //  The pipe's buffer (64 KiB) takes it whole: this write never blocks.
    if (rc == 0 && write(p[1], buf, (size_t)len) != len)
        rc = -(errno ? errno : EIO);
    explicit_bzero(buf, S_PIPE_MAX);
    free(buf);
    if (p[1] >= 0)
        close(p[1]);
    if (rc < 0) {
        if (p[0] >= 0)
            close(p[0]);
        return rc;
    }
    *fd = p[0];
    return 0;
}
