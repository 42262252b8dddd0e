/*  vz_metrics - counters, gauges and histograms in Prometheus text format
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Values are doubles stored as their bit patterns in 64-bit atomics and
 *  updated with compare-and-swap, so any thread can update without a lock
 *  and a counter incremented from many threads loses nothing. The mutex
 *  guards only the shape of the registry (families and series lists).
 */
#include "vz_metrics.h"
#include "vz_common.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_type_t;

static const char *const s_type_names[] = {"counter", "gauge", "histogram"};

const double vz_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t vz_metrics_latency_buckets_count =
    sizeof vz_metrics_latency_buckets / sizeof vz_metrics_latency_buckets[0];

typedef struct s_family_t s_family_t;

struct vz_series_t {
    s_family_t *family;        //  owning family
    char *labels;              //  rendered label pairs without braces, "" if none
    _Atomic uint64_t value;    //  counter/gauge value, histogram sum (double bits)
    _Atomic uint64_t *buckets; //  histogram: count per bucket, last is +Inf; else NULL
    vz_series_t *next;         //  next series of the family
};

struct s_family_t {
    char *name;          //  full metric name (counters end in _total)
    char *help;          //  help text as given
    s_type_t type;       //  counter, gauge or histogram
    double *bounds;      //  histogram upper bounds, strictly increasing
    size_t nbounds;      //  entries in bounds
    vz_series_t *series; //  first series, in creation order
    vz_series_t *last;   //  last series, for appending
    s_family_t *next;    //  next family, in creation order
};

struct vz_metrics_t {
    pthread_mutex_t lock;    //  guards the lists, not the values
    s_family_t *families;    //  first family
    s_family_t *last;        //  last family
    vz_series_t *proc_rss;   //  process_* series, NULL until enabled
    vz_series_t *proc_cpu;   //  process_cpu_seconds_total
    vz_series_t *proc_start; //  process_start_time_seconds
    vz_series_t *proc_fds;   //  process_open_fds
};

