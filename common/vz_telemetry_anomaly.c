/*  vz_telemetry_anomaly - a seasonal forecaster and robust anomaly detector for one series
 *  SPDX-License-Identifier: MPL-2.0
 */
#include "vz_telemetry_anomaly.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vz_clock.h"

#define S_WINDOW_MAX 1024
#define S_MAD_TO_SIGMA 1.4826 //  MAD of a normal distribution -> its sigma
#define S_WARM_FLAT 16        //  points before scoring without a season

struct vz_tl_anomaly_t {
    vz_tl_anomaly_config_t c;        //  with defaults filled
    double level, trend;             //  Holt-Winters state
    double season[VZ_TL_SEASON_MAX]; //  seasonal terms
    double first[VZ_TL_SEASON_MAX];  //  the first season's values (initialisation)
    int64_t phase;                   //  index of the next point in the season
    int64_t seen;                    //  points learnt (possible ones)
    bool ready;                      //  initialised
    double resid[S_WINDOW_MAX];      //  last residuals (ring)
    int nresid, at;                  //  filled, next slot
    int run, run_side;               //  consecutive anomalies and their side
    int64_t last_t;                  //  previous point's time
    bool have_t;                     //  any point yet
};

static double s_or(double v, double def)
{
    return v > 0 ? v : def;
}

vz_tl_anomaly_t *vz_tl_anomaly_new(const vz_tl_anomaly_config_t *config)
{
    assert(config);
    vz_tl_anomaly_t *self = (vz_tl_anomaly_t *)calloc(1, sizeof *self);
    assert(self);
    self->c = *config;
    self->c.period = config->period < 0                  ? 0
                     : config->period > VZ_TL_SEASON_MAX ? VZ_TL_SEASON_MAX
                                                         : config->period;
    self->c.alpha = s_or(config->alpha, 0.3);
    self->c.beta = s_or(config->beta, 0.02);
    self->c.gamma = s_or(config->gamma, 0.2);
    self->c.z = s_or(config->z, 3.5);
    self->c.sigma_floor = s_or(config->sigma_floor, 1e-9);
    self->c.window = config->window > 0 && config->window <= S_WINDOW_MAX ? config->window : 64;
    self->c.shift_run = config->shift_run > 0 ? config->shift_run : 12;
    return self;
}

