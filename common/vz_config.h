/*  vz_config - table-driven configuration from environment and a ZPL file
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A daemon describes its settings in a static const table of vz_cfg_item_t
 *  pointing into its own config struct. vz_config_load fills the struct:
 *  the default, then the ZPL file (CZMQ zconfig) if one is given, then the
 *  environment, which wins (twelve-factor). Every value is validated; the
 *  first bad one yields -EINVAL and an error text naming the variable, the
 *  value seen and the expected form, e.g.
 *    VZ_ADMIN_PORT="80x": expected an integer in 0..65535 (admin HTTP port)
 *  The daemon prints it and exits VZ_EXIT_PERMANENT.
 */
#ifndef VZ_CONFIG_H
#define VZ_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    VZ_CFG_STR,      //  char[size]; any text that fits
    VZ_CFG_INT,      //  int; decimal in [min, max]
    VZ_CFG_BOOL,     //  bool; 1/0, true/false, yes/no, on/off
    VZ_CFG_MS,       //  int milliseconds; "250", "250ms", "2s", "1m" (also "1h") in [min, max] ms
    VZ_CFG_ENDPOINT, //  char[size]; comma-separated tcp://host:port | ipc://path | inproc://name
                     //  (port may be * or 0; "" accepted only when the default is "")
} vz_cfg_type_t;

typedef struct {
    const char *env;     //  environment variable, e.g. "VZ_ADMIN_PORT"
    const char *zpl;     //  path in the ZPL file, e.g. "admin/port"; NULL = env only
    vz_cfg_type_t type;  //  how to parse and validate
    const char *def;     //  default as text (parsed like any other value); NULL = required
    long min, max;       //  range for INT and MS
    size_t offset;       //  offsetof(config struct, field)
    size_t size;         //  sizeof(field) (string capacity for STR and ENDPOINT)
    const char *help;    //  what it is, shown in errors and in --help
} vz_cfg_item_t;

//  Helpers to write table rows without repeating offsetof/sizeof.
#define VZ_CFG_ITEM(T, env, zpl, type, def, min, max, field, help)                                 \
    { env, zpl, type, def, min, max, offsetof(T, field), sizeof(((T *)0)->field), help }

//  Precedence per item: environment (even when set to ""), then the file's
//  value at item->zpl, then def. A required item (def NULL) that ends up
//  missing or "" is an error. Keys in the file that no item names are
//  ignored. Files over 1 MiB are refused.
//  Fill cfg from items. file may be NULL (no file). Returns 0, or -EINVAL
//  with a one-line message in err (size errlen); -ENOENT if file is given
//  but cannot be read or parsed (message says which).
int vz_config_load(void *cfg, const vz_cfg_item_t *items, size_t count, const char *file,
                   char *err, size_t errlen);

//  Print every item (env, default, help) as a table; for --help and docs.
void vz_config_usage(FILE *out, const vz_cfg_item_t *items, size_t count);

#endif
