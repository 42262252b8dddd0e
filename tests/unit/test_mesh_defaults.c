/*  test_mesh_defaults - the supervisor's mesh file: ports-table defaults, the bounded reader's
 * refusals SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mesh_config.h"
#include "vz_config.h"
#include "vz_ports.h"

#include "ut.h"

static char s_dir[64];
static sup_mesh_config_t s_cfg; //  large: static rather than on the stack

//  Load text; expect rc and, on failure, every fragment in the message.
static void expect(const char *text, int rc, const char *const *fragments)
{
    char err[512] = "";
    int got = sup_mesh_config_load(&s_cfg, ut_write_file(s_dir, "mesh.cfg", text), err, sizeof err);
    if (got != rc)
        fail_msg("expected %d, got %d: %s", rc, got, err);
    for (size_t i = 0; fragments && fragments[i]; i++)
        if (!strstr(err, fragments[i]))
            fail_msg("message lacks \"%s\": %s", fragments[i], err);
}

//  The shipped mesh: every daemon, in dependency order, with the ports of
//  the ports table.
static void test_shipped(void **state)
{
    char err[512];
    if (sup_mesh_config_load(&s_cfg, VZ_TEST_SOURCE_DIR "/configs/mesh.cfg", err, sizeof err) != 0)
        fail_msg("configs/mesh.cfg: %s", err);
    assert_int_equal(sup_mesh_config_port(&s_cfg, "redis"), VZ_PORT_REDIS);
    assert_int_equal(sup_mesh_config_port(&s_cfg, "broker"), VZ_PORT_BROKER);
    assert_int_equal(sup_mesh_config_port(&s_cfg, "gateway"), VZ_PORT_GATEWAY);
    static const char *const names[] = {"broker", "echo", "auth", "ratelimit", "gateway"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int at = sup_mesh_config_find(&s_cfg, names[i]);
        assert_true(at >= 0);
        assert_int_equal(s_cfg.services[at].admin_port, vz_ports_admin(names[i]));
        //  Every dependency comes first.
        for (size_t d = 0; d < s_cfg.services[at].dep_count; d++)
            assert_true(s_cfg.services[at].deps[d] < at);
    }
    assert_true(sup_mesh_config_find(&s_cfg, "redis") < sup_mesh_config_find(&s_cfg, "broker"));
    assert_int_equal(s_cfg.stop_timeout_ms, 10000);
}

//  admin_port may be left out for a service of the ports table, including
//  the coming ones; elsewhere it is required.
static void test_default_admin_port(void **state)
{
    expect("ports\n    broker = auto\n"
           "services\n"
           "    broker\n        command = \"vz-broker\"\n"
           "    billing\n        command = \"vz-billing\"\n        depends = \"broker\"\n"
           "    telemetry\n        command = \"vz-telemetry\"\n        admin_port = auto\n",
           0, NULL);
    assert_int_equal(s_cfg.services[sup_mesh_config_find(&s_cfg, "broker")].admin_port,
                     VZ_PORT_ADMIN_BROKER);
    assert_int_equal(s_cfg.services[sup_mesh_config_find(&s_cfg, "billing")].admin_port,
                     VZ_PORT_ADMIN_BILLING);
    assert_true(s_cfg.services[sup_mesh_config_find(&s_cfg, "telemetry")].admin_auto);
    static const char *const frags[] = {"services/mystery/admin_port: required", NULL};
    expect("services\n    mystery\n        command = \"x\"\n", -EINVAL, frags);
}

//  The file goes through the one bounded reader: its refusals name the place.
static void test_refusals(void **state)
{
    //  A syntax error names the file and the line.
    static const char *const syntax[] = {"mesh.cfg:2: not valid ZPL: indent 4 spaces", NULL};
    expect("services\n   echo\n", -ENOENT, syntax);
    //  Unreadable and oversized files, through the one bounded reader.
    char err[512];
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.cfg", s_dir);
    assert_int_equal(sup_mesh_config_load(&s_cfg, missing, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "none.cfg: cannot read"));
    char *path = ut_write_file(s_dir, "big.cfg", "");
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i <= VZ_CONFIG_FILE_MAX / 16; i++)
        fputs("# 16 bytes line\n", f);
    fclose(f);
    assert_int_equal(sup_mesh_config_load(&s_cfg, path, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "larger than"));
}

//  Log rotation settings (defaults, units, bounds) and the name "all",
//  which vzctl reserves for every service.
static void test_log_settings_and_names(void **state)
{
    const char *svc = "services\n    echo\n        command = \"x\"\n";
    char text[256];
    expect(svc, 0, NULL);
    assert_int_equal(s_cfg.log_max_bytes, 10L * 1024 * 1024);
    assert_int_equal(s_cfg.log_backups, 5);
    snprintf(text, sizeof text, "supervisor\n    log_max_bytes = \"512K\"\n    log_backups = 0\n%s",
             svc);
    expect(text, 0, NULL);
    assert_int_equal(s_cfg.log_max_bytes, 512L * 1024);
    assert_int_equal(s_cfg.log_backups, 0);
    static const char *const bytes[] = {"supervisor/log_max_bytes=\"10G\"", NULL};
    snprintf(text, sizeof text, "supervisor\n    log_max_bytes = \"10G\"\n%s", svc);
    expect(text, -EINVAL, bytes);
    static const char *const backups[] = {"supervisor/log_backups=\"100\"", NULL};
    snprintf(text, sizeof text, "supervisor\n    log_backups = 100\n%s", svc);
    expect(text, -EINVAL, backups);
    static const char *const all[] = {"services/all: bad service name", NULL};
    expect("services\n    all\n        command = \"x\"\n        admin_port = 1\n", -EINVAL, all);
}

//  "auto" ports come from below the kernel's ephemeral range, are free
//  (a listener binds them), and successive draws differ.
static void test_free_port(void **state)
{
    (void)state;
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        assert_int_equal(fscanf(f, "%d %d", &low, &high), 2);
        fclose(f);
    }
    int seen[8];
    for (int i = 0; i < 8; i++) {
        int port = vz_ports_free();
        assert_true(port >= 10000 && port < low);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(port, seen[j]);
        seen[i] = port;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
        assert_int_equal(listen(fd, 1), 0);
        close(fd);
    }
}

int main(void)
{
    if (ut_tempdir(s_dir, sizeof s_dir, "test-mesh") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped),   cmocka_unit_test(test_default_admin_port),
        cmocka_unit_test(test_refusals),  cmocka_unit_test(test_log_settings_and_names),
        cmocka_unit_test(test_free_port),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (ut_rmtree(s_dir) != 0 && rc == 0)
        rc = 1;
    return rc;
}
