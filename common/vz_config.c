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

#define S_SHOW_MAX 48 //  longest value quoted back in an error message

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

//  Index of the len-byte word in the space-separated list, or -1.
static int s_choice(const char *choices, const char *word, size_t len)
{
    int index = 0;
    for (const char *c = choices; *c; index++) {
        c += strspn(c, " ");
        size_t n = strcspn(c, " ");
        if (n == 0)
            break;
        if (n == len && strncasecmp(c, word, n) == 0)
            return index;
        c += n;
    }
    return -1;
}

static int s_parse_enum(const vz_cfg_item_t *item, const s_value_t *value, void *field, char *err,
                        size_t errlen)
{
    int index = s_choice(item->choices, value->text, strlen(value->text));
    if (index < 0) {
        char list[256];
        size_t o = 0;
        //  "open closed" reads better as "open, closed" in a sentence.
        for (const char *c = item->choices; *c && o + 3 < sizeof list; c++)
            o += (size_t)snprintf(list + o, sizeof list - o, *c == ' ' ? ", " : "%c", *c);
        return s_fail(err, errlen, item, value, "expected one of %s", list);
    }
    *(int *)field = index;
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
    case VZ_CFG_ENUM:
        assert(item->size == sizeof(int) && item->choices && *item->choices);
        return s_parse_enum(item, value, field, err, errlen);
    }
    assert(!"unknown vz_cfg_type_t");
    return -EINVAL;
}

//  ---------------------------------------------------------------------
//  The ZPL reader. One line at a time, with the parent of each depth kept
//  in a stack, so a line is placed without walking the tree; every bound
//  is checked before the line is used. Errors carry name:line.

typedef struct {
    const char *name; //  file path (or caller's name) for messages
    size_t line;      //  current line, 1-based
    char *err;        //  where the message goes (may be NULL)
    size_t errlen;    //  its size
} s_zpl_t;

static zconfig_t *s_zpl_fail(s_zpl_t *z, zconfig_t **root_p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static zconfig_t *s_zpl_fail(s_zpl_t *z, zconfig_t **root_p, const char *fmt, ...)
{
    if (z->err && z->errlen) {
        int len = snprintf(z->err, z->errlen, "%s:%zu: not valid ZPL: ", z->name, z->line);
        if (len >= 0 && (size_t)len < z->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(z->err + len, z->errlen - (size_t)len, fmt, ap);
            va_end(ap);
        }
    }
    zconfig_destroy(root_p);
    return NULL;
}

//  The name characters of CZMQ's zconfig, so files it read still read.
static bool s_zpl_name_char(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("$-_@.&+/", c));
}

//  After a name or a quoted value only blanks or a comment may follow.
static bool s_zpl_rest_ok(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p == end || *p == '#';
}

//  The value of "name = value" from p (just after '='), into a new string.
static char *s_zpl_value(s_zpl_t *z, const char *p, const char *end, const char **why)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && (*p == '"' || *p == '\'')) {
        const char *close = memchr(p + 1, *p, (size_t)(end - p - 1));
        if (!close) {
            *why = *p == '"' ? "missing closing \"" : "missing closing '";
            return NULL;
        }
        if (!s_zpl_rest_ok(close + 1, end)) {
            *why = "unexpected text after the quoted value";
            return NULL;
        }
        return strndup(p + 1, (size_t)(close - p - 1));
    }
    //  Unquoted: up to a comment, trailing blanks dropped.
    const char *stop = memchr(p, '#', (size_t)(end - p));
    stop = stop ? stop : end;
    while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    return strndup(p, (size_t)(stop - p));
}

