/*  vz_config - table-driven configuration from environment and a ZPL file
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Each item's text comes from the first source that has it: environment,
 *  then file, then the table default. The text is validated before anything
 *  is stored, so a bad value never half-fills a field, and the error names
 *  where the value came from so the operator knows what to fix.
 */
#include "vz_config.h"
#include "vz_common.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_SHOW_MAX 48            //  longest value quoted back in an error message
#define S_FILE_MAX (1024 * 1024) //  largest config file read

typedef struct {
    const char *text;   //  value to parse
    const char *origin; //  "" for environment or default, else " (file F, key K)"
} s_value_t;

static const char *const s_true_words[] = {"1", "true", "yes", "on"};
static const char *const s_false_words[] = {"0", "false", "no", "off"};

//  Quote a value for an error message: cut long values and replace
//  non-printable bytes, so the message is one clean line.
static void s_show(char *out, size_t n, const char *text)
{
    size_t o = 0;
    for (size_t i = 0; text[i] && o + 4 < n; i++) {
        if (i == S_SHOW_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)text[i];
        out[o++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    out[o] = '\0';
}

static int s_fail(char *err, size_t errlen, const vz_cfg_item_t *item, const s_value_t *value,
                  const char *fmt, ...)
{
    if (!err || errlen == 0)
        return -EINVAL;
    char shown[S_SHOW_MAX + 8];
    s_show(shown, sizeof shown, value->text);
    int len = snprintf(err, errlen, "%s=\"%s\"%s: ", item->env, shown, value->origin);
    if (len >= 0 && (size_t)len < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + len, errlen - (size_t)len, fmt, ap);
        va_end(ap);
    }
    size_t used = strlen(err);
    if (item->help && used + 4 < errlen)
        snprintf(err + used, errlen - used, " (%s)", item->help);
    return -EINVAL;
}

//  Parse a decimal long; the whole text must be the number.
static bool s_parse_long(const char *text, long *out, const char **rest)
{
    if (!isdigit((unsigned char)text[0]) &&
        !((text[0] == '-' || text[0] == '+') && isdigit((unsigned char)text[1])))
        return false;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (errno == ERANGE)
        return false;
    *out = v;
    if (rest)
        *rest = end;
    return rest ? true : *end == '\0';
}

static int s_parse_int(const vz_cfg_item_t *item, const s_value_t *value, void *field, char *err,
                       size_t errlen)
{
    long v;
    if (!s_parse_long(value->text, &v, NULL) || v < item->min || v > item->max)
        return s_fail(err, errlen, item, value, "expected an integer in %ld..%ld", item->min,
                      item->max);
    *(int *)field = (int)v;
    return 0;
}

static int s_parse_ms(const vz_cfg_item_t *item, const s_value_t *value, void *field, char *err,
                      size_t errlen)
{
    long v;
    const char *unit = NULL;
    long scale = 0;
    if (value->text[0] != '-' && s_parse_long(value->text, &v, &unit)) {
        if (*unit == '\0' || strcmp(unit, "ms") == 0)
            scale = 1;
        else if (strcmp(unit, "s") == 0)
            scale = 1000;
        else if (strcmp(unit, "m") == 0)
            scale = 60000;
        else if (strcmp(unit, "h") == 0)
            scale = 3600000;
    }
    if (scale == 0 || v > LONG_MAX / scale || v * scale < item->min || v * scale > item->max)
        return s_fail(err, errlen, item, value,
                      "expected a duration in %ld..%ld ms, as 250, 250ms, 2s or 1m", item->min,
                      item->max);
    *(int *)field = (int)(v * scale);
    return 0;
}

static int s_parse_bool(const vz_cfg_item_t *item, const s_value_t *value, void *field, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < sizeof s_true_words / sizeof s_true_words[0]; i++) {
        if (strcasecmp(value->text, s_true_words[i]) == 0) {
            *(bool *)field = true;
            return 0;
        }
        if (strcasecmp(value->text, s_false_words[i]) == 0) {
            *(bool *)field = false;
            return 0;
        }
    }
    return s_fail(err, errlen, item, value, "expected 1/0, true/false, yes/no or on/off");
}

