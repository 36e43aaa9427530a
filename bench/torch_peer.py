#!/usr/bin/python3
"""The same model and batch as bench/bench_model.c, in PyTorch at its best.

    /usr/bin/python3 bench/torch_peer.py [--threads N] [--seconds S] [--batch B] [--size HxWxC]...

Prints the same machine-readable lines as bench_model (`train 256x256x3 b32
images_per_s 12.3`, ...), so bench/compare.sh can put them side by side. What
"at its best" means here (bench/compare.sh sets the environment):
  - jemalloc preloaded with decay disabled and transparent huge pages
    (MALLOC_CONF) when it is installed,
    OPENBLAS_NUM_THREADS=1, torch.set_num_threads(N);
  - channels_last tensors (oneDNN's fast path for convolutions);
  - Conv2DTranspose computed as the input gradient of the regular convolution
    (aten.convolution_backward), with its own backward made of a forward
    convolution and a weight gradient: torch 1.13's conv_transpose2d takes a
    slow im2col path on CPU (1.5-1.9x slower). The script first checks that
    this path equals conv_transpose2d, values and gradients.
The model follows SEED-SPEC.md with TF's semantics (Conv2D "same" stride 2 pads
0 before and 1 after; Conv2DTranspose stride 2 keeps [0, 2n) of the full
scatter), and is trained with torch.optim.Adam at lr 1e-3 (the Keras time
decay and epsilon placement do not change the cost).
"""
import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FILTERS = (16, 32, 64)
LATENT = 32
SLOPE = 0.3


def _conv_grad_input(grad_out, weight, input_shape, stride, padding):
    dummy = grad_out.new_empty(1).expand(input_shape)
    return torch.ops.aten.convolution_backward(
        grad_out, dummy, weight, None, [stride, stride], [padding, padding], [1, 1],
        False, [0, 0], 1, [True, False, False])[0]


def _conv_grad_weight(grad_out, inp, weight, stride, padding):
    return torch.ops.aten.convolution_backward(
        grad_out, inp, weight, None, [stride, stride], [padding, padding], [1, 1],
        False, [0, 0], 1, [False, True, False])[1]


