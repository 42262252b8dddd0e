/*  supervisor - run the mesh: start in dependency order, restart, stop in reverse
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  One single-threaded poll loop owns everything: the signalfd (SIGCHLD,
 *  SIGTERM, SIGINT, SIGHUP), the control socket and its clients, and the
 *  readiness pipe of every starting child. Each replica is a small state
 *  machine (stopped, waiting, starting, ready, backoff, stopping, failed)
 *  driven by a static transition table; see docs/services/supervisor.md.
 */
#ifndef SUP_SUPERVISOR_H
#define SUP_SUPERVISOR_H

#include "mesh_config.h"

typedef struct sup_supervisor_t sup_supervisor_t;

//  Load and validate the config, resolve paths, lock <state>/supervisor.lock
//  (one supervisor per state directory), allocate "auto" ports, create the
//  state directories and missing keys, bind the control socket. exe_dir is
//  the default bin_dir; config_path is kept for `reread` and `update`. NULL
//  with *exit_code VZ_EXIT_PERMANENT (bad config, message on stderr) or
//  VZ_EXIT_TEMPORARY (state, lock held by another supervisor, socket).
sup_supervisor_t *sup_supervisor_new(const char *config_path, const char *exe_dir, int *exit_code);
void sup_supervisor_destroy(sup_supervisor_t **self_p);

//  Run until shutdown (SIGTERM, SIGINT or `vzctl shutdown`); returns the
//  process exit code (0 once every child is gone).
int sup_supervisor_run(sup_supervisor_t *self);

#endif
