#!/usr/bin/python3
"""PyTorch reference for aedet's model: writes tests/fixtures/torch_ref.bin.

Run from the repo root with Debian's interpreter (it has torch):
    /usr/bin/python3 tools/torch_reference.py [output path]

The model is SEED-SPEC.md's autoencoder for a 16x16x3 image, filters (4, 8),
latent 5, batch 3, rebuilt with TensorFlow/Keras semantics (see the helpers
below) and run in float64. Weights and the input are drawn with numpy from a
fixed seed and rounded to float32 first, so that the C model starts from the
very same numbers.

Fixture format (little endian):
    magic  "AEFX", uint32 version (1), uint32 count
    count times: uint32 name_len, name bytes (no NUL), uint32 ndim,
                 uint32 dims[ndim], float32 data[prod(dims)] (row-major)

Arrays (names of tensors and layers as in include/aedet/nn.h):
    config/model              H, W, C, num_filters, filters..., latent, slope, momentum, eps
    config/adam               learning_rate, beta1, beta2, epsilon, decay
    input                     (N, H, W, C)
    param/<tensor>            initial value of every parameter and BN moving stat, Keras layout
    layer/<layer>             each layer's output of the first training forward, NHWC or (N, units)
    loss                      (1,) training-mode MSE of that forward
    per_image                 (N,) each image's MSE
    grad/<tensor>             gradient of the loss for every trainable tensor
    state1/<tensor>           BN moving statistics after that one training forward
    adam3/<tensor>            parameters after 3 Adam steps (forward, backward, step) on input
    traj/loss                 (20,) losses of 20 such steps from the initial weights
                              (the first 3 are the steps above)
    traj/<tensor>             every parameter and moving statistic after the 20 steps
    infer/out.sigmoid         inference-mode reconstruction after the 20 steps
    infer/per_image           its per-image MSE (ae_model_score's errors)
"""
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

H, W, C = 16, 16, 3
FILTERS = (4, 8)
LATENT = 5
BATCH = 3
SLOPE = 0.3
MOMENTUM = 0.99
BN_EPS = 1e-3
# A decay much larger than the tutorial's 1e-3/50, so that a missing or
# misplaced time decay changes the parameters after 3 steps measurably.
ADAM = dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-7, decay=0.05)
STEPS = 20
ADAM_CHECK_STEPS = 3
SEED = 20240611

DT = torch.float64
NP_DT = np.float64
# The C test (tests/test_torch_reference.c) uses the same measure and numbers.
FLOOR = 0.1
TOLERANCE = 1e-4


