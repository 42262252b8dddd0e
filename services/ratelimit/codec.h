/*  codec - msgpack bodies of the ratelimit service (contract D)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The request decoder reads the received bytes in place with a bounded
 *  cursor: every declared length is compared with the bytes left before it
 *  is used, unknown keys are skipped (nesting at most 8 deep), so a hostile
 *  body costs no allocation and never more than one pass.
 */
#ifndef VZ_RL_CODEC_H
#define VZ_RL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "policies.h"

typedef enum { VZ_RL_MODE_REDIS, VZ_RL_MODE_FAIL_OPEN, VZ_RL_MODE_FAIL_CLOSED } vz_rl_mode_t;

//  One decision, as answered to the caller.
typedef struct {
    bool allowed;         //  what the caller must do (true in shadow mode)
    uint64_t limit;       //  requests per window of the policy
    uint64_t remaining;   //  left in the window / bucket
    uint64_t reset;       //  seconds until full again
    uint64_t retry_after; //  seconds; 0 when allowed
    const char *policy;   //  policy name ("none" when nothing matched)
    uint32_t window;      //  seconds
    vz_rl_mode_t mode;    //  where the decision was made
    bool shadow;          //  shadow mode: a denial was only counted
} vz_rl_answer_t;

//  Fill req from a "check" body. 0, or -EINVAL with a short static reason
//  in *reason (not a map, wrong type, too long, NUL in string, trailing
//  bytes, cost out of range).
int vz_rl_request_decode(vz_rl_request_t *req, const uint8_t *buf, size_t len, const char **reason);

//  Heap msgpack of answer; caller frees. Never fails (OOM aborts).
uint8_t *vz_rl_answer_encode(const vz_rl_answer_t *answer, size_t *len_p);

//  Heap msgpack {"shadow": bool, "policies": [{...}, ...]} of limits.
uint8_t *vz_rl_policies_encode(const vz_rl_policies_t *limits, size_t *len_p);

const char *vz_rl_mode_name(vz_rl_mode_t mode);

#endif
