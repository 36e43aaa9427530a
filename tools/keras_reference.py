#!/usr/bin/python3
"""Keras weights fixture for aedet's import-keras / export-keras.

Run from the repo root with Debian's interpreter (python3-h5py, python3-numpy;
TensorFlow is not needed and not used):

    /usr/bin/python3 tools/keras_reference.py            # writes the fixtures
    /usr/bin/python3 tools/keras_reference.py --check W.h5 --expect E.h5
                                                         # a file aedet exported

Writing: the tutorial's autoencoder (SEED-SPEC.md) for 16x24x3 images,
filters (8, 16), latent 4, with weights drawn from a fixed seed, saved the way
Keras 2.x's `autoencoder.save_weights('x.h5')` saves the tutorial's model
(keras/saving/legacy/hdf5_format.py, save_weights_to_hdf5_group, with the same
h5py calls): the functional model `autoencoder` whose layers are input_1 and
the nested models `encoder` and `decoder`; one group per top-level layer; a
`layer_names` attribute at the top and a `weight_names` attribute on each
group; each weight a dataset named after its variable (`conv2d/kernel:0`),
trainable weights first and then the BatchNorm moving statistics
(`_legacy_weights`); an empty `top_level_model_weights` group. Layer names are
the ones a fresh Keras session gives the tutorial's build().

    tests/fixtures/keras_tutorial.weights.h5   the weights file
    tests/fixtures/keras_tutorial_expected.h5  a fixed input (2 images) and what
        the model computes for it, by a plain numpy forward pass of Keras'
        inference semantics in float64: `latent` (the encoder), `output` (the
        autoencoder), `mse` (per-image mean squared error); the config as
        attributes

The forward pass below is written from Keras/TF's definitions, not from
aedet's code: "same" convolutions pad as TF does (the odd pad after), and the
transposed convolution is a literal scatter cropped as TF crops; the script
checks that it is the adjoint of the strided convolution (TF defines it as
that convolution's input gradient) before it writes anything.

--check reads a weights file the way Keras' load_weights does (topological
order: layer_names, then each group's weight_names in order), checks every
shape against the tutorial model of the expected file's config, runs the
same numpy forward on the expected file's input and compares with its output.
"""
import argparse
import sys

import h5py
import numpy as np

H, W, C = 16, 24, 3
FILTERS = (8, 16)
LATENT = 4
SLOPE = 0.3      # the tutorial's LeakyReLU(alpha=0.3)
BN_EPS = 1e-3    # Keras' BatchNormalization default
BATCH = 2
SEED = 20250520
KERAS_VERSION = "2.11.0"  # tf.keras.optimizers.legacy (the tutorial's) needs 2.11+


# ---- the tutorial's model: layer names and weight shapes, in Keras' order ----

class Names:
    """Keras' default layer names: a per-class counter, `conv2d`, `conv2d_1`, ..."""

    def __init__(self):
        self.count = {}

    def __call__(self, base):
        n = self.count.get(base, 0)
        self.count[base] = n + 1
        return base if n == 0 else "%s_%d" % (base, n)


def tutorial_layers(h, w, c, filters, latent):
    """(model, [(layer, kind, {var: shape})]) for encoder and decoder, in build() order."""
    name = Names()
    name("input")  # input_1, the autoencoder's input (Keras counts from 1 for inputs)
    enc, dec = [], []
    cin, hh, ww = c, h, w
    for f in filters:
        enc.append((name("conv2d"), "conv", {"kernel": (3, 3, cin, f), "bias": (f,)}))
        name("leaky_re_lu")
        enc.append((name("batch_normalization"), "bn", {v: (f,) for v in
                    ("gamma", "beta", "moving_mean", "moving_variance")}))
        cin, hh, ww = f, (hh + 1) // 2, (ww + 1) // 2
    name("flatten")
    grid = (hh, ww, cin)
    volume = hh * ww * cin
    enc.append((name("dense"), "dense", {"kernel": (volume, latent), "bias": (latent,)}))
    name("input")  # input_2, the decoder's
    dec.append((name("dense"), "dense", {"kernel": (latent, volume), "bias": (volume,)}))
    name("reshape")
    for f in reversed(filters):
        dec.append((name("conv2d_transpose"), "deconv", {"kernel": (3, 3, f, cin), "bias": (f,)}))
        name("leaky_re_lu")
        dec.append((name("batch_normalization"), "bn", {v: (f,) for v in
                    ("gamma", "beta", "moving_mean", "moving_variance")}))
        cin = f
    dec.append((name("conv2d_transpose"), "deconv", {"kernel": (3, 3, c, cin), "bias": (c,)}))
    return {"encoder": enc, "decoder": dec}, grid


def legacy_weight_order(layers):
    """Model.trainable_weights + Model.non_trainable_weights of a nested model."""
    trainable, fixed = [], []
    for lname, _, shapes in layers:
        for var, shape in shapes.items():
            (fixed if var.startswith("moving_") else trainable).append(("%s/%s:0" % (lname, var), shape))
    return trainable + fixed