static bool s_host_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_' || c == '*';
}

//  One endpoint: tcp://host:port (host a name, an IPv4 address, [IPv6] or
//  *, port 0..65535 or *), ipc://path or inproc://name.
static bool s_endpoint_ok(const char *ep, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (isspace((unsigned char)ep[i]) || (unsigned char)ep[i] < 0x20)
            return false;
    if (len > 6 && strncmp(ep, "ipc://", 6) == 0)
        return true;
    if (len > 9 && strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (len <= 6 || strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6;
    const char *end = ep + len;
    const char *colon = NULL;
    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close || close == host + 1 || close + 1 >= end || close[1] != ':')
            return false;
        colon = close + 1;
    } else {
        for (const char *c = host; c < end; c++)
            if (*c == ':')
                colon = c;
        if (!colon || colon == host)
            return false;
        for (const char *c = host; c < colon; c++)
            if (!s_host_char((unsigned char)*c))
                return false;
    }
    const char *port = colon + 1;
    size_t plen = (size_t)(end - port);
    if (plen == 1 && *port == '*')
        return true;
    if (plen == 0 || plen > 5)
        return false;
    long v = 0;
    for (size_t i = 0; i < plen; i++) {
        if (!isdigit((unsigned char)port[i]))
            return false;
        v = v * 10 + (port[i] - '0');
    }
    return v <= 65535;
}

static int s_parse_endpoint(const vz_cfg_item_t *item, const s_value_t *value, void *field,
                            char *err, size_t errlen)
{
    const char *text = value->text;
    size_t len = strlen(text);
    //  An empty list is only acceptable where the default is empty too,
    //  which is how a table marks an endpoint setting as optional.
    bool ok = len > 0 || (item->def && item->def[0] == '\0');
    for (const char *start = text; ok && *start;) {
        const char *comma = strchr(start, ',');
        size_t elen = comma ? (size_t)(comma - start) : strlen(start);
        ok = s_endpoint_ok(start, elen);
        if (comma && comma[1] == '\0')
            ok = false;
        start += elen + (comma ? 1 : 0);
    }
    if (!ok)
        return s_fail(err, errlen, item, value,
                      "expected a comma-separated list of tcp://host:port, ipc://path or "
                      "inproc://name");
    if (len >= item->size)
        return s_fail(err, errlen, item, value, "expected at most %zu bytes, got %zu",
                      item->size - 1, len);
    memcpy(field, text, len + 1);
    return 0;
}

static int s_parse_str(const vz_cfg_item_t *item, const s_value_t *value, void *field, char *err,
                       size_t errlen)
{
    size_t len = strlen(value->text);
    if (len >= item->size) {
        //  Do not echo the value: a too-long secret should not reach stderr.
        s_value_t hidden = {"...", value->origin};
        return s_fail(err, errlen, item, &hidden, "expected at most %zu bytes, got %zu",
                      item->size - 1, len);
    }
    memcpy(field, value->text, len + 1);
    return 0;
}

static int s_apply(void *cfg, const vz_cfg_item_t *item, const s_value_t *value, char *err,
                   size_t errlen)
{
    void *field = (char *)cfg + item->offset;
    switch (item->type) {
    case VZ_CFG_STR:
        return s_parse_str(item, value, field, err, errlen);
    case VZ_CFG_INT:
        assert(item->size == sizeof(int) && item->min <= item->max);
        return s_parse_int(item, value, field, err, errlen);
    case VZ_CFG_BOOL:
        assert(item->size == sizeof(bool));
        return s_parse_bool(item, value, field, err, errlen);
    case VZ_CFG_MS:
        assert(item->size == sizeof(int) && item->max <= INT_MAX && item->min <= item->max);
        return s_parse_ms(item, value, field, err, errlen);
    case VZ_CFG_ENDPOINT:
        return s_parse_endpoint(item, value, field, err, errlen);
    }
    assert(!"unknown vz_cfg_type_t");
    return -EINVAL;
}

