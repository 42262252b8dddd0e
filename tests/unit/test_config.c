/*  test_config - vz_config: types, ranges, precedence, errors, usage
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vz_config.h"

#include "ut.h"

typedef struct {
    char name[16];
    int port;
    bool flag;
    int timeout;
    char eps[64];
    char opt_eps[64];
    char req[32];
    int mode;
} cfg_t;

static const vz_cfg_item_t s_items[] = {
    VZ_CFG_ITEM(cfg_t, "TCFG_NAME", "svc/name", VZ_CFG_STR, "echo", 0, 0, name, "service name"),
    VZ_CFG_ITEM(cfg_t, "TCFG_PORT", "admin/port", VZ_CFG_INT, "8080", 0, 65535, port,
                "admin HTTP port"),
    VZ_CFG_ITEM(cfg_t, "TCFG_FLAG", "svc/flag", VZ_CFG_BOOL, "off", 0, 0, flag, "a switch"),
    VZ_CFG_ITEM(cfg_t, "TCFG_TIMEOUT", "svc/timeout", VZ_CFG_MS, "2s", 1, 600000, timeout,
                "request timeout"),
    VZ_CFG_ITEM(cfg_t, "TCFG_EPS", "broker/endpoints", VZ_CFG_ENDPOINT, "tcp://127.0.0.1:5555", 0,
                0, eps, "broker endpoints"),
    VZ_CFG_ITEM(cfg_t, "TCFG_OPT_EPS", NULL, VZ_CFG_ENDPOINT, "", 0, 0, opt_eps,
                "optional endpoints"),
    VZ_CFG_ITEM(cfg_t, "TCFG_REQ", "svc/req", VZ_CFG_STR, NULL, 0, 0, req, "required thing"),
    VZ_CFG_ENUM_ITEM(cfg_t, "TCFG_MODE", "svc/mode", "open", "open closed half", mode,
                     "when the backend is away"),
};
#define N_ITEMS (sizeof s_items / sizeof s_items[0])

static char s_dir[64];

static int setup(void **state)
{
    static const char *const names[] = {"TCFG_NAME", "TCFG_PORT",    "TCFG_FLAG", "TCFG_TIMEOUT",
                                        "TCFG_EPS",  "TCFG_OPT_EPS", "TCFG_REQ",  "TCFG_MODE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
    setenv("TCFG_REQ", "here", 1);
    return 0;
}

static int load(cfg_t *cfg, const char *file, char *err, size_t errlen)
{
    memset(cfg, 0x5a, sizeof *cfg);
    return vz_config_load(cfg, s_items, N_ITEMS, file, err, errlen);
}

//  Set one variable, expect -EINVAL and every fragment in the message.
static void expect_error(const char *env, const char *value, const char *const *fragments)
{
    cfg_t cfg;
    char err[512];
    setenv(env, value, 1);
    int rc = load(&cfg, NULL, err, sizeof err);
    if (rc != -EINVAL)
        fail_msg("%s=\"%s\" accepted (rc %d)", env, value, rc);
    for (size_t i = 0; fragments[i]; i++)
        if (!strstr(err, fragments[i]))
            fail_msg("error for %s=\"%s\" lacks \"%s\": %s", env, value, fragments[i], err);
    unsetenv(env);
}

static void test_defaults(void **state)
{
    cfg_t cfg;
    char err[256] = "x";
    assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.name, "echo");
    assert_int_equal(cfg.port, 8080);
    assert_false(cfg.flag);
    assert_int_equal(cfg.timeout, 2000);
    assert_string_equal(cfg.eps, "tcp://127.0.0.1:5555");
    assert_string_equal(cfg.opt_eps, "");
    assert_string_equal(cfg.req, "here");
}

static void test_precedence(void **state)
{
    char *path = ut_write_file(s_dir, "prec.cfg",
                               "svc\n"
                               "    name = fromfile\n"
                               "    timeout = 3s\n"
                               "    unknown_key = whatever\n"
                               "admin\n"
                               "    port = 9000\n"
                               "other\n"
                               "    section = 1\n");
    cfg_t cfg;
    char err[256];
    setenv("TCFG_PORT", "9100", 1);
    assert_int_equal(load(&cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg.name, "fromfile");            //  file over default
    assert_int_equal(cfg.timeout, 3000);                  //  file over default
    assert_int_equal(cfg.port, 9100);                     //  env over file
    assert_string_equal(cfg.eps, "tcp://127.0.0.1:5555"); //  default
    //  An empty environment value is a value too (for a string).
    setenv("TCFG_NAME", "", 1);
    assert_int_equal(load(&cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg.name, "");
}

static void test_int(void **state)
{
    cfg_t cfg;
    char err[256];
    setenv("TCFG_PORT", "0", 1);
    assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
    assert_int_equal(cfg.port, 0);
    setenv("TCFG_PORT", "65535", 1);
    assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
    assert_int_equal(cfg.port, 65535);
    unsetenv("TCFG_PORT");

    static const char *const frags[] = {"TCFG_PORT=", "expected an integer in 0..65535",
                                        "(admin HTTP port)", NULL};
    static const char *const bad[] = {
        "80x", "", "70000", "-1", " 8", "8 ", "99999999999999999999999", "0x10", "+"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error("TCFG_PORT", bad[i], frags);
    static const char *const exact[] = {"TCFG_PORT=\"80x\": expected an integer in 0..65535 "
                                        "(admin HTTP port)",
                                        NULL};
    expect_error("TCFG_PORT", "80x", exact);
}

static void test_ms(void **state)
{
    static const struct {
        const char *text;
        int ms;
    } good[] = {{"250", 250}, {"250ms", 250},     {"2s", 2000},   {"1m", 60000},
                {"1", 1},     {"600000", 600000}, {"10m", 600000}};
    cfg_t cfg;
    char err[256];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("TCFG_TIMEOUT", good[i].text, 1);
        assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
        assert_int_equal(cfg.timeout, good[i].ms);
    }
    static const char *const frags[] = {"TCFG_TIMEOUT=", "expected a duration in 1..600000 ms",
                                        "request timeout", NULL};
    static const char *const bad[] = {
        "2x", "-5", "1.5s", "ms", "", "0", "11m", "2 s", "99999999999999999999m", "1h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error("TCFG_TIMEOUT", bad[i], frags);
}

static void test_bool(void **state)
{
    static const struct {
        const char *text;
        bool value;
    } good[] = {{"1", true},   {"0", false},  {"true", true}, {"FALSE", false},
                {"Yes", true}, {"no", false}, {"on", true},   {"off", false}};
    cfg_t cfg;
    char err[256];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("TCFG_FLAG", good[i].text, 1);
        assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
        assert_int_equal(cfg.flag, good[i].value);
    }
    static const char *const frags[] = {"TCFG_FLAG=\"maybe\"", "expected 1/0, true/false", NULL};
    expect_error("TCFG_FLAG", "maybe", frags);
    static const char *const frags2[] = {"TCFG_FLAG=\"\"", "yes/no", NULL};
    expect_error("TCFG_FLAG", "", frags2);
}

static void test_endpoint(void **state)
{
    static const char *const good[] = {
        "tcp://127.0.0.1:5555", "tcp://a:1,tcp://b.example.com:2",
        "ipc:///tmp/x.sock",    "inproc://x",
        "tcp://[::1]:5",        "tcp://*:*",
        "tcp://broker-0:0",
    };
    cfg_t cfg;
    char err[256];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("TCFG_EPS", good[i], 1);
        if (load(&cfg, NULL, err, sizeof err) != 0)
            fail_msg("%s rejected: %s", good[i], err);
        assert_string_equal(cfg.eps, good[i]);
    }
    static const char *const frags[] = {"TCFG_EPS=", "expected a comma-separated list",
                                        "tcp://host:port", NULL};
    static const char *const bad[] = {
        "tcp://host",           "tcp://:5",    "http://x:1", "tcp://a:99999", "tcp://a:1,",
        ",tcp://a:1",           "tcp://a b:1", "",           "ipc://",        "inproc://",
        "tcp://a:1, tcp://b:2", "tcp://[::1]", "tcp://a:1x", "tcp://a:b:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error("TCFG_EPS", bad[i], frags);
    //  Valid syntax but longer than the field holds.
    static const char *const frags2[] = {"TCFG_EPS=", "expected at most 63 bytes", NULL};
    expect_error("TCFG_EPS",
                 "tcp://aaaaaaaaaaaaaaaaaaaaaa:1,tcp://bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb:2",
                 frags2);
    //  Optional endpoint lists (default "") accept "" but still check syntax.
    setenv("TCFG_OPT_EPS", "", 1);
    assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
    static const char *const frags3[] = {"TCFG_OPT_EPS=\"tcp://x\"", NULL};
    expect_error("TCFG_OPT_EPS", "tcp://x", frags3);
}

static void test_str(void **state)
{
    cfg_t cfg;
    char err[256];
    setenv("TCFG_NAME", "123456789012345", 1); //  15 bytes: fits in 16
    assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.name, "123456789012345");
    static const char *const frags[] = {"TCFG_NAME", "expected at most 15 bytes, got 16",
                                        "service name", NULL};
    expect_error("TCFG_NAME", "supersecret12345", frags);
    //  The value itself is not echoed for strings (it may be a secret).
    setenv("TCFG_NAME", "supersecret12345", 1);
    assert_int_equal(load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_null(strstr(err, "supersecret"));
    unsetenv("TCFG_NAME");
}

static void test_required(void **state)
{
    unsetenv("TCFG_REQ");
    static const char *const frags[] = {"TCFG_REQ is required", "required thing", "svc/req", NULL};
    cfg_t cfg;
    char err[256];
    assert_int_equal(load(&cfg, NULL, err, sizeof err), -EINVAL);
    for (size_t i = 0; frags[i]; i++)
        assert_non_null(strstr(err, frags[i]));
    //  Empty counts as missing for a required item.
    expect_error("TCFG_REQ", "", frags);
    //  A file can provide it.
    char *path = ut_write_file(s_dir, "req.cfg", "svc\n    req = fromfile\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), 0);
    assert_string_equal(cfg.req, "fromfile");
}

static void test_file_errors(void **state)
{
    cfg_t cfg;
    char err[512];
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope.cfg", s_dir);
    assert_int_equal(load(&cfg, missing, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));

    assert_int_equal(load(&cfg, s_dir, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, s_dir));

    char *path = ut_write_file(s_dir, "bad.cfg", "svc\n   name = x\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "bad.cfg"));
    assert_non_null(strstr(err, "not valid ZPL"));

    path = ut_write_file(s_dir, "bad2.cfg", "svc\n    name = \"unterminated\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), -ENOENT);

    //  A bad value in the file names the file and key.
    path = ut_write_file(s_dir, "val.cfg", "admin\n    port = 80x\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "TCFG_PORT=\"80x\""));
    assert_non_null(strstr(err, "val.cfg, key admin/port"));

    //  An empty file, or one with comments only, is just no overrides.
    path = ut_write_file(s_dir, "empty.cfg", "# nothing here\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.port, 8080);
    //  No error buffer at all is allowed.
    assert_int_equal(load(&cfg, missing, NULL, 0), -ENOENT);
}

static void test_enum(void **state)
{
    cfg_t cfg;
    char err[256];
    assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
    assert_int_equal(cfg.mode, 0); //  the default, "open"
    static const struct {
        const char *text;
        int index;
    } good[] = {{"open", 0}, {"closed", 1}, {"half", 2}, {"CLOSED", 1}, {"Half", 2}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("TCFG_MODE", good[i].text, 1);
        assert_int_equal(load(&cfg, NULL, err, sizeof err), 0);
        assert_int_equal(cfg.mode, good[i].index);
    }
    //  Refused with a message naming every choice.
    static const char *const frags[] = {"TCFG_MODE=", "expected one of open, closed, half",
                                        "when the backend is away", NULL};
    static const char *const bad[] = {"maybe", "", "ope", "opened", "open closed", " open", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error("TCFG_MODE", bad[i], frags);
    //  From a file, naming file and key when wrong.
    unsetenv("TCFG_MODE");
    char *path = ut_write_file(s_dir, "mode.cfg", "svc\n    mode = closed\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.mode, 1);
    path = ut_write_file(s_dir, "mode2.cfg", "svc\n    mode = \"shut\"\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "TCFG_MODE=\"shut\""));
    assert_non_null(strstr(err, "mode2.cfg, key svc/mode"));
    assert_non_null(strstr(err, "open, closed, half"));
}

//  The ZPL reader against a document using every construct.
static void test_zpl_parse(void **state)
{
    static const char text[] = "#   a header comment\n"
                               "top = 1\n"
                               "section                      # a comment after a name\n"
                               "    key = plain value   # cut here\n"
                               "    quoted = \"with # inside\"  # and a comment\n"
                               "    single = 'say \"hi\"'\n"
                               "  # a comment indented any way\n"
                               "\n"
                               "    nested\r\n"
                               "        deep = \"x\"\n"
                               "        empty =\n"
                               "    back = 2\n"
                               "path.with-odd_chars@&+$/sub = ok\n"
                               "last = \"no newline at the end\"";
    char err[256] = "";
    zconfig_t *root = vz_config_parse(text, strlen(text), "doc", err, sizeof err);
    if (!root)
        fail_msg("rejected: %s", err);
    assert_string_equal(zconfig_get(root, "top", "?"), "1");
    assert_string_equal(zconfig_get(root, "section", "?"), "");
    assert_string_equal(zconfig_get(root, "section/key", "?"), "plain value");
    assert_string_equal(zconfig_get(root, "section/quoted", "?"), "with # inside");
    assert_string_equal(zconfig_get(root, "section/single", "?"), "say \"hi\"");
    assert_string_equal(zconfig_get(root, "section/nested/deep", "?"), "x");
    assert_string_equal(zconfig_get(root, "section/nested/empty", "?"), "");
    assert_string_equal(zconfig_get(root, "section/back", "?"), "2");
    assert_string_equal(zconfig_get(root, "last", "?"), "no newline at the end");
    //  Siblings stay in file order.
    zconfig_t *first = zconfig_child(zconfig_locate(root, "section"));
    assert_string_equal(zconfig_name(first), "key");
    assert_string_equal(zconfig_name(zconfig_next(first)), "quoted");
    zconfig_destroy(&root);
    //  Empty text is an empty tree, not an error.
    root = vz_config_parse("", 0, "doc", err, sizeof err);
    assert_non_null(root);
    assert_null(zconfig_child(root));
    zconfig_destroy(&root);
    //  The length bounds the text: nothing past it is read.
    root = vz_config_parse("a = 1\nb = 2\n", 6, "doc", err, sizeof err);
    assert_non_null(root);
    assert_null(zconfig_locate(root, "b"));
    zconfig_destroy(&root);
}

//  Every refusal names the file and the line, and never returns a tree.
static void test_zpl_errors(void **state)
{
    static const struct {
        const char *text;
        const char *where;
        const char *what;
    } bad[] = {
        {"a\n   b = 1\n", "t.cfg:2:", "indent 4 spaces at once (found 3)"},
        {"a\n\tb = 1\n", "t.cfg:2:", "tab in indentation"},
        {"a = 1\n        b = 1\n", "t.cfg:2:", "indented deeper"},
        {"a\n    b = \"open\n", "t.cfg:2:", "missing closing \""},
        {"a = 'x\n", "t.cfg:1:", "missing closing '"},
        {"a = \"x\" y\n", "t.cfg:1:", "unexpected text after the quoted value"},
        {"a b\n", "t.cfg:1:", "unexpected text after the name"},
        {"# ok\n\n= 1\n", "t.cfg:3:", "expected a name"},
        {"/a = 1\n", "t.cfg:1:", "'/' not valid"},
        {"a/ = 1\n", "t.cfg:1:", "'/' not valid"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zconfig_t *root =
            vz_config_parse(bad[i].text, strlen(bad[i].text), "t.cfg", err, sizeof err);
        if (root)
            fail_msg("accepted: %s", bad[i].text);
        if (!strstr(err, bad[i].where) || !strstr(err, bad[i].what) ||
            !strstr(err, "not valid ZPL"))
            fail_msg("\"%s\": expected \"%s ... %s\", got \"%s\"", bad[i].text, bad[i].where,
                     bad[i].what, err);
    }
    //  A NUL byte, on the line it is on.
    static const char nul[] = "a = 1\nb = 2\nc = x\0y\n";
    assert_null(vz_config_parse(nul, sizeof nul - 1, "t.cfg", err, sizeof err));
    assert_non_null(strstr(err, "t.cfg:3: not valid ZPL: NUL byte"));
    //  A line longer than the bound is refused, not cut (CZMQ cuts at 1024).
    char *line = malloc(VZ_CONFIG_LINE_MAX + 16);
    assert_non_null(line);
    memcpy(line, "k = ", 4);
    memset(line + 4, 'v', VZ_CONFIG_LINE_MAX);
    assert_null(vz_config_parse(line, VZ_CONFIG_LINE_MAX + 4, "t.cfg", err, sizeof err));
    assert_non_null(strstr(err, "t.cfg:1: not valid ZPL: line longer than"));
    zconfig_t *root = vz_config_parse(line, VZ_CONFIG_LINE_MAX, "t.cfg", err, sizeof err);
    assert_non_null(root);
    assert_int_equal(strlen(zconfig_get(root, "k", "")), VZ_CONFIG_LINE_MAX - 4);
    zconfig_destroy(&root);
    free(line);
    //  Nesting and name count are bounded.
    char deep[VZ_CONFIG_DEPTH_MAX * (VZ_CONFIG_DEPTH_MAX * 4 + 3) + 1];
    size_t o = 0;
    for (int d = 0; d <= VZ_CONFIG_DEPTH_MAX; d++)
        o += (size_t)snprintf(deep + o, sizeof deep - o, "%*sn\n", d * 4, "");
    assert_null(vz_config_parse(deep, o, "t.cfg", err, sizeof err));
    assert_non_null(strstr(err, "nested deeper than"));
    size_t n = (VZ_CONFIG_NODES_MAX + 1) * 2;
    char *many = malloc(n);
    assert_non_null(many);
    for (size_t i = 0; i < n; i += 2)
        memcpy(many + i, "a\n", 2);
    assert_null(vz_config_parse(many, n, "t.cfg", err, sizeof err));
    assert_non_null(strstr(err, "more than 10000 names"));
    root = vz_config_parse(many, n - 2, "t.cfg", err, sizeof err);
    assert_non_null(root);
    zconfig_destroy(&root);
    free(many);
    //  No error buffer is fine too.
    assert_null(vz_config_parse("\tx\n", 3, "t.cfg", NULL, 0));
}

//  Files: the size bound, unreadable paths, and the error naming the path.
static void test_zpl_read(void **state)
{
    char err[512];
    char *path = ut_write_file(s_dir, "small.cfg", "a = 12345678\n"); //  13 bytes
    zconfig_t *root = vz_config_read(path, 13, err, sizeof err);
    assert_non_null(root);
    assert_string_equal(zconfig_get(root, "a", ""), "12345678");
    zconfig_destroy(&root);
    assert_null(vz_config_read(path, 12, err, sizeof err));
    assert_non_null(strstr(err, "small.cfg: larger than 12 bytes"));
    //  The default bound is 1 MiB: a file one byte over it is refused.
    path = ut_write_file(s_dir, "big.cfg", "");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < VZ_CONFIG_FILE_MAX / 64; i++)
        fprintf(f, "%-63s\n", "# padding");
    fclose(f);
    root = vz_config_read(path, 0, err, sizeof err);
    assert_non_null(root); //  exactly 1 MiB
    zconfig_destroy(&root);
    f = fopen(path, "a");
    fputc('\n', f);
    fclose(f);
    assert_null(vz_config_read(path, 0, err, sizeof err));
    assert_non_null(strstr(err, "larger than 1048576 bytes"));
    //  Missing, a directory: named with the system's reason.
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope.cfg", s_dir);
    assert_null(vz_config_read(missing, 0, err, sizeof err));
    assert_non_null(strstr(err, "nope.cfg: cannot read: No such file"));
    assert_null(vz_config_read(s_dir, 0, err, sizeof err));
    assert_non_null(strstr(err, "Is a directory"));
    //  Through vz_config_load, the line reaches the daemon's message.
    cfg_t cfg;
    path = ut_write_file(s_dir, "line.cfg", "svc\n    name = x\n   port = 1\n");
    assert_int_equal(load(&cfg, path, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "line.cfg:3: not valid ZPL: indent 4 spaces"));
}

//  Random bytes from ZPL's alphabet: a tree or an error, never a crash or
//  a leak (valgrind runs this binary).
static void test_zpl_random(void **state)
{
    static const char alphabet[] = "    \t\n\n#=\"'ab/.$\r\0";
    unsigned seed = 15;
    char text[256], err[128];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof text);
        for (size_t i = 0; i < len; i++)
            text[i] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
        zconfig_t *root = vz_config_parse(text, len, "rnd", err, sizeof err);
        if (!root)
            assert_non_null(strstr(err, "rnd:"));
        zconfig_destroy(&root);
    }
}

static void test_usage(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    vz_config_usage(out, s_items, N_ITEMS);
    fclose(out);
    assert_non_null(strstr(text, "VARIABLE"));
    assert_non_null(strstr(text, "DESCRIPTION"));
    for (size_t i = 0; i < N_ITEMS; i++) {
        assert_non_null(strstr(text, s_items[i].env));
        assert_non_null(strstr(text, s_items[i].help));
    }
    assert_non_null(strstr(text, "(required)"));
    assert_non_null(strstr(text, "\"8080\""));
    assert_non_null(strstr(text, "admin/port"));
    assert_non_null(strstr(text, "when the backend is away [open|closed|half]"));
    //  One header line plus one line per item.
    size_t lines = 0;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, N_ITEMS + 1);
    free(text);
}

int main(void)
{
    if (ut_tempdir(s_dir, sizeof s_dir, "test-config") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_precedence, setup),
        cmocka_unit_test_setup(test_int, setup),
        cmocka_unit_test_setup(test_ms, setup),
        cmocka_unit_test_setup(test_bool, setup),
        cmocka_unit_test_setup(test_endpoint, setup),
        cmocka_unit_test_setup(test_str, setup),
        cmocka_unit_test_setup(test_required, setup),
        cmocka_unit_test_setup(test_file_errors, setup),
        cmocka_unit_test_setup(test_enum, setup),
        cmocka_unit_test_setup(test_zpl_parse, setup),
        cmocka_unit_test_setup(test_zpl_errors, setup),
        cmocka_unit_test_setup(test_zpl_read, setup),
        cmocka_unit_test_setup(test_zpl_random, setup),
        cmocka_unit_test_setup(test_usage, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (ut_rmtree(s_dir) != 0)
        rc = rc ? rc : 1;
    return rc;
}