def f32(a):
    """Rounds to float32 and back: what the C side will hold."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------- weights

def make_params(rng):
    """Keras-layout parameters and moving statistics, in the order of nn.h."""
    p = {}

    def glorot(shape, fan_in, fan_out):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        return f32(rng.uniform(-lim, lim, size=shape))

    def bias(n):
        return f32(rng.uniform(-0.2, 0.2, size=n))

    def bn(prefix, n):
        p[prefix + ".gamma"] = f32(rng.uniform(0.7, 1.3, size=n))
        p[prefix + ".beta"] = f32(rng.uniform(-0.3, 0.3, size=n))
        p[prefix + ".moving_mean"] = f32(rng.uniform(-0.5, 0.5, size=n))
        p[prefix + ".moving_var"] = f32(rng.uniform(0.5, 1.5, size=n))

    cin = C
    for i, f in enumerate(FILTERS):
        p["enc%d.conv.kernel" % i] = glorot((3, 3, cin, f), 9 * cin, 9 * f)
        p["enc%d.conv.bias" % i] = bias(f)
        bn("enc%d.bn" % i, f)
        cin = f
    side_h, side_w = H >> len(FILTERS), W >> len(FILTERS)
    flat = side_h * side_w * FILTERS[-1]
    p["enc.dense.kernel"] = glorot((flat, LATENT), flat, LATENT)
    p["enc.dense.bias"] = bias(LATENT)
    p["dec.dense.kernel"] = glorot((LATENT, flat), LATENT, flat)
    p["dec.dense.bias"] = bias(flat)
    cin = FILTERS[-1]
    for i, f in enumerate(reversed(FILTERS)):
        p["dec%d.deconv.kernel" % i] = glorot((3, 3, f, cin), 9 * cin, 9 * f)
        p["dec%d.deconv.bias" % i] = bias(f)
        bn("dec%d.bn" % i, f)
        cin = f
    p["out.deconv.kernel"] = glorot((3, 3, C, cin), 9 * cin, 9 * C)
    p["out.deconv.bias"] = bias(C)
    return p


def is_state(name):
    return name.endswith(".moving_mean") or name.endswith(".moving_var")


# ---------------------------------------------------------------- TF semantics

def conv_same_s2(x, k, b):
    """Conv2D(3x3, stride 2, "same") on an even size: TF pads 0 before, 1 after."""
    w = k.permute(3, 2, 0, 1)  # (3,3,in,out) -> (out,in,3,3)
    return F.conv2d(F.pad(x, (0, 1, 0, 1)), w, b, stride=2)


def deconv(x, k, b, stride):
    """Conv2DTranspose(3x3, "same"): the full scatter y[s*i+k] += x[i]*w[k];
    stride 2 keeps [0, 2n) (drops the last row and column), stride 1 pads 1."""
    w = k.permute(3, 2, 0, 1)  # (3,3,out,in) -> (in,out,3,3)
    if stride == 1:
        return F.conv_transpose2d(x, w, b, stride=1, padding=1)
    y = F.conv_transpose2d(x, w, b, stride=2, padding=0)
    return y[:, :, : 2 * x.shape[2], : 2 * x.shape[3]]


def batch_norm_train(x, gamma, beta, mm, mv):
    """Normalizes with the biased batch variance; returns the new moving stats
    updated Keras' way (momentum 0.99) with the unbiased variance."""
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)
    count = x.numel() // x.shape[1]
    y = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + BN_EPS)
    y = y * gamma[None, :, None, None] + beta[None, :, None, None]
    unbiased = var.detach() * count / (count - 1)
    new_mm = mm * MOMENTUM + mean.detach() * (1 - MOMENTUM)
    new_mv = mv * MOMENTUM + unbiased * (1 - MOMENTUM)
    return y, new_mm, new_mv


def batch_norm_infer(x, gamma, beta, mm, mv):
    y = (x - mm[None, :, None, None]) / torch.sqrt(mv[None, :, None, None] + BN_EPS)
    return y * gamma[None, :, None, None] + beta[None, :, None, None]


def nhwc(t):
    return t.permute(0, 2, 3, 1) if t.dim() == 4 else t


def forward(p, x_nhwc, train):
    """Returns (reconstruction NHWC, [(layer name, output)], new moving stats)."""
    layers = []
    state = {}

    def bn(prefix, t):
        args = (p[prefix + ".gamma"], p[prefix + ".beta"],
                p[prefix + ".moving_mean"], p[prefix + ".moving_var"])
        if train:
            y, mm, mv = batch_norm_train(t, *args)
            state[prefix + ".moving_mean"], state[prefix + ".moving_var"] = mm, mv
            return y
        return batch_norm_infer(t, *args)

    t = x_nhwc.permute(0, 3, 1, 2)
    for i in range(len(FILTERS)):
        t = conv_same_s2(t, p["enc%d.conv.kernel" % i], p["enc%d.conv.bias" % i])
        layers.append(("enc%d.conv" % i, t))
        t = F.leaky_relu(t, SLOPE)
        layers.append(("enc%d.leaky" % i, t))
        t = bn("enc%d.bn" % i, t)
        layers.append(("enc%d.bn" % i, t))
    n = t.shape[0]
    vol = t.shape[1:]  # C, h, w
    t = nhwc(t).reshape(n, -1)  # Flatten in HWC order
    t = t @ p["enc.dense.kernel"] + p["enc.dense.bias"]
    layers.append(("enc.dense", t))
    t = t @ p["dec.dense.kernel"] + p["dec.dense.bias"]
    layers.append(("dec.dense", t))
    t = t.reshape(n, vol[1], vol[2], vol[0]).permute(0, 3, 1, 2)  # Reshape in HWC order
    for i in range(len(FILTERS)):
        t = deconv(t, p["dec%d.deconv.kernel" % i], p["dec%d.deconv.bias" % i], 2)
        layers.append(("dec%d.deconv" % i, t))
        t = F.leaky_relu(t, SLOPE)
        layers.append(("dec%d.leaky" % i, t))
        t = bn("dec%d.bn" % i, t)
        layers.append(("dec%d.bn" % i, t))
    t = deconv(t, p["out.deconv.kernel"], p["out.deconv.bias"], 1)
    layers.append(("out.deconv", t))
    t = torch.sigmoid(t)
    layers.append(("out.sigmoid", t))
    return nhwc(t), [(name, nhwc(v)) for name, v in layers], state


