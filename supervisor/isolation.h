/*  isolation - uids, owners and secret hand-over that keep the daemons apart
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  With isolation "uid" (the default as root) every service runs under a
 *  uid and gid of its own: the system user named by its `user` setting,
 *  else a system user "vz-<service>" when the install step made one, else
 *  a uid from [uid_base, uid_base + SUP_ISO_RANGE) recorded once in
 *  <state_dir>/uids ("name uid" lines) so that it never changes, as
 *  systemd's DynamicUser= does with its range. Its CURVE secret, its
 *  secret_files and its state_dirs are owned by that uid (secrets 0400);
 *  the key directories are root's and not listable. With isolation "fd"
 *  the supervisor reads the secret itself and hands it over through a
 *  pipe (sup_iso_secret_pipe). docs/operations/isolation.md has the why.
 *  Supervisor thread only.
 */
#ifndef SUP_ISOLATION_H
#define SUP_ISOLATION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mesh_config.h"

#define SUP_ISO_RANGE 500 //  uids reserved from uid_base

//  Give every service of cfg its uid and gid (svc->uid, svc->gid) as the
//  header says, recording new ones in <state_dir>/uids. Only for isolation
//  uid. 0, or -errno with err naming the service or the file.
int sup_iso_assign(sup_mesh_config_t *cfg, char *err, size_t errlen);

//  Hand path (a directory) to uid:gid: when its owner differs, everything
//  below it too (a state directory made before isolation, or by another
//  uid); then the directory gets mode. 0 or -errno.
int sup_iso_own_tree(const char *path, uid_t uid, gid_t gid, mode_t mode);

//  Give the file at path (never a symlink: -ELOOP) owner uid:gid and
//  mode. 0 or -errno.
int sup_iso_own_file(const char *path, uid_t uid, gid_t gid, mode_t mode);

//  A secret file of a service: made with 64 random hex characters when
//  absent, then (own) owned by uid:gid; mode 0400 either way. 0 or -errno.
int sup_iso_secret_file(const char *path, uid_t uid, gid_t gid, bool own);

//  The process may run services under other uids: root, with the
//  capabilities that takes (a container's root may lack them).
bool sup_iso_can_switch(void);

//  A pipe holding the whole of the file at path, write end closed: the
//  read end goes to *fd (close-on-exec; the caller closes it). At most
//  16 KiB, which fits the pipe's buffer. 0 or -errno.
int sup_iso_secret_pipe(const char *path, int *fd);

#endif
