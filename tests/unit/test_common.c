/*  test_common - the custom error codes stay out of errno's range; vz_strerror
 *  SPDX-License-Identifier: MPL-2.0
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "vz_common.h"
#include "vz_jwt.h"

static const int s_codes[] = {VZ_EMALFORMED,  VZ_EINTR,    VZ_JWT_EALG,
                              VZ_JWT_EKID,    VZ_JWT_ESIG, VZ_JWT_EEXPIRED,
                              VZ_JWT_ENOTYET, VZ_JWT_EISS, VZ_JWT_EAUD};
#define NCODES (sizeof s_codes / sizeof s_codes[0])

static void test_range(void **state)
{
    for (size_t i = 0; i < NCODES; i++) {
        //  Inside the custom range, below every -errno (Linux MAX_ERRNO 4095).
        assert_true(s_codes[i] <= VZ_EFIRST && s_codes[i] >= VZ_ELAST);
        assert_true(s_codes[i] < -4095);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(s_codes[i], s_codes[j]);
    }
    //  The collision the issue found: a bad signature is not -EINVAL.
    assert_int_not_equal(VZ_JWT_ESIG, -EINVAL);
    assert_int_not_equal(VZ_EMALFORMED, -ENOENT);
    assert_int_equal(VZ_JWT_EMALFORMED, VZ_EMALFORMED);
    assert_true(VZ_EPRIVATE < VZ_JWT_EAUD && VZ_EPRIVATE >= VZ_ELAST);
}

static void test_strerror(void **state)
{
    assert_string_equal(vz_strerror(0), "ok");
    assert_string_equal(vz_strerror(VZ_EMALFORMED), "malformed");
    assert_string_equal(vz_strerror(VZ_JWT_ESIG), "bad signature");
    assert_string_equal(vz_strerror(VZ_JWT_EKID), "unknown key");
    assert_string_equal(vz_strerror(VZ_EPRIVATE - 3), "daemon error");
    //  -errno values get the system's text.
    assert_string_equal(vz_strerror(-EINVAL), strerror(EINVAL));
    assert_string_equal(vz_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(vz_strerror(VZ_ELAST - 1), "unknown error");
    assert_string_equal(vz_strerror(7), "unknown error");
    for (size_t i = 0; i < NCODES; i++)
        assert_string_not_equal(vz_strerror(s_codes[i]), "unknown error");
    //  vz_jwt keeps its own word for a malformed token only.
    assert_string_equal(vz_jwt_strerror(VZ_JWT_EMALFORMED), "malformed token");
    assert_string_equal(vz_jwt_strerror(VZ_JWT_EEXPIRED), "expired");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