static uint64_t s_bits(double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static double s_double(uint64_t bits)
{
    double value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void s_atomic_add(_Atomic uint64_t *cell, double delta)
{
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(cell, &old, s_bits(s_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static bool s_valid_name(const char *name, bool colon_ok)
{
    if (!name || !(isalpha((unsigned char)*name) || *name == '_' || (colon_ok && *name == ':')))
        return false;
    for (const char *c = name + 1; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || (colon_ok && *c == ':')))
            return false;
    return true;
}

static bool s_has_suffix(const char *text, const char *suffix)
{
    size_t tl = strlen(text), sl = strlen(suffix);
    return tl >= sl && strcmp(text + tl - sl, suffix) == 0;
}

//  Turn "a=x,b=y" into a="x",b="y" with values escaped. The result is also
//  the series key, so the same input always finds the same series.
static char *s_render_labels(const char *labels, bool histogram)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert(f);
    const char *p = labels ? labels : "";
    bool first = true;
    while (*p) {
        const char *eq = strchr(p, '=');
        assert(eq && "label pair without '='");
        const char *end = strchr(eq, ',');
        if (!end)
            end = eq + strlen(eq);
        char name[128];
        size_t nlen = (size_t)(eq - p);
        assert(nlen > 0 && nlen < sizeof name);
        memcpy(name, p, nlen);
        name[nlen] = '\0';
        assert(s_valid_name(name, false) && strncmp(name, "__", 2) != 0);
        assert(!(histogram && strcmp(name, "le") == 0));
        fprintf(f, "%s%s=\"", first ? "" : ",", name);
        first = false;
        for (const char *v = eq + 1; v < end; v++) {
            if (*v == '\\')
                fputs("\\\\", f);
            else if (*v == '"')
                fputs("\\\"", f);
            else if (*v == '\n')
                fputs("\\n", f);
            else
                fputc(*v, f);
        }
        fputc('"', f);
        p = *end ? end + 1 : end;
    }
    fclose(f);
    return out;
}

static vz_series_t *s_get(vz_metrics_t *self, s_type_t type, const char *name, const char *help,
                          const char *labels, const double *bounds, size_t nbounds)
{
    assert(self);
    assert(s_valid_name(name, true));
    assert(help && *help && "promtool wants help text");
    //  Counters are exposed as <name>_total whether or not the caller wrote
    //  it, like the official client libraries do.
    char full[256];
    int len = snprintf(full, sizeof full, "%s%s", name,
                       type == S_COUNTER && !s_has_suffix(name, "_total") ? "_total" : "");
    assert(len > 0 && (size_t)len < sizeof full);
    char *key = s_render_labels(labels, type == S_HISTOGRAM);

    pthread_mutex_lock(&self->lock);
    s_family_t *family = self->families;
    while (family && strcmp(family->name, full) != 0)
        family = family->next;
    if (family)
        assert(family->type == type && "metric name reused with another type");
    else {
        family = calloc(1, sizeof *family);
        assert(family);
        family->name = strdup(full);
        family->help = strdup(help);
        assert(family->name && family->help);
        family->type = type;
        if (type == S_HISTOGRAM) {
            for (size_t i = 1; i < nbounds; i++)
                assert(bounds[i] > bounds[i - 1] && "buckets must increase strictly");
            family->bounds = malloc(nbounds * sizeof *bounds);
            assert(family->bounds || nbounds == 0);
            if (nbounds)
                memcpy(family->bounds, bounds, nbounds * sizeof *bounds);
            family->nbounds = nbounds;
        }
        if (self->last)
            self->last->next = family;
        else
            self->families = family;
        self->last = family;
    }
    vz_series_t *series = family->series;
    while (series && strcmp(series->labels, key) != 0)
        series = series->next;
    if (series)
        free(key);
    else {
        series = calloc(1, sizeof *series);
        assert(series);
        series->family = family;
        series->labels = key;
        atomic_init(&series->value, s_bits(0.0));
        if (type == S_HISTOGRAM) {
            series->buckets = calloc(family->nbounds + 1, sizeof *series->buckets);
            assert(series->buckets);
        }
        if (family->last)
            family->last->next = series;
        else
            family->series = series;
        family->last = series;
    }
    pthread_mutex_unlock(&self->lock);
    return series;
}

vz_metrics_t *vz_metrics_new(void)
{
    vz_metrics_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

void vz_metrics_destroy(vz_metrics_t **self_p)
{
    assert(self_p);
    vz_metrics_t *self = *self_p;
    if (!self)
        return;
    for (s_family_t *family = self->families, *fnext; family; family = fnext) {
        fnext = family->next;
        for (vz_series_t *series = family->series, *snext; series; series = snext) {
            snext = series->next;
            free(series->labels);
            free(series->buckets);
            free(series);
        }
        free(family->name);
        free(family->help);
        free(family->bounds);
        free(family);
    }
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

vz_series_t *vz_metrics_counter(vz_metrics_t *self, const char *name, const char *help,
                                const char *labels)
{
    return s_get(self, S_COUNTER, name, help, labels, NULL, 0);
}

vz_series_t *vz_metrics_gauge(vz_metrics_t *self, const char *name, const char *help,
                              const char *labels)
{
    return s_get(self, S_GAUGE, name, help, labels, NULL, 0);
}

vz_series_t *vz_metrics_histogram(vz_metrics_t *self, const char *name, const char *help,
                                  const char *labels, const double *buckets, size_t count)
{
    if (!buckets) {
        buckets = vz_metrics_latency_buckets;
        count = vz_metrics_latency_buckets_count;
    }
    return s_get(self, S_HISTOGRAM, name, help, labels, buckets, count);
}

void vz_series_inc(vz_series_t *series)
{
    vz_series_add(series, 1.0);
}

void vz_series_add(vz_series_t *series, double value)
{
    assert(series && series->family->type != S_HISTOGRAM);
    assert(series->family->type != S_COUNTER || value >= 0);
    s_atomic_add(&series->value, value);
}

void vz_series_set(vz_series_t *series, double value)
{
    assert(series && series->family->type == S_GAUGE);
    atomic_store_explicit(&series->value, s_bits(value), memory_order_relaxed);
}

void vz_series_observe(vz_series_t *series, double value)
{
    vz_series_observe_n(series, value, 1);
}

void vz_series_observe_n(vz_series_t *series, double value, uint64_t n)
{
    assert(series && series->family->type == S_HISTOGRAM);
    const s_family_t *family = series->family;
    size_t i = 0;
    while (i < family->nbounds && !(value <= family->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&series->buckets[i], n, memory_order_relaxed);
    s_atomic_add(&series->value, value * (double)n);
}

double vz_series_value(const vz_series_t *series)
{
    assert(series);
    if (series->family->type != S_HISTOGRAM)
        return s_double(atomic_load_explicit(&series->value, memory_order_relaxed));
    uint64_t count = 0;
    for (size_t i = 0; i <= series->family->nbounds; i++)
        count += atomic_load_explicit(&series->buckets[i], memory_order_relaxed);
    return (double)count;
}

void vz_metrics_enable_process(vz_metrics_t *self)
{
    assert(self);
    vz_series_t *rss = vz_metrics_gauge(self, "process_resident_memory_bytes",
                                        "Resident memory size in bytes.", NULL);
    vz_series_t *cpu = vz_metrics_counter(self, "process_cpu_seconds_total",
                                          "Total user and system CPU time spent in seconds.", NULL);
    vz_series_t *start =
        vz_metrics_gauge(self, "process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.", NULL);
    vz_series_t *fds =
        vz_metrics_gauge(self, "process_open_fds", "Number of open file descriptors.", NULL);
    pthread_mutex_lock(&self->lock);
    self->proc_rss = rss;
    self->proc_cpu = cpu;
    self->proc_start = start;
    self->proc_fds = fds;
    pthread_mutex_unlock(&self->lock);
}

//  Read /proc into the process_* series. Fields that cannot be read keep
//  their last value rather than failing the scrape.
static void s_update_process(vz_metrics_t *self)
{
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        //  The command name may hold spaces and ')': fields start after the last ')'.
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0;
        unsigned long long starttime = 0;
        if (p && ticks > 0 &&
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                   "%*d %*d %llu",
                   &utime, &stime, &starttime) == 3) {
            atomic_store(&self->proc_cpu->value, s_bits((double)(utime + stime) / ticks));
            FILE *st = fopen("/proc/stat", "r");
            char line[256];
            unsigned long long btime = 0;
            while (st && fgets(line, sizeof line, st))
                if (sscanf(line, "btime %llu", &btime) == 1)
                    break;
            if (st)
                fclose(st);
            if (btime)
                vz_series_set(self->proc_start, (double)btime + (double)starttime / ticks);
        }
    }
    f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long size, resident;
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            vz_series_set(self->proc_rss, (double)resident * (double)page);
        fclose(f);
    }
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        long count = 0;
        for (struct dirent *e = readdir(dir); e; e = readdir(dir))
            count += e->d_name[0] != '.';
        closedir(dir);
        //  Not counting the descriptor opendir itself holds.
        vz_series_set(self->proc_fds, (double)(count > 0 ? count - 1 : 0));
    }
}

//  Shortest text that reads back as the same double, in Prometheus spelling.
static void s_format_double(char *buf, size_t n, double value)
{
    if (isnan(value))
        snprintf(buf, n, "NaN");
    else if (isinf(value))
        snprintf(buf, n, "%sInf", value > 0 ? "+" : "-");
    else {
        snprintf(buf, n, "%.15g", value);
        if (strtod(buf, NULL) != value)
            snprintf(buf, n, "%.17g", value);
    }
}

static void s_render_help(FILE *f, const s_family_t *family)
{
    fprintf(f, "# HELP %s ", family->name);
    for (const char *c = family->help; *c; c++) {
        if (*c == '\\')
            fputs("\\\\", f);
        else if (*c == '\n')
            fputs("\\n", f);
        else
            fputc(*c, f);
    }
    fprintf(f, "\n# TYPE %s %s\n", family->name, s_type_names[family->type]);
}

static void s_render_histogram(FILE *f, const s_family_t *family, const vz_series_t *series)
{
    const char *sep = series->labels[0] ? "," : "";
    char num[40];
    //  _count is the sum of the buckets as read here, so a scrape racing an
    //  observation still shows _count equal to the +Inf bucket.
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= family->nbounds; i++) {
        cumulative += atomic_load_explicit(&series->buckets[i], memory_order_relaxed);
        if (i < family->nbounds)
            s_format_double(num, sizeof num, family->bounds[i]);
        else
            snprintf(num, sizeof num, "+Inf");
        fprintf(f, "%s_bucket{%s%sle=\"%s\"} %llu\n", family->name, series->labels, sep, num,
                (unsigned long long)cumulative);
    }
    s_format_double(num, sizeof num, s_double(atomic_load(&series->value)));
    if (series->labels[0]) {
        fprintf(f, "%s_sum{%s} %s\n", family->name, series->labels, num);
        fprintf(f, "%s_count{%s} %llu\n", family->name, series->labels,
                (unsigned long long)cumulative);
    } else {
        fprintf(f, "%s_sum %s\n", family->name, num);
        fprintf(f, "%s_count %llu\n", family->name, (unsigned long long)cumulative);
    }
}

char *vz_metrics_render(vz_metrics_t *self)
{
    assert(self);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert(f);
    pthread_mutex_lock(&self->lock);
    if (self->proc_rss)
        s_update_process(self);
    for (const s_family_t *family = self->families; family; family = family->next) {
        s_render_help(f, family);
        for (const vz_series_t *series = family->series; series; series = series->next) {
            if (family->type == S_HISTOGRAM) {
                s_render_histogram(f, family, series);
                continue;
            }
            char num[40];
            s_format_double(num, sizeof num, s_double(atomic_load(&series->value)));
            if (series->labels[0])
                fprintf(f, "%s{%s} %s\n", family->name, series->labels, num);
            else
                fprintf(f, "%s %s\n", family->name, num);
        }
    }
    pthread_mutex_unlock(&self->lock);
    fclose(f);
    return text;
}