def mse(recon, x):
    diff = (recon - x) ** 2
    return diff.mean(), diff.reshape(diff.shape[0], -1).mean(dim=1)


# ---------------------------------------------------------------- Adam (Keras)

class KerasAdam:
    """Keras' legacy Adam: lr_t = lr / (1 + decay * iterations), epsilon added
    before the bias correction."""

    def __init__(self, names, p):
        self.m = {k: np.zeros_like(p[k]) for k in names}
        self.v = {k: np.zeros_like(p[k]) for k in names}
        self.iterations = 0

    def step(self, p, grads):
        a = ADAM
        lr_t = a["learning_rate"] / (1.0 + a["decay"] * self.iterations)
        t = self.iterations + 1
        scale = lr_t * np.sqrt(1.0 - a["beta2"] ** t) / (1.0 - a["beta1"] ** t)
        for k, g in grads.items():
            self.m[k] = a["beta1"] * self.m[k] + (1 - a["beta1"]) * g
            self.v[k] = a["beta2"] * self.v[k] + (1 - a["beta2"]) * g * g
            p[k] = p[k] - scale * self.m[k] / (np.sqrt(self.v[k]) + a["epsilon"])
        self.iterations += 1


# ---------------------------------------------------------------- cross-checks

def check_semantics(rng):
    """The TF conventions above against direct numpy loops, and our BN's
    moving statistics against PyTorch's own batch_norm."""
    x = rng.standard_normal((2, 3, 4, 4))
    k = rng.standard_normal((3, 3, 3, 5))  # conv: (3,3,in,out)
    b = rng.standard_normal(5)
    got = conv_same_s2(torch.tensor(x), torch.tensor(k), torch.tensor(b)).numpy()
    want = np.zeros((2, 5, 2, 2))
    xp = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    for oy in range(2):
        for ox in range(2):
            patch = xp[:, :, 2 * oy:2 * oy + 3, 2 * ox:2 * ox + 3]  # N,in,3,3
            want[:, :, oy, ox] = np.einsum("nchw,hwco->no", patch, k) + b
    assert np.allclose(got, want, atol=1e-12), "conv same stride 2"

    for stride in (1, 2):
        kt = rng.standard_normal((3, 3, 5, 3))  # deconv: (3,3,out,in)
        got = deconv(torch.tensor(x), torch.tensor(kt), torch.tensor(b), stride).numpy()
        n = 4
        full = np.zeros((2, 5, stride * (n - 1) + 3, stride * (n - 1) + 3))
        for iy in range(n):
            for ix in range(n):
                for ky in range(3):
                    for kx in range(3):
                        full[:, :, stride * iy + ky, stride * ix + kx] += \
                            x[:, :, iy, ix] @ kt[ky, kx].T
        if stride == 2:
            want = full[:, :, :2 * n, :2 * n]  # TF keeps [0, 2n)
        else:
            want = full[:, :, 1:n + 1, 1:n + 1]  # pad 1 on each side
        want = want + b[None, :, None, None]
        assert np.allclose(got, want, atol=1e-12), "deconv stride %d" % stride

    t = torch.tensor(rng.standard_normal((3, 4, 5, 5)))
    g, be = torch.rand(4, dtype=DT) + 0.5, torch.rand(4, dtype=DT)
    mm, mv = torch.rand(4, dtype=DT), torch.rand(4, dtype=DT) + 0.5
    y, nmm, nmv = batch_norm_train(t, g, be, mm, mv)
    rm, rv = mm.clone(), mv.clone()
    yt = F.batch_norm(t, rm, rv, g, be, training=True, momentum=1 - MOMENTUM, eps=BN_EPS)
    assert torch.allclose(y, yt) and torch.allclose(nmm, rm) and torch.allclose(nmv, rv), "bn"


