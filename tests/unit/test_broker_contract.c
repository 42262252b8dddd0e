/*  test_broker_contract - the broker's "services" reply
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit_bytes.h"
#include "vz_broker_contract.h"
#include "vz_mp.h"

//  Decode an exact-size copy (valgrind/ASan see any overread).
static int s_decode(const void *bytes, size_t len, vz_broker_service_t *out, size_t max, size_t *n,
                    size_t *total, const char **why)
{
    uint8_t *copy = ut_copy(bytes, len);
    int rc = vz_broker_services_decode(copy, len, out, max, n, total, why);
    free(copy);
    return rc;
}

static void test_round_trip(void **state)
{
    enum { N = 20 };
    vz_broker_service_t in[N];
    memset(in, 0, sizeof in);
    for (size_t i = 0; i < N; i++) {
        snprintf(in[i].name, sizeof in[i].name, "svc%zu", i);
        in[i].workers = i;
        in[i].queue = i == 3 ? UINT64_MAX : 2 * i;
    }
    memset(in[N - 1].name, 'n', sizeof in[N - 1].name - 1); //  the longest name
    for (size_t count = 0; count <= N; count += N / 2) {
        size_t len;
        uint8_t *buf = vz_broker_services_encode(in, count, &len);
        vz_broker_service_t out[N];
        size_t n = 99, total = 99;
        assert_int_equal(s_decode(buf, len, out, N, &n, &total, NULL), 0);
        assert_int_equal(n, count);
        assert_int_equal(total, count);
        for (size_t i = 0; i < count; i++) {
            assert_string_equal(out[i].name, in[i].name);
            assert_true(out[i].workers == in[i].workers && out[i].queue == in[i].queue);
        }
        //  Fewer slots: the first ones kept, the total said.
        if (count > 2) {
            assert_int_equal(s_decode(buf, len, out, 2, &n, &total, NULL), 0);
            assert_int_equal(n, 2);
            assert_int_equal(total, count);
        }
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal(s_decode(buf, cut, out, N, &n, NULL, NULL), VZ_EMALFORMED);
        free(buf);
    }
}

//  The broker's own writer before this module (msgpack-c, keys in its order).
static void test_broker_bytes(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    vz_mp_pack_str(&pk, "echo");
    msgpack_pack_map(&pk, 2);
    vz_mp_pack_kv_uint(&pk, "workers", 2);
    vz_mp_pack_kv_uint(&pk, "queue", 5);
    vz_broker_service_t out[1];
    size_t n;
    assert_int_equal(s_decode(sb.data, sb.size, out, 1, &n, NULL, NULL), 0);
    assert_string_equal(out[0].name, "echo");
    assert_true(out[0].workers == 2 && out[0].queue == 5);
    msgpack_sbuffer_destroy(&sb);
}

static void test_hostile(void **state)
{
    static const struct {
        const char *bytes; //  reply
        size_t len;        //  its length
        const char *why;   //  reason
    } bad[] = {
        {"\x91\x01", 2, "not a map"},
        {"\x81\x01\x80", 3, "wrong type for service name"},
        {"\x81\xa0\x80", 3, "empty service name"},
        {"\x81\xa1"
         "a\x81\xa7workers\x01",
         13, "missing queue"},
        {"\x81\xa1"
         "a\x82\xa7workers\xff\xa5queue\x01",
         20, "workers"},
        {"\x82\xa1"
         "a\x82\xa7workers\x01\xa5queue\x01\xa1"
         "a\x82\xa7workers\x01\xa5queue\x01",
         39, "duplicate service"},
        {"\xdf\xff\xff\xff\xff", 5, "map too large"},
        {"\x80\x80", 2, "trailing bytes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vz_broker_service_t out[4];
        size_t n = 0;
        const char *why = NULL;
        assert_int_equal(s_decode(bad[i].bytes, bad[i].len, out, 4, &n, NULL, &why), VZ_EMALFORMED);
        if (!why || !strstr(why, bad[i].why))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, why ? why : "(null)", bad[i].why);
    }
    //  A name one byte too long for VZ_NAME_MAX.
    char body[3 + VZ_NAME_MAX + 1];
    body[0] = (char)0x81;
    body[1] = (char)0xd9;
    body[2] = VZ_NAME_MAX;
    memset(body + 3, 'n', VZ_NAME_MAX);
    body[3 + VZ_NAME_MAX] = (char)0x80;
    vz_broker_service_t out[1];
    size_t n;
    const char *why = NULL;
    assert_int_equal(s_decode(body, sizeof body, out, 1, &n, NULL, &why), VZ_EMALFORMED);
    assert_string_equal(why, "string too long");
    //  Random bytes: never a crash.
    srand(3);
    uint8_t junk[40];
    for (int round = 0; round < 100000; round++) {
        size_t len = ut_junk(junk, sizeof junk, round, 0x81, 2);
        vz_broker_service_t slots[2];
        if (s_decode(junk, len, slots, 2, &n, NULL, NULL) == 0)
            assert_true(n <= 2);
    }
}

//  broker.directory: both bodies round-trip; what a worker may announce and
//  what a caller accepts are checked (docs/protocol.md, "Direct calls").
static void test_directory(void **state)
{
    (void)state;
    char name[VZ_NAME_MAX];
    size_t len = 0;
    uint8_t *buf = vz_broker_directory_request_encode("echo", &len);
    assert_int_equal(vz_broker_directory_request_decode(buf, len, name, sizeof name, NULL), 0);
    assert_string_equal(name, "echo");
    free(buf);
    const char *reason = NULL;
    assert_int_equal(vz_broker_directory_request_decode((const uint8_t *)"\xa0", 1, name,
                                                       sizeof name, &reason),
                     VZ_EMALFORMED);
    assert_string_equal(reason, "empty service name");

    vz_broker_direct_t in[2] = {{"tcp://10.0.0.7:5600", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"},
                                {"tcp://127.0.0.1:41234", "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"}};
    buf = vz_broker_directory_encode(true, in, 2, &len);
    vz_broker_direct_t out[4];
    size_t n = 0;
    bool direct = false;
    assert_int_equal(vz_broker_directory_decode(buf, len, &direct, out, 4, &n, NULL), 0);
    assert_true(direct);
    assert_int_equal(n, 2);
    assert_string_equal(out[1].endpoint, in[1].endpoint);
    assert_string_equal(out[0].key, in[0].key);
    //  More workers than the caller has room for is refused, not cut.
    assert_int_equal(vz_broker_directory_decode(buf, len, &direct, out, 1, &n, &reason),
                     VZ_EMALFORMED);
    assert_string_equal(reason, "too many workers");
    free(buf);
    //  A listed endpoint or key that is not well formed fails the whole answer.
    vz_broker_direct_t bad[1] = {{"ipc:///tmp/x", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"}};
    buf = vz_broker_directory_encode(true, bad, 1, &len);
    assert_int_equal(vz_broker_directory_decode(buf, len, &direct, out, 4, &n, &reason),
                     VZ_EMALFORMED);
    assert_string_equal(reason, "bad endpoint");
    free(buf);
    vz_broker_direct_t badkey[1] = {{"tcp://h:1", "short"}};
    buf = vz_broker_directory_encode(false, badkey, 1, &len);
    assert_int_equal(vz_broker_directory_decode(buf, len, &direct, out, 4, &n, &reason),
                     VZ_EMALFORMED);
    assert_string_equal(reason, "bad key");
    free(buf);

    assert_true(vz_broker_endpoint_valid("tcp://pod-1.echo:5600"));
    assert_false(vz_broker_endpoint_valid("tcp://:5600"));
    assert_false(vz_broker_endpoint_valid("tcp://h:0"));
    assert_false(vz_broker_endpoint_valid("tcp://h:65536"));
    assert_false(vz_broker_endpoint_valid("tcp://h:12a"));
    assert_false(vz_broker_endpoint_valid("tcp://h;rm:1"));
    assert_false(vz_broker_endpoint_valid("tcp://*:5600"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_broker_bytes),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
