/*  nt_template - message templates: {{variable}} with HTML escaping
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "nt_template.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vz_common.h"

typedef struct {
    char name[NT_TEMPLATE_NAME_MAX]; //  template name
    char *subject;                   //  subject text (trailing newline removed)
    char *text;                      //  text body or NULL
    char *html;                      //  HTML body or NULL
} s_template_t;

struct nt_templates_t {
    s_template_t *items; //  loaded templates
    size_t count;        //  entries in items
};

static bool s_name_ok(const char *name, size_t len, const char *extra)
{
    if (len == 0 || len >= NT_TEMPLATE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return true;
}

//  The whole file, or NULL (absent: *absent set; too big or unreadable).
static char *s_read(const char *path, bool *absent)
{
    *absent = false;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *absent = errno == ENOENT;
        return NULL;
    }
    char *data = malloc(NT_TEMPLATE_FILE_MAX + 1);
    size_t n = data ? fread(data, 1, NT_TEMPLATE_FILE_MAX + 1, f) : 0;
    bool bad = !data || ferror(f) || n > NT_TEMPLATE_FILE_MAX;
    fclose(f);
    if (bad) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    return data;
}

// --------------------------------------------------------------------------
//  Expansion

static void s_escape(nt_buf_t *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        switch (*p) {
        case '&':
            nt_buf_adds(out, "&amp;");
            break;
        case '<':
            nt_buf_adds(out, "&lt;");
            break;
        case '>':
            nt_buf_adds(out, "&gt;");
            break;
        case '"':
            nt_buf_adds(out, "&quot;");
            break;
        case '\'':
            nt_buf_adds(out, "&#39;");
            break;
        default:
            nt_buf_add(out, p, 1);
        }
    }
}

int nt_template_expand(const char *text, bool html, nt_var_fn *get, void *arg, nt_buf_t *out,
                       char *missing, size_t n)
{
    const char *p = text;
    while (*p) {
        const char *open = strstr(p, "{{");
        if (!open) {
            nt_buf_adds(out, p);
            break;
        }
        nt_buf_add(out, p, (size_t)(open - p));
        if (strncmp(open, "{{{{", 4) == 0) {
            nt_buf_add(out, "{{", 2);
            p = open + 4;
            continue;
        }
        //  {{{name}}}: the value goes in unescaped (HTML the caller rendered).
        bool raw = open[2] == '{';
        const char *name = open + (raw ? 3 : 2);
        while (*name == ' ')
            name++;
        const char *close = strstr(name, raw ? "}}}" : "}}");
        if (!close)
            return -EINVAL;
        size_t len = (size_t)(close - name);
        while (len > 0 && name[len - 1] == ' ')
            len--;
        if (!s_name_ok(name, len, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_."))
            return -EINVAL;
        char key[NT_TEMPLATE_NAME_MAX];
        memcpy(key, name, len);
        key[len] = '\0';
        const char *value = get ? get(arg, key) : NULL;
        if (!value) {
            vz_strlcpy(missing, key, n);
            return -ESRCH;
        }
        if (html && !raw)
            s_escape(out, value);
        else
            nt_buf_adds(out, value);
        p = close + (raw ? 3 : 2);
    }
    return 0;
}

//  A getter that knows every name, to check a file's placeholders at load.
static const char *s_any(void *arg, const char *name)
{
    return "";
}

// --------------------------------------------------------------------------
//  Loading

static void s_template_free(s_template_t *t)
{
    free(t->subject);
    free(t->text);
    free(t->html);
}

void nt_templates_destroy(nt_templates_t **self_p)
{
    nt_templates_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        s_template_free(&self->items[i]);
    free(self->items);
    free(self);
    *self_p = NULL;
}

//  Load dir/name.{subject,txt,html} into t. 0 or -1 with err set.
static int s_load_one(const char *dir, const char *name, s_template_t *t, char *err, size_t errlen)
{
    static const char *const exts[] = {"subject", "txt", "html"};
    char *parts[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < 3; i++) {
        char path[VZ_PATH_MAX + 128];
        snprintf(path, sizeof path, "%s/%s.%s", dir, name, exts[i]);
        bool absent = false;
        parts[i] = s_read(path, &absent);
        if (!parts[i] && !absent) {
            snprintf(err, errlen, "%s: unreadable or over %d bytes", path, NT_TEMPLATE_FILE_MAX);
            goto fail;
        }
        nt_buf_t check = {0};
        char missing[NT_TEMPLATE_NAME_MAX];
        int rc = parts[i] ? nt_template_expand(parts[i], false, s_any, NULL, &check, missing,
                                               sizeof missing)
                          : 0;
        nt_buf_free(&check);
        if (rc < 0) {
            snprintf(err, errlen, "%s: malformed placeholder", path);
            goto fail;
        }
    }
    if (!parts[1] && !parts[2]) {
        snprintf(err, errlen, "%s/%s: a template needs a .txt or an .html part", dir, name);
        goto fail;
    }
    //  The subject is one line: drop the trailing newline, refuse others.
    parts[0][strcspn(parts[0], "\r\n")] = '\0';
    vz_strlcpy(t->name, name, sizeof t->name);
    t->subject = parts[0];
    t->text = parts[1];
    t->html = parts[2];
    return 0;
fail:
    for (size_t i = 0; i < 3; i++)
        free(parts[i]);
    return -1;
}

nt_templates_t *nt_templates_load(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    nt_templates_t *self = calloc(1, sizeof *self);
    if (!self)
        abort();
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || strcmp(dot, ".subject") != 0)
            continue;
        size_t len = (size_t)(dot - e->d_name);
        if (!s_name_ok(e->d_name, len, "_"))
            continue;
        char name[NT_TEMPLATE_NAME_MAX];
        memcpy(name, e->d_name, len);
        name[len] = '\0';
        s_template_t *items = realloc(self->items, (self->count + 1) * sizeof *items);
        if (!items)
            abort();
        self->items = items;
        memset(&items[self->count], 0, sizeof items[0]);
        rc = s_load_one(dir, name, &items[self->count], err, errlen);
        if (rc == 0)
            self->count++;
    }
    closedir(d);
    if (rc < 0)
        nt_templates_destroy(&self);
    return self;
}

size_t nt_templates_count(const nt_templates_t *self)
{
    return self->count;
}

static const s_template_t *s_find(const nt_templates_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->items[i].name, name) == 0)
            return &self->items[i];
    return NULL;
}

bool nt_templates_has(const nt_templates_t *self, const char *name)
{
    return s_find(self, name) != NULL;
}

// --------------------------------------------------------------------------
//  Rendering

void nt_rendered_free(nt_rendered_t *self)
{
    free(self->subject);
    free(self->text);
    free(self->html);
    *self = (nt_rendered_t){0};
}

typedef struct {
    nt_var_fn *get;                 //  the caller's getter
    void *arg;                      //  its argument
    char bad[NT_TEMPLATE_NAME_MAX]; //  first variable whose value holds CR/LF
} s_subject_t;

//  The subject's getter: the caller's, noting a value with CR or LF.
static const char *s_subject_get(void *arg, const char *name)
{
    s_subject_t *s = arg;
    const char *value = s->get(s->arg, name);
    if (value && strpbrk(value, "\r\n") && !s->bad[0])
        vz_strlcpy(s->bad, name, sizeof s->bad);
    return value;
}

static int s_part(const char *text, bool html, nt_var_fn *get, void *arg, char **out, char *missing,
                  size_t n)
{
    *out = NULL;
    if (!text)
        return 0;
    nt_buf_t buf = {0};
    int rc = nt_template_expand(text, html, get, arg, &buf, missing, n);
    if (rc < 0) {
        nt_buf_free(&buf);
        return rc;
    }
    *out = nt_buf_take(&buf, NULL);
    return 0;
}

int nt_template_render(const nt_templates_t *self, const char *name, nt_var_fn *get, void *arg,
                       nt_rendered_t *out, char *missing, size_t n)
{
    *out = (nt_rendered_t){0};
    const s_template_t *t = s_find(self, name);
    if (!t)
        return -ENOENT;
    s_subject_t subject = {get, arg, ""};
    int rc = s_part(t->subject, false, s_subject_get, &subject, &out->subject, missing, n);
    if (rc == 0 && subject.bad[0]) {
        vz_strlcpy(missing, subject.bad, n);
        rc = -EILSEQ;
    }
    if (rc == 0)
        rc = s_part(t->text, false, get, arg, &out->text, missing, n);
    if (rc == 0)
        rc = s_part(t->html, true, get, arg, &out->html, missing, n);
    if (rc < 0)
        nt_rendered_free(out);
    return rc;
}