void vz_tl_anomaly_destroy(vz_tl_anomaly_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, s_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

//  Robust sigma of the residual window.
static double s_sigma(const vz_tl_anomaly_t *self)
{
    if (self->nresid < 2)
        return self->c.sigma_floor;
    double tmp[S_WINDOW_MAX];
    memcpy(tmp, self->resid, (size_t)self->nresid * sizeof *tmp);
    double med = s_median(tmp, self->nresid);
    for (int i = 0; i < self->nresid; i++)
        tmp[i] = fabs(self->resid[i] - med);
    double sigma = S_MAD_TO_SIGMA * s_median(tmp, self->nresid);
    return sigma > self->c.sigma_floor ? sigma : self->c.sigma_floor;
}

static int s_slot(const vz_tl_anomaly_t *self)
{
    return self->c.period ? (int)(self->phase % self->c.period) : 0;
}

static double s_forecast(const vz_tl_anomaly_t *self)
{
    if (!self->ready) {
        //  Before the first season is complete: the mean so far.
        int n = (int)self->seen;
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += self->first[i];
        return n ? sum / n : 0;
    }
    return self->level + self->trend + (self->c.period ? self->season[s_slot(self)] : 0);
}

static bool s_warm(const vz_tl_anomaly_t *self)
{
    int64_t need = self->c.period ? 2 * (int64_t)self->c.period : S_WARM_FLAT;
    return self->ready && self->seen >= need && self->nresid >= 8;
}

void vz_tl_anomaly_next(const vz_tl_anomaly_t *self, vz_tl_anomaly_point_t *out)
{
    assert(self && out);
    memset(out, 0, sizeof *out);
    double sigma = s_sigma(self);
    out->forecast = s_forecast(self);
    out->lower = out->forecast - self->c.z * sigma;
    out->upper = out->forecast + self->c.z * sigma;
    if (self->c.non_negative && out->lower < 0)
        out->lower = 0;
}

//  Learn value at the current phase (already judged).
static void s_learn(vz_tl_anomaly_t *self, double value, double forecast)
{
    int m = self->c.period;
    if (!self->ready) {
        int at = (int)self->seen;
        self->first[at] = value;
        self->seen++;
        int need = m ? m : 1;
        if (self->seen >= need) {
            double sum = 0;
            for (int i = 0; i < need; i++)
                sum += self->first[i];
            self->level = sum / need;
            for (int i = 0; i < m; i++)
                self->season[(self->phase - m + 1 + i + m * 4) % m] = self->first[i] - self->level;
            self->trend = 0;
            self->ready = true;
        }
        return;
    }
    int k = s_slot(self);
    double s = m ? self->season[k] : 0;
    double prev = self->level;
    self->level = self->c.alpha * (value - s) + (1 - self->c.alpha) * (self->level + self->trend);
    self->trend = self->c.beta * (self->level - prev) + (1 - self->c.beta) * self->trend;
    if (m)
        self->season[k] = self->c.gamma * (value - self->level) + (1 - self->c.gamma) * s;
    self->resid[self->at] = value - forecast;
    self->at = (self->at + 1) % self->c.window;
    if (self->nresid < self->c.window)
        self->nresid++;
    self->seen++;
}

void vz_tl_anomaly_step(vz_tl_anomaly_t *self, int64_t t, double value, vz_tl_anomaly_point_t *out)
{
    assert(self && out);
    int flags = 0;
    //  Missing points: the season moves on and the trend with it.
    if (self->have_t) {
        int64_t dt = t - self->last_t;
        if (!self->c.step && dt > 0)
            self->c.step = dt;
        if (self->c.step && dt * 2 > self->c.step * 3) {
            flags |= VZ_TL_DQ_GAP;
            int64_t missing = (dt + self->c.step / 2) / self->c.step - 1;
            if (missing > 0 && self->ready) {
                self->phase += missing;
                self->level += self->trend * (double)missing;
            }
        }
    }
    self->have_t = true;
    self->last_t = t;
    vz_tl_anomaly_next(self, out);
    out->flags = flags;
    if (!isfinite(value) || (self->c.non_negative && value < 0)) {
        out->flags |= VZ_TL_DQ_IMPOSSIBLE;
        self->phase++;
        return;
    }
    double sigma = (out->upper - out->forecast) / self->c.z;
    double resid = value - out->forecast;
    double learnt = value;
    if (s_warm(self)) {
        out->score = fabs(resid) / sigma;
        out->anomaly = out->score > self->c.z;
        int side = resid > 0 ? 1 : -1;
        if (out->anomaly) {
            self->run = side == self->run_side ? self->run + 1 : 1;
            self->run_side = side;
            if (self->run >= self->c.shift_run) {
                //  A level shift: adopt the new level, stop flagging.
                self->level += resid;
                self->run = 0;
                out->anomaly = false;
            } else {
                //  Not learnt: the incident must not become the baseline.
                self->phase++;
                return;
            }
        } else if (side != self->run_side || out->score < self->c.z / 2)
            self->run = 0; //  back near the forecast: the run is over
    }
    s_learn(self, learnt, out->forecast);
    self->phase++;
}

bool vz_tl_anomaly_stale(const vz_tl_anomaly_t *self, int64_t last, int64_t now)
{
    assert(self);
    return self->c.step > 0 && now - last > 3 * self->c.step;
}

int vz_tl_anomaly_period(int64_t step, size_t n)
{
    if (step <= 0)
        return 0;
    const int64_t spans[] = {86400, 3600};
    for (int i = 0; i < 2; i++) {
        int64_t m = spans[i] / step;
        if (spans[i] % step == 0 && m >= 2 && m <= VZ_TL_SEASON_MAX && (size_t)(2 * m) <= n)
            return (int)m;
    }
    return 0;
}

typedef struct {
    char text[40]; //  the timestamp as read
    int64_t t;     //  seconds
    double value;  //  value (NaN when not a number)
    int label;     //  0/1, or -1 when absent
} s_row_t;

//  One line: 1 a row, 0 skipped, -1 malformed.
static int s_parse_line(char *line, s_row_t *row)
{
    line[strcspn(line, "\r\n")] = '\0';
    if (!*line || *line == '#')
        return 0;
    char *comma = strchr(line, ',');
    if (!comma)
        return -1;
    *comma = '\0';
    char *value = comma + 1, *rest = strchr(value, ',');
    if (rest)
        *rest++ = '\0';
    char *end = NULL;
    long long secs = strtoll(line, &end, 10);
    int64_t us = 0;
    if (end != line && !*end)
        row->t = secs;
    else if (vz_clock_parse_utc(line, &us) == 0)
        row->t = us / 1000000;
    else
        return strcmp(line, "timestamp") == 0 ? 0 : -1; //  the header
    if (strlen(line) >= sizeof row->text)
        return -1;
    memcpy(row->text, line, strlen(line) + 1);
    row->value = strtod(value, &end);
    if (end == value)
        row->value = NAN; //  not a number: an impossible value, flagged
    row->label = rest && (*rest == '0' || *rest == '1') ? *rest - '0' : -1;
    return 1;
}

int vz_tl_anomaly_replay(FILE *in, FILE *out, FILE *err, const vz_tl_anomaly_config_t *config,
                         vz_tl_replay_stats_t *stats, const char **why)
{
    assert(in && out && config && stats && why);
    memset(stats, 0, sizeof *stats);
    size_t cap = 1024, n = 0;
    s_row_t *rows = (s_row_t *)malloc(cap * sizeof *rows);
    assert(rows);
    char line[512];
    while (fgets(line, sizeof line, in)) {
        if (n == cap) {
            cap *= 2;
            rows = (s_row_t *)realloc(rows, cap * sizeof *rows);
            assert(rows);
        }
        int rc = s_parse_line(line, &rows[n]);
        if (rc < 0 || (rc > 0 && n && rows[n].t < rows[n - 1].t)) {
            free(rows);
            *why = rc < 0 ? "a line is not timestamp,value" : "timestamps go back";
            return -1;
        }
        n += (size_t)rc;
    }
    vz_tl_anomaly_config_t c = *config;
    int64_t step = c.step > 0 ? c.step : n > 1 ? rows[1].t - rows[0].t : 0;
    if (c.period < 0)
        c.period = vz_tl_anomaly_period(step, n);
    stats->period = c.period;
    vz_tl_anomaly_t *det = vz_tl_anomaly_new(&c);
    fprintf(out, "timestamp,value,forecast,lower,upper,score,anomaly\n");
    for (size_t i = 0; i < n; i++) {
        vz_tl_anomaly_point_t p;
        vz_tl_anomaly_step(det, rows[i].t, rows[i].value, &p);
        fprintf(out, "%s,%.6g,%.6g,%.6g,%.6g,%.3f,%d\n", rows[i].text, rows[i].value, p.forecast,
                p.lower, p.upper, p.score, p.anomaly ? 1 : 0);
        if (err && (p.flags & VZ_TL_DQ_GAP))
            fprintf(err, "# gap at %s\n", rows[i].text);
        if (err && (p.flags & VZ_TL_DQ_IMPOSSIBLE))
            fprintf(err, "# impossible at %s\n", rows[i].text);
        stats->points++;
        stats->anomalies += p.anomaly;
        if (rows[i].label >= 0) {
            stats->labelled++;
            stats->tp += p.anomaly && rows[i].label == 1;
            stats->fp += p.anomaly && rows[i].label == 0;
            stats->fn += !p.anomaly && rows[i].label == 1;
        }
    }
    vz_tl_anomaly_destroy(&det);
    free(rows);
    return 0;
}
