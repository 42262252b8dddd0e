/*  vzctl_rollout - `vzctl rollout`: canary and blue/green releases through the broker's weights
 *  SPDX-License-Identifier: MPL-2.0
 */
#ifndef VZCTL_ROLLOUT_H
#define VZCTL_ROLLOUT_H

//  argv after "rollout" (start, status, pause, resume, promote, abort,
//  clear); socket is the supervisor's control socket, state its state
//  directory (where the rollout's state file and the weights file live).
//  Returns the exit code (docs/operations/releases.md).
int vzctl_rollout(const char *socket, const char *state, int argc, char **argv);

#endif
