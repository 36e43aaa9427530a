/* The ops table of direct.h from the kernels of direct_body.h's pieces.
 * Part of direct_body.h (included once per ISA, with its macros). */

/* The ops table; direct_avx512.c makes a second one with the AMX products. */
#define DIRECT_TABLE(TABLE, LABEL, BIG_TO_SMALL, SMALL_TO_BIG, WEIGHT_GRAD)                     \
    const ae_direct_ops TABLE = {                                                               \
        .name = LABEL,                                                                          \
        .big_to_small = BIG_TO_SMALL,                                                           \
        .small_to_big = SMALL_TO_BIG,                                                           \
        .weight_grad = WEIGHT_GRAD,                                                             \
        .small_to_big_narrow = FN(small_to_big_narrow),                                         \
        .bn_sums = FN(bn_sums),                                                                 \
        .bn_grad_sums = FN(bn_grad_sums),                                                       \
        .bn_grad_apply = FN(bn_grad_apply),                                                     \
        .apply_xform = FN(apply_xform),                                                         \
        .bias_grad = FN(bias_grad),                                                             \
        .bias_grad_add = FN(bias_grad_add),                                                     \
        .dense_forward = FN(dense_forward),                                                     \
        .planar_row = FN(planar_row),                                                           \
        .planar_xform_row = FN(planar_xform_row),                                               \
        .sigmoid = FN(sigmoid),                                                                 \
        .loss_lanes_add = FN(loss_lanes_add),                                                   \
    };
DIRECT_TABLE(FN(ae_direct), FN_NAME, FN(big_to_small), FN(small_to_big), FN(weight_grad))
