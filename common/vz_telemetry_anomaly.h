/*  vz_telemetry_anomaly - a seasonal forecaster and robust anomaly detector for one series
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The same detector runs in the telemetry sink (per series, telemetry.anomalies)
 *  and offline (`vzctl telemetry replay FILE.csv`). Points are fed in time
 *  order, one at a time (vz_tl_anomaly_step); each gets a forecast made
 *  before it was seen, a prediction interval, a score and a 0/1 flag.
 *
 *  Model: additive Holt-Winters (seasonal exponential smoothing, the
 *  state-space form of a seasonal ARIMA(0,1,m+1) model): level l, trend b,
 *  seasonal terms s[0..m-1] with period m (points per season, 0 = none).
 *    forecast  f = l + b + s[i mod m]
 *    residual  r = y - f
 *    scale     sigma = 1.4826 * MAD of the last W residuals (robust:
 *              outliers do not widen it), at least sigma_floor
 *    interval  [f - z sigma, f + z sigma]
 *    score     |r| / sigma
 *    anomaly   score > z, once warm (2 seasons, or 16 points without one)
 *  A point flagged anomalous
 *  is not learnt, so an incident does not become the new normal; a run of
 *  shift_run anomalies on the same side (a point back within half the
 *  interval ends a run) is taken as a level shift and adopted (the model
 *  re-levels and the run stops being flagged).
 *
 *  Data quality, per point (flags): VZ_TL_DQ_GAP when the time since the
 *  previous point is over 1.5 steps (the step is the first interval seen,
 *  or set), VZ_TL_DQ_IMPOSSIBLE for NaN, infinity or a negative value
 *  when the series is non-negative (counts, latencies): such a point is
 *  not learnt and not scored. vz_tl_anomaly_stale tells whether a series
 *  last seen at t is stale at now (over 3 steps).
 *
 *  Plain data, no allocation after new; one owner thread.
 */
#ifndef VZ_TELEMETRY_ANOMALY_H
#define VZ_TELEMETRY_ANOMALY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define VZ_TL_SEASON_MAX 1440 //  longest season (a day of minutes)
#define VZ_TL_DQ_GAP 1        //  points missing before this one
#define VZ_TL_DQ_IMPOSSIBLE 2 //  NaN, infinite, or negative in a non-negative series
#define VZ_TL_DQ_STALE 4      //  (vz_tl_anomaly_stale) no point for over 3 steps

typedef struct {
    int period;         //  points per season, 0 = none, at most VZ_TL_SEASON_MAX
    double alpha;       //  level smoothing, 0 = 0.3
    double beta;        //  trend smoothing, 0 = 0.02
    double gamma;       //  seasonal smoothing, 0 = 0.2
    double z;           //  interval half-width in sigmas, 0 = 3.5
    double sigma_floor; //  smallest sigma, 0 = 1e-9 (a flat series)
    int window;         //  residuals in the MAD, 0 = 64
    int shift_run;      //  same-side anomalies in a run taken as a level shift, 0 = 12
    bool non_negative;  //  negative values are impossible
    int64_t step;       //  expected spacing of timestamps, 0 = the first interval seen
} vz_tl_anomaly_config_t;

//  What one point got.
typedef struct {
    double forecast; //  made before the point was seen
    double lower;    //  prediction interval
    double upper;
    double score; //  |residual| / sigma (0 while warming up or impossible)
    bool anomaly; //  score > z once warm
    int flags;    //  VZ_TL_DQ_*
} vz_tl_anomaly_point_t;

typedef struct vz_tl_anomaly_t vz_tl_anomaly_t;

vz_tl_anomaly_t *vz_tl_anomaly_new(const vz_tl_anomaly_config_t *config);
void vz_tl_anomaly_destroy(vz_tl_anomaly_t **self_p);

//  Feed the point (t, value); t must not go back (a point at or before
//  the last one is flagged a gap of 0 and scored all the same).
void vz_tl_anomaly_step(vz_tl_anomaly_t *self, int64_t t, double value, vz_tl_anomaly_point_t *out);

//  The forecast and interval for the next point, without feeding one.
void vz_tl_anomaly_next(const vz_tl_anomaly_t *self, vz_tl_anomaly_point_t *out);

//  Is a series whose last point was at last stale at now (over 3 steps)?
bool vz_tl_anomaly_stale(const vz_tl_anomaly_t *self, int64_t last, int64_t now);

//  A season for data spaced step apart: a day when step divides it and a
//  day is at most VZ_TL_SEASON_MAX points and at most half of n points,
//  else an hour by the same rules, else 0.
int vz_tl_anomaly_period(int64_t step, size_t n);

//  The offline replay (`vzctl telemetry replay FILE.csv`): read
//  "timestamp,value[,label]" lines from in (a header line, blank lines and
//  lines starting with '#' are skipped; timestamp in Unix seconds or ISO
//  8601 UTC, e.g. 2026-11-02T00:05:00Z), run the detector over them in
//  order and write "timestamp,value,forecast,lower,upper,score,anomaly"
//  per point to out (a header first; the timestamp as read). config->period
//  < 0 picks vz_tl_anomaly_period from the data (its first interval, its
//  length); config->step 0 takes the first interval. Data-quality flags go
//  to err (may be NULL) as "# gap|impossible at <timestamp>" lines. When
//  the lines carry a third 0/1 label, stats counts the confusion matrix.
typedef struct {
    size_t points;     //  points read
    size_t anomalies;  //  flagged
    size_t labelled;   //  points with a label
    size_t tp, fp, fn; //  flagged and labelled 1, flagged and 0, missed 1
    int period;        //  the season used
} vz_tl_replay_stats_t;

//  0, or -1 with a static *why (a line that is not timestamp,value;
//  timestamps going back).
int vz_tl_anomaly_replay(FILE *in, FILE *out, FILE *err, const vz_tl_anomaly_config_t *config,
                         vz_tl_replay_stats_t *stats, const char **why);

#endif
