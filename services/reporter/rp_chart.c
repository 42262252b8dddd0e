/*  rp_chart - the report's charts as PNG images and the report as a PDF, drawn with cairo
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo-pdf.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "rp_chart.h"

//  Series colours (a colour-blind-safe palette, Okabe & Ito).
static const double s_palette[RP_CHART_SERIES_MAX][3] = {
    {0.00, 0.45, 0.70}, {0.90, 0.62, 0.00}, {0.00, 0.62, 0.45},
    {0.80, 0.47, 0.65}, {0.34, 0.71, 0.91}, {0.84, 0.37, 0.00},
};

//  Growing byte buffer for cairo's write callbacks.
typedef struct {
    uint8_t *data;
    size_t len, cap;
} s_sink_t;

static cairo_status_t s_write(void *closure, const unsigned char *data, unsigned int length)
{
    s_sink_t *sink = closure;
    if (sink->len + length > sink->cap) {
        size_t cap = sink->cap ? sink->cap : 16384;
        while (cap < sink->len + length)
            cap *= 2;
        uint8_t *grown = (uint8_t *)realloc(sink->data, cap);
        if (!grown)
            return CAIRO_STATUS_NO_MEMORY;
        sink->data = grown;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->len, data, length);
    sink->len += length;
    return CAIRO_STATUS_SUCCESS;
}

//  A round upper bound for the y axis: 1, 2 or 5 times a power of ten.
static double s_nice_max(double max)
{
    if (max <= 0)
        return 1;
    double p = pow(10, floor(log10(max)));
    for (int k = 0; k < 3; k++) {
        double f = (double[]){1, 2, 5}[k] * p;
        if (f >= max)
            return f;
    }
    return 10 * p;
}

static void s_text(cairo_t *cr, double x, double y, const char *text, double align)
{
    cairo_text_extents_t ext;
    cairo_text_extents(cr, text, &ext);
    cairo_move_to(cr, x - ext.x_advance * align, y);
    cairo_show_text(cr, text);
}

//  Draw chart into the box (x, y, w, h) of cr.
static void s_draw(cairo_t *cr, const rp_chart_t *c, double x, double y, double w, double h)
{
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 14);
    cairo_set_source_rgb(cr, 0.13, 0.13, 0.13);
    s_text(cr, x + 12, y + 22, c->title ? c->title : "", 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 10);
    //  The plot area, leaving room for the axis labels and the legend.
    double px = x + 64, py = y + 40, pw = w - 80, ph = h - 40 - 56;
    size_t count = c->count > RP_CHART_POINTS_MAX ? RP_CHART_POINTS_MAX : c->count;
    size_t nseries = c->nseries > RP_CHART_SERIES_MAX ? RP_CHART_SERIES_MAX : c->nseries;
    double max = 0;
    for (size_t s = 0; s < nseries; s++)
        for (size_t i = 0; i < count; i++)
            if (isfinite(c->series[s].values[i]) && c->series[s].values[i] > max)
                max = c->series[s].values[i];
    double top = s_nice_max(max);
    //  Grid and y labels: five steps.
    for (int g = 0; g <= 5; g++) {
        double gy = py + ph - ph * g / 5.0;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, px, gy + 0.5);
        cairo_line_to(cr, px + pw, gy + 0.5);
        cairo_stroke(cr);
        char label[48];
        double v = top * g / 5.0;
        snprintf(label, sizeof label, v >= 100 || v == floor(v) ? "%.0f%s" : "%.2g%s", v,
                 c->unit ? c->unit : "");
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        s_text(cr, px - 6, gy + 4, label, 1);
    }
    double slot = count ? pw / (double)count : pw;
    for (size_t i = 0; i < count; i++) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        s_text(cr, px + slot * ((double)i + 0.5), py + ph + 14, c->labels[i] ? c->labels[i] : "",
               0.5);
    }
    for (size_t s = 0; s < nseries; s++) {
        const double *rgb = s_palette[s];
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        if (c->bars) {
            double bw = slot * 0.8 / (double)nseries;
            for (size_t i = 0; i < count; i++) {
                double v = isfinite(c->series[s].values[i]) ? c->series[s].values[i] : 0;
                double bh = ph * v / top;
                cairo_rectangle(cr, px + slot * (double)i + slot * 0.1 + bw * (double)s,
                                py + ph - bh, bw - 1, bh);
            }
            cairo_fill(cr);
        } else {
            cairo_set_line_width(cr, 2.5);
            for (size_t i = 0; i < count; i++) {
                double cx = px + slot * ((double)i + 0.5);
                double cy = py + ph - ph * c->series[s].values[i] / top;
                i == 0 ? cairo_move_to(cr, cx, cy) : cairo_line_to(cr, cx, cy);
            }
            cairo_stroke(cr);
            for (size_t i = 0; i < count; i++) {
                cairo_arc(cr, px + slot * ((double)i + 0.5),
                          py + ph - ph * c->series[s].values[i] / top, 3.5, 0, 2 * M_PI);
                cairo_fill(cr);
            }
        }
        //  Legend along the bottom.
        double lx = px + 120.0 * (double)s, ly = y + h - 14;
        cairo_rectangle(cr, lx, ly - 9, 10, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        s_text(cr, lx + 14, ly, c->series[s].name ? c->series[s].name : "", 0);
    }
    //  Axes.
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, px + 0.5, py);
    cairo_line_to(cr, px + 0.5, py + ph + 0.5);
    cairo_line_to(cr, px + pw, py + ph + 0.5);
    cairo_stroke(cr);
    cairo_restore(cr);
}

int rp_chart_png(const rp_chart_t *chart, uint8_t **png, size_t *len)
{
    cairo_surface_t *surface =
        cairo_image_surface_create(CAIRO_FORMAT_ARGB32, RP_CHART_WIDTH, RP_CHART_HEIGHT);
    cairo_t *cr = cairo_create(surface);
    s_draw(cr, chart, 0, 0, RP_CHART_WIDTH, RP_CHART_HEIGHT);
    cairo_destroy(cr);
    s_sink_t sink = {0};
    cairo_status_t st = cairo_surface_status(surface);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png_stream(surface, s_write, &sink);
    cairo_surface_destroy(surface);
    if (st != CAIRO_STATUS_SUCCESS) {
        free(sink.data);
        return st == CAIRO_STATUS_NO_MEMORY ? -ENOMEM : -EIO;
    }
    *png = sink.data;
    *len = sink.len;
    return 0;
}

#define A4_W 595.0 //  points
#define A4_H 842.0
#define MARGIN 48.0
#define LINE 12.0

int rp_chart_pdf(const char *title, const char *text, const rp_chart_t *charts, size_t ncharts,
                 uint8_t **pdf, size_t *len, int *pages)
{
    s_sink_t sink = {0};
    cairo_surface_t *surface = cairo_pdf_surface_create_for_stream(s_write, &sink, A4_W, A4_H);
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, title);
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "vz-reporter");
    cairo_t *cr = cairo_create(surface);
    int count = 1;
    //  The text, page after page; the title on the first.
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 16);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    s_text(cr, MARGIN, MARGIN, title, 0);
    cairo_select_font_face(cr, "monospace", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 9);
    double y = MARGIN + 2 * LINE;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "\n");
        char line[256];
        size_t cut = n < sizeof line - 1 ? n : sizeof line - 1;
        memcpy(line, p, cut);
        line[cut] = '\0';
        if (y > A4_H - MARGIN) {
            cairo_show_page(cr);
            count++;
            y = MARGIN;
            cairo_select_font_face(cr, "monospace", CAIRO_FONT_SLANT_NORMAL,
                                   CAIRO_FONT_WEIGHT_NORMAL);
            cairo_set_font_size(cr, 9);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        }
        s_text(cr, MARGIN, y, line, 0);
        y += LINE;
        p += n;
        if (*p == '\n')
            p++;
    }
    //  The charts, two to a page, scaled to the width between the margins.
    double cw = A4_W - 2 * MARGIN, ch = cw * RP_CHART_HEIGHT / RP_CHART_WIDTH;
    for (size_t i = 0; i < ncharts; i++) {
        if (i % 2 == 0) {
            cairo_show_page(cr);
            count++;
        }
        cairo_save(cr);
        cairo_translate(cr, MARGIN, MARGIN + (double)(i % 2) * (ch + 2 * MARGIN));
        cairo_scale(cr, cw / RP_CHART_WIDTH, ch / RP_CHART_HEIGHT);
        s_draw(cr, &charts[i], 0, 0, RP_CHART_WIDTH, RP_CHART_HEIGHT);
        cairo_restore(cr);
    }
    cairo_show_page(cr);
    cairo_destroy(cr);
    cairo_surface_finish(surface);
    cairo_status_t st = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    if (st != CAIRO_STATUS_SUCCESS) {
        free(sink.data);
        return -EIO;
    }
    *pdf = sink.data;
    *len = sink.len;
    *pages = count;
    return 0;
}

void rp_chart_shutdown(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
