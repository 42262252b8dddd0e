/*  test_clientip - the gateway's client address behind trusted proxies
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links gateway_core and uses only gw_clientip.h: CIDR lists, and the
 *  right-most untrusted address of X-Forwarded-For and Forwarded chains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "gw_clientip.h"

static gw_trust_t *s_trust(const char *cidrs)
{
    char err[128] = "";
    gw_trust_t *trust = gw_trust_new(cidrs, err, sizeof err);
    assert_non_null(trust);
    return trust;
}

//  The client for peer and header lines under trust, as text.
static const char *s_client(const gw_trust_t *trust, gw_fwd_header_t header, const char *peer,
                            const char *const *lines, size_t count)
{
    static char out[GW_CLIENTIP_MAX];
    gw_clientip_resolve(trust, header, peer, lines, count, out, sizeof out);
    return out;
}

static void test_cidrs(void **state)
{
    (void)state;
    gw_trust_t *trust = s_trust("10.0.0.0/8, 192.168.1.7 fd00::/8,127.0.0.1/32");
    assert_true(gw_trust_has(trust, "10.200.3.4"));
    assert_true(gw_trust_has(trust, "192.168.1.7"));
    assert_false(gw_trust_has(trust, "192.168.1.8"));
    assert_true(gw_trust_has(trust, "fd12::1"));
    assert_false(gw_trust_has(trust, "fe80::1"));
    assert_true(gw_trust_has(trust, "127.0.0.1"));
    assert_false(gw_trust_has(trust, "11.0.0.1"));
    assert_false(gw_trust_has(trust, "not-an-ip"));
    assert_false(gw_trust_has(NULL, "10.0.0.1"));
    gw_trust_destroy(&trust);
    assert_null(trust);
    //  Host bits are dropped; /0 trusts every address of its family.
    trust = s_trust("10.1.2.3/8 0.0.0.0/0");
    assert_true(gw_trust_has(trust, "10.9.9.9"));
    assert_true(gw_trust_has(trust, "8.8.8.8"));
    assert_false(gw_trust_has(trust, "2001:db8::1"));
    gw_trust_destroy(&trust);
    trust = s_trust("");
    assert_false(gw_trust_has(trust, "10.0.0.1"));
    gw_trust_destroy(&trust);
    const char *bad[] = {"10.0.0.0/33", "10.0.0.0/", "10.0.0/8",    "fd00::/129",
                         "[::1]",       "x",         "10.0.0.1/8a", "1.2.3.4:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        assert_null(gw_trust_new(bad[i], err, sizeof err));
        assert_non_null(strstr(err, "not an IPv4/IPv6"));
    }
}

//  An untrusted peer is the client, whatever it forwards.
static void test_untrusted_peer(void **state)
{
    (void)state;
    gw_trust_t *trust = s_trust("10.0.0.0/8");
    const char *xff[] = {"1.2.3.4"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "203.0.113.9", xff, 1), "203.0.113.9");
    assert_string_equal(s_client(NULL, GW_FWD_XFF, "10.0.0.1", xff, 1), "10.0.0.1");
    gw_trust_destroy(&trust);
}

//  From the right, trusted hops are skipped; the first untrusted wins,
//  whatever a client wrote to the left of it.
static void test_xff_right_most_untrusted(void **state)
{
    (void)state;
    gw_trust_t *trust = s_trust("10.0.0.0/8");
    const char *one[] = {"6.6.6.6, 198.51.100.7, 10.1.1.1"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", one, 1), "198.51.100.7");
    //  Several header lines are one list, in the order received.
    const char *lines[] = {"6.6.6.6", "198.51.100.7", "10.1.1.1 , 10.2.2.2"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", lines, 3), "198.51.100.7");
    //  Every hop trusted: the left-most.
    const char *inner[] = {"10.9.9.9, 10.1.1.1"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", inner, 1), "10.9.9.9");
    //  No header from a trusted peer: the peer.
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", NULL, 0), "10.0.0.2");
    //  Ports and IPv6 as proxies write them; the text comes out canonical.
    const char *ports[] = {"[2001:DB8::0:1]:443, 198.51.100.7:5000"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", ports, 1), "198.51.100.7");
    const char *v6[] = {"2001:DB8:0::1"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", v6, 1), "2001:db8::1");
    gw_trust_destroy(&trust);
}

//  Something that is not an address ends the walk at the last trusted
//  hop: garbage never becomes the client, and neither does what lies
//  to its left.
static void test_garbage_stops(void **state)
{
    (void)state;
    gw_trust_t *trust = s_trust("10.0.0.0/8");
    const char *junk[] = {"1.1.1.1, evil, 10.3.3.3"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", junk, 1), "10.3.3.3");
    const char *empty[] = {"1.1.1.1,,"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", empty, 1), "10.0.0.2");
    const char *long_one[] = {"1.1.1.1, 1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb"};
    assert_string_equal(s_client(trust, GW_FWD_XFF, "10.0.0.2", long_one, 1), "10.0.0.2");
    gw_trust_destroy(&trust);
}

static void test_forwarded(void **state)
{
    (void)state;
    gw_trust_t *trust = s_trust("10.0.0.0/8 fd00::/8");
    const char *fwd[] = {"for=6.6.6.6;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1, "
                         "proto=https;for=10.1.1.1"};
    assert_string_equal(s_client(trust, GW_FWD_FORWARDED, "fd00::5", fwd, 1), "2001:db8:cafe::17");
    //  for=unknown and an element without for= stop the walk.
    const char *unknown[] = {"for=6.6.6.6, for=unknown, for=10.1.1.1"};
    assert_string_equal(s_client(trust, GW_FWD_FORWARDED, "10.0.0.2", unknown, 1), "10.1.1.1");
    const char *nofor[] = {"for=6.6.6.6, proto=https"};
    assert_string_equal(s_client(trust, GW_FWD_FORWARDED, "10.0.0.2", nofor, 1), "10.0.0.2");
    //  The header not chosen is ignored: an X-Forwarded-For read as
    //  Forwarded has no for= and names no one.
    const char *xff[] = {"6.6.6.6"};
    assert_string_equal(s_client(trust, GW_FWD_FORWARDED, "10.0.0.2", xff, 1), "10.0.0.2");
    gw_trust_destroy(&trust);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidrs),
        cmocka_unit_test(test_untrusted_peer),
        cmocka_unit_test(test_xff_right_most_untrusted),
        cmocka_unit_test(test_garbage_stops),
        cmocka_unit_test(test_forwarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
