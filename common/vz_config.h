/*  vz_config - table-driven configuration from environment and a ZPL file
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  A daemon describes its settings in a static const table of vz_cfg_item_t
 *  pointing into its own config struct. vz_config_load fills the struct:
 *  the default, then the ZPL file (vz_config_read) if one is given, then the
 *  environment, which wins (twelve-factor). Every value is validated; the
 *  first bad one yields -EINVAL and an error text naming the variable, the
 *  value seen and the expected form, e.g.
 *    VZ_ADMIN_PORT="80x": expected an integer in 0..65535 (admin HTTP port)
 *  The daemon prints it and exits VZ_EXIT_PERMANENT.
 *
 *  It also holds the one ZPL file reader of the project (vz_config_read),
 *  which every other config file goes through too.
 */
#ifndef VZ_CONFIG_H
#define VZ_CONFIG_H

#include <czmq.h>
#include <stddef.h>
#include <stdio.h>

#define VZ_CONFIG_FILE_MAX (1024 * 1024) //  default bound on a ZPL file, bytes
#define VZ_CONFIG_LINE_MAX 4096          //  longest line of a ZPL file, bytes
#define VZ_CONFIG_NODES_MAX 10000        //  names in one ZPL file
#define VZ_CONFIG_DEPTH_MAX 16           //  nesting levels in one ZPL file

//  The one ZPL reader (ZeroMQ RFC 4, the dialect of CZMQ's zconfig): every
//  config file of every daemon and of the supervisor goes through it, never
//  through zconfig_load (which leaks on bad input and has no size bound).
//  Reads at most max_bytes (0 = VZ_CONFIG_FILE_MAX) of a regular file and
//  returns its tree, root named "root" (caller owns: zconfig_destroy), or
//  NULL with one line in err naming the file and, for a syntax error, the
//  line: "configs/x.cfg:12: not valid ZPL: indent 4 spaces at once".
//  Refused: unreadable or non-regular files, files over the bound, NUL
//  bytes, lines over VZ_CONFIG_LINE_MAX, tabs in indentation, more than
//  VZ_CONFIG_NODES_MAX names or VZ_CONFIG_DEPTH_MAX levels. Comment lines
//  (first non-blank '#') may be indented any way. Any thread.
zconfig_t *vz_config_read(const char *path, size_t max_bytes, char *err, size_t errlen);
//  The same for len bytes of text in memory (need not be NUL-terminated);
//  name stands for the path in messages.
zconfig_t *vz_config_parse(const char *text, size_t len, const char *name, char *err,
                           size_t errlen);

typedef enum {
    VZ_CFG_STR,      //  char[size]; any text that fits
    VZ_CFG_INT,      //  int; decimal in [min, max]
    VZ_CFG_BOOL,     //  bool; 1/0, true/false, yes/no, on/off
    VZ_CFG_MS,       //  int milliseconds; "250", "250ms", "2s", "1m" (also "1h") in [min, max] ms
    VZ_CFG_ENDPOINT, //  char[size]; comma-separated tcp://host:port | ipc://path | inproc://name
                     //  (port may be * or 0; "" accepted only when the default is "")
    VZ_CFG_ENUM,     //  int; the index of the value in item->choices (case-insensitive)
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
    const char *choices; //  ENUM only: the allowed names, space-separated, in index order
} vz_cfg_item_t;

//  Helpers to write table rows without repeating offsetof/sizeof.
#define VZ_CFG_ITEM(T, env, zpl, type, def, min, max, field, help)                                 \
    {                                                                                              \
        env, zpl, type, def, min, max, offsetof(T, field), sizeof(((T *)0)->field), help, NULL     \
    }
//  An enum row: choices "open closed" stores 0 for open, 1 for closed into
//  an int field; anything else is refused with a message listing them.
#define VZ_CFG_ENUM_ITEM(T, env, zpl, def, choices, field, help)                                   \
    {                                                                                              \
        env, zpl, VZ_CFG_ENUM, def, 0, 0, offsetof(T, field), sizeof(((T *)0)->field), help,       \
            choices                                                                                \
    }

//  Precedence per item: environment (even when set to ""), then the file's
//  value at item->zpl, then def. A required item (def NULL) that ends up
//  missing or "" is an error. Keys in the file that no item names are
//  ignored. The file is read with vz_config_read (1 MiB at most).
//  Fill cfg from items. file may be NULL (no file). Returns 0, or -EINVAL
//  with a one-line message in err (size errlen); -ENOENT if file is given
//  but cannot be read or parsed (message says which).
int vz_config_load(void *cfg, const vz_cfg_item_t *items, size_t count, const char *file, char *err,
                   size_t errlen);

//  Print every item (env, default, help; an enum's choices as [a|b]) as a
//  table; for --help and docs.
void vz_config_usage(FILE *out, const vz_cfg_item_t *items, size_t count);

#endif
