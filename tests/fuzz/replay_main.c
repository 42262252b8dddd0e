/*  replay_main - run every file of a corpus through a fuzz target, without libFuzzer
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Usage: fuzz_replay_<target> PATH...  where each PATH is a corpus
 *  directory (every regular file in it, in name order) or one file. Each
 *  input is copied into a heap buffer of exactly its size, so ASan or
 *  valgrind see a read one byte past the end, and handed to
 *  LLVMFuzzerTestOneInput, as libFuzzer would. A property that does not
 *  hold aborts in the target; a file that cannot be read, or no input at
 *  all (a corpus that went missing must not pass), exits 1.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

//  One file through the target; -1 when it cannot be read.
static int s_replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "fuzz_replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    //  Exactly len bytes (at least one, so the pointer is never NULL).
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int s_by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

//  Every regular file of dir, in name order; *count_p counts them.
static int s_replay_dir(const char *dir, size_t *count_p)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n])
            break;
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, s_by_name);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            rc = s_replay_file(names[i]);
            (*count_p)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz_replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = 0;
        if (S_ISDIR(st.st_mode))
            rc = s_replay_dir(argv[i], &count);
        else {
            rc = s_replay_file(argv[i]);
            count++;
        }
        if (rc < 0)
            return 1;
    }
    if (count == 0) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...  (no input found)\n", argv[0]);
        return 1;
    }
    printf("fuzz_replay: %zu inputs, all properties held\n", count);
    return 0;
}
