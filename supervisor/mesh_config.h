/*  mesh_config - the supervisor's ZPL configuration: ports, services, dependencies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  vz_mesh_config_load reads and validates the file (format in
 *  docs/services/supervisor.md): unknown or self dependencies, cycles, bad
 *  replica counts, bad ports, unknown ${port.X} references and overlong
 *  values are rejected with a message naming the item. Services come out in
 *  dependency order (every service after all it depends on). "auto" ports
 *  stay 0 until vz_mesh_config_alloc_ports picks free ones.
 *  Not thread-safe; the supervisor owns one instance.
 */
#ifndef VZ_MESH_CONFIG_H
#define VZ_MESH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "vz_common.h"

#define VZ_MESH_MAX_SERVICES 32 //  services in one mesh
#define VZ_MESH_MAX_PORTS 32    //  named ports
#define VZ_MESH_MAX_ENV 32      //  env entries per service
#define VZ_MESH_MAX_REPLICAS 32 //  replicas per service
#define VZ_MESH_MAX_DEPS 16     //  dependencies per service

typedef struct {
    char name[VZ_NAME_MAX]; //  port name, referenced as ${port.NAME}
    int port;               //  1..65535; 0 while "auto" is unallocated
    bool is_auto;           //  chosen at start
} vz_mesh_port_t;

typedef struct {
    char key[VZ_NAME_MAX];   //  environment variable name
    char value[VZ_PATH_MAX]; //  template with ${...} substitutions
} vz_mesh_env_t;

typedef struct {
    char name[VZ_NAME_MAX];             //  service name (also its key name)
    char command[VZ_PATH_MAX];          //  template; "" for the built-in redis
    bool builtin_redis;                 //  the supervisor runs redis-server itself
    int admin_port;                     //  replica i gets admin_port + i (0 with admin_auto)
    bool admin_auto;                    //  every replica gets a free port
    int replicas;                       //  0..VZ_MESH_MAX_REPLICAS
    int start_timeout_ms;               //  notify within this or be killed; 0 = no limit
    int ready_poll_ms;                  //  /readyz (Redis: PING) interval once ready; 0 = off
    size_t dep_count;                   //  entries in deps
    int deps[VZ_MESH_MAX_DEPS];         //  indices into services[] (after ordering)
    int tier;                           //  0 without deps, else 1 + max tier of deps
    size_t env_count;                   //  entries in env
    vz_mesh_env_t env[VZ_MESH_MAX_ENV]; //  service-specific environment
} vz_mesh_service_t;

typedef struct {
    char config_dir[VZ_PATH_MAX];            //  absolute directory of the config file
    char state_dir[VZ_PATH_MAX];             //  absolute once vz_mesh_config_resolve ran
    char control[VZ_PATH_MAX];               //  control socket path
    char bin_dir[VZ_PATH_MAX];               //  where commands without a slash are looked up first
    int stop_timeout_ms;                     //  per shutdown tier before SIGKILL
    int start_timeout_ms;                    //  default of services' start_timeout (0 = none)
    int ready_poll_ms;                       //  default of services' ready_poll (0 = off)
    size_t port_count;                       //  entries in ports
    vz_mesh_port_t ports[VZ_MESH_MAX_PORTS]; //  named ports
    size_t service_count;                    //  entries in services
    vz_mesh_service_t services[VZ_MESH_MAX_SERVICES]; //  in dependency order
} vz_mesh_config_t;

//  Load and validate path into *cfg. 0, -ENOENT (unreadable or not ZPL) or
//  -EINVAL; err (size errlen) then holds one line naming the item.
int vz_mesh_config_load(vz_mesh_config_t *cfg, const char *path, char *err, size_t errlen);

//  Make state_dir, control and bin_dir absolute (state_dir is created;
//  relative paths are taken from the current directory). exe_dir is the
//  default bin_dir. 0 or -errno with err.
int vz_mesh_config_resolve(vz_mesh_config_t *cfg, const char *exe_dir, char *err, size_t errlen);

//  Give every "auto" port a currently free port on 127.0.0.1. 0 or -errno.
int vz_mesh_config_alloc_ports(vz_mesh_config_t *cfg);

//  A free TCP port on 127.0.0.1 (bind to 0, read it back), or -errno.
int vz_mesh_free_port(void);

//  Port named name, or -ENOENT.
int vz_mesh_config_port(const vz_mesh_config_t *cfg, const char *name);

//  Index of service name, or -ENOENT.
int vz_mesh_config_find(const vz_mesh_config_t *cfg, const char *name);

//  Expand ${port.NAME}, ${config_dir}, ${state_dir} of tmpl into out (size n).
//  -EINVAL with the unknown reference in err, -ENAMETOOLONG if too long.
int vz_mesh_config_expand(const vz_mesh_config_t *cfg, const char *tmpl, char *out, size_t n,
                          char *err, size_t errlen);

#endif
