#!/usr/bin/python3
"""Writes tests/fixtures/score_reference.txt: small images and reconstructions
with the error maps, SSIM maps, image detail, reductions and nearest-neighbour
distances computed here by scipy and numpy, which tests/test_score.c checks the
C score rules against (the test itself needs no Python).

    /usr/bin/python3 tools/score_reference.py [output]

Values are float32 inputs written exactly; references are computed in float64.
    image NAME H W C SIGMA TOP_PERCENT      one case of a map-based rule
    x H*W*C values                          the image, HWC, in [0, 1]
    r H*W*C values                          its reconstruction
    sqmap H*W                               mean over channels of (x - r)^2
    blur H*W                                scipy.ndimage.gaussian_filter(sqmap, SIGMA)
    ssim H*W                                1 - SSIM of the grey images, 7x7 uniform window
    detail V                                mean |horizontal| + mean |vertical| differences
    max V                                   max of blur
    top V                                   mean of the ceil(TOP_PERCENT% of H*W) largest of blur
    resize RH RW RH*RW                      blur resized bilinearly (half-pixel centres, edges repeated)
    end
    knn NAME N M D K                        one case of the latent distances
    q N*D, ref M*D, out N                   out: mean distance to the K nearest refs
    end
"""
import sys

import numpy as np
import scipy
from scipy.ndimage import gaussian_filter, uniform_filter


def ssim_map(x, r, win=7):
    """1 - SSIM (Wang et al. 2004) per pixel of the grey images (channel
    mean), as skimage.metrics.structural_similarity computes its map with its
    defaults: a win x win uniform window, sample covariances, C1, C2 for range
    1 (skimage's own uniform_filter call, mode "reflect")."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    a, b = x.mean(axis=2), r.mean(axis=2)
    f = lambda t: uniform_filter(t, size=win)
    cov_norm = win * win / (win * win - 1)
    ma, mb = f(a), f(b)
    va = cov_norm * (f(a * a) - ma * ma)
    vb = cov_norm * (f(b * b) - mb * mb)
    cov = cov_norm * (f(a * b) - ma * mb)
    return 1 - (2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2))


def detail(x):
    total = 0.0
    for k in range(x.shape[2]):
        c = x[:, :, k]
        if c.shape[1] > 1:
            total += np.abs(np.diff(c, axis=1)).mean()
        if c.shape[0] > 1:
            total += np.abs(np.diff(c, axis=0)).mean()
    return total / x.shape[2]


def resize(src, height, width):
    """Bilinear, pixel centres at half-integers, edges repeated."""
    h, w = src.shape

    def source(n, m):
        x = np.maximum((np.arange(n) + 0.5) * m / n - 0.5, 0)
        lo = np.minimum(np.floor(x).astype(int), m - 1)
        return lo, np.minimum(lo + 1, m - 1), x - lo

    y0, y1, ty = source(height, h)
    x0, x1, tx = source(width, w)
    top = src[y0][:, x0] + tx * (src[y0][:, x1] - src[y0][:, x0])
    bottom = src[y1][:, x0] + tx * (src[y1][:, x1] - src[y1][:, x0])
    return top + ty[:, None] * (bottom - top)


def values(v):
    return " ".join(repr(float(t)) for t in np.ravel(v))


def image_case(out, rng, name, h, w, c, sigma, top, defect=True):
    x = rng.uniform(0, 1, (h, w, c)).astype(np.float32)
    x = gaussian_filter(x, (1, 1, 0)).astype(np.float32)  # some structure, as images have
    r = np.clip(x + rng.normal(0, 0.03, x.shape), 0, 1).astype(np.float32)
    if defect:  # a local defect, what the max and top-k rules are for
        r[h // 3:h // 3 + 2, w // 2:w // 2 + 3, :] = 1 - x[h // 3:h // 3 + 2, w // 2:w // 2 + 3, :]
    x64, r64 = x.astype(np.float64), r.astype(np.float64)
    sq = ((x64 - r64) ** 2).mean(axis=2)
    blur = gaussian_filter(sq, sigma) if sigma > 0 else sq
    k = max(1, int(np.ceil(top * h * w / 100)))
    out.write(f"image {name} {h} {w} {c} {sigma!r} {top!r}\n")
    out.write(f"x {values(x)}\nr {values(r)}\nsqmap {values(sq)}\nblur {values(blur)}\n")
    out.write(f"ssim {values(ssim_map(x64, r64))}\n")
    out.write(f"detail {detail(x64)!r}\nmax {blur.max()!r}\n")
    out.write(f"top {np.sort(blur.ravel())[-k:].mean()!r}\n")
    # the smoothed map at another size: 2.5x larger, and 0.6x (when it fits)
    for rh, rw in ((h * 5 // 2, w * 5 // 2), (max(1, h * 3 // 5), max(1, w * 3 // 5))):
        out.write(f"resize {rh} {rw} {values(resize(blur, rh, rw))}\n")
    out.write("end\n")


def knn_case(out, rng, name, n, m, d, k):
    q = rng.normal(0, 1, (n, d)).astype(np.float32)
    ref = rng.normal(0, 1, (m, d)).astype(np.float32)
    q[0] = ref[3]  # a query equal to a reference: its own distance is 0
    dist = np.sqrt(((q.astype(np.float64)[:, None, :] - ref.astype(np.float64)[None]) ** 2).sum(-1))
    res = np.sort(dist, axis=1)[:, :k].mean(axis=1)
    out.write(f"knn {name} {n} {m} {d} {k}\nq {values(q)}\nref {values(ref)}\nout {values(res)}\nend\n")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/score_reference.txt"
    rng = np.random.default_rng(20261205)
    with open(path, "w") as out:
        out.write(f"# generated by tools/score_reference.py (scipy {scipy.__version__}, "
                  f"numpy {np.__version__}); do not edit\n")
        image_case(out, rng, "gray", 16, 12, 1, 1.0, 1.0)
        image_case(out, rng, "rgb", 9, 14, 3, 1.5, 5.0)
        image_case(out, rng, "wide_kernel", 6, 5, 1, 2.0, 10.0)  # radius 8 > size: reflected twice
        image_case(out, rng, "no_smoothing", 7, 7, 3, 0.0, 100.0, defect=False)
        image_case(out, rng, "one_row", 1, 20, 1, 1.0, 1.0)
        image_case(out, rng, "tall", 96, 12, 1, 1.0, 1.0)  # SSIM's running column sums over many rows
        knn_case(out, rng, "small", 5, 7, 3, 1)
        knn_case(out, rng, "k_many", 30, 200, 16, 15)
        knn_case(out, rng, "k_all", 3, 4, 2, 4)


if __name__ == "__main__":
    main()
