"""aedet: find the odd ones out in a pile of images.

numpy in, numpy out, over the C library libaedet: the code of the `aedet`
tool, with its results for the same images, options and seed.

    import aedet
    model = aedet.train(images, epochs=30, seed=0)  # N x H x W (x C): uint8, or floats in [0, 1]
    scores = model.score(images)                    # N anomaly scores (float32)
    flagged = scores >= model.threshold             # the threshold training chose (or model.flag)
    latents = model.encode(images)                  # N x latent
    recon = model.reconstruct(images)               # N x H x W x C at the model's size, in [0, 1]
    model.save("model.aedet")                       # what `aedet score` and friends read
    model = aedet.load("model.aedet")

Images are N x H x W (gray) or N x H x W x C (C 1 or 3) arrays; one H x W
image is taken as a batch of one. uint8 pixels go through the steps an IDX
file's records take in the tool (resized to the model's size, then / 255).
Floating-point images hold values in [0, 1]: at the model's size they are
used as they are; otherwise, and for training, they are rounded to 8 bits
first, since the library keeps images as bytes.
"""
import ctypes
import os

import numpy as np

from . import _lib
from ._lib import Error

__version__ = "0.1.0"
__all__ = ["train", "load", "Model", "Error", "read_image", "set_threads"]

_AUGMENT = {"flip": 1, "shift": 2, "brightness": 4}
_BAD_FILES = {"stop": 0, "skip": 1}
# train()'s keywords that map straight onto ae_fit_options fields: the
# tool's flag names (--batch, --lr, ...), with '_' for '-'.
_PLAIN_OPTIONS = {"epochs": "epochs", "batch": "batch_size", "seed": "seed", "val_fraction": "val_fraction",
                  "latent": "latent_dim", "slope": "leaky_slope", "lr": "learning_rate", "decay": "decay",
                  "early_stop": "patience", "keep_best": "keep_best", "threshold_quantile": "threshold_quantile",
                  "bf16": "bf16", "memory_budget": "memory_budget"}
_OTHER_OPTIONS = ("size", "channels", "filters", "score", "sigma", "augment", "threads", "on_epoch")


def set_threads(n):
    """Threads for training and scoring, for the whole process (0: all cores)."""
    _lib.lib.ae_set_num_threads(int(n))


def _images(images):
    """images as a C-ordered N x H x W x C array: uint8, or float32 for floats."""
    a = np.asarray(images)
    if a.ndim == 2:
        a = a[None, :, :, None]
    elif a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] < 1 or a.shape[3] not in (1, 3):
        raise ValueError("images: want N x H x W or N x H x W x C with C 1 or 3, and at least one image; "
                         "got shape %s" % (np.shape(images),))
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating):
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ValueError("images: floating-point pixels must be finite and in [0, 1]")
        return a
    if np.issubdtype(a.dtype, np.integer) and a.min() >= 0 and a.max() <= 255:
        return np.ascontiguousarray(a, dtype=np.uint8)
    raise ValueError("images: want uint8 pixels (or integers in 0..255), or floats in [0, 1]; got %s" % a.dtype)


def _bytes(a):
    if a.dtype == np.uint8:
        return a
    return np.ascontiguousarray(np.rint(a * np.float32(255)), dtype=np.uint8)