# ---------------------------------------------------------------- main

def to_tensors(p, names_trainable):
    return {k: torch.tensor(v, dtype=DT, requires_grad=k in names_trainable) for k, v in p.items()}


def train_step(p, x, opt, trainable):
    tp = to_tensors(p, trainable)
    recon, layers, state = forward(tp, x, train=True)
    loss, per_image = mse(recon, x)
    loss.backward()
    grads = {k: tp[k].grad.numpy().copy() for k in trainable}
    for k, v in state.items():
        p[k] = v.numpy().copy()
    opt.step(p, grads)
    return loss.item(), per_image.detach().numpy(), layers, grads, state


def reference_arrays(p0, x_np):
    """Every array of the fixture, computed in the current DT."""
    p = {k: np.asarray(v, dtype=NP_DT) for k, v in p0.items()}
    order = list(p.keys())
    trainable = [k for k in order if not is_state(k)]
    x = torch.tensor(x_np, dtype=DT)
    arrays = [
        ("config/model", [H, W, C, len(FILTERS), *FILTERS, LATENT, SLOPE, MOMENTUM, BN_EPS]),
        ("config/adam", [ADAM[k] for k in ("learning_rate", "beta1", "beta2", "epsilon", "decay")]),
        ("input", x_np),
    ]
    arrays += [("param/" + k, p[k]) for k in order]
    opt = KerasAdam(trainable, p)
    losses = []
    for step in range(STEPS):
        loss, per_image, layers, grads, state = train_step(p, x, opt, trainable)
        losses.append(loss)
        if step == 0:
            arrays += [("layer/" + name, v.detach().numpy()) for name, v in layers]
            arrays += [("loss", [loss]), ("per_image", per_image)]
            arrays += [("grad/" + k, grads[k]) for k in trainable]
            arrays += [("state1/" + k, state[k].numpy()) for k in order if is_state(k)]
        if step + 1 == ADAM_CHECK_STEPS:
            arrays += [("adam3/" + k, p[k]) for k in trainable]
    arrays.append(("traj/loss", losses))
    arrays += [("traj/" + k, p[k]) for k in order]
    with torch.no_grad():
        recon, _, _ = forward(to_tensors(p, []), x, train=False)
        _, per_image = mse(recon, x)
    arrays += [("infer/out.sigmoid", recon.numpy()), ("infer/per_image", per_image.numpy())]
    return arrays


def write_fixture(path, arrays):
    with open(path, "wb") as f:
        f.write(b"AEFX")
        f.write(struct.pack("<II", 1, len(arrays)))
        for name, a in arrays:
            a = np.ascontiguousarray(np.asarray(a, dtype=np.float64)).astype("<f4")
            if a.ndim == 0:
                a = a.reshape(1)
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", a.ndim) + struct.pack("<%dI" % a.ndim, *a.shape))
            f.write(a.tobytes())


def test_error(got, want):
    """The C test's measure: max |got - want| / max(|want|, FLOOR * rms(want))."""
    got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    floor = max(FLOOR * np.sqrt(np.mean(want * want)), 1e-30)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), floor)))


def main():
    global DT, NP_DT
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/torch_ref.bin"
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    check_semantics(np.random.default_rng(1))
    p0 = make_params(rng)
    x_np = f32(rng.uniform(0.0, 1.0, size=(BATCH, H, W, C)))

    arrays = reference_arrays(p0, x_np)
    write_fixture(out, arrays)
    losses = dict(arrays)["traj/loss"]
    print("wrote %s: %d arrays; loss %.6g, after %d steps %.6g" %
          (out, len(arrays), losses[0], STEPS, losses[-1]))

    # The whole computation again in float32: how far float32 arithmetic alone
    # drifts from the float64 reference, under the C test's measure.
    DT, NP_DT = torch.float32, np.float32
    arrays32 = dict(reference_arrays(p0, x_np))
    worst = sorted(((test_error(arrays32[k], v), k) for k, v in arrays), reverse=True)
    print("float32 rerun vs reference, worst errors (floor %g * rms, test tolerance %g):" %
          (FLOOR, TOLERANCE))
    for e, k in worst[:6]:
        print("  %-28s %.3g" % (k, e))


if __name__ == "__main__":
    main()
