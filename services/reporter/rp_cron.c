/*  rp_cron - five-field cron expressions in UTC, and ISO weeks
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rp_cron.h"

#define DAY 86400
#define SEARCH_DAYS 367 //  a year and a day: every expression that can fire does

typedef struct {
    const char *name;         //  field name, for errors
    int lo, hi;               //  allowed values
    const char *const *names; //  names for lo.., or NULL
} s_field_t;

static const char *const s_months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                       "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const s_wdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const s_field_t s_fields[5] = {
    {"minute", 0, 59, NULL},    {"hour", 0, 23, NULL},          {"day of month", 1, 31, NULL},
    {"month", 1, 12, s_months}, {"day of week", 0, 7, s_wdays},
};

//  A number or a name at *p; advances *p. -1 when neither.
static int s_value(const s_field_t *f, const char **p)
{
    if (f->names)
        for (int i = 0; f->names[i]; i++)
            if (strncasecmp(*p, f->names[i], 3) == 0) {
                *p += 3;
                return f->lo + i;
            }
    if (**p < '0' || **p > '9')
        return -1;
    int v = 0;
    while (**p >= '0' && **p <= '9' && v < 1000)
        v = v * 10 + (*(*p)++ - '0');
    return v;
}

//  One field (a comma list) of len bytes into *bits.
static int s_field(const s_field_t *f, const char *text, size_t len, uint64_t *bits, char *err,
                   size_t errlen)
{
    char buf[128];
    if (len == 0 || len >= sizeof buf) {
        snprintf(err, errlen, "%s: empty or too long", f->name);
        return -EINVAL;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    *bits = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        const char *p = item;
        int lo = f->lo, hi = f->hi, step = 1;
        if (*p == '*')
            p++;
        else {
            lo = s_value(f, &p);
            hi = lo;
            if (lo >= 0 && *p == '-') {
                p++;
                hi = s_value(f, &p);
            }
            if (lo < f->lo || hi > f->hi || lo < 0 || hi < lo) {
                snprintf(err, errlen, "%s: %s out of %d-%d", f->name, item, f->lo, f->hi);
                return -EINVAL;
            }
        }
        if (*p == '/') {
            p++;
            const s_field_t num = {f->name, 1, 1000, NULL};
            step = s_value(&num, &p);
            if (step < 1 || step > f->hi) {
                snprintf(err, errlen, "%s: bad step in %s", f->name, item);
                return -EINVAL;
            }
            //  "a/n" means a-hi/n, as in Vixie cron.
            if (item[0] != '*' && !strchr(item, '-'))
                hi = f->hi;
        }
        if (*p) {
            snprintf(err, errlen, "%s: cannot read %s", f->name, item);
            return -EINVAL;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << v;
    }
    return 0;
}

int rp_cron_parse(const char *text, rp_cron_t *cron, char *err, size_t errlen)
{
    memset(cron, 0, sizeof *cron);
    uint64_t bits[5];
    const char *p = text;
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t");
        if (len == 0) {
            snprintf(err, errlen, "five fields expected (minute hour day month weekday)");
            return -EINVAL;
        }
        if (i == 2)
            cron->mday_any = len == 1 && *p == '*';
        if (i == 4)
            cron->wday_any = len == 1 && *p == '*';
        int rc = s_field(&s_fields[i], p, len, &bits[i], err, errlen);
        if (rc < 0)
            return rc;
        p += len;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p) {
        snprintf(err, errlen, "more than five fields");
        return -EINVAL;
    }
    cron->minutes = bits[0];
    cron->hours = (uint32_t)bits[1];
    cron->mdays = (uint32_t)bits[2];
    cron->months = (uint16_t)bits[3];
    //  Weekday 7 is Sunday too.
    cron->wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);
    return 0;
}

//  Days since 1970-01-01 into year, month (1..12), day (1..31)
//  (H. Hinnant's civil_from_days).
static void s_civil(int64_t days, int *year, int *month, int *mday)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *mday = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

//  Days since 1970-01-01 of year-month-day (days_from_civil).
static int64_t s_days(int year, int month, int mday)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + mday - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t s_floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool s_day_match(const rp_cron_t *cron, int64_t days)
{
    int year, month, mday;
    s_civil(days, &year, &month, &mday);
    if (!(cron->months & (1u << month)))
        return false;
    int wday = (int)(((days % 7) + 11) % 7); //  1970-01-01 was a Thursday (4)
    bool m = (cron->mdays >> mday) & 1u, w = (cron->wdays >> wday) & 1u;
    if (cron->mday_any || cron->wday_any)
        return m && w;
    return m || w;
}

bool rp_cron_match(const rp_cron_t *cron, int64_t t)
{
    int64_t days = s_floor_div(t, DAY), sec = t - days * DAY;
    return s_day_match(cron, days) && ((cron->hours >> (sec / 3600)) & 1u) &&
           ((cron->minutes >> ((sec % 3600) / 60)) & 1u);
}

//  Search day by day, then the day's minutes, in one direction.
static int64_t s_search(const rp_cron_t *cron, int64_t t, int dir)
{
    int64_t day = s_floor_div(t, DAY);
    for (int i = 0; i < SEARCH_DAYS; i++, day += dir) {
        if (!s_day_match(cron, day))
            continue;
        for (int k = 0; k < 1440; k++) {
            int m = dir > 0 ? k : 1439 - k;
            int64_t at = day * DAY + (int64_t)m * 60;
            if ((dir > 0 && at <= t) || (dir < 0 && at > t))
                continue;
            if (((cron->hours >> (m / 60)) & 1u) && ((cron->minutes >> (m % 60)) & 1u))
                return at;
        }
    }
    return -1;
}

int64_t rp_cron_prev(const rp_cron_t *cron, int64_t t)
{
    return s_search(cron, t, -1);
}

int64_t rp_cron_next(const rp_cron_t *cron, int64_t t)
{
    return s_search(cron, t, 1);
}

int64_t rp_week_start(int64_t t)
{
    int64_t days = s_floor_div(t, DAY);
    int64_t since_monday = ((days % 7) + 10) % 7; //  Thursday is 3 days after Monday
    return (days - since_monday) * DAY;
}

void rp_week_id(int64_t t, char out[RP_WEEK_ID_MAX])
{
    //  The ISO year is the year of the week's Thursday.
    int64_t thursday = rp_week_start(t) / DAY + 3;
    int year, month, mday;
    s_civil(thursday, &year, &month, &mday);
    int64_t week = (thursday - s_days(year, 1, 1)) / 7 + 1;
    char buf[32];
    snprintf(buf, sizeof buf, "%04d-W%02d", year % 10000, (int)(week % 100));
    memcpy(out, buf, RP_WEEK_ID_MAX - 1);
    out[RP_WEEK_ID_MAX - 1] = '\0';
}

int rp_week_parse(const char *id, int64_t *start)
{
    int year = 0, week = 0;
    if (!id || strlen(id) != 8 || id[4] != '-' || id[5] != 'W')
        return -EINVAL;
    for (int i = 0; i < 8; i++)
        if (i != 4 && i != 5 && (id[i] < '0' || id[i] > '9'))
            return -EINVAL;
    year = atoi(id);
    week = atoi(id + 6);
    if (year < 1970 || week < 1 || week > 53)
        return -EINVAL;
    //  4 January is always in week 1.
    int64_t at = rp_week_start(s_days(year, 1, 4) * DAY) + (int64_t)(week - 1) * 7 * DAY;
    char check[RP_WEEK_ID_MAX];
    rp_week_id(at, check);
    if (strcmp(check, id) != 0)
        return -EINVAL;
    *start = at;
    return 0;
}

int64_t rp_week_reported(int64_t t)
{
    return rp_week_start(t) - 7 * DAY;
}
