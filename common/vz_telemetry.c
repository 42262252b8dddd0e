/*  vz_telemetry - request outcomes aggregated in the daemon, shipped per interval
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_telemetry.h"

#include <ctype.h>
#include <inttypes.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vz_clock.h"
#include "vz_common.h"
#include "vz_event.h"
#include "vz_json.h"
#include "vz_proto.h"
#include "vz_telemetry_contract.h"
#include "vz_worker.h"

#define S_INTERVAL_MS 10000
#define S_OTHER "_other"
//  Worst case per series: name, 16 codes and every bin as [1023,4294967295].
//  A span: ids, name, code and two numbers with their keys.
#define S_SPAN_BYTES (160 + 2 * VZ_TL_NAME_MAX)
#define S_SERIES_BYTES (512 + VZ_TL_CODES * (VZ_TL_NAME_MAX + 24) + VZ_TL_BINS * 20)

typedef struct {
    char name[VZ_TL_NAME_MAX]; //  code text
    uint64_t count;            //  outcomes with it this interval
} s_code_t;

typedef struct {
    char name[VZ_TL_NAME_MAX];   //  method or route
    s_code_t codes[VZ_TL_CODES]; //  outcomes by code
    size_t ncodes;               //  entries in codes
    vz_tl_hist_t *hist;          //  latency this interval (heap)
} s_series_t;

struct vz_telemetry_t {
    char service[VZ_TL_NAME_MAX];    //  reporting service
    char version[VZ_VERSION_MAX];    //  its service_version, "" = none
    int replica;                     //  its replica index
    int interval_ms;                 //  timer period
    vz_tl_send_fn *send;             //  where snapshots go
    vz_tl_dropped_fn *dropped;       //  transport drop counter, or NULL
    void *arg;                       //  for both
    s_series_t series[VZ_TL_SERIES]; //  this interval's table
    size_t nseries;                  //  entries in series
    uint64_t pending;                //  requests recorded this interval
    zhashx_t *users;                 //  distinct active users this interval
    uint64_t users_over;             //  users past VZ_TL_USERS this interval
    uint64_t recorded;               //  requests recorded ever
    uint64_t lost;                   //  requests in snapshots not sent, ever
    uint64_t lost_report;            //  lost not yet reported in a sent snapshot
    uint64_t seq;                    //  snapshots made
    double cpu_s;                    //  process CPU seconds at the last snapshot
    int64_t last_ms;                 //  end of the last interval (Unix ms)
    zloop_t *loop;                   //  attached loop, or NULL
    int timer_id;                    //  its flush timer
    vz_event_t *event;               //  owned transport of vz_telemetry_new_daemon, or NULL
    uint32_t sample_cut;             //  keep traces whose id's low 32 bits are under this
    uint64_t sample_all;             //  1 when every trace is kept
    int64_t slow_us;                 //  spans this long are kept, 0 = none by duration
    vz_tl_span_t *spans;             //  this interval's sampled spans (VZ_TL_SPANS)
    size_t nspans;                   //  rows in spans
    uint64_t spans_over;             //  sampled spans past VZ_TL_SPANS this interval
    s_code_t events[VZ_TL_EVENTS];   //  this interval's business events
    size_t nevents;                  //  rows in events
    uint64_t rng;                    //  xorshift state for span ids
    bool auto_mode;                  //  send only while a sink answers
    bool sink_absent;                //  auto: the last answer said no sink
    uint64_t skipped;                //  auto: intervals discarded without a sink
    uint64_t since_probe;            //  auto: intervals since the last snapshot sent
    pthread_mutex_t lock;            //  guards the table and the counters against record
};

//  The process's daemon reporter, for vz_telemetry_event.
static _Atomic(vz_telemetry_t *) s_process;

//  1 / ln(gamma); GCC and Clang fold it to a constant.
static double s_inv_log_gamma(void)
{
    return 1.0 / log(VZ_TL_GAMMA);
}

int vz_tl_bin(double v_us)
{
    if (!(v_us > 1.0))
        return 0;
    double i = ceil(log(v_us) * s_inv_log_gamma());
    return i >= VZ_TL_BINS - 1 ? VZ_TL_BINS - 1 : (int)i;
}

double vz_tl_bin_value(int bin)
{
    assert(bin >= 0 && bin < VZ_TL_BINS);
    return 2.0 * pow(VZ_TL_GAMMA, bin) / (VZ_TL_GAMMA + 1.0);
}

void vz_tl_hist_add(vz_tl_hist_t *self, double v_us, uint32_t n)
{
    assert(self);
    self->bins[vz_tl_bin(v_us)] += n;
    self->count += n;
    self->sum_us += v_us * n;
}

void vz_tl_hist_merge(vz_tl_hist_t *dst, const vz_tl_hist_t *src)
{
    assert(dst && src);
    for (int i = 0; i < VZ_TL_BINS; i++)
        dst->bins[i] += src->bins[i];
    dst->count += src->count;
    dst->sum_us += src->sum_us;
}

double vz_tl_hist_quantile(const vz_tl_hist_t *self, double q)
{
    assert(self);
    if (self->count == 0)
        return 0;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    uint64_t rank = (uint64_t)ceil(q * (double)self->count);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < VZ_TL_BINS; i++) {
        seen += self->bins[i];
        if (seen >= rank)
            return vz_tl_bin_value(i);
    }
    return vz_tl_bin_value(VZ_TL_BINS - 1);
}

vz_telemetry_t *vz_telemetry_new(const vz_telemetry_config_t *config)
{
    assert(config && config->service && config->send);
    vz_telemetry_t *self = (vz_telemetry_t *)zmalloc(sizeof *self);
    assert(self);
    vz_strlcpy(self->service, config->service, sizeof self->service);
    //  A version the sink would refuse is not sent (the worker refuses to start with one).
    if (config->version && vz_version_valid(config->version))
        vz_strlcpy(self->version, config->version, sizeof self->version);
    self->replica = config->replica;
    self->interval_ms = config->interval_ms > 0 ? config->interval_ms : S_INTERVAL_MS;
    self->send = config->send;
    self->dropped = config->dropped;
    self->arg = config->arg;
    self->timer_id = -1;
    int permille = config->sample_permille < 0      ? 0
                   : config->sample_permille > 1000 ? 1000
                                                    : config->sample_permille;
    self->sample_all = permille == 1000;
    self->sample_cut = (uint32_t)((double)UINT32_MAX * permille / 1000.0);
    self->slow_us = config->slow_us;
    self->auto_mode = config->auto_mode;
    self->spans = (vz_tl_span_t *)calloc(VZ_TL_SPANS, sizeof(vz_tl_span_t));
    assert(self->spans);
    self->rng = (uint64_t)vz_clock_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)self;
    pthread_mutex_init(&self->lock, NULL);
    self->users = zhashx_new();
    assert(self->users);
    zhashx_set_destructor(self->users, (zhashx_destructor_fn *)zstr_free);
    uint64_t rss;
    int fds;
    vz_telemetry_process(&self->cpu_s, &rss, &fds);
    self->last_ms = vz_clock_now_ms();
    return self;
}

void vz_telemetry_destroy(vz_telemetry_t **self_p)
{
    assert(self_p);
    vz_telemetry_t *self = *self_p;
    if (!self)
        return;
    vz_telemetry_t *expected = self;
    atomic_compare_exchange_strong(&s_process, &expected, NULL);
    if (self->loop && self->timer_id >= 0)
        zloop_timer_end(self->loop, self->timer_id);
    for (size_t i = 0; i < VZ_TL_SERIES; i++)
        free(self->series[i].hist);
    vz_event_destroy(&self->event);
    zhashx_destroy(&self->users);
    free(self->spans);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

//  The series of name: a scan (a daemon has a few dozen names), else a new
//  row, else "_other" once the table is full.
static s_series_t *s_series(vz_telemetry_t *self, const char *name)
{
    for (size_t i = 0; i < self->nseries; i++)
        if (strncmp(self->series[i].name, name, VZ_TL_NAME_MAX - 1) == 0)
            return &self->series[i];
    if (self->nseries == VZ_TL_SERIES) {
        if (strcmp(name, S_OTHER) == 0)
            return &self->series[VZ_TL_SERIES - 1];
        //  The last row becomes "_other" the first time the table overflows.
        s_series_t *other = &self->series[VZ_TL_SERIES - 1];
        if (strcmp(other->name, S_OTHER) != 0)
            vz_strlcpy(other->name, S_OTHER, sizeof other->name);
        return other;
    }
    s_series_t *row = &self->series[self->nseries++];
    vz_strlcpy(row->name, name, sizeof row->name);
    row->ncodes = 0;
    if (!row->hist) {
        row->hist = (vz_tl_hist_t *)zmalloc(sizeof *row->hist);
        assert(row->hist);
    }
    return row;
}

static void s_code_inc(s_series_t *row, const char *code)
{
    for (size_t i = 0; i < row->ncodes; i++)
        if (strncmp(row->codes[i].name, code, VZ_TL_NAME_MAX - 1) == 0) {
            row->codes[i].count++;
            return;
        }
    size_t at = row->ncodes;
    if (at == VZ_TL_CODES) {
        //  Full: the last slot is "_other" from now on.
        at = VZ_TL_CODES - 1;
        if (strcmp(row->codes[at].name, S_OTHER) != 0)
            vz_strlcpy(row->codes[at].name, S_OTHER, sizeof row->codes[at].name);
    } else {
        vz_strlcpy(row->codes[at].name, code, sizeof row->codes[at].name);
        row->codes[at].count = 0;
        row->ncodes++;
    }
    row->codes[at].count++;
}

void vz_telemetry_record(vz_telemetry_t *self, const char *name, const char *code,
                         int64_t duration_us)
{
    assert(self && name);
    pthread_mutex_lock(&self->lock);
    s_series_t *row = s_series(self, name);
    s_code_inc(row, code && *code ? code : "ok");
    vz_tl_hist_add(row->hist, duration_us > 0 ? (double)duration_us : 0.0, 1);
    self->pending++;
    self->recorded++;
    pthread_mutex_unlock(&self->lock);
}

//  A code that always keeps its span: not "ok", not an HTTP 1xx-3xx.
static bool s_code_error(const char *code)
{
    if (!code || !*code || strcmp(code, "ok") == 0)
        return false;
    return !(isdigit((unsigned char)code[0]) && code[0] >= '1' && code[0] <= '3' &&
             strlen(code) == 3);
}

static uint64_t s_next_rng(vz_telemetry_t *self)
{
    uint64_t x = self->rng ? self->rng : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self->rng = x;
    return x;
}

void vz_telemetry_span(vz_telemetry_t *self, const char *traceparent, const char *name,
                       const char *code, int64_t duration_us)
{
    assert(self && name);
    char trace[VZ_TL_TRACE_HEX + 1], parent[VZ_TL_SPAN_HEX + 1];
    if (vz_tl_traceparent_split(traceparent, trace, parent) < 0)
        return;
    //  The low 32 bits of the trace id decide, the same way in every daemon.
    uint32_t low = (uint32_t)strtoul(trace + VZ_TL_TRACE_HEX - 8, NULL, 16);
    bool keep = self->sample_all || low < self->sample_cut || s_code_error(code) ||
                (self->slow_us > 0 && duration_us >= self->slow_us);
    if (!keep)
        return;
    int64_t now_us = vz_clock_now_us();
    pthread_mutex_lock(&self->lock);
    if (self->nspans == VZ_TL_SPANS) {
        self->spans_over++;
        pthread_mutex_unlock(&self->lock);
        return;
    }
    vz_tl_span_t *span = &self->spans[self->nspans++];
    vz_strlcpy(span->trace, trace, sizeof span->trace);
    vz_strlcpy(span->parent, parent, sizeof span->parent);
    snprintf(span->span, sizeof span->span, "%016" PRIx64, s_next_rng(self) | 1);
    vz_strlcpy(span->name, vz_tl_name_valid(name) ? name : S_OTHER, sizeof span->name);
    vz_strlcpy(span->code, vz_tl_name_valid(code) ? code : "ok", sizeof span->code);
    span->dur_us = duration_us > 0 ? duration_us : 0;
    span->start_us = now_us - span->dur_us;
    pthread_mutex_unlock(&self->lock);
}

void vz_telemetry_count(vz_telemetry_t *self, const char *event, const char *key)
{
    assert(self);
    char name[VZ_TL_NAME_MAX];
    if (!event || strchr(event, '.') ||
        snprintf(name, sizeof name, "%s%s%s", event, key ? "." : "", key ? key : "") >=
            (int)sizeof name ||
        !vz_tl_name_valid(name))
        return;
    pthread_mutex_lock(&self->lock);
    size_t i = 0;
    while (i < self->nevents && strcmp(self->events[i].name, name) != 0)
        i++;
    if (i == self->nevents) {
        if (i == VZ_TL_EVENTS)
            vz_strlcpy(self->events[--i].name, S_OTHER, VZ_TL_NAME_MAX);
        else {
            vz_strlcpy(self->events[i].name, name, VZ_TL_NAME_MAX);
            self->events[i].count = 0;
            self->nevents++;
        }
    }
    self->events[i].count++;
    pthread_mutex_unlock(&self->lock);
}

void vz_telemetry_event(const char *event, const char *key)
{
    vz_telemetry_t *self = atomic_load(&s_process);
    if (self)
        vz_telemetry_count(self, event, key);
}

void vz_telemetry_http(vz_telemetry_t *self, const char *route, int status, int64_t duration_us,
                       const char *traceparent, const char *user, const char *country)
{
    assert(self && route);
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    vz_telemetry_record(self, route, code, duration_us);
    vz_telemetry_span(self, traceparent, route, code, duration_us);
    if (user)
        vz_telemetry_user(self, user);
    if (country && isupper((unsigned char)country[0]) && isupper((unsigned char)country[1]) &&
        !country[2])
        vz_telemetry_count(self, "country", country);
}

void vz_telemetry_user(vz_telemetry_t *self, const char *user)
{
    assert(self);
    if (!vz_tl_name_valid(user))
        return;
    pthread_mutex_lock(&self->lock);
    //  The value is the user's calls this interval (a heap counter).
    uint64_t *calls = (uint64_t *)zhashx_lookup(self->users, user);
    if (calls)
        (*calls)++;
    else if (zhashx_size(self->users) < VZ_TL_USERS) {
        calls = (uint64_t *)zmalloc(sizeof *calls);
        *calls = 1;
        zhashx_insert(self->users, user, calls);
    } else
        self->users_over++;
    pthread_mutex_unlock(&self->lock);
}

void vz_telemetry_process(double *cpu_s, uint64_t *rss, int *fds)
{
    assert(cpu_s && rss && fds);
    *cpu_s = 0;
    *rss = 0;
    *fds = 0;
    //  utime and stime are fields 14 and 15 of /proc/self/stat, after the
    //  command name in parentheses (which may hold spaces).
    char buf[1024];
    FILE *file = fopen("/proc/self/stat", "r");
    if (file) {
        size_t n = fread(buf, 1, sizeof buf - 1, file);
        buf[n] = '\0';
        fclose(file);
        const char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    file = fopen("/proc/self/statm", "r");
    if (file) {
        unsigned long size = 0, resident = 0;
        if (fscanf(file, "%lu %lu", &size, &resident) == 2)
            *rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(file);
    }
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        int count = 0;
        for (struct dirent *e = readdir(dir); e; e = readdir(dir))
            if (e->d_name[0] != '.')
                count++;
        closedir(dir);
        *fds = count > 0 ? count - 1 : 0; //  less the one opendir holds
    }
}

static void s_write_series(vz_json_writer_t *w, const s_series_t *row)
{
    vz_json_write_object_begin(w);
    vz_json_write_kv_string(w, VZ_TL_F_NAME, row->name);
    vz_json_write_key(w, VZ_TL_F_COUNT);
    vz_json_write_uint(w, row->hist->count);
    vz_json_write_key(w, VZ_TL_F_SUM_US);
    vz_json_write_double(w, row->hist->sum_us);
    vz_json_write_key(w, VZ_TL_F_CODES);
    vz_json_write_object_begin(w);
    for (size_t c = 0; c < row->ncodes; c++) {
        vz_json_write_key(w, row->codes[c].name);
        vz_json_write_uint(w, row->codes[c].count);
    }
    vz_json_write_object_end(w);
    //  Sparse bins: most requests of one method land in a few dozen.
    vz_json_write_key(w, VZ_TL_F_BINS);
    vz_json_write_array_begin(w);
    for (int b = 0; b < VZ_TL_BINS; b++) {
        if (!row->hist->bins[b])
            continue;
        vz_json_write_array_begin(w);
        vz_json_write_int(w, b);
        vz_json_write_uint(w, row->hist->bins[b]);
        vz_json_write_array_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_object_end(w);
}

//  The snapshot with the lock held: the interval's table is encoded and
//  reset in one step, so no request falls between two snapshots.
static char *s_snapshot(vz_telemetry_t *self, int64_t now_ms, size_t *len_p)
{
    double cpu_s;
    uint64_t rss;
    int fds;
    vz_telemetry_process(&cpu_s, &rss, &fds);
    int64_t span_ms = now_ms - self->last_ms;
    double cpu = span_ms > 0 ? (cpu_s - self->cpu_s) * 1000.0 / (double)span_ms : 0;

    vz_json_writer_t *w = vz_json_writer_new(
        1024 + self->nseries * S_SERIES_BYTES + zhashx_size(self->users) * (VZ_TL_NAME_MAX + 24) +
        self->nspans * S_SPAN_BYTES + self->nevents * (VZ_TL_NAME_MAX + 24));
    vz_json_write_object_begin(w);
    vz_json_write_kv_int(w, VZ_TL_F_VERSION, VZ_TL_VERSION);
    vz_json_write_kv_string(w, VZ_TL_F_SERVICE, self->service);
    if (*self->version)
        vz_json_write_kv_string(w, VZ_TL_F_SERVICE_VERSION, self->version);
    vz_json_write_kv_int(w, VZ_TL_F_REPLICA, self->replica);
    vz_json_write_kv_int(w, VZ_TL_F_PID, (int64_t)getpid());
    vz_json_write_kv_int(w, VZ_TL_F_T, now_ms);
    vz_json_write_kv_int(w, VZ_TL_F_INTERVAL, span_ms > 0 ? span_ms : self->interval_ms);
    vz_json_write_kv_int(w, VZ_TL_F_SEQ, (int64_t)self->seq);
    vz_json_write_key(w, VZ_TL_F_LOST);
    vz_json_write_uint(w, self->lost_report);
    vz_json_write_key(w, VZ_TL_F_DROPPED);
    vz_json_write_uint(w, self->dropped ? self->dropped(self->arg) : 0);
    vz_json_write_key(w, VZ_TL_F_SAT);
    vz_json_write_object_begin(w);
    vz_json_write_key(w, VZ_TL_F_CPU);
    vz_json_write_double(w, cpu > 0 ? cpu : 0);
    vz_json_write_key(w, VZ_TL_F_RSS);
    vz_json_write_uint(w, rss);
    vz_json_write_kv_int(w, VZ_TL_F_FDS, fds);
    vz_json_write_object_end(w);
    vz_json_write_key(w, VZ_TL_F_SERIES);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < self->nseries; i++)
        s_write_series(w, &self->series[i]);
    vz_json_write_array_end(w);
    vz_json_write_key(w, VZ_TL_F_USERS);
    vz_json_write_array_begin(w);
    for (void *item = zhashx_first(self->users); item; item = zhashx_next(self->users))
        vz_json_write_string(w, (const char *)zhashx_cursor(self->users));
    vz_json_write_array_end(w);
    vz_json_write_key(w, VZ_TL_F_USER_CALLS);
    vz_json_write_array_begin(w);
    for (uint64_t *n = zhashx_first(self->users); n; n = zhashx_next(self->users))
        vz_json_write_uint(w, *n);
    vz_json_write_array_end(w);
    vz_json_write_key(w, VZ_TL_F_USERS_OVER);
    vz_json_write_uint(w, self->users_over);
    vz_json_write_key(w, VZ_TL_F_SPANS);
    vz_json_write_array_begin(w);
    for (size_t i = 0; i < self->nspans; i++) {
        const vz_tl_span_t *span = &self->spans[i];
        vz_json_write_object_begin(w);
        vz_json_write_kv_string(w, VZ_TL_F_TRACE, span->trace);
        vz_json_write_kv_string(w, VZ_TL_F_SPAN, span->span);
        vz_json_write_kv_string(w, VZ_TL_F_PARENT, span->parent);
        vz_json_write_kv_string(w, VZ_TL_F_NAME, span->name);
        vz_json_write_kv_string(w, VZ_TL_F_CODE, span->code);
        vz_json_write_kv_int(w, VZ_TL_F_START_US, span->start_us);
        vz_json_write_kv_int(w, VZ_TL_F_DUR_US, span->dur_us);
        vz_json_write_object_end(w);
    }
    vz_json_write_array_end(w);
    vz_json_write_key(w, VZ_TL_F_SPANS_OVER);
    vz_json_write_uint(w, self->spans_over);
    vz_json_write_key(w, VZ_TL_F_EVENTS);
    vz_json_write_object_begin(w);
    for (size_t i = 0; i < self->nevents; i++) {
        vz_json_write_key(w, self->events[i].name);
        vz_json_write_uint(w, self->events[i].count);
    }
    vz_json_write_object_end(w);
    vz_json_write_object_end(w);
    char *text = vz_json_writer_take(w, len_p);
    zhashx_purge(self->users);
    self->users_over = 0;
    self->nspans = 0;
    self->spans_over = 0;
    self->nevents = 0;
    vz_json_writer_destroy(&w);

    //  Start the next interval; the rows keep their histograms for reuse.
    for (size_t i = 0; i < self->nseries; i++)
        memset(self->series[i].hist, 0, sizeof *self->series[i].hist);
    self->nseries = 0;
    self->seq++;
    self->cpu_s = cpu_s;
    self->last_ms = now_ms;
    return text;
}

char *vz_telemetry_snapshot(vz_telemetry_t *self, int64_t now_ms, size_t *len_p)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    char *text = s_snapshot(self, now_ms, len_p);
    self->pending = 0;
    pthread_mutex_unlock(&self->lock);
    return text;
}

int vz_telemetry_flush(vz_telemetry_t *self, int64_t now_ms)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    //  Auto mode without a sink: discard the interval, except for a probe.
    if (self->auto_mode && self->sink_absent && ++self->since_probe < VZ_TL_PROBE_EVERY) {
        size_t len = 0;
        free(s_snapshot(self, now_ms, &len));
        self->pending = 0;
        self->skipped++;
        pthread_mutex_unlock(&self->lock);
        return 0;
    }
    self->since_probe = 0;
    uint64_t carried = self->pending;
    uint64_t lost_report = self->lost_report;
    size_t len = 0;
    char *body = s_snapshot(self, now_ms, &len);
    self->pending = 0;
    pthread_mutex_unlock(&self->lock);
    //  Sent without the lock: recording goes on meanwhile.
    int rc = body ? self->send(self->arg, body, len) : -ENOMEM;
    free(body);
    pthread_mutex_lock(&self->lock);
    if (rc < 0) {
        //  Its requests and the lost count it carried are reported next time.
        self->lost += carried;
        self->lost_report = lost_report + carried;
    } else
        self->lost_report -= lost_report;
    pthread_mutex_unlock(&self->lock);
    return rc < 0 ? rc : 0;
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    vz_telemetry_t *self = (vz_telemetry_t *)arg;
    vz_telemetry_flush(self, vz_clock_now_ms());
    return 0;
}

int vz_telemetry_attach(vz_telemetry_t *self, zloop_t *loop)
{
    assert(self && loop && !self->loop);
    self->timer_id = zloop_timer(loop, (size_t)self->interval_ms, 0, s_on_timer, self);
    if (self->timer_id < 0)
        return -1;
    self->loop = loop;
    return 0;
}

static int s_event_send(void *arg, const char *body, size_t len)
{
    vz_telemetry_t *self = (vz_telemetry_t *)arg;
    return vz_event_send(self->event, VZ_TL_SERVICE, VZ_TL_METHOD_INGEST, body, len);
}

//  Answers to this reporter's events: only ingest's matter (auto mode).
static void s_event_answer(void *arg, const char *service, const char *code)
{
    if (strcmp(service, VZ_TL_SERVICE) == 0)
        vz_telemetry_answer((vz_telemetry_t *)arg, code);
}

static uint64_t s_event_dropped(void *arg)
{
    return vz_event_dropped(((vz_telemetry_t *)arg)->event);
}

vz_telemetry_t *vz_telemetry_new_daemon(vz_daemon_t *daemon, zloop_t *loop)
{
    assert(daemon && loop);
    const vz_daemon_config_t *config = vz_daemon_config(daemon);
    if (config->telemetry == VZ_TELEMETRY_OFF) {
        errno = 0;
        return NULL;
    }
    vz_event_t *event = vz_event_new_daemon(daemon);
    if (!event)
        return NULL;
    //  The version the worker announces in RDY (vz_daemon.c does the same).
    const char *version = *config->service_version ? config->service_version : VZ_BUILD_VERSION;
    vz_telemetry_config_t tc = {.service = vz_daemon_service(daemon),
                                .version = version,
                                .replica = config->replica,
                                .interval_ms = config->telemetry_interval_ms,
                                .send = s_event_send,
                                .dropped = s_event_dropped,
                                .sample_permille = config->telemetry_sample_permille,
                                .slow_us = (int64_t)config->telemetry_slow_ms * 1000,
                                .auto_mode = config->telemetry == VZ_TELEMETRY_AUTO};
    vz_telemetry_t *self = vz_telemetry_new(&tc);
    self->event = event;
    self->arg = self;
    vz_event_on_answer(event, s_event_answer, self);
    vz_telemetry_t *none = NULL;
    atomic_compare_exchange_strong(&s_process, &none, self);
    if (vz_event_attach(event, loop) < 0 || vz_telemetry_attach(self, loop) < 0) {
        vz_telemetry_destroy(&self);
        errno = EIO;
        return NULL;
    }
    return self;
}

void vz_telemetry_answer(vz_telemetry_t *self, const char *code)
{
    assert(self);
    bool absent =
        code && (strcmp(code, VZ_ERR_NO_WORKER) == 0 || strcmp(code, VZ_ERR_FORBIDDEN) == 0);
    pthread_mutex_lock(&self->lock);
    if (absent && !self->sink_absent)
        self->since_probe = 0;
    self->sink_absent = absent;
    pthread_mutex_unlock(&self->lock);
}

bool vz_telemetry_sink_seen(vz_telemetry_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    bool seen = !self->sink_absent;
    pthread_mutex_unlock(&self->lock);
    return seen;
}

uint64_t vz_telemetry_skipped(vz_telemetry_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->skipped;
    pthread_mutex_unlock(&self->lock);
    return n;
}

uint64_t vz_telemetry_recorded(vz_telemetry_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->recorded;
    pthread_mutex_unlock(&self->lock);
    return n;
}

uint64_t vz_telemetry_lost(vz_telemetry_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->lost;
    pthread_mutex_unlock(&self->lock);
    return n;
}
