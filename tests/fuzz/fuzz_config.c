/*  fuzz_config - libFuzzer target for ZPL config files read by vz_config_load
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The input is the config file (in a memfd, no disk), loaded against a
 *  table with one item of every type, the way a daemon loads its file.
 *  Properties: the result is 0, -EINVAL or -ENOENT; the error text is one
 *  printable line, NUL-terminated even in a small buffer, and present
 *  whenever the load failed; a loaded struct holds values in their ranges
 *  and capacities; writing those values out as ZPL and loading that file
 *  gives the same struct.
 */
#include "fuzz.h"
#include "vz_config.h"

#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    char name[32];
    int port;
    bool debug;
    int timeout_ms;
    char endpoint[128];
    char bind[64];
    int level;
    char secret[16];
} s_cfg_t;

//  Environment names nobody sets: the file is the only source besides defaults.
static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_NAME", "service/name", VZ_CFG_STR, "echo", 0, 0, name, "name"),
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_PORT", "service/port", VZ_CFG_INT, "8080", 0, 65535, port, "port"),
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_DEBUG", "service/debug", VZ_CFG_BOOL, "no", 0, 0, debug, "debug"),
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_TIMEOUT", "service/timeout", VZ_CFG_MS, "2s", 1, 3600000,
                timeout_ms, "timeout"),
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_ENDPOINT", "broker/endpoint", VZ_CFG_ENDPOINT,
                "tcp://127.0.0.1:5555", 0, 0, endpoint, "broker"),
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_BIND", "broker/bind", VZ_CFG_ENDPOINT, "", 0, 0, bind, "bind"),
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_LEVEL", "log/level", VZ_CFG_INT, "0", -10, 10, level, "level"),
    VZ_CFG_ITEM(s_cfg_t, "VZFUZZ_SECRET", "auth/secret", VZ_CFG_STR, NULL, 0, 0, secret, "secret"),
};
#define S_ITEMS (sizeof s_items / sizeof s_items[0])

static int s_fd = -1;
static char s_path[64];

//  The memfd holds exactly these bytes.
static void s_put(const void *data, size_t size)
{
    if (s_fd < 0) {
        s_fd = memfd_create("fuzz_config", 0);
        FZ_CHECK(s_fd >= 0);
        snprintf(s_path, sizeof s_path, "/proc/self/fd/%d", s_fd);
    }
    FZ_CHECK(ftruncate(s_fd, 0) == 0);
    FZ_CHECK(size == 0 || pwrite(s_fd, data, size, 0) == (ssize_t)size);
}

static void s_check_err(int rc, const char *err, size_t cap)
{
    FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOENT);
    FZ_CHECK_STR(err, cap);
    FZ_CHECK((rc == 0) == (err[0] == '\0'));
    for (const char *p = err; *p; p++)
        FZ_CHECK(*p >= 0x20 && *p < 0x7f);
}

//  A value ZPL can hold in double quotes.
static bool s_quotable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == 0x7f)
            return false;
    return true;
}

//  The loaded values as a ZPL file; false when one cannot be written.
static bool s_write(const s_cfg_t *c, char *out, size_t n)
{
    if (!s_quotable(c->name) || !s_quotable(c->secret))
        return false;
    int len = snprintf(out, n,
                       "service\n    name = \"%s\"\n    port = \"%d\"\n    debug = \"%s\"\n"
                       "    timeout = \"%dms\"\nbroker\n    endpoint = \"%s\"\n    bind = \"%s\"\n"
                       "log\n    level = \"%d\"\nauth\n    secret = \"%s\"\n",
                       c->name, c->port, c->debug ? "true" : "false", c->timeout_ms, c->endpoint,
                       c->bind, c->level, c->secret);
    return len > 0 && (size_t)len < n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < S_ITEMS; i++)
        FZ_CHECK(getenv(s_items[i].env) == NULL);
    s_put(data, size);
    s_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[512];
    int rc = vz_config_load(&cfg, s_items, S_ITEMS, s_path, err, sizeof err);
    s_check_err(rc, err, sizeof err);
    //  A small error buffer gets the same answer, cut.
    s_cfg_t small_cfg;
    char small[8];
    FZ_CHECK(vz_config_load(&small_cfg, s_items, S_ITEMS, s_path, small, sizeof small) == rc);
    s_check_err(rc, small, sizeof small);
    if (rc != 0)
        return 0;

    FZ_CHECK_STR(cfg.name, sizeof cfg.name);
    FZ_CHECK_STR(cfg.endpoint, sizeof cfg.endpoint);
    FZ_CHECK_STR(cfg.bind, sizeof cfg.bind);
    FZ_CHECK_STR(cfg.secret, sizeof cfg.secret);
    FZ_CHECK(cfg.secret[0] != '\0' && cfg.endpoint[0] != '\0');
    FZ_CHECK(cfg.port >= 0 && cfg.port <= 65535 && cfg.level >= -10 && cfg.level <= 10);
    FZ_CHECK(cfg.timeout_ms >= 1 && cfg.timeout_ms <= 3600000);

    char text[1024];
    if (!s_write(&cfg, text, sizeof text))
        return 0;
    s_put(text, strlen(text));
    s_cfg_t again;
    memset(&again, 0, sizeof again);
    FZ_CHECK(vz_config_load(&again, s_items, S_ITEMS, s_path, err, sizeof err) == 0);
    FZ_CHECK(memcmp(&cfg, &again, sizeof cfg) == 0);
    return 0;
}
