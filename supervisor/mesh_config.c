/*  mesh_config - the supervisor's ZPL configuration: ports, services, dependencies
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "mesh_config.h"
#include "isolation.h"
#include "vz_config.h"
#include "vz_ports.h"

#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

//  Dependency names as read, before they are resolved to indices.
typedef struct {
    sup_mesh_service_t svc;                    //  the service being built
    size_t dep_count;                          //  names in deps
    char deps[SUP_MESH_MAX_DEPS][VZ_NAME_MAX]; //  dependency names
} s_raw_t;

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

//  Strict decimal integer in [min, max]; ZPL gives every value as text.
static int s_parse_int(const char *text, long min, long max, int *out)
{
    if (!text || !*text)
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

//  "10000", "10000ms" or "10s", at least min ms (0 where "0" means off).
static int s_parse_ms(const char *text, int min, int *out)
{
    char buf[32];
    if (vz_strlcpy(buf, text, sizeof buf) < 0)
        return -EINVAL;
    size_t len = strlen(buf);
    int scale = 1;
    if (len > 2 && strcmp(buf + len - 2, "ms") == 0)
        buf[len - 2] = '\0';
    else if (len > 1 && buf[len - 1] == 's') {
        buf[len - 1] = '\0';
        scale = 1000;
    }
    int v;
    if (s_parse_int(buf, min > 0 ? 1 : 0, 3600 * 1000 / scale, &v) < 0)
        return -EINVAL;
    *out = v * scale;
    return 0;
}

//  "1048576", "512K" or "10M" (binary units), at most 1 GiB; "0" = off.
static int s_parse_bytes(const char *text, long *out)
{
    char buf[32];
    if (vz_strlcpy(buf, text, sizeof buf) < 0)
        return -EINVAL;
    size_t len = strlen(buf);
    long scale = 1;
    if (len > 1 && (buf[len - 1] == 'K' || buf[len - 1] == 'M')) {
        scale = buf[len - 1] == 'K' ? 1024 : 1024 * 1024;
        buf[len - 1] = '\0';
    }
    int v;
    if (s_parse_int(buf, 0, (int)(1024L * 1024 * 1024 / scale), &v) < 0)
        return -EINVAL;
    *out = v * scale;
    return 0;
}

static int s_parse_port(const char *text, int *port, bool *is_auto)
{
    if (text && strcmp(text, "auto") == 0) {
        *port = 0;
        *is_auto = true;
        return 0;
    }
    *is_auto = false;
    return s_parse_int(text, 1, 65535, port);
}

static int s_load_supervisor(sup_mesh_config_t *cfg, zconfig_t *root, char *err, size_t errlen)
{
    static const struct {
        const char *path; //  ZPL path
        size_t offset;    //  field in sup_mesh_config_t
        const char *def;  //  default
    } strs[] = {
        {"supervisor/state_dir", offsetof(sup_mesh_config_t, state_dir), "state"},
        {"supervisor/control", offsetof(sup_mesh_config_t, control), ""},
        {"supervisor/bin_dir", offsetof(sup_mesh_config_t, bin_dir), ""},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const char *v = zconfig_get(root, strs[i].path, strs[i].def);
        if (vz_strlcpy((char *)cfg + strs[i].offset, v, VZ_PATH_MAX) < 0)
            return s_fail(err, errlen, -EINVAL, "%s: longer than %d bytes", strs[i].path,
                          VZ_PATH_MAX - 1);
    }
    if (!*cfg->state_dir)
        return s_fail(err, errlen, -EINVAL, "supervisor/state_dir: must not be empty");
    //  Durations: stop_timeout must be positive; "0" turns the other two off.
    static const struct {
        const char *path; //  ZPL path
        size_t offset;    //  int field in sup_mesh_config_t
        const char *def;  //  default
        int min;          //  smallest value in ms
    } durations[] = {
        {"supervisor/stop_timeout", offsetof(sup_mesh_config_t, stop_timeout_ms), "10s", 1},
        {"supervisor/start_timeout", offsetof(sup_mesh_config_t, start_timeout_ms), "30s", 0},
        {"supervisor/ready_poll", offsetof(sup_mesh_config_t, ready_poll_ms), "1s", 0},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        const char *v = zconfig_get(root, durations[i].path, durations[i].def);
        if (s_parse_ms(v, durations[i].min, (int *)((char *)cfg + durations[i].offset)) < 0)
            return s_fail(err, errlen, -EINVAL, "%s=\"%s\": expected milliseconds or Ns (%s..1h)",
                          durations[i].path, v, durations[i].min ? "1ms" : "0 = off");
    }
    //  Log rotation (supervisord's logfile_maxbytes and logfile_backups).
    const char *v = zconfig_get(root, "supervisor/log_max_bytes", "10M");
    if (s_parse_bytes(v, &cfg->log_max_bytes) < 0)
        return s_fail(
            err, errlen, -EINVAL,
            "supervisor/log_max_bytes=\"%s\": expected bytes, NK or NM (0 = never rotate)", v);
    v = zconfig_get(root, "supervisor/log_backups", "5");
    if (s_parse_int(v, 0, SUP_MESH_MAX_LOG_BACKUPS, &cfg->log_backups) < 0)
        return s_fail(err, errlen, -EINVAL, "supervisor/log_backups=\"%s\": expected 0..%d", v,
                      SUP_MESH_MAX_LOG_BACKUPS);
    //  Isolation (docs/operations/isolation.md).
    static const char *const modes[] = {"auto", "uid", "fd", "off"};
    v = zconfig_get(root, "supervisor/isolation", "auto");
    size_t m = 0;
    while (m < sizeof modes / sizeof modes[0] && strcmp(v, modes[m]))
        m++;
    if (m == sizeof modes / sizeof modes[0])
        return s_fail(err, errlen, -EINVAL,
                      "supervisor/isolation=\"%s\": expected auto, uid, fd or off", v);
    cfg->isolation = (sup_isolation_t)m;
    v = zconfig_get(root, "supervisor/uid_base", "60600");
    if (s_parse_int(v, 1000, 2000000000, &cfg->uid_base) < 0)
        return s_fail(err, errlen, -EINVAL, "supervisor/uid_base=\"%s\": expected 1000..2000000000",
                      v);
    zconfig_t *sup = zconfig_locate(root, "supervisor");
    for (zconfig_t *c = sup ? zconfig_child(sup) : NULL; c; c = zconfig_next(c)) {
        const char *n = zconfig_name(c);
        if (strcmp(n, "state_dir") && strcmp(n, "control") && strcmp(n, "bin_dir") &&
            strcmp(n, "stop_timeout") && strcmp(n, "start_timeout") && strcmp(n, "ready_poll") &&
            strcmp(n, "log_max_bytes") && strcmp(n, "log_backups") && strcmp(n, "isolation") &&
            strcmp(n, "uid_base"))
            return s_fail(err, errlen, -EINVAL, "supervisor/%s: unknown setting", n);
    }
    return 0;
}

static int s_load_ports(sup_mesh_config_t *cfg, zconfig_t *root, char *err, size_t errlen)
{
    zconfig_t *ports = zconfig_locate(root, "ports");
    for (zconfig_t *c = ports ? zconfig_child(ports) : NULL; c; c = zconfig_next(c)) {
        if (cfg->port_count == SUP_MESH_MAX_PORTS)
            return s_fail(err, errlen, -EINVAL, "ports: more than %d entries", SUP_MESH_MAX_PORTS);
        sup_mesh_port_t *p = &cfg->ports[cfg->port_count];
        const char *v = zconfig_value(c);
        if (vz_strlcpy(p->name, zconfig_name(c), sizeof p->name) < 0 ||
            s_parse_port(v, &p->port, &p->is_auto) < 0)
            return s_fail(err, errlen, -EINVAL,
                          "ports/%s=\"%s\": expected \"auto\" or an integer in 1..65535",
                          zconfig_name(c), v ? v : "");
        if (sup_mesh_config_port(cfg, p->name) != -ENOENT)
            return s_fail(err, errlen, -EINVAL, "ports/%s: defined twice", p->name);
        cfg->port_count++;
    }
    return 0;
}

//  Split a space-separated dependency list into raw->deps.
static int s_load_depends(s_raw_t *raw, const char *text, char *err, size_t errlen)
{
    char buf[VZ_PATH_MAX];
    if (vz_strlcpy(buf, text, sizeof buf) < 0)
        return s_fail(err, errlen, -EINVAL, "services/%s/depends: too long", raw->svc.name);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        if (raw->dep_count == SUP_MESH_MAX_DEPS)
            return s_fail(err, errlen, -EINVAL, "services/%s/depends: more than %d entries",
                          raw->svc.name, SUP_MESH_MAX_DEPS);
        if (vz_strlcpy(raw->deps[raw->dep_count++], tok, VZ_NAME_MAX) < 0)
            return s_fail(err, errlen, -EINVAL, "services/%s/depends: name \"%s\" too long",
                          raw->svc.name, tok);
    }
    return 0;
}

static int s_load_service(const sup_mesh_config_t *cfg, s_raw_t *raw, zconfig_t *node, char *err,
                          size_t errlen)
{
    sup_mesh_service_t *svc = &raw->svc;
    const char *name = zconfig_name(node);
    //  "S.i" names a replica and "all" every service on the vzctl command line.
    if (vz_strlcpy(svc->name, name, sizeof svc->name) < 0 || strchr(name, '.') ||
        strcmp(name, "all") == 0)
        return s_fail(err, errlen, -EINVAL,
                      "services/%s: bad service name (max %d bytes, no '.', not \"all\")", name,
                      VZ_NAME_MAX - 1);
    svc->replicas = 1;
    svc->start_timeout_ms = cfg->start_timeout_ms;
    svc->ready_poll_ms = cfg->ready_poll_ms;
    for (zconfig_t *c = zconfig_child(node); c; c = zconfig_next(c)) {
        const char *key = zconfig_name(c);
        const char *v = zconfig_value(c) ? zconfig_value(c) : "";
        int rc = 0;
        if (strcmp(key, "command") == 0) {
            if (vz_strlcpy(svc->command, v, sizeof svc->command) < 0)
                return s_fail(err, errlen, -EINVAL, "services/%s/command: too long", name);
        } else if (strcmp(key, "admin_port") == 0) {
            if (s_parse_port(v, &svc->admin_port, &svc->admin_auto) < 0)
                return s_fail(err, errlen, -EINVAL,
                              "services/%s/admin_port=\"%s\": expected \"auto\" or 1..65535", name,
                              v);
        } else if (strcmp(key, "replicas") == 0) {
            if (s_parse_int(v, 0, SUP_MESH_MAX_REPLICAS, &svc->replicas) < 0)
                return s_fail(err, errlen, -EINVAL,
                              "services/%s/replicas=\"%s\": expected an integer in 0..%d", name, v,
                              SUP_MESH_MAX_REPLICAS);
        } else if (strcmp(key, "start_timeout") == 0 || strcmp(key, "ready_poll") == 0) {
            int *field =
                strcmp(key, "start_timeout") == 0 ? &svc->start_timeout_ms : &svc->ready_poll_ms;
            if (s_parse_ms(v, 0, field) < 0)
                return s_fail(err, errlen, -EINVAL,
                              "services/%s/%s=\"%s\": expected milliseconds or Ns (0 = off..1h)",
                              name, key, v);
        } else if (strcmp(key, "depends") == 0)
            rc = s_load_depends(raw, v, err, errlen);
        else if (strcmp(key, "user") == 0 || strcmp(key, "state_dirs") == 0 ||
                 strcmp(key, "secret_files") == 0) {
            char *field = strcmp(key, "user") == 0         ? svc->user
                          : strcmp(key, "state_dirs") == 0 ? svc->state_dirs
                                                           : svc->secret_files;
            size_t size = field == svc->user ? sizeof svc->user : sizeof svc->state_dirs;
            if (vz_strlcpy(field, v, size) < 0)
                return s_fail(err, errlen, -EINVAL, "services/%s/%s: too long", name, key);
        } else if (strcmp(key, "env") == 0) {
            for (zconfig_t *e = zconfig_child(c); e; e = zconfig_next(e)) {
                if (svc->env_count == SUP_MESH_MAX_ENV)
                    return s_fail(err, errlen, -EINVAL, "services/%s/env: more than %d entries",
                                  name, SUP_MESH_MAX_ENV);
                sup_mesh_env_t *env = &svc->env[svc->env_count++];
                const char *ev = zconfig_value(e) ? zconfig_value(e) : "";
                if (vz_strlcpy(env->key, zconfig_name(e), sizeof env->key) < 0 ||
                    vz_strlcpy(env->value, ev, sizeof env->value) < 0)
                    return s_fail(err, errlen, -EINVAL, "services/%s/env/%s: too long", name,
                                  zconfig_name(e));
            }
        } else
            return s_fail(err, errlen, -EINVAL, "services/%s/%s: unknown setting", name, key);
        if (rc < 0)
            return rc;
    }
    //  A service without a command can only be the Redis the supervisor runs itself.
    if (!*svc->command) {
        if (strcmp(name, "redis") != 0)
            return s_fail(err, errlen, -EINVAL, "services/%s/command: required", name);
        svc->builtin_redis = true;
        if (svc->replicas > 1)
            return s_fail(err, errlen, -EINVAL,
                          "services/redis/replicas=%d: the built-in redis runs one replica",
                          svc->replicas);
        if (sup_mesh_config_port(cfg, "redis") == -ENOENT)
            return s_fail(err, errlen, -EINVAL,
                          "services/redis: the built-in redis needs ports/redis");
    }
    //  A service of the ports table (common/vz_ports.h) defaults to its port there.
    if (!svc->builtin_redis && !svc->admin_auto && svc->admin_port == 0)
        svc->admin_port = vz_ports_admin(name) > 0 ? vz_ports_admin(name) : 0;
    if (!svc->builtin_redis && !svc->admin_auto && svc->admin_port == 0)
        return s_fail(err, errlen, -EINVAL,
                      "services/%s/admin_port: required (or \"auto\"): not in the ports table",
                      name);
    if (!svc->admin_auto && svc->admin_port + svc->replicas - 1 > 65535)
        return s_fail(err, errlen, -EINVAL, "services/%s/admin_port: replicas run past 65535",
                      name);
    return 0;
}

//  Order services so that each comes after its dependencies (Kahn's
//  algorithm, stable in file order) and report a cycle by its path.
static int s_order(sup_mesh_config_t *cfg, s_raw_t *raw, size_t count, char *err, size_t errlen)
{
    int dep_idx[SUP_MESH_MAX_SERVICES][SUP_MESH_MAX_DEPS];
    for (size_t i = 0; i < count; i++)
        for (size_t d = 0; d < raw[i].dep_count; d++) {
            int found = -1;
            for (size_t j = 0; j < count; j++)
                if (strcmp(raw[j].svc.name, raw[i].deps[d]) == 0)
                    found = (int)j;
            if (found < 0)
                return s_fail(err, errlen, -EINVAL,
                              "services/%s/depends: unknown dependency \"%s\"", raw[i].svc.name,
                              raw[i].deps[d]);
            dep_idx[i][d] = found;
        }
    int new_index[SUP_MESH_MAX_SERVICES];
    bool placed[SUP_MESH_MAX_SERVICES] = {false};
    size_t done = 0;
    for (bool progress = true; progress && done < count;) {
        progress = false;
        for (size_t i = 0; i < count; i++) {
            if (placed[i])
                continue;
            bool ready = true;
            for (size_t d = 0; d < raw[i].dep_count; d++)
                ready = ready && placed[dep_idx[i][d]];
            if (!ready)
                continue;
            placed[i] = true;
            new_index[i] = (int)done;
            cfg->services[done] = raw[i].svc;
            sup_mesh_service_t *svc = &cfg->services[done++];
            svc->dep_count = raw[i].dep_count;
            svc->tier = 0;
            for (size_t d = 0; d < raw[i].dep_count; d++) {
                svc->deps[d] = new_index[dep_idx[i][d]];
                int t = cfg->services[svc->deps[d]].tier + 1;
                svc->tier = t > svc->tier ? t : svc->tier;
            }
            progress = true;
        }
    }
    if (done == count) {
        cfg->service_count = count;
        return 0;
    }
    //  Walk unplaced dependencies from any unplaced service until one repeats.
    size_t cur = 0;
    while (placed[cur])
        cur++;
    int seen[SUP_MESH_MAX_SERVICES];
    memset(seen, -1, sizeof seen);
    size_t steps = 0;
    while (seen[cur] < 0) {
        seen[cur] = (int)steps++;
        for (size_t d = 0; d < raw[cur].dep_count; d++)
            if (!placed[dep_idx[cur][d]]) {
                cur = (size_t)dep_idx[cur][d];
                break;
            }
    }
    char path[VZ_PATH_MAX] = "";
    size_t start = cur;
    do {
        strncat(path, raw[cur].svc.name, sizeof path - strlen(path) - 1);
        strncat(path, " -> ", sizeof path - strlen(path) - 1);
        for (size_t d = 0; d < raw[cur].dep_count; d++)
            if (!placed[dep_idx[cur][d]] && seen[dep_idx[cur][d]] >= 0) {
                cur = (size_t)dep_idx[cur][d];
                break;
            }
    } while (cur != start);
    strncat(path, raw[start].svc.name, sizeof path - strlen(path) - 1);
    return s_fail(err, errlen, -EINVAL, "services: dependency cycle: %s (read as: depends on)",
                  path);
}

int sup_mesh_config_load(sup_mesh_config_t *cfg, const char *path, char *err, size_t errlen)
{
    assert(cfg && path && err);
    memset(cfg, 0, sizeof *cfg);
    zconfig_t *root = vz_config_read(path, 0, err, errlen);
    if (!root)
        return -ENOENT;
    char abs[PATH_MAX];
    if (!realpath(path, abs)) {
        zconfig_destroy(&root);
        return s_fail(err, errlen, -ENOENT, "%s: %s", path, strerror(errno));
    }
    *strrchr(abs, '/') = '\0';
    int rc = vz_strlcpy(cfg->config_dir, *abs ? abs : "/", sizeof cfg->config_dir) < 0
                 ? s_fail(err, errlen, -EINVAL, "%s: path too long", path)
                 : 0;
    if (rc == 0)
        rc = s_load_supervisor(cfg, root, err, errlen);
    if (rc == 0)
        rc = s_load_ports(cfg, root, err, errlen);
    s_raw_t *raw = calloc(SUP_MESH_MAX_SERVICES, sizeof *raw);
    assert(raw);
    size_t count = 0;
    zconfig_t *services = zconfig_locate(root, "services");
    for (zconfig_t *c = services ? zconfig_child(services) : NULL; rc == 0 && c;
         c = zconfig_next(c)) {
        if (count == SUP_MESH_MAX_SERVICES)
            rc = s_fail(err, errlen, -EINVAL, "services: more than %d", SUP_MESH_MAX_SERVICES);
        else {
            for (size_t j = 0; j < count; j++)
                if (strcmp(raw[j].svc.name, zconfig_name(c)) == 0)
                    rc =
                        s_fail(err, errlen, -EINVAL, "services/%s: defined twice", zconfig_name(c));
            if (rc == 0)
                rc = s_load_service(cfg, &raw[count++], c, err, errlen);
        }
    }
    for (zconfig_t *c = zconfig_child(root); rc == 0 && c; c = zconfig_next(c)) {
        const char *n = zconfig_name(c);
        if (strcmp(n, "supervisor") && strcmp(n, "ports") && strcmp(n, "services"))
            rc = s_fail(err, errlen, -EINVAL, "%s: unknown section", n);
    }
    if (rc == 0 && count == 0)
        rc = s_fail(err, errlen, -EINVAL, "services: none defined");
    if (rc == 0)
        rc = s_order(cfg, raw, count, err, errlen);
    free(raw);
    zconfig_destroy(&root);
    //  Dry-run every template so a bad ${...} is reported now, not at spawn.
    for (size_t i = 0; rc == 0 && i < cfg->service_count; i++) {
        sup_mesh_service_t *svc = &cfg->services[i];
        char out[VZ_PATH_MAX], why[128];
        if (sup_mesh_config_expand(cfg, svc->command, out, sizeof out, why, sizeof why) < 0)
            rc = s_fail(err, errlen, -EINVAL, "services/%s/command: %s", svc->name, why);
        for (size_t e = 0; rc == 0 && e < svc->env_count; e++)
            if (sup_mesh_config_expand(cfg, svc->env[e].value, out, sizeof out, why, sizeof why) <
                0)
                rc = s_fail(err, errlen, -EINVAL, "services/%s/env/%s: %s", svc->name,
                            svc->env[e].key, why);
        if (rc == 0 &&
            sup_mesh_config_expand(cfg, svc->state_dirs, out, sizeof out, why, sizeof why) < 0)
            rc = s_fail(err, errlen, -EINVAL, "services/%s/state_dirs: %s", svc->name, why);
        if (rc == 0 &&
            sup_mesh_config_expand(cfg, svc->secret_files, out, sizeof out, why, sizeof why) < 0)
            rc = s_fail(err, errlen, -EINVAL, "services/%s/secret_files: %s", svc->name, why);
    }
    return rc;
}

//  Absolute form of path (relative to the current directory); the file
//  need not exist.
static int s_absolute(const char *path, char *out, size_t n)
{
    if (path[0] == '/')
        return vz_strlcpy(out, path, n);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return -errno;
    int len = snprintf(out, n, "%s/%s", cwd, path);
    return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

//  True, with the directory in out, when path or a directory above it is
//  not searchable by other users (no o+x).
static bool s_closed_dir(const char *path, char *out, size_t n)
{
    char buf[VZ_PATH_MAX];
    vz_strlcpy(buf, path, sizeof buf);
    for (char *end = buf + strlen(buf); end > buf; end = strrchr(buf, '/')) {
        *end = '\0';
        struct stat st;
        const char *dir = *buf ? buf : "/";
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH)) {
            vz_strlcpy(out, dir, n);
            return true;
        }
    }
    return false;
}

int sup_mesh_config_resolve(sup_mesh_config_t *cfg, const char *exe_dir, char *err, size_t errlen)
{
    char buf[VZ_PATH_MAX];
    if (s_absolute(cfg->state_dir, buf, sizeof buf) < 0)
        return s_fail(err, errlen, -ENAMETOOLONG, "supervisor/state_dir: path too long");
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return s_fail(err, errlen, -errno, "unable to create %s: %s", buf, strerror(errno));
    char real[PATH_MAX];
    if (!realpath(buf, real) || vz_strlcpy(cfg->state_dir, real, sizeof cfg->state_dir) < 0)
        return s_fail(err, errlen, -EINVAL, "supervisor/state_dir %s: unusable", buf);
    int rc;
    if (*cfg->control)
        rc = s_absolute(cfg->control, buf, sizeof buf);
    else {
        int len = snprintf(buf, sizeof buf, "%s/vzctl.sock", cfg->state_dir);
        rc = len < 0 || (size_t)len >= sizeof buf ? -ENAMETOOLONG : 0;
    }
    //  sun_path holds 108 bytes including the NUL.
    if (rc < 0 || strlen(buf) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return s_fail(err, errlen, -ENAMETOOLONG,
                      "supervisor/control: socket path %s longer than 107 bytes", buf);
    vz_strlcpy(cfg->control, buf, sizeof cfg->control);
    if (!*cfg->bin_dir)
        rc = vz_strlcpy(cfg->bin_dir, exe_dir, sizeof cfg->bin_dir);
    else {
        rc = s_absolute(cfg->bin_dir, buf, sizeof buf);
        if (rc == 0)
            vz_strlcpy(cfg->bin_dir, buf, sizeof cfg->bin_dir);
    }
    if (rc < 0)
        return s_fail(err, errlen, rc, "supervisor/bin_dir: path too long");
    bool root = sup_iso_can_switch();
    //  "auto" picks uid only where it works: a checkout under /root (0700)
    //  would leave every service unable to exec, so fd it is, said aloud.
    const char *paths[] = {cfg->bin_dir, cfg->config_dir, cfg->state_dir};
    cfg->closed_dir[0] = '\0';
    for (size_t i = 0; i < 3 && root && cfg->isolation == SUP_ISOLATION_AUTO; i++)
        if (s_closed_dir(paths[i], cfg->closed_dir, sizeof cfg->closed_dir))
            cfg->isolation = SUP_ISOLATION_FD;
    if (cfg->isolation == SUP_ISOLATION_AUTO)
        cfg->isolation = root ? SUP_ISOLATION_UID : SUP_ISOLATION_FD;
    if (cfg->isolation == SUP_ISOLATION_UID && !root)
        return s_fail(err, errlen, -EPERM,
                      "supervisor/isolation=uid: only root (with CAP_SETUID, CAP_SETGID, "
                      "CAP_CHOWN and CAP_DAC_OVERRIDE) can run services under their own uids "
                      "(set fd, or auto to pick it)");
    return 0;
}

int sup_mesh_config_alloc_ports(sup_mesh_config_t *cfg)
{
    for (size_t i = 0; i < cfg->port_count; i++) {
        sup_mesh_port_t *p = &cfg->ports[i];
        if (!p->is_auto || p->port)
            continue;
        //  Ports are drawn at random (vz_ports_free); keep asking until this
        //  one differs from the ones already handed out.
        for (int attempt = 0; attempt < 16 && !p->port; attempt++) {
            int port = vz_ports_free();
            if (port < 0)
                return port;
            bool dup = false;
            for (size_t j = 0; j < cfg->port_count; j++)
                dup = dup || (j != i && cfg->ports[j].port == port);
            if (!dup)
                p->port = port;
        }
        if (!p->port)
            return -EADDRINUSE;
    }
    return 0;
}

int sup_mesh_config_port(const sup_mesh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->port_count; i++)
        if (strcmp(cfg->ports[i].name, name) == 0)
            return cfg->ports[i].port;
    return -ENOENT;
}

int sup_mesh_config_find(const sup_mesh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->service_count; i++)
        if (strcmp(cfg->services[i].name, name) == 0)
            return (int)i;
    return -ENOENT;
}

int sup_mesh_config_expand(const sup_mesh_config_t *cfg, const char *tmpl, char *out, size_t n,
                           char *err, size_t errlen)
{
    assert(n > 0);
    size_t len = 0;
    for (const char *p = tmpl; *p;) {
        char value[VZ_PATH_MAX];
        const char *piece = NULL;
        size_t piece_len = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p, '}');
            if (!end)
                return s_fail(err, errlen, -EINVAL, "unterminated \"${\"");
            char ref[VZ_NAME_MAX + 8];
            size_t rlen = (size_t)(end - p - 2);
            if (rlen >= sizeof ref)
                return s_fail(err, errlen, -EINVAL, "reference too long");
            memcpy(ref, p + 2, rlen);
            ref[rlen] = '\0';
            if (strcmp(ref, "config_dir") == 0)
                piece = cfg->config_dir;
            else if (strcmp(ref, "state_dir") == 0)
                piece = cfg->state_dir;
            else if (strncmp(ref, "port.", 5) == 0 && sup_mesh_config_port(cfg, ref + 5) >= 0) {
                snprintf(value, sizeof value, "%d", sup_mesh_config_port(cfg, ref + 5));
                piece = value;
            } else
                return s_fail(err, errlen, -EINVAL,
                              "unknown reference ${%s} (known: port.NAME of ports, config_dir, "
                              "state_dir)",
                              ref);
            piece_len = strlen(piece);
            p = end + 1;
        } else
            piece = p++;
        if (len + piece_len >= n)
            return s_fail(err, errlen, -ENAMETOOLONG, "value longer than %zu bytes", n - 1);
        memcpy(out + len, piece, piece_len);
        len += piece_len;
    }
    out[len] = '\0';
    return 0;
}
