/*  tl_snapshot - decode and check one reporter snapshot (vz_telemetry.h, version 1)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The body comes from the network: every field is checked, nothing is
 *  asserted. Refused (-EINVAL with a reason): not JSON, version other than
 *  1, a service, name or code outside [A-Za-z0-9_.-] or longer than
 *  VZ_TL_NAME_MAX - 1, more than VZ_TL_SERIES series, VZ_TL_CODES codes or
 *  VZ_TL_BINS bins in one series, a bin index out of range, and counts
 *  that disagree (the bins and the codes of a series must each add up to
 *  its count). Pure: no I/O, no clock.
 */
#ifndef TL_SNAPSHOT_H
#define TL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "vz_telemetry.h"

typedef struct {
    char name[VZ_TL_NAME_MAX]; //  outcome code
    uint64_t count;            //  requests with it
} tl_code_count_t;

typedef struct {
    char name[VZ_TL_NAME_MAX];          //  method or route
    uint64_t count;                     //  requests
    double sum_us;                      //  their total duration
    tl_code_count_t codes[VZ_TL_CODES]; //  by outcome
    size_t ncodes;                      //  rows in codes
    uint16_t bin[VZ_TL_BINS];           //  non-empty histogram bins...
    uint32_t bin_count[VZ_TL_BINS];     //  ...and their counts
    size_t nbins;                       //  rows in bin
} tl_series_t;

typedef struct {
    char service[VZ_TL_NAME_MAX];  //  reporting service
    int64_t replica;               //  its replica index
    int64_t pid;                   //  its process id
    int64_t t_ms;                  //  end of the interval, Unix ms
    int64_t interval_ms;           //  its length
    int64_t seq;                   //  snapshot number of that process
    uint64_t lost;                 //  requests of earlier snapshots not delivered
    uint64_t dropped;              //  the reporter's event drop counter
    double cpu;                    //  cores used over the interval
    uint64_t rss;                  //  resident bytes
    int64_t fds;                   //  open descriptors
    tl_series_t *series;           //  nseries rows (heap)
    size_t nseries;                //  rows in series
    char (*users)[VZ_TL_NAME_MAX]; //  active users (heap; optional in the body)
    size_t nusers;                 //  rows in users
    uint64_t users_over;           //  users the reporter could not list
} tl_snapshot_t;

//  Decode body; NULL with a reason in err (static text) when refused.
tl_snapshot_t *tl_snapshot_decode(const void *body, size_t len, const char **err);
void tl_snapshot_destroy(tl_snapshot_t **self_p);

//  Is text a valid service, name or code?
bool tl_name_valid(const char *text);

#endif