def random_weights(models, rng):
    values = {}
    for layers in models.values():
        for lname, kind, shapes in layers:
            for var, shape in shapes.items():
                key = "%s/%s:0" % (lname, var)
                if var == "kernel":
                    fan_in = np.prod(shape[:-1]) if kind != "deconv" else 9 * shape[2]
                    fan_out = shape[-1] * (9 if kind != "dense" else 1)
                    lim = np.sqrt(6.0 / (fan_in + fan_out))
                    v = rng.uniform(-lim, lim, shape)
                elif var == "bias":
                    v = rng.normal(0, 0.05, shape)
                elif var == "gamma":
                    v = rng.uniform(0.5, 1.5, shape)
                elif var == "beta":
                    v = rng.normal(0, 0.1, shape)
                elif var == "moving_mean":
                    v = rng.normal(0, 0.2, shape)
                else:  # moving_variance: trained ones are far from 1
                    v = rng.uniform(0.3, 2.0, shape)
                values[key] = v.astype(np.float32)
    return values


# ---- Keras 2.x's save_weights, as h5py calls it ----

def save_attributes(group, name, data):
    # save_attributes_to_hdf5_group: one attribute (these are far under 64 KB)
    group.attrs[name] = data


def save_weights(path, models, values):
    with h5py.File(path, "w") as f:
        top = ["input_1", "encoder", "decoder"]
        save_attributes(f, "layer_names", [n.encode("utf8") for n in top])
        f.attrs["backend"] = "tensorflow".encode("utf8")
        f.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
        for lname in sorted(top):
            g = f.create_group(lname)
            weights = legacy_weight_order(models[lname]) if lname in models else []
            names = [n.encode("utf8") for n, _ in weights]
            save_attributes(g, "weight_names", names)
            for n, shape in weights:
                val = values[n]
                assert val.shape == shape
                d = g.create_dataset(n.encode("utf8"), val.shape, dtype=val.dtype)
                d[:] = val
        g = f.create_group("top_level_model_weights")
        save_attributes(g, "weight_names", [])


# ---- Keras' inference semantics in numpy (float64) ----

def same_pad(size_in, size_out, stride):
    """TF's "same" padding (before, after) of a 3-tap window: the odd one after."""
    total = max((size_out - 1) * stride + 3 - size_in, 0)
    return total // 2, total - total // 2