class TfDeconv(torch.autograd.Function):
    """Conv2DTranspose(3x3, "same"), TF's way, as the input gradient of a conv.
    weight: (in, out, 3, 3) as conv_transpose2d takes it, which is the
    matching forward convolution's (out_of_conv = in, in_of_conv = out) weight.
    Stride 2: the full scatter has 2n+1 rows and TF keeps [0, 2n); its adjoint
    is then the Conv2D "same" of a (0, 1)-padded gradient. Stride 1: pad 1."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride):
        n, _, h, w = x.shape
        cout = weight.shape[1]
        if stride == 2:
            full = _conv_grad_input(x, weight, (n, cout, 2 * h + 1, 2 * w + 1), 2, 0)
            y = full[:, :, : 2 * h, : 2 * w]
        else:
            y = _conv_grad_input(x, weight, (n, cout, h, w), 1, 1)
        ctx.stride = stride
        ctx.save_for_backward(x, weight)
        return y + bias.view(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        if ctx.stride == 2:
            gfull = F.pad(gy, (0, 1, 0, 1))
            gx = F.conv2d(gfull, weight, None, stride=2)
            gw = _conv_grad_weight(x, gfull, weight, 2, 0)
        else:
            gx = F.conv2d(gy, weight, None, stride=1, padding=1)
            gw = _conv_grad_weight(x, gy, weight, 1, 1)
        return gx, gw, gy.sum(dim=(0, 2, 3)), None


def deconv_reference(x, weight, bias, stride):
    if stride == 2:
        y = F.conv_transpose2d(x, weight, bias, stride=2)
        return y[:, :, : 2 * x.shape[2], : 2 * x.shape[3]]
    return F.conv_transpose2d(x, weight, bias, stride=1, padding=1)


def check_deconv():
    """TfDeconv against conv_transpose2d: values and all three gradients."""
    g = torch.Generator().manual_seed(0)
    for stride in (1, 2):
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(2, 5, 6, 6, dtype=torch.float64, generator=g)
            x = x.to(memory_format=fmt).requires_grad_()
            w = torch.randn(5, 3, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
            b = torch.randn(3, dtype=torch.float64, generator=g, requires_grad=True)
            y1 = TfDeconv.apply(x, w, b, stride)
            gy = torch.randn(y1.shape, dtype=torch.float64, generator=g)
            g1 = torch.autograd.grad(y1, (x, w, b), gy)
            y2 = deconv_reference(x, w, b, stride)
            g2 = torch.autograd.grad(y2, (x, w, b), gy)
            assert y1.shape == y2.shape and torch.allclose(y1, y2, atol=1e-10), stride
            for a, c in zip(g1, g2):
                assert torch.allclose(a, c, atol=1e-10), "deconv gradient, stride %d" % stride


class Model(nn.Module):
    def __init__(self, h, w, c):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = c
        for f in FILTERS:
            self.enc.append(nn.ModuleList([nn.Conv2d(cin, f, 3, stride=2),
                                           nn.BatchNorm2d(f, eps=1e-3, momentum=0.01)]))
            cin = f
        k = len(FILTERS)
        self.vol = (FILTERS[-1], h >> k, w >> k)
        flat = self.vol[0] * self.vol[1] * self.vol[2]
        self.enc_dense = nn.Linear(flat, LATENT)
        self.dec_dense = nn.Linear(LATENT, flat)
        self.dec = nn.ModuleList()
        self.dec_w = nn.ParameterList()
        self.dec_b = nn.ParameterList()
        for f in reversed(FILTERS):
            self.dec_w.append(nn.Parameter(torch.randn(cin, f, 3, 3) * (2.0 / (9 * (cin + f))) ** 0.5))
            self.dec_b.append(nn.Parameter(torch.zeros(f)))
            self.dec.append(nn.BatchNorm2d(f, eps=1e-3, momentum=0.01))
            cin = f
        self.out_w = nn.Parameter(torch.randn(cin, c, 3, 3) * (2.0 / (9 * (cin + c))) ** 0.5)
        self.out_b = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        t = x
        for conv, bn in self.enc:
            t = bn(F.leaky_relu(conv(F.pad(t, (0, 1, 0, 1))), SLOPE))
        n = t.shape[0]
        t = self.enc_dense(t.permute(0, 2, 3, 1).reshape(n, -1))  # Flatten, HWC order
        t = self.dec_dense(t)
        c, h, w = self.vol
        t = t.view(n, h, w, c).permute(0, 3, 1, 2)  # Reshape in HWC order: channels_last
        for wt, b, bn in zip(self.dec_w, self.dec_b, self.dec):
            t = bn(F.leaky_relu(TfDeconv.apply(t, wt, b, 2), SLOPE))
        return torch.sigmoid(TfDeconv.apply(t, self.out_w, self.out_b, 1))


def forward_flops(h, w, c):
    """Multiply-adds x 2 of one image, counted like ae_config_forward_flops."""
    total, cin, hh, ww = 0, c, h, w
    for f in FILTERS:
        hh, ww = hh // 2, ww // 2
        total += 2 * hh * ww * f * 9 * cin
        cin = f
    flat = hh * ww * cin
    total += 2 * 2 * flat * LATENT
    for f in reversed(FILTERS):
        total += 2 * hh * ww * cin * 9 * f  # each input pixel scatters 3x3 x f
        hh, ww, cin = hh * 2, ww * 2, f
    total += 2 * hh * ww * cin * 9 * c
    return float(total)


def measure(step, seconds):
    """Median step time after one warm-up step, like bench_model."""
    step()
    times, begin = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - begin < seconds:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    k = len(times)
    return times[k // 2] if k % 2 else 0.5 * (times[k // 2 - 1] + times[k // 2])


def bench_size(h, w, c, batch, seconds):
    torch.manual_seed(1)
    model = Model(h, w, c).to(memory_format=torch.channels_last)
    # NHWC images, seen by torch as NCHW in channels_last layout (no copy).
    x = torch.rand(batch, h, w, c).permute(0, 3, 1, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    name = "%dx%dx%d b%d" % (h, w, c, batch)
    flops = forward_flops(h, w, c)
    nparams = sum(p.numel() for p in model.parameters())
    print("# %s: %d parameters, %.1f MFLOP per image forward" % (name, nparams, flops * 1e-6))

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), x)
        loss.backward()
        opt.step()
        return loss.item()

    def infer_step():
        model.eval()
        with torch.inference_mode():
            errors = ((model(x) - x) ** 2).mean(dim=(1, 2, 3))
        return errors.tolist()

    for mode, step, factor in (("train", train_step, 3.0), ("infer", infer_step, 1.0)):
        ips = batch / measure(step, seconds)
        print("%s %s images_per_s %.2f" % (mode, name, ips))
        print("%s %s ms_per_image %.3f" % (mode, name, 1e3 / ips))
        print("%s %s gflop_per_s %.2f" % (mode, name, ips * flops * factor * 1e-9))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("mem %s peak_rss_mb %.1f" % (name, rss), flush=True)


def parse_size(s):
    h, w, c = (int(v) for v in s.split("x"))
    if min(h, w, c) < 1:
        raise argparse.ArgumentTypeError("bad size " + s)
    return h, w, c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=parse_size, action="append")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    check_deconv()
    print("# torch %s, %d threads, %.1f s per measurement, deconv path verified" %
          (torch.__version__, torch.get_num_threads(), a.seconds))
    for h, w, c in a.size or [(32, 32, 1), (256, 256, 3)]:
        bench_size(h, w, c, a.batch, a.seconds)


if __name__ == "__main__":
    main()
