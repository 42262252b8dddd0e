/*  vzctl_telemetry - the `vzctl telemetry` subcommand (replay)
 *  SPDX-License-Identifier: MPL-2.0
 */
#ifndef VZCTL_TELEMETRY_H
#define VZCTL_TELEMETRY_H

//  argv after "telemetry": "replay" FILE [options]. Returns the exit code.
int vzctl_telemetry(int argc, char **argv);

#endif
