/*  rp_chart - the report's charts as PNG images and the report as a PDF, drawn with cairo
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A chart is labelled points along x with one or more named series,
 *  drawn as lines or as grouped bars, with axes, a grid, a legend and
 *  a title. cairo encodes the PNG (its own encoder over zlib) and writes
 *  the PDF (its PDF surface); nothing here encodes an image by hand.
 *  Text uses cairo's toy font API with the "sans-serif" family, which
 *  fontconfig resolves to whatever font the machine has.
 *
 *  Pure apart from memory: no I/O. Any thread (cairo objects are made
 *  and destroyed inside each call).
 */
#ifndef RP_CHART_H
#define RP_CHART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RP_CHART_SERIES_MAX 6  //  series of one chart
#define RP_CHART_POINTS_MAX 16 //  points along x

typedef struct {
    const char *name;                   //  legend text
    double values[RP_CHART_POINTS_MAX]; //  one per label
} rp_series_t;

typedef struct {
    const char *title;                       //  above the plot
    const char *labels[RP_CHART_POINTS_MAX]; //  x labels
    size_t count;                            //  points (<= RP_CHART_POINTS_MAX)
    rp_series_t series[RP_CHART_SERIES_MAX]; //  the data
    size_t nseries;                          //  series used
    bool bars;                               //  grouped bars, else lines with markers
    const char *unit;                        //  shown after the y values, may be NULL
} rp_chart_t;

#define RP_CHART_WIDTH 640 //  PNG size in pixels
#define RP_CHART_HEIGHT 280

//  The chart as a PNG: 0 and *png (heap, caller frees), *len; -ENOMEM
//  or -EIO when cairo fails.
int rp_chart_png(const rp_chart_t *chart, uint8_t **png, size_t *len);

//  The report as a PDF: the text (lines split at '\n', A4 portrait, as many
//  pages as it takes), then the charts, two to a page. 0 and *pdf (heap,
//  caller frees), *len and *pages; -EIO when cairo fails.
int rp_chart_pdf(const char *title, const char *text, const rp_chart_t *charts, size_t ncharts,
                 uint8_t **pdf, size_t *len, int *pages);

//  Free cairo's and fontconfig's process-wide caches (fonts found, faces
//  made), so leak checkers see a clean exit. Call once, last, from the
//  main thread, when no other thread draws.
void rp_chart_shutdown(void);

#endif