def _pointer(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _fit_options(options):
    o = _lib.FitOptions()
    _lib.lib.ae_fit_options_init(ctypes.byref(o))
    unknown = sorted(set(options) - set(_PLAIN_OPTIONS) - set(_OTHER_OPTIONS))
    if unknown:
        raise TypeError("train(): unknown option(s) %s; the options are %s" %
                        (", ".join(unknown), ", ".join(sorted(_PLAIN_OPTIONS) + sorted(_OTHER_OPTIONS))))
    for key, field in _PLAIN_OPTIONS.items():
        if key in options:
            value = options[key]
            setattr(o, field, int(value) if isinstance(value, bool) else value)
    size = options.get("size")
    if size is not None:
        o.height, o.width = (size, size) if np.isscalar(size) else size
    if options.get("channels") is not None:
        o.channels = options["channels"]
    if options.get("filters") is not None:
        filters = list(options["filters"])
        if not 1 <= len(filters) <= _lib.AE_MAX_FILTERS:
            raise ValueError("filters: 1 to %d sizes" % _lib.AE_MAX_FILTERS)
        o.num_filters = len(filters)
        for i, f in enumerate(filters):
            o.filters[i] = f
    if options.get("sigma") is not None:
        o.sigma = options["sigma"]
    augment = options.get("augment") or ()
    for name in augment.split(",") if isinstance(augment, str) else augment:
        if name not in _AUGMENT:
            raise ValueError("augment: flip, shift or brightness, not %r" % name)
        o.augment |= _AUGMENT[name]
    return o


def train(images, **options):
    """Trains the autoencoder on images as `aedet train` does and returns the
    Model. Options, by the tool's flag names, with its defaults: epochs 30,
    batch 32, seed 0, val_fraction 0.2, size (int or (height, width); the
    images' own, rounded to a multiple of 2^len(filters)), channels (the
    images'), filters (16, 32, 64), latent 32, slope 0.3, lr 1e-3, decay 2e-5,
    early_stop 0, keep_best False, augment ("flip,shift,brightness" or a list;
    none), score "mse" (the rule stored in the model), sigma, threshold_quantile
    0.99, bf16 False, memory_budget (bytes; 1 GiB), threads (all cores; set
    for the whole process), and on_epoch, a function called after every epoch
    with (epoch, loss, val_loss, seconds): an exception it raises stops the
    training and is raised here."""
    o = _fit_options(options)
    if options.get("threads") is not None:
        set_threads(options["threads"])
    if options.get("score") is not None:
        o.score = str(options["score"]).encode()  # the struct keeps the bytes alive
    a = _bytes(_images(images))
    stop = ctypes.c_int(0)
    o.stop = ctypes.pointer(stop)
    raised = []
    on_epoch = options.get("on_epoch")

    def epoch_done(user, epoch, loss, val_loss, seconds):
        try:
            on_epoch(epoch, loss, val_loss, seconds)
        except BaseException as e:  # KeyboardInterrupt too: stop after this step, raise below
            raised.append(e)
            stop.value = 1

    callback = _lib.EPOCH_CALLBACK(epoch_done) if on_epoch is not None else _lib.EPOCH_CALLBACK()
    o.on_epoch = callback
    model, meta, err = ctypes.c_void_p(), ctypes.c_void_p(), _lib.ErrorStruct()
    status = _lib.lib.ae_fit_pixels(_pointer(a, ctypes.c_uint8), a.shape[0], a.shape[1], a.shape[2], a.shape[3],
                                    ctypes.byref(o), ctypes.byref(model), ctypes.byref(meta), ctypes.byref(err))
    if raised:
        _lib.lib.ae_model_free(model)
        _lib.lib.ae_meta_free(meta)
        raise raised[0]
    _lib.check(status, err)
    return Model(model, meta, "the trained model")


def load(path, batch=32):
    """A model file written by Model.save or `aedet train`, scoring batch
    images at a time."""
    model, meta, err = ctypes.c_void_p(), ctypes.c_void_p(), _lib.ErrorStruct()
    _lib.check(_lib.lib.ae_model_load(os.fsencode(path), int(batch), ctypes.byref(model), ctypes.byref(meta), None,
                                      ctypes.byref(err)), err)
    return Model(model, meta, os.fsdecode(path))


def read_image(path):
    """A JPEG or PNG file as an H x W x C uint8 array (C 1 or 3), decoded as the
    tool decodes it."""
    img, err = _lib.Image(), _lib.ErrorStruct()
    _lib.check(_lib.lib.ae_image_load(os.fsencode(path), ctypes.byref(img), ctypes.byref(err)), err)
    try:
        n = img.height * img.width * img.channels
        return np.ctypeslib.as_array(img.pixels, shape=(n,)).reshape(img.height, img.width, img.channels).copy()
    finally:
        _lib.lib.ae_image_free(ctypes.byref(img))


class Model:
    """A trained autoencoder with its score rule and threshold. Free its
    memory with close() (or a with block); it is freed when collected too."""

    def __init__(self, model, meta, name):
        self._model, self._meta, self._detector = model, meta, ctypes.c_void_p()
        cfg = _lib.lib.ae_model_config(model).contents
        self.shape = (cfg.height, cfg.width, cfg.channels)  # the images it takes: H, W, C
        self.latent_dim = cfg.latent_dim
        err = _lib.ErrorStruct()
        _lib.check(_lib.lib.ae_detector_from_meta(meta, cfg.latent_dim, name.encode(),
                                                  ctypes.byref(self._detector), ctypes.byref(err)), err)

    def close(self):
        if getattr(self, "_model", None):
            _lib.lib.ae_detector_free(self._detector)
            _lib.lib.ae_meta_free(self._meta)
            _lib.lib.ae_model_free(self._model)
            self._model = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if not self._model:
            raise ValueError("the model is closed")
        return self._model

    def _float(self, key):
        v = ctypes.c_double()
        return v.value if _lib.lib.ae_meta_get_float(self._meta, key.encode(), ctypes.byref(v)) else None

    def _doubles(self, key):
        n = ctypes.c_size_t()
        p = _lib.lib.ae_meta_get_doubles(self._meta, key.encode(), ctypes.byref(n))
        return [p[i] for i in range(n.value)] if p else []

    @property
    def threshold(self):
        """The score at and above which an image is anomalous, chosen by
        training (a quantile of the held-out scores); None if the file has none."""
        return self._float("threshold.value")

    @property
    def rule(self):
        """The score rule stored in the model: "mse", "ssim", "latent-knn", ..."""
        rule = _lib.lib.ae_meta_get_str(self._meta, b"score.rule")
        return rule.decode() if rule else "mse"

    @property
    def history(self):
        """The loss per epoch: {"loss": [...], "val_loss": [...]} (NaN without
        a validation split)."""
        return {"loss": self._doubles("train.losses"), "val_loss": self._doubles("train.val_losses")}

    @property
    def kernels(self):
        """The kernels the library runs here: "avx512", "avx2", "portable" or "amx-bf16"."""
        return _lib.lib.ae_model_kernels(self._live()).decode()

    def _run(self, images, detector, scores=True, recon=False, latents=False):
        a = _images(images)
        n = a.shape[0]
        out = {"scores": np.empty(n, np.float32) if scores else None,
               "recon": np.empty((n,) + self.shape, np.float32) if recon else None,
               "latents": np.empty((n, self.latent_dim), np.float32) if latents else None}
        ptrs = [_pointer(v, ctypes.c_float) if v is not None else None for v in out.values()]
        err = _lib.ErrorStruct()
        if a.dtype == np.float32 and a.shape[1:] == self.shape:
            status = _lib.lib.ae_run_floats(self._live(), detector, _pointer(a, ctypes.c_float), n, *ptrs,
                                            ctypes.byref(err))
        else:
            a = _bytes(a)
            status = _lib.lib.ae_run_pixels(self._live(), detector, _pointer(a, ctypes.c_uint8), n, a.shape[1],
                                            a.shape[2], a.shape[3], *ptrs, ctypes.byref(err))
        _lib.check(status, err)
        return out

    def score(self, images, rule=None):
        """Each image's anomaly score by the model's rule, or by rule
        ("mse", "max", "topk:P", "ssim", "relative", "latent-knn",
        "combined"), as `aedet score [--score RULE]` gives it."""
        self._live()
        if rule is None:
            return self._run(images, self._detector)["scores"]
        saved = _lib.ScoreRule.from_buffer_copy(_lib.lib.ae_detector_rule(self._detector).contents)
        wanted, err = _lib.ScoreRule(), _lib.ErrorStruct()
        _lib.check(_lib.lib.ae_score_rule_parse(str(rule).encode(), ctypes.byref(wanted), ctypes.byref(err)), err)
        _lib.lib.ae_detector_set_rule(self._detector, ctypes.byref(wanted))
        try:
            if not _lib.lib.ae_detector_ready(self._detector):
                raise Error("usage", "score rule %s needs what training learns for it, and this model has none"
                            % rule)
            return self._run(images, self._detector)["scores"]
        finally:
            _lib.lib.ae_detector_set_rule(self._detector, ctypes.byref(saved))

    def flag(self, images):
        """score(images) >= threshold, one bool per image."""
        if self.threshold is None:
            raise ValueError("the model holds no threshold")
        return self.score(images) >= self.threshold

    def encode(self, images):
        """The encoder's latent vectors: N x latent_dim, as `aedet encode`."""
        return self._run(images, None, scores=False, latents=True)["latents"]

    def reconstruct(self, images):
        """The reconstructions: N x H x W x C at the model's size, floats in
        [0, 1] (`aedet reconstruct` writes them rounded to 8 bits)."""
        return self._run(images, None, scores=False, recon=True)["recon"]

    def save(self, path):
        """Writes the model file (atomically), as `aedet train -o` does."""
        err = _lib.ErrorStruct()
        _lib.check(_lib.lib.ae_model_save(os.fsencode(path), self._live(), self._meta, 0, ctypes.byref(err)), err)
