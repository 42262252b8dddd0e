/*  rp_cron - five-field cron expressions in UTC, and ISO weeks
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  "minute hour day-of-month month day-of-week", each field "*", a number,
 *  a range "a-b", a step "*\/n" or "a-b/n", or a comma list of those;
 *  months and weekdays also by their English three-letter names (jan, mon),
 *  weekday 0 and 7 are Sunday. As in Vixie cron, when both day fields are
 *  restricted a day matches if either does. Times are Unix seconds in UTC;
 *  there is no time zone and no clock here: the caller passes "now".
 *
 *  ISO 8601 weeks (Monday 00:00 UTC to the next Monday) are named
 *  "YYYY-Www", the year being the ISO week-numbering year.
 *
 *  Pure functions; any thread.
 */
#ifndef RP_CRON_H
#define RP_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t minutes; //  bit m: minute m (0..59) matches
    uint32_t hours;   //  bit h: hour h (0..23)
    uint32_t mdays;   //  bit d: day of month d (1..31)
    uint16_t months;  //  bit m: month m (1..12)
    uint8_t wdays;    //  bit w: weekday w (0 = Sunday .. 6)
    bool mday_any;    //  day-of-month field was "*"
    bool wday_any;    //  day-of-week field was "*"
} rp_cron_t;

#define RP_WEEK_ID_MAX 9 //  "YYYY-Www" and the NUL

//  Parse text into cron. 0, or -EINVAL with a short reason in err.
int rp_cron_parse(const char *text, rp_cron_t *cron, char *err, size_t errlen);

//  Does the minute containing t match?
bool rp_cron_match(const rp_cron_t *cron, int64_t t);

//  The latest firing time <= t (a whole minute), or -1 when none in the
//  366 days before t.
int64_t rp_cron_prev(const rp_cron_t *cron, int64_t t);

//  The earliest firing time > t, or -1 when none in the 366 days after t.
int64_t rp_cron_next(const rp_cron_t *cron, int64_t t);

//  Start (Monday 00:00 UTC) of the ISO week containing t.
int64_t rp_week_start(int64_t t);

//  The week's name into out ("2026-W49"); out has RP_WEEK_ID_MAX bytes.
void rp_week_id(int64_t t, char out[RP_WEEK_ID_MAX]);

//  The start of the week named id, or -EINVAL when id is not a valid
//  "YYYY-Www" (week 53 only in years that have it; years 1970..9999).
int rp_week_parse(const char *id, int64_t *start);

//  The week a run firing at t reports on: the last whole week before t
//  (the week ending at or before t's week began).
int64_t rp_week_reported(int64_t t);

#endif
