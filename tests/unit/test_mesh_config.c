/*  test_mesh_config - the supervisor's mesh file: validation, dependency order, ports, templates
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links vzsupervisor and uses mesh_config.h (isolation.h for who may switch uids). Each case
 * writes its file into a temp dir; the shipped configs/mesh.cfg is loaded too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "isolation.h"
#include "mesh_config.h"

//  redis <- broker <- {echo, api}; api has 2 replicas, its admin port auto.
static const char s_mesh[] =
    "supervisor\n    state_dir = \"state\"\n    stop_timeout = \"5s\"\n"
    "ports\n    redis = auto\n    broker = auto\n    gateway = 18080\n"
    "services\n"
    "    api\n        command = \"vz-api --port ${port.gateway}\"\n        admin_port = auto\n"
    "        replicas = 2\n        depends = \"broker echo\"\n"
    "        env\n            VZ_CFG = \"${config_dir}/api.cfg\"\n"
    "    echo\n        command = \"vz-echo\"\n        admin_port = 19110\n"
    "        depends = \"broker\"\n"
    "    broker\n        command = \"vz-broker\"\n        admin_port = 19100\n"
    "        depends = \"redis\"\n"
    "        env\n            VZ_BROKER_BIND = \"tcp://127.0.0.1:${port.broker}\"\n"
    "    redis\n        depends = \"\"\n";

typedef struct {
    char dir[64];  //  temp dir
    char path[96]; //  dir/mesh.cfg
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_mesh_config_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/mesh.cfg", f->dir);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int s_load(fixture_t *f, const char *text, sup_mesh_config_t *cfg, char *err, size_t n)
{
    FILE *file = fopen(f->path, "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
    memset(cfg, 0, sizeof *cfg);
    return sup_mesh_config_load(cfg, f->path, err, n);
}

static void test_order_and_fields(void **state)
{
    fixture_t *f = *state;
    static sup_mesh_config_t cfg;
    char err[256] = "";
    if (s_load(f, s_mesh, &cfg, err, sizeof err) != 0)
        fail_msg("refused: %s", err);
    assert_int_equal(cfg.service_count, 4);
    //  Dependency order, whatever the file order.
    assert_string_equal(cfg.services[0].name, "redis");
    assert_string_equal(cfg.services[1].name, "broker");
    assert_string_equal(cfg.services[2].name, "echo");
    assert_string_equal(cfg.services[3].name, "api");
    assert_true(cfg.services[0].builtin_redis);
    assert_int_equal(cfg.services[3].tier, 3);
    assert_int_equal(cfg.services[3].dep_count, 2);
    //  deps are indices into the ordered list, each before the service.
    for (size_t i = 0; i < cfg.service_count; i++)
        for (size_t d = 0; d < cfg.services[i].dep_count; d++)
            assert_true(cfg.services[i].deps[d] < (int)i);
    assert_int_equal(cfg.services[3].replicas, 2);
    assert_true(cfg.services[3].admin_auto);
    assert_int_equal(cfg.services[1].admin_port, 19100);
    assert_int_equal(cfg.stop_timeout_ms, 5000);
    assert_int_equal(sup_mesh_config_find(&cfg, "echo"), 2);
    assert_int_equal(sup_mesh_config_find(&cfg, "billing"), -ENOENT);
    assert_int_equal(sup_mesh_config_port(&cfg, "gateway"), 18080);
    assert_int_equal(sup_mesh_config_port(&cfg, "nope"), -ENOENT);
}

static void test_ports_and_templates(void **state)
{
    fixture_t *f = *state;
    static sup_mesh_config_t cfg;
    char err[256] = "", out[VZ_PATH_MAX];
    assert_int_equal(s_load(f, s_mesh, &cfg, err, sizeof err), 0);
    assert_int_equal(sup_mesh_config_port(&cfg, "broker"), 0); //  auto: not yet chosen
    assert_int_equal(sup_mesh_config_alloc_ports(&cfg), 0);
    int broker = sup_mesh_config_port(&cfg, "broker");
    assert_true(broker > 0 && broker <= 65535);
    assert_int_equal(sup_mesh_config_port(&cfg, "gateway"), 18080); //  fixed ports stay
    char want[VZ_PATH_MAX + 16];
    snprintf(want, sizeof want, "tcp://127.0.0.1:%d", broker);
    assert_int_equal(sup_mesh_config_expand(&cfg, cfg.services[1].env[0].value, out, sizeof out,
                                            err, sizeof err),
                     0);
    assert_string_equal(out, want);
    snprintf(want, sizeof want, "%s/api.cfg", cfg.config_dir);
    assert_int_equal(
        sup_mesh_config_expand(&cfg, "${config_dir}/api.cfg", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, want);
    assert_string_equal(cfg.config_dir, f->dir);
    assert_int_equal(sup_mesh_config_expand(&cfg, "${port.nope}", out, sizeof out, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "port.nope"));
    assert_int_equal(sup_mesh_config_expand(&cfg, "${port.gateway}/x", out, 6, err, sizeof err),
                     -ENAMETOOLONG);
}

static void s_refused(fixture_t *f, const char *text, const char *needle)
{
    static sup_mesh_config_t cfg;
    char err[256] = "";
    if (s_load(f, text, &cfg, err, sizeof err) == 0)
        fail_msg("accepted, expected \"%s\":\n%s", needle, text);
    if (!strstr(err, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, err);
}

static void test_refused(void **state)
{
    fixture_t *f = *state;
    const char *svc = "services\n    a\n        command = \"x\"\n        admin_port = 19000\n";
    char text[1024];
    const struct {
        const char *more; //  appended to service a (and maybe more services)
        const char *why;  //  expected in the reason
    } cases[] = {
        {"        depends = \"ghost\"\n", "unknown dependency \"ghost\""},
        {"        depends = \"b\"\n    b\n        command = \"y\"\n        admin_port = 19001\n"
         "        depends = \"a\"\n",
         "dependency cycle"},
        {"        depends = \"a\"\n", "cycle: a -> a"},
        {"        replicas = 99\n", "replicas"},
        {"        colour = \"blue\"\n", "unknown setting"},
        {"        command = \"x ${port.none}\"\n", "port.none"},
        {"        admin_port = 70000\n", "admin_port"},
        {"        state_dirs = \"${nope}/x\"\n", "state_dirs"},
        {"        secret_files = \"${port.none}\"\n", "secret_files"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", svc, cases[i].more);
        s_refused(f, text, cases[i].why);
    }
    s_refused(f,
              "ports\n    p = 0\nservices\n    a\n        command = \"x\"\n"
              "        admin_port = 19000\n",
              "ports/p");
    s_refused(f, "services\n    a\n        admin_port = 19000\n", "command: required");
    s_refused(f, "services\n    a\n        command = \"x\"\n", "admin_port: required");
    s_refused(f, "elsewhere\n    x = 1\n", "unknown section");
    s_refused(f, "supervisor\n    isolation = \"chroot\"\n", "supervisor/isolation");
    s_refused(f, "supervisor\n    uid_base = \"10\"\n", "supervisor/uid_base");
    static sup_mesh_config_t cfg;
    char err[256] = "";
    assert_int_equal(sup_mesh_config_load(&cfg, "/nonexistent/mesh.cfg", err, sizeof err), -ENOENT);
}

//  Isolation: read as written, "auto" resolved by who runs it, "uid" only for root.
static void test_isolation(void **state)
{
    fixture_t *f = *state;
    static sup_mesh_config_t cfg;
    char err[256] = "", text[512];
    const char *svc =
        "services\n    a\n        command = \"x\"\n        admin_port = 19000\n"
        "        user = \"nobody\"\n        state_dirs = \"${state_dir}/a ${state_dir}/b\"\n";
    const char *modes[] = {"auto", "uid", "fd", "off"};
    bool root = sup_iso_can_switch();
    //  Other uids must reach the state and the config for "auto" to pick uid.
    assert_int_equal(chmod(f->dir, 0711), 0);
    for (size_t i = 0; i < 4; i++) {
        snprintf(text, sizeof text,
                 "supervisor\n    state_dir = \"%s/st\"\n    isolation = \"%s\"\n%s", f->dir,
                 modes[i], svc);
        assert_int_equal(s_load(f, text, &cfg, err, sizeof err), 0);
        assert_int_equal(cfg.isolation, (sup_isolation_t)i);
        assert_string_equal(cfg.services[0].user, "nobody");
        assert_int_equal(cfg.uid_base, 60600);
        int rc = sup_mesh_config_resolve(&cfg, "/bin", err, sizeof err);
        rmdir(cfg.state_dir);
        if (i == 1 && !root) {
            assert_int_equal(rc, -EPERM);
            continue;
        }
        assert_int_equal(rc, 0);
        sup_isolation_t want =
            i == 0 ? (root ? SUP_ISOLATION_UID : SUP_ISOLATION_FD) : (sup_isolation_t)i;
        assert_int_equal(cfg.isolation, want);
    }
    //  A directory other uids cannot search: "auto" says which and picks fd.
    assert_int_equal(chmod(f->dir, 0700), 0);
    snprintf(text, sizeof text, "supervisor\n    state_dir = \"%s/st\"\n%s", f->dir, svc);
    assert_int_equal(s_load(f, text, &cfg, err, sizeof err), 0);
    assert_int_equal(sup_mesh_config_resolve(&cfg, "/bin", err, sizeof err), 0);
    rmdir(cfg.state_dir);
    assert_int_equal(cfg.isolation, SUP_ISOLATION_FD);
    if (root)
        assert_string_equal(cfg.closed_dir, f->dir);
}

//  The mesh file the project ships loads as it is.
static void test_shipped_config(void **state)
{
    (void)state;
    char path[VZ_PATH_MAX];
    snprintf(path, sizeof path, "%s/configs/mesh.cfg", VZ_TEST_SOURCE_DIR);
    static sup_mesh_config_t cfg;
    char err[256] = "";
    if (sup_mesh_config_load(&cfg, path, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
    assert_true(sup_mesh_config_find(&cfg, "gateway") > sup_mesh_config_find(&cfg, "broker"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_fields, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ports_and_templates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_isolation, s_setup, s_teardown),
        cmocka_unit_test(test_shipped_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