zconfig_t *vz_config_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    assert(text || len == 0);
    s_zpl_t z = {name ? name : "config", 0, err, errlen};
    zconfig_t *root = zconfig_new("root", NULL);
    assert(root);
    zconfig_t *parents[VZ_CONFIG_DEPTH_MAX + 1] = {root};
    size_t depth = 0, nodes = 0;
    for (const char *line = text, *stop = text + len; line < stop;) {
        z.line++;
        const char *nl = memchr(line, '\n', (size_t)(stop - line));
        const char *end = nl ? nl : stop;
        const char *next = nl ? nl + 1 : stop;
        if ((size_t)(end - line) > VZ_CONFIG_LINE_MAX)
            return s_zpl_fail(&z, &root, "line longer than %d bytes", VZ_CONFIG_LINE_MAX);
        if (memchr(line, '\0', (size_t)(end - line)))
            return s_zpl_fail(&z, &root, "NUL byte");
        while (end > line && isspace((unsigned char)end[-1]))
            end--;
        const char *p = line;
        while (p < end && *p == ' ')
            p++;
        //  Blank and comment lines carry nothing, whatever their indentation.
        if (p == end || *p == '#') {
            line = next;
            continue;
        }
        if (*p == '\t')
            return s_zpl_fail(&z, &root, "tab in indentation (indent with 4 spaces)");
        size_t spaces = (size_t)(p - line);
        if (spaces % 4)
            return s_zpl_fail(&z, &root, "indent 4 spaces at once (found %zu)", spaces);
        size_t level = spaces / 4;
        if (level > depth)
            return s_zpl_fail(&z, &root, "indented deeper than the line before allows");
        if (level >= VZ_CONFIG_DEPTH_MAX)
            return s_zpl_fail(&z, &root, "nested deeper than %d levels", VZ_CONFIG_DEPTH_MAX);
        const char *n = p;
        while (p < end && s_zpl_name_char(*p))
            p++;
        if (p == n)
            return s_zpl_fail(&z, &root, "expected a name, found '%c'", *n);
        if (*n == '/' || p[-1] == '/')
            return s_zpl_fail(&z, &root, "'/' not valid at the start or end of a name");
        if (++nodes > VZ_CONFIG_NODES_MAX)
            return s_zpl_fail(&z, &root, "more than %d names", VZ_CONFIG_NODES_MAX);
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        char *value = NULL;
        const char *why = "unexpected text after the name";
        if (q < end && *q == '=')
            value = s_zpl_value(&z, q + 1, end, &why);
        else if (s_zpl_rest_ok(q, end))
            value = strdup("");
        if (!value)
            return s_zpl_fail(&z, &root, "%s", why);
        char *key = strndup(n, (size_t)(p - n));
        assert(key);
        zconfig_t *node = zconfig_new(key, parents[level]);
        assert(node);
        zconfig_set_value(node, "%s", value);
        free(key);
        free(value);
        parents[level + 1] = node;
        depth = level + 1;
        line = next;
    }
    return root;
}

zconfig_t *vz_config_read(const char *path, size_t max_bytes, char *err, size_t errlen)
{
    assert(path);
    if (err && errlen)
        err[0] = '\0';
    size_t max = max_bytes ? max_bytes : VZ_CONFIG_FILE_MAX;
    FILE *f = fopen(path, "rb");
    struct stat st;
    int e = 0;
    if (!f)
        e = errno;
    else if (fstat(fileno(f), &st) != 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    if (e) {
        if (f)
            fclose(f);
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
        return NULL;
    }
    //  Read one byte past the bound: that is how "too large" is seen
    //  without trusting st_size (the file may grow while we read).
    char *text = malloc(max + 1);
    assert(text);
    size_t len = fread(text, 1, max + 1, f);
    bool failed = ferror(f);
    fclose(f);
    zconfig_t *root = NULL;
    if (failed) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: I/O error", path);
    } else if (len > max) {
        if (err && errlen)
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
    } else
        root = vz_config_parse(text, len, path, err, errlen);
    free(text);
    return root;
}

int vz_config_load(void *cfg, const vz_cfg_item_t *items, size_t count, const char *file, char *err,
                   size_t errlen)
{
    assert(cfg && (items || count == 0));
    if (err && errlen)
        err[0] = '\0';
    zconfig_t *root = NULL;
    if (file && *file) {
        char why[VZ_PATH_MAX + 128];
        root = vz_config_read(file, 0, why, sizeof why);
        if (!root) {
            if (err && errlen)
                snprintf(err, errlen, "unable to read config file %s", why);
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
        fprintf(out, "%-*s  %-*s  %-*s  %s", wenv, items[i].env, wzpl,
                items[i].zpl ? items[i].zpl : "-", wdef, def, items[i].help ? items[i].help : "");
        if (items[i].type == VZ_CFG_ENUM) {
            fputs(" [", out);
            for (const char *c = items[i].choices; *c; c++)
                fputc(*c == ' ' ? '|' : *c, out);
            fputc(']', out);
        }
        fputc('\n', out);
    }
}