def conv2d(x, k, b, stride):
    """Conv2D(3x3, stride, "same"): x (N,H,W,Cin), k (3,3,Cin,Cout)."""
    n, h, w, _ = x.shape
    oh, ow = -(-h // stride), -(-w // stride)
    ph, pw = same_pad(h, oh, stride), same_pad(w, ow, stride)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    y = np.zeros((n, oh, ow, k.shape[3]))
    for a in range(3):
        for c in range(3):
            win = xp[:, a:a + stride * (oh - 1) + 1:stride, c:c + stride * (ow - 1) + 1:stride, :]
            y += np.einsum("nhwi,io->nhwo", win, k[a, c])
    return y + b


def conv2d_transpose(x, k, b, stride):
    """Conv2DTranspose(3x3, stride, "same"): x (N,h,w,Cin), k (3,3,Cout,Cin).

    Every input pixel scatters into the output at stride * i + tap - pad, where
    pad is the "same" padding of the forward convolution from (stride * h) to h;
    taps that land outside [0, stride * h) are dropped."""
    n, h, w, _ = x.shape
    oh, ow = h * stride, w * stride
    ph, pw = same_pad(oh, h, stride)[0], same_pad(ow, w, stride)[0]
    full = np.zeros((n, stride * (h - 1) + 3, stride * (w - 1) + 3, k.shape[2]))
    for i in range(h):
        for j in range(w):
            for a in range(3):
                for c in range(3):
                    full[:, stride * i + a, stride * j + c, :] += x[:, i, j, :] @ k[a, c].T
    return full[:, ph:ph + oh, pw:pw + ow, :] + b


def leaky(x):
    return np.where(x > 0, x, SLOPE * x)


def batchnorm(x, p):
    return (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + BN_EPS) * p["gamma"] + p["beta"]


def forward(models, values, x):
    def params(lname, shapes):
        return {v: values["%s/%s:0" % (lname, v)].astype(np.float64) for v in shapes}

    def run(layers, t, strides):
        it = iter(strides)
        for lname, kind, shapes in layers:
            p = params(lname, shapes)
            if kind == "conv":
                t = leaky(conv2d(t, p["kernel"], p["bias"], 2))
            elif kind == "deconv":
                s = next(it)
                t = conv2d_transpose(t, p["kernel"], p["bias"], s)
                t = leaky(t) if s == 2 else t
            elif kind == "bn":
                t = batchnorm(t, p)
            else:
                t = t.reshape(t.shape[0], -1) @ p["kernel"] + p["bias"]  # Flatten is HWC order
        return t

    enc, dec = models["encoder"], models["decoder"]
    latent = run(enc, x.astype(np.float64), [])
    t = latent @ values["%s/kernel:0" % dec[0][0]].astype(np.float64) + values["%s/bias:0" % dec[0][0]]
    hh, ww = H >> len(FILTERS), W >> len(FILTERS)
    t = t.reshape(t.shape[0], hh, ww, -1)  # Reshape(volume), HWC order
    t = run(dec[1:], t, [2] * len(FILTERS) + [1])
    return latent, 1.0 / (1.0 + np.exp(-t))


def check_transpose_is_adjoint(rng):
    """<conv(x), y> = <x, convT(y)>: TF's Conv2DTranspose is the input
    gradient of the strided "same" Conv2D with the same kernel, for stride 2
    (which drops the last row and column of the scatter) and stride 1."""
    for stride, (h, w) in ((2, (6, 8)), (1, (5, 7))):
        k = rng.normal(size=(3, 3, 2, 3))
        x = rng.normal(size=(1, h, w, 2))
        y = rng.normal(size=(1, -(-h // stride), -(-w // stride), 3))
        lhs = np.sum(conv2d(x, k, 0, stride) * y)
        rhs = np.sum(x * conv2d_transpose(y, k, 0, stride))
        assert abs(lhs - rhs) < 1e-9 * max(1, abs(lhs)), (stride, lhs, rhs)


def write_expected(path, x, latent, out):
    with h5py.File(path, "w") as f:
        f.create_dataset("input", data=x.astype(np.float32))
        f.create_dataset("latent", data=latent.astype(np.float32))
        f.create_dataset("output", data=out.astype(np.float32))
        mse = np.mean((out - x.astype(np.float64)) ** 2, axis=(1, 2, 3))
        f.create_dataset("mse", data=mse.astype(np.float32))
        f.attrs["height"], f.attrs["width"], f.attrs["channels"] = H, W, C
        f.attrs["filters"] = np.array(FILTERS, dtype=np.int64)
        f.attrs["latent"] = LATENT
        f.attrs["slope"], f.attrs["bn_epsilon"] = SLOPE, BN_EPS


# ---- reading a weights file the way Keras' load_weights does ----

def load_attribute(group, name):
    if name in group.attrs:
        data = list(group.attrs[name])
    else:
        data, i = [], 0
        while "%s%d" % (name, i) in group.attrs:
            data.extend(group.attrs["%s%d" % (name, i)])
            i += 1
    return [n.decode("utf8") if hasattr(n, "decode") else n for n in data]


def keras_load(path, models):
    """Topological loading: the file's layers that have weights, in layer_names
    order, against the model's layers that have weights, each group's
    weight_names in order against _legacy_weights(layer); shapes must match."""
    values = {}
    with h5py.File(path, "r") as f:
        names = [n for n in load_attribute(f, "layer_names") if load_attribute(f[n], "weight_names")]
        assert names == ["encoder", "decoder"], names
        for lname in names:
            g = f[lname]
            file_weights = load_attribute(g, "weight_names")
            want = legacy_weight_order(models[lname])
            assert len(file_weights) == len(want), (lname, len(file_weights), len(want))
            for fw, (mw, shape) in zip(file_weights, want):
                v = np.asarray(g[fw])
                assert v.shape == shape and v.dtype == np.float32, (fw, v.shape, v.dtype, shape)
                values[mw] = v
        if "top_level_model_weights" in f:
            assert not load_attribute(f["top_level_model_weights"], "weight_names")
    return values


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default="tests/fixtures")
    ap.add_argument("--check", metavar="WEIGHTS", help="a weights file to load as Keras would")
    ap.add_argument("--expect", metavar="EXPECTED", help="with --check: the input and output to compare")
    args = ap.parse_args()
    models, volume = tutorial_layers(H, W, C, FILTERS, LATENT)
    assert volume == (H >> len(FILTERS), W >> len(FILTERS), FILTERS[-1])
    if args.check:
        values = keras_load(args.check, models)
        with h5py.File(args.expect or "%s/keras_tutorial_expected.h5" % args.out_dir, "r") as e:
            x, want = np.asarray(e["input"]), np.asarray(e["output"])
        _, out = forward(models, values, x)
        err = np.max(np.abs(out - want))
        print("%s: loads as Keras would; max |output - expected| = %.3g" % (args.check, err))
        return 0 if err < 1e-5 else 1
    rng = np.random.default_rng(SEED)
    check_transpose_is_adjoint(rng)
    values = random_weights(models, rng)
    x = rng.uniform(0, 1, (BATCH, H, W, C)).astype(np.float32)
    latent, out = forward(models, values, x)
    # A reference whose output sat at 0 or 1, or barely moved with the input,
    # would let mistakes through.
    assert 0.02 < out.std() and 0.05 < out.min() and out.max() < 0.95, (out.min(), out.max(), out.std())
    save_weights("%s/keras_tutorial.weights.h5" % args.out_dir, models, values)
    write_expected("%s/keras_tutorial_expected.h5" % args.out_dir, x, latent, out)
    print("output in [%.3f, %.3f], sd %.3f; latent %s" % (out.min(), out.max(), out.std(), latent.round(3).tolist()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
