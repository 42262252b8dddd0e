/*  test_proxy - the gateway's PROXY protocol header parser (v1 and v2)
 *  SPDX-License-Identifier: MPL-2.0
 *
 *  Links gateway_core and uses only gw_proxy_parse: whole headers, parts
 *  of them, and what is not one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "gw_proxy.h"

static gw_proxy_parse_t s_parse(const void *buf, size_t len, char *ip, size_t *used, int *port)
{
    struct sockaddr_storage addr;
    gw_proxy_parse_t rc = gw_proxy_parse(buf, len, &addr, used);
    gw_clientip_text((const struct sockaddr *)&addr, ip, GW_CLIENTIP_MAX);
    *port = addr.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&addr)->sin_port)
            : addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                         : 0;
    return rc;
}

static void test_v1(void **state)
{
    (void)state;
    char ip[GW_CLIENTIP_MAX];
    size_t used;
    int port;
    const char tcp4[] = "PROXY TCP4 203.0.113.5 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(s_parse(tcp4, strlen(tcp4), ip, &used, &port), GW_PROXY_DONE);
    assert_string_equal(ip, "203.0.113.5");
    assert_int_equal(port, 5555);
    assert_int_equal(used, strlen("PROXY TCP4 203.0.113.5 10.0.0.1 5555 80\r\n"));
    const char tcp6[] = "PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n";
    assert_int_equal(s_parse(tcp6, strlen(tcp6), ip, &used, &port), GW_PROXY_DONE);
    assert_string_equal(ip, "2001:db8::7");
    //  UNKNOWN: a header, but the peer's own address stands.
    const char unknown[] = "PROXY UNKNOWN\r\nGET";
    assert_int_equal(s_parse(unknown, strlen(unknown), ip, &used, &port), GW_PROXY_DONE);
    assert_string_equal(ip, "");
    assert_int_equal(used, 15);
    //  Parts of a header ask for more, whatever the cut.
    for (size_t cut = 1; cut < strlen("PROXY TCP4 203.0.113.5 10.0.0.1 5555 80\r\n"); cut++)
        assert_int_equal(s_parse(tcp4, cut, ip, &used, &port), GW_PROXY_MORE);
    //  Malformed: no CR, bad address, family mismatch, extra field, too long.
    const char *bad[] = {"PROXY TCP4 203.0.113.5 10.0.0.1 5555 80\n",
                         "PROXY TCP4 203.0.113 10.0.0.1 5555 80\r\n",
                         "PROXY TCP4 2001:db8::7 10.0.0.1 5555 80\r\n",
                         "PROXY TCP4 203.0.113.5 10.0.0.1 5555 80 9\r\n",
                         "PROXY TCP4 203.0.113.5 10.0.0.1 99999 80\r\n",
                         "PROXY UDP4 203.0.113.5 10.0.0.1 5555 80\r\n",
                         "PROXY \r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(s_parse(bad[i], strlen(bad[i]), ip, &used, &port), GW_PROXY_BAD);
    char longer[200];
    memset(longer, 'x', sizeof longer);
    memcpy(longer, "PROXY ", 6);
    assert_int_equal(s_parse(longer, sizeof longer, ip, &used, &port), GW_PROXY_BAD);
}

static const uint8_t s_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

//  A v2 header of command cmd and family fam with body len bytes of addr.
static size_t s_v2(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *addr, size_t len)
{
    memcpy(out, s_sig, 12);
    out[12] = (uint8_t)(0x20 | cmd);
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    memcpy(out + 16, addr, len);
    return 16 + len;
}

static void test_v2(void **state)
{
    (void)state;
    char ip[GW_CLIENTIP_MAX];
    size_t used;
    int port;
    uint8_t buf[128];
    //  TCP4 198.51.100.9:4242 -> 10.0.0.1:80, then a TLV (skipped).
    const uint8_t v4[] = {198, 51, 100, 9, 10, 0, 0, 1, 0x10, 0x92, 0, 80, 0x04, 0, 1, 'x'};
    size_t n = s_v2(buf, 1, 0x11, v4, sizeof v4);
    memcpy(buf + n, "GET", 3);
    assert_int_equal(s_parse(buf, n + 3, ip, &used, &port), GW_PROXY_DONE);
    assert_string_equal(ip, "198.51.100.9");
    assert_int_equal(port, 4242);
    assert_int_equal(used, n);
    for (size_t cut = 1; cut < n; cut++)
        assert_int_equal(s_parse(buf, cut, ip, &used, &port), GW_PROXY_MORE);
    uint8_t v6[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 9, [33] = 1};
    n = s_v2(buf, 1, 0x21, v6, sizeof v6);
    assert_int_equal(s_parse(buf, n, ip, &used, &port), GW_PROXY_DONE);
    assert_string_equal(ip, "2001:db8::9");
    assert_int_equal(port, 1);
    //  LOCAL: the proxy's own connection, the peer stands.
    n = s_v2(buf, 0, 0x00, v4, 0);
    assert_int_equal(s_parse(buf, n, ip, &used, &port), GW_PROXY_DONE);
    assert_string_equal(ip, "");
    //  Bad version, command, short addresses, longer than the limit.
    n = s_v2(buf, 1, 0x11, v4, sizeof v4);
    buf[12] = 0x11;
    assert_int_equal(s_parse(buf, n, ip, &used, &port), GW_PROXY_BAD);
    n = s_v2(buf, 2, 0x11, v4, sizeof v4);
    assert_int_equal(s_parse(buf, n, ip, &used, &port), GW_PROXY_BAD);
    n = s_v2(buf, 1, 0x11, v4, 8);
    assert_int_equal(s_parse(buf, n, ip, &used, &port), GW_PROXY_BAD);
    s_v2(buf, 1, 0x11, v4, 0);
    buf[14] = 0x10; //  4096 bytes announced
    assert_int_equal(s_parse(buf, 16, ip, &used, &port), GW_PROXY_BAD);
}

//  Requests are not headers, not even one starting with 'P'.
static void test_none(void **state)
{
    (void)state;
    char ip[GW_CLIENTIP_MAX];
    size_t used;
    int port;
    const char *requests[] = {"GET / HTTP/1.1\r\n", "POST /v1 HTTP/1.1\r\n", "PUT / HTTP/1.1",
                              "PROXZ"};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
        assert_int_equal(s_parse(requests[i], strlen(requests[i]), ip, &used, &port),
                         GW_PROXY_NONE);
    assert_int_equal(s_parse("\r\n\r\nx", 5, ip, &used, &port), GW_PROXY_NONE);
    assert_int_equal(s_parse("\r\n\r\n", 4, ip, &used, &port), GW_PROXY_MORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
