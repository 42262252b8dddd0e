/*  test_redis_slot - vz_redis' Redis Cluster pieces that need no server
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  The key slot (CRC16/XMODEM with hash tags) against the vectors of the
 *  Redis Cluster specification and the CLUSTER KEYSLOT documentation, the
 *  MOVED/ASK parser, and the cluster and Sentinel URL forms. tests/integration/
 *  test_redis_cluster.c runs the client against a real cluster.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "vz_redis.h"

static int s_slot(const char *key)
{
    return vz_redis_key_slot(key, strlen(key));
}

static void test_slot_vectors(void **state)
{
    (void)state;
    //  The specification: CRC16("123456789") is 0x31C3, slot = crc & 16383.
    assert_int_equal(s_slot("123456789"), 0x31C3 & 16383);
    //  CLUSTER KEYSLOT examples.
    assert_int_equal(s_slot("somekey"), 11058);
    assert_int_equal(s_slot("foo{hash_tag}"), 2515);
    assert_int_equal(s_slot("bar{hash_tag}"), 2515);
    assert_int_equal(s_slot("{user1}.following"), 8106);
    assert_int_equal(s_slot(""), 0);
}

static void test_slot_tags(void **state)
{
    (void)state;
    //  The specification's hash tag examples.
    assert_int_equal(s_slot("{user1000}.following"), s_slot("{user1000}.followers"));
    assert_int_equal(s_slot("{user1000}.following"), s_slot("user1000"));
    assert_int_equal(s_slot("foo{}{bar}"), vz_redis_key_slot("foo{}{bar}", 10)); //  whole key
    assert_int_not_equal(s_slot("foo{}{bar}"), s_slot("bar"));
    assert_int_equal(s_slot("foo{{bar}}zap"), s_slot("{bar"));
    assert_int_equal(s_slot("foo{bar}{zap}"), s_slot("bar"));
    assert_int_equal(s_slot("{auth}:user:42"), s_slot("{auth}:email:a@b"));
    //  Binary keys: the length counts, not a NUL.
    assert_int_not_equal(vz_redis_key_slot("a\0b", 3), vz_redis_key_slot("a", 1));
    //  An unclosed brace hashes the whole key.
    assert_int_equal(s_slot("{open"), vz_redis_key_slot("{open", 5));
    assert_int_not_equal(s_slot("{open"), s_slot("open"));
}

static void test_redirect_parse(void **state)
{
    (void)state;
    bool ask = true;
    int slot = 0, port = 0;
    char host[64];
    assert_int_equal(
        vz_redis_redirect_parse("MOVED 3999 127.0.0.1:6381", &ask, &slot, host, sizeof host, &port),
        0);
    assert_false(ask);
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    assert_int_equal(vz_redis_redirect_parse("ASK 16383 redis-2.local:7000", &ask, &slot, host,
                                             sizeof host, &port),
                     0);
    assert_true(ask);
    assert_int_equal(slot, 16383);
    assert_string_equal(host, "redis-2.local");
    assert_int_equal(port, 7000);
    //  IPv6, and an empty host (the node that answered).
    assert_int_equal(
        vz_redis_redirect_parse("MOVED 0 ::1:7001", &ask, &slot, host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7001);
    assert_int_equal(
        vz_redis_redirect_parse("MOVED 12 :7002", &ask, &slot, host, sizeof host, &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 7002);
    //  Not redirections, or malformed ones.
    const char *bad[] = {"ERR unknown command",
                         "MOVED",
                         "MOVED 3999",
                         "MOVED 16384 127.0.0.1:1",
                         "MOVED -1 127.0.0.1:1",
                         "MOVED x 127.0.0.1:1",
                         "MOVED 1 127.0.0.1",
                         "MOVED 1 127.0.0.1:0",
                         "MOVED 1 127.0.0.1:65536",
                         "MOVED 1 127.0.0.1:12x",
                         "ASK 1 a b:1",
                         "ASKING",
                         "CLUSTERDOWN The cluster is down"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(vz_redis_redirect_parse(bad[i], &ask, &slot, host, sizeof host, &port),
                         -EINVAL);
    //  A host that does not fit.
    char small[4];
    assert_int_equal(
        vz_redis_redirect_parse("MOVED 1 127.0.0.1:6379", &ask, &slot, small, sizeof small, &port),
        -EINVAL);
}

static void test_cluster_urls(void **state)
{
    (void)state;
    const char *good[] = {"redis://127.0.0.1:7000?cluster=1",
                          "redis://a:7000,b:7001,c?cluster=1",
                          "redis://user:pw@a:7000,b:7001/0?cluster=1",
                          "rediss://:pw@a:7000,b:7001?cluster=1&server_name=redis.local",
                          "redis://a:7000?cluster=0",
                          "redis://s1:26379,s2:26379?sentinel=vz",
                          "redis://:pw@s1:26379/2?sentinel=my%2Dprimary"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        vz_redis_t *r = vz_redis_new(good[i], 50, 50, 0);
        assert_non_null(r);
        vz_redis_destroy(&r);
    }
    const char *bad[] = {"redis://a:7000,b:7001",           //  several hosts, no cluster
                         "redis://a:7000,b:7001?cluster=0", //
                         "redis://a:7000/2?cluster=1",      //  no db in a cluster
                         "redis://a:7000,?cluster=1",       //  empty host
                         "redis://,a?cluster=1",
                         "redis://a:7000,b:x?cluster=1",
                         "redis://a?cluster=yes",
                         "redis://a?server_name=x", //  TLS settings without TLS
                         "redis://a?cluster=1&what=1",
                         "redis://a?sentinel=",                //  no master name
                         "redis://a,b?cluster=1&sentinel=vz"}; //  one or the other
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        vz_redis_t *r = vz_redis_new(bad[i], 50, 50, 0);
        if (r)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(errno, EINVAL);
    }
}

//  No node answers: commands are NULL and fast, nothing leaks.
static void test_cluster_away(void **state)
{
    (void)state;
    vz_redis_t *r = vz_redis_new("redis://127.0.0.1:1,127.0.0.1:2?cluster=1", 50, 50, 0);
    assert_non_null(r);
    assert_true(vz_redis_ensure(r) < 0);
    const char *argv[] = {"GET", "{auth}:x"};
    assert_null(vz_redis_command(r, 2, argv, NULL));
    assert_false(vz_redis_up(r));
    vz_redis_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_vectors), cmocka_unit_test(test_slot_tags),
        cmocka_unit_test(test_redirect_parse), cmocka_unit_test(test_cluster_urls),
        cmocka_unit_test(test_cluster_away)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
