/*  nt_template - message templates: {{variable}} with HTML escaping
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A template is up to three files in one directory (configs/templates/):
 *  <name>.subject (required, one line), <name>.txt and <name>.html (at
 *  least one of them). Names are [a-z0-9_]{1,63}. Placeholders are
 *  {{name}} with name [A-Za-z0-9_.]{1,63}; "{{" can be written "{{{{"
 *  for a literal. In the HTML part every substituted value is escaped
 *  (& < > " '); in the subject and text parts it is inserted as is.
 *  {{{name}}} inserts the value unescaped in the HTML part too: for a
 *  template whose caller renders its own HTML (weekly_report: the
 *  reporter's tables and charts). Only the template's author opts in;
 *  the value still travels quoted-printable, so it cannot reach a header.
 *  A placeholder whose variable is missing is an error naming it, never
 *  a blank; so is a subject value holding CR or LF (header injection).
 *
 *  The set is loaded whole at start and on SIGHUP; a bad file keeps the
 *  old set (the caller decides). Threads: a loaded set is read-only, any
 *  thread may render from it.
 */
#ifndef NT_TEMPLATE_H
#define NT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "nt_buf.h"

#define NT_TEMPLATE_FILE_MAX (256 * 1024) //  largest template file
#define NT_TEMPLATE_NAME_MAX 64           //  template and variable names, with NUL

typedef struct nt_templates_t nt_templates_t;

//  Returns a variable's value (borrowed, valid until the render returns)
//  or NULL when it is missing.
typedef const char *(nt_var_fn)(void *arg, const char *name);

//  Load every template of dir. NULL with a message in err (a file too big
//  or unreadable, a template without a body, a malformed placeholder).
nt_templates_t *nt_templates_load(const char *dir, char *err, size_t errlen);
void nt_templates_destroy(nt_templates_t **self_p);
size_t nt_templates_count(const nt_templates_t *self);
bool nt_templates_has(const nt_templates_t *self, const char *name);

//  Expand one template text into out. html: escape values. Returns 0, or
//  -ESRCH with the variable's name in missing (size n) when one is
//  absent, -EINVAL for a malformed placeholder.
int nt_template_expand(const char *text, bool html, nt_var_fn *get, void *arg, nt_buf_t *out,
                       char *missing, size_t n);

typedef struct {
    char *subject; //  heap; never NULL after success
    char *text;    //  heap or NULL when the template has no text part
    char *html;    //  heap or NULL when the template has no HTML part
} nt_rendered_t;

//  Render template name. 0, -ENOENT (no such template), -ESRCH (missing
//  variable, its name in missing), -EILSEQ (a value put CR or LF into the
//  subject; the variable's name in missing). *out is empty after failure.
int nt_template_render(const nt_templates_t *self, const char *name, nt_var_fn *get, void *arg,
                       nt_rendered_t *out, char *missing, size_t n);
void nt_rendered_free(nt_rendered_t *self);

#endif