//  Whole file as a string, or NULL when unreadable or over S_FILE_MAX.
static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *text = malloc(S_FILE_MAX + 1);
    assert(text);
    size_t len = fread(text, 1, S_FILE_MAX + 1, f);
    fclose(f);
    if (len > S_FILE_MAX) {
        free(text);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

int vz_config_load(void *cfg, const vz_cfg_item_t *items, size_t count, const char *file, char *err,
                   size_t errlen)
{
    assert(cfg && (items || count == 0));
    if (err && errlen)
        err[0] = '\0';
    zconfig_t *root = NULL;
    if (file && *file) {
        struct stat st;
        int e = 0;
        if (access(file, R_OK) != 0 || stat(file, &st) != 0)
            e = errno;
        else if (!S_ISREG(st.st_mode))
            e = EISDIR;
        if (e) {
            if (err && errlen)
                snprintf(err, errlen, "unable to read config file %s: %s", file, strerror(e));
            return -ENOENT;
        }
        //  Read it ourselves: bounded, and CZMQ's zconfig_load leaks its
        //  zfile_t when the text does not parse.
        char *text = s_slurp(file);
        root = text ? zconfig_str_load(text) : NULL;
        free(text);
        if (!root) {
            if (err && errlen)
                snprintf(err, errlen,
                         "unable to parse config file %s: not valid ZPL (or over 1 MiB)", file);
            return -ENOENT;
        }
    }
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const vz_cfg_item_t *item = &items[i];
        assert(item->env && item->size > 0);
        char origin[VZ_PATH_MAX + 96] = "";
        s_value_t value = {getenv(item->env), ""};
        if (!value.text && root && item->zpl) {
            zconfig_t *node = zconfig_locate(root, item->zpl);
            //  A section (children, no value of its own) is not a value.
            if (node && zconfig_value(node) &&
                !(zconfig_child(node) && zconfig_value(node)[0] == '\0')) {
                value.text = zconfig_value(node);
                snprintf(origin, sizeof origin, " (file %s, key %s)", file, item->zpl);
                value.origin = origin;
            }
        }
        if (!value.text)
            value.text = item->def;
        if (!value.text || (!item->def && value.text[0] == '\0')) {
            if (err && errlen)
                snprintf(err, errlen, "%s is required but not set: expected %s%s%s", item->env,
                         item->help ? item->help : "a value",
                         item->zpl ? "; set it in the environment or as " : "",
                         item->zpl ? item->zpl : "");
            rc = -EINVAL;
            break;
        }
        rc = s_apply(cfg, item, &value, err, errlen);
    }
    zconfig_destroy(&root);
    return rc;
}

void vz_config_usage(FILE *out, const vz_cfg_item_t *items, size_t count)
{
    assert(out && (items || count == 0));
    int wenv = (int)strlen("VARIABLE"), wzpl = (int)strlen("FILE KEY"),
        wdef = (int)strlen("DEFAULT");
    for (size_t i = 0; i < count; i++) {
        int len = (int)strlen(items[i].env);
        wenv = len > wenv ? len : wenv;
        len = items[i].zpl ? (int)strlen(items[i].zpl) : 1;
        wzpl = len > wzpl ? len : wzpl;
        len = items[i].def ? (int)strlen(items[i].def) + 2 : (int)strlen("(required)");
        wdef = len > wdef ? len : wdef;
    }
    fprintf(out, "%-*s  %-*s  %-*s  %s\n", wenv, "VARIABLE", wzpl, "FILE KEY", wdef, "DEFAULT",
            "DESCRIPTION");
    for (size_t i = 0; i < count; i++) {
        char def[VZ_PATH_MAX + 3];
        if (items[i].def)
            snprintf(def, sizeof def, "\"%s\"", items[i].def);
        else
            vz_strlcpy(def, "(required)", sizeof def);
        fprintf(out, "%-*s  %-*s  %-*s  %s\n", wenv, items[i].env, wzpl,
                items[i].zpl ? items[i].zpl : "-", wdef, def, items[i].help ? items[i].help : "");
    }
}
