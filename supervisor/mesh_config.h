/*  mesh_config - the supervisor's ZPL configuration: ports, services, dependencies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  sup_mesh_config_load reads and validates the file (format in
 *  docs/services/supervisor.md): unknown or self dependencies, cycles, bad
 *  replica counts, bad ports, unknown ${port.X} references, service names
 *  with a '.' or named "all" (vzctl targets) and overlong values are
 *  rejected with a message naming the item. Services come out in
 *  dependency order (every service after all it depends on). "auto" ports
 *  stay 0 until sup_mesh_config_alloc_ports picks free ones.
 *  Not thread-safe; the supervisor owns one instance.
 */
#ifndef SUP_MESH_CONFIG_H
#define SUP_MESH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "vz_common.h"

#define SUP_MESH_MAX_SERVICES 32    //  services in one mesh
#define SUP_MESH_MAX_PORTS 32       //  named ports
#define SUP_MESH_MAX_ENV 32         //  env entries per service
#define SUP_MESH_MAX_REPLICAS 32    //  replicas per service
#define SUP_MESH_MAX_DEPS 16        //  dependencies per service
#define SUP_MESH_MAX_LOG_BACKUPS 99 //  rotated log files per replica

//  How daemons are kept from each other's secrets (docs/operations/isolation.md).
typedef enum {
    SUP_ISOLATION_AUTO, //  as read: uid when the supervisor runs as root, else fd
    SUP_ISOLATION_UID,  //  a uid and gid per service; its secrets are owned by it, 0400
    SUP_ISOLATION_FD,   //  one uid; the CURVE secret comes through a pipe (VZ_CURVE_SECRET_FD)
    SUP_ISOLATION_OFF,  //  one uid; the daemon reads its secret file itself
} sup_isolation_t;

typedef struct {
    char name[VZ_NAME_MAX]; //  port name, referenced as ${port.NAME}
    int port;               //  1..65535; 0 while "auto" is unallocated
    bool is_auto;           //  chosen at start
} sup_mesh_port_t;

typedef struct {
    char key[VZ_NAME_MAX];   //  environment variable name
    char value[VZ_PATH_MAX]; //  template with ${...} substitutions
} sup_mesh_env_t;

typedef struct {
    char name[VZ_NAME_MAX];               //  service name (also its key name)
    char command[VZ_PATH_MAX];            //  template; "" for the built-in redis
    bool builtin_redis;                   //  the supervisor runs redis-server itself
    int admin_port;                       //  replica i gets admin_port + i (0 with admin_auto)
    bool admin_auto;                      //  every replica gets a free port
    int replicas;                         //  0..SUP_MESH_MAX_REPLICAS
    int start_timeout_ms;                 //  notify within this or be killed; 0 = no limit
    int ready_poll_ms;                    //  /readyz (Redis: PING) interval once ready; 0 = off
    size_t dep_count;                     //  entries in deps
    int deps[SUP_MESH_MAX_DEPS];          //  indices into services[] (after ordering)
    int tier;                             //  0 without deps, else 1 + max tier of deps
    size_t env_count;                     //  entries in env
    sup_mesh_env_t env[SUP_MESH_MAX_ENV]; //  service-specific environment
    char user[VZ_NAME_MAX];               //  isolation uid: system user to run as, "" = pick
    char state_dirs[VZ_PATH_MAX];         //  templates, blank-separated: directories it writes
    char secret_files[VZ_PATH_MAX];       //  templates, blank-separated: its own secret files
    uid_t uid;                            //  isolation uid: its uid (set by sup_iso_assign)
    gid_t gid;                            //  ... and gid
} sup_mesh_service_t;

typedef struct {
    char config_dir[VZ_PATH_MAX]; //  absolute directory of the config file
    char state_dir[VZ_PATH_MAX];  //  absolute once sup_mesh_config_resolve ran
    char control[VZ_PATH_MAX];    //  control socket path
    char bin_dir[VZ_PATH_MAX];    //  where commands without a slash are looked up first
    int stop_timeout_ms;          //  per shutdown tier before SIGKILL
    int start_timeout_ms;         //  default of services' start_timeout (0 = none)
    int ready_poll_ms;            //  default of services' ready_poll (0 = off)
    long log_max_bytes;           //  a log file this big is rotated (0 = never)
    int log_backups;              //  rotated files kept (S.i.log.1 .. .N)
    sup_isolation_t isolation;    //  never AUTO once sup_mesh_config_resolve ran
    char closed_dir[VZ_PATH_MAX]; //  "auto" chose fd: this directory blocks other uids
    int uid_base;                 //  isolation uid: first uid of the range services get
    size_t port_count;            //  entries in ports
    sup_mesh_port_t ports[SUP_MESH_MAX_PORTS];          //  named ports
    size_t service_count;                               //  entries in services
    sup_mesh_service_t services[SUP_MESH_MAX_SERVICES]; //  in dependency order
} sup_mesh_config_t;

//  Load and validate path into *cfg. 0, -ENOENT (unreadable or not ZPL) or
//  -EINVAL; err (size errlen) then holds one line naming the item.
int sup_mesh_config_load(sup_mesh_config_t *cfg, const char *path, char *err, size_t errlen);

//  Make state_dir, control and bin_dir absolute (state_dir is created;
//  relative paths are taken from the current directory). exe_dir is the
//  default bin_dir. Resolves isolation "auto": uid as root when bin_dir,
//  config_dir and state_dir can be reached by other uids, else fd (then
//  closed_dir names the directory in the way); "uid" without root is
//  refused. 0 or -errno with err.
int sup_mesh_config_resolve(sup_mesh_config_t *cfg, const char *exe_dir, char *err, size_t errlen);

//  Give every "auto" port a currently free port on 127.0.0.1. 0 or -errno.
int sup_mesh_config_alloc_ports(sup_mesh_config_t *cfg);

//  Port named name, or -ENOENT.
int sup_mesh_config_port(const sup_mesh_config_t *cfg, const char *name);

//  Index of service name, or -ENOENT.
int sup_mesh_config_find(const sup_mesh_config_t *cfg, const char *name);

//  Expand ${port.NAME}, ${config_dir}, ${state_dir} of tmpl into out (size n).
//  -EINVAL with the unknown reference in err, -ENAMETOOLONG if too long.
int sup_mesh_config_expand(const sup_mesh_config_t *cfg, const char *tmpl, char *out, size_t n,
                           char *err, size_t errlen);

#endif
