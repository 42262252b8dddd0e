/*  weights - the broker's routing weights file
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "weights.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "vz_common.h"
#include "vz_config.h"
#include "vz_worker.h"

//  One service's section into w. 0, or -EINVAL with err.
static int s_parse_service(zconfig_t *node, broker_weights_t *w, char *err, size_t errlen)
{
    const char *name = zconfig_name(node);
    if (!policy_name_valid(name)) {
        snprintf(err, errlen, "bad service name \"%.63s\"", name);
        return -EINVAL;
    }
    vz_strlcpy(w->service, name, sizeof w->service);
    const char *sticky = zconfig_get(node, "sticky", "");
    if (*sticky && (strlen(sticky) >= sizeof w->sticky || !policy_name_valid(sticky))) {
        snprintf(err, errlen, "%s: bad sticky key \"%.63s\"", name, sticky);
        return -EINVAL;
    }
    vz_strlcpy(w->sticky, sticky, sizeof w->sticky);
    const char *text = zconfig_get(node, "versions", "");
    long total = 0;
    for (const char *p = text + strspn(text, " \t,"); *p; p += strspn(p, " \t,")) {
        size_t len = strcspn(p, " \t,");
        char word[VZ_VERSION_MAX + 16];
        if (len >= sizeof word) {
            snprintf(err, errlen, "%s: entry too long", name);
            return -EINVAL;
        }
        memcpy(word, p, len);
        word[len] = '\0';
        p += len;
        char *eq = strchr(word, '=');
        char *end = NULL;
        long weight = eq ? strtol(eq + 1, &end, 10) : -1;
        if (eq)
            *eq = '\0';
        if (!eq || !vz_version_valid(word) || end == eq + 1 || *end || weight < 0 ||
            weight > WEIGHTS_MAX) {
            snprintf(err, errlen, "%s: \"%.40s\" is not VERSION=WEIGHT (0..%d)", name, word,
                     WEIGHTS_MAX);
            return -EINVAL;
        }
        for (size_t k = 0; k < w->count; k++)
            if (strcmp(w->version[k], word) == 0) {
                snprintf(err, errlen, "%s: version %s listed twice", name, word);
                return -EINVAL;
            }
        if (w->count == BROKER_VERSIONS_MAX) {
            snprintf(err, errlen, "%s: more than %d versions", name, BROKER_VERSIONS_MAX);
            return -EINVAL;
        }
        vz_strlcpy(w->version[w->count], word, VZ_VERSION_MAX);
        w->weight[w->count++] = (int)weight;
        total += weight;
    }
    if (total == 0) {
        snprintf(err, errlen, "%s: versions must give some version a weight above 0", name);
        return -EINVAL;
    }
    return 0;
}

int weights_load(const char *path, broker_weights_t **list_p, size_t *n_p, char *err, size_t errlen)
{
    assert(path && list_p && n_p);
    *list_p = NULL;
    *n_p = 0;
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return -ENOENT;
    char why[256];
    zconfig_t *root = vz_config_read(path, 0, why, sizeof why);
    if (!root) {
        snprintf(err, errlen, "%s", why);
        return -EINVAL;
    }
    broker_weights_t *list = calloc(WEIGHTS_SERVICES_MAX, sizeof *list);
    assert(list);
    size_t n = 0;
    int rc = 0;
    for (zconfig_t *node = zconfig_child(root); node && rc == 0; node = zconfig_next(node)) {
        if (n == WEIGHTS_SERVICES_MAX) {
            snprintf(err, errlen, "more than %d services", WEIGHTS_SERVICES_MAX);
            rc = -EINVAL;
            break;
        }
        for (size_t k = 0; k < n; k++)
            if (strcmp(list[k].service, zconfig_name(node)) == 0) {
                snprintf(err, errlen, "service %.63s listed twice", zconfig_name(node));
                rc = -EINVAL;
            }
        if (rc == 0)
            rc = s_parse_service(node, &list[n++], err, errlen);
    }
    zconfig_destroy(&root);
    if (rc < 0) {
        free(list);
        return rc;
    }
    *list_p = list;
    *n_p = n;
    return 0;
}

bool weights_changed(const char *path, weights_stamp_t *stamp)
{
    assert(path && stamp);
    struct stat st;
    weights_stamp_t now = {0};
    if (stat(path, &st) == 0)
        now = (weights_stamp_t){.exists = true,
                                .dev = (uint64_t)st.st_dev,
                                .ino = (uint64_t)st.st_ino,
                                .size = (int64_t)st.st_size,
                                .mtime_ns =
                                    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
    bool changed = memcmp(&now, stamp, sizeof now) != 0;
    *stamp = now;
    return changed;
}
