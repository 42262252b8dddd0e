/*  test_bl_peer - run the stripe SDK peers (tests/peers) from billing's unit tests
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Header-only (each unit test is its own executable). VZ_TEST_SOURCE_DIR
 *  is set for test_bl_* by services/billing/CMakeLists.txt.
 */
#ifndef TEST_BL_PEER_H
#define TEST_BL_PEER_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  True when node and the stripe package are installed; otherwise says so
//  (the caller then skips, visibly).
static inline bool bl_peer_ready(void)
{
    char probe[512];
    snprintf(probe, sizeof probe, "%s/tests/peers/node_modules/stripe/package.json",
             VZ_TEST_SOURCE_DIR);
    if (system("node --version >/dev/null 2>&1") == 0 && access(probe, R_OK) == 0)
        return true;
    printf("SKIP: node or tests/peers/node_modules/stripe missing (npm ci there)\n");
    return false;
}

//  The first line `node <script> <args>` prints (heap, without the newline),
//  or NULL when it fails.
static inline char *bl_peer_run(const char *script, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s/tests/peers && node %s %s 2>&1", VZ_TEST_SOURCE_DIR, script,
             args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    char line[4096] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    if (!got || rc != 0) {
        printf("peer %s: %s\n", script, line);
        return NULL;
    }
    line[strcspn(line, "\n")] = '\0';
    return strdup(line);
}

#endif
