/* Errors, the random number generator, overflow checks and big buffers. */
#include "support.h"

#include "aedet/common.h"

#include <stdint.h>
#include <string.h>

static void test_fail_records_code_and_message(void **state)
{
    (void)state;
    ae_error err;
    ae_error_clear(&err);
    assert_int_equal(ae_fail(&err, AE_ERR_IO, "%s: %d", "a.png", 3), AE_ERR_IO);
    assert_int_equal(err.code, AE_ERR_IO);
    assert_string_equal(err.message, "a.png: 3");
    ae_error_prefix(&err, "reading %s", "set");
    assert_string_equal(err.message, "reading set: a.png: 3");
    assert_int_equal(ae_fail(NULL, AE_ERR_DATA, "ignored"), AE_ERR_DATA);
}

static void test_rng_is_seeded_and_uniform(void **state)
{
    (void)state;
    ae_rng a, b;
    ae_rng_seed(&a, 42);
    ae_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        assert_true(ae_rng_next(&a) == ae_rng_next(&b));
    ae_rng_seed(&b, 43);
    assert_true(ae_rng_next(&a) != ae_rng_next(&b));

    /* Ten buckets of 100,000 draws: each within 5 standard deviations (~95) of 10,000. */
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++)
        counts[ae_rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++)
        assert_in_range(counts[i], 9525, 10475);

    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        double u = ae_rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        double z = ae_rng_normal(&a);
        sum += z;
        sq += z * z;
    }
    assert_true(sum / 100000 > -0.02 && sum / 100000 < 0.02);
    assert_true(sq / 100000 > 0.98 && sq / 100000 < 1.02);
}

static void test_shuffle_is_a_permutation(void **state)
{
    (void)state;
    size_t v[50], seen[50] = {0};
    for (size_t i = 0; i < 50; i++)
        v[i] = i;
    ae_rng r;
    ae_rng_seed(&r, 7);
    ae_shuffle_sizes(&r, v, 50);
    int moved = 0;
    for (size_t i = 0; i < 50; i++) {
        seen[v[i]]++;
        moved += v[i] != i;
    }
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 25);
}

static void test_mul_size_detects_overflow(void **state)
{
    (void)state;
    size_t out = 7;
    assert_true(ae_mul_size(1000, 1000, &out));
    assert_int_equal(out, 1000000);
    assert_false(ae_mul_size(SIZE_MAX / 2, 3, &out));
    assert_int_equal(out, 1000000);
}

/* Big buffers: zeroed, writable, 2 MiB-aligned from 2 MiB on; an impossible
 * size gives NULL instead of a wrapped-around small buffer. */
static void test_alloc_floats(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 1000, (size_t)1 << 19, ((size_t)1 << 20) + 3};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        float *p = ae_alloc_floats(sizes[k]);
        assert_non_null(p);
        size_t n = sizes[k] ? sizes[k] : 1;
        for (size_t i = 0; i < n; i++)
            assert_true(p[i] == 0.0f);
        p[n - 1] = 1.0f;
        if (n * sizeof(float) >= ((size_t)1 << 21))
            assert_int_equal((uintptr_t)p % ((uintptr_t)1 << 21), 0);
        ae_free_floats(p);
    }
    assert_null(ae_alloc_floats(SIZE_MAX / 2));
    ae_free_floats(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_records_code_and_message),
        cmocka_unit_test(test_rng_is_seeded_and_uniform),
        cmocka_unit_test(test_shuffle_is_a_permutation),
        cmocka_unit_test(test_mul_size_detects_overflow),
        cmocka_unit_test(test_alloc_floats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
