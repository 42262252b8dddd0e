/*  keys - the public keys the broker hands out for direct calls
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "keys.h"

#include <czmq.h>
#include <dirent.h>
#include <sys/stat.h>

#include "vz_common.h"


typedef struct {
    char name[VZ_NAME_MAX];
    char key[41];
} s_entry_t;

struct keys_t {
    char dir[VZ_PATH_MAX];
    struct timespec mtime; //  of dir at the last read
    s_entry_t entry[KEYS_MAX];
    size_t n;
};

static int s_by_name(const void *a, const void *b)
{
    return strcmp(((const s_entry_t *)a)->name, ((const s_entry_t *)b)->name);
}

static void s_read(keys_t *self)
{
    self->n = 0;
    struct stat st;
    if (!*self->dir || stat(self->dir, &st) != 0)
        return;
    self->mtime = st.st_mtim;
    DIR *d = opendir(self->dir);
    if (!d)
        return;
    struct dirent *e;
    //  Files in name order, so which of two files for one identity wins is fixed.
    zlistx_t *files = zlistx_new();
    zlistx_set_destructor(files, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_comparator(files, (zlistx_comparator_fn *)strcmp);
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 4 && streq(e->d_name + len - 4, ".key"))
            zlistx_add_end(files, strdup(e->d_name));
    }
    closedir(d);
    zlistx_sort(files);
    for (char *f = zlistx_first(files); f && self->n < KEYS_MAX; f = zlistx_next(files)) {
        char path[VZ_PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", self->dir, f);
        zcert_t *cert = zcert_load(path);
        const char *name = cert ? zcert_meta(cert, "name") : NULL;
        if (name && *name && strlen(name) < VZ_NAME_MAX && !keys_lookup(self, name)) {
            s_entry_t *slot = &self->entry[self->n++];
            vz_strlcpy(slot->name, name, sizeof slot->name);
            vz_strlcpy(slot->key, zcert_public_txt(cert), sizeof slot->key);
        }
        zcert_destroy(&cert);
    }
    zlistx_destroy(&files);
    qsort(self->entry, self->n, sizeof self->entry[0], s_by_name);
}

keys_t *keys_new(const char *dir)
{
    keys_t *self = (keys_t *)zmalloc(sizeof *self);
    assert(self);
    if (dir)
        vz_strlcpy(self->dir, dir, sizeof self->dir);
    s_read(self);
    return self;
}

void keys_destroy(keys_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

bool keys_refresh(keys_t *self)
{
    assert(self);
    struct stat st;
    if (!*self->dir || stat(self->dir, &st) != 0)
        return false;
    if (st.st_mtim.tv_sec == self->mtime.tv_sec && st.st_mtim.tv_nsec == self->mtime.tv_nsec)
        return false;
    s_read(self);
    return true;
}

const char *keys_lookup(const keys_t *self, const char *identity)
{
    assert(self && identity);
    for (size_t i = 0; i < self->n; i++)
        if (streq(self->entry[i].name, identity))
            return self->entry[i].key;
    return NULL;
}

size_t keys_count(const keys_t *self)
{
    assert(self);
    return self->n;
}

const char *keys_name(const keys_t *self, size_t i)
{
    assert(self && i < self->n);
    return self->entry[i].name;
}

const char *keys_key(const keys_t *self, size_t i)
{
    assert(self && i < self->n);
    return self->entry[i].key;
}
