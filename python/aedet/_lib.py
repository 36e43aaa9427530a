"""libaedet through ctypes: finding the library, the C structs the package
passes, and each function's signature. Errors come back as ae_status plus an
ae_error message; check() turns them into aedet.Error."""
import ctypes
import os

# The SONAME of the C library this package speaks to: its major version
# changes whenever the structs or signatures below would.
SONAME = "libaedet.so.0"

AE_MAX_FILTERS = 8
STATUS_NAMES = {1: "usage", 2: "data", 3: "io", 4: "nomem", 5: "numeric", 6: "interrupted", 7: "format"}


class Error(Exception):
    """A failure the library reported: status is its kind ("usage", "data",
    "io", "nomem", "numeric", "interrupted", "format"), the message says what
    and where."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _candidates():
    """AEDET_LIBRARY when set (and then only it); else the path recorded at
    install time, then the SONAME through the dynamic loader's search (its
    cache: ldconfig)."""
    explicit = os.environ.get("AEDET_LIBRARY")
    if explicit:
        return [explicit]
    found = []
    try:
        from . import _install
        if _install.LIBRARY:
            found.append(_install.LIBRARY)
    except ImportError:  # the source tree, not an installed package
        pass
    found.append(SONAME)
    return found


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("aedet: cannot load libaedet; tried " + "; ".join(tried) +
                      ". Install the library (make install), or set AEDET_LIBRARY to its path")


class ErrorStruct(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 1024)]


class Config(ctypes.Structure):
    _fields_ = [("height", ctypes.c_int), ("width", ctypes.c_int), ("channels", ctypes.c_int),
                ("num_filters", ctypes.c_int), ("filters", ctypes.c_int * AE_MAX_FILTERS),
                ("latent_dim", ctypes.c_int), ("leaky_slope", ctypes.c_float),
                ("bn_momentum", ctypes.c_float), ("bn_epsilon", ctypes.c_float)]


EPOCH_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_double,
                                  ctypes.c_double)


class FitOptions(ctypes.Structure):
    """ae_fit_options (aedet/fit.h), field by field."""
    _fields_ = [("epochs", ctypes.c_int), ("batch_size", ctypes.c_int), ("seed", ctypes.c_uint64),
                ("val_fraction", ctypes.c_double), ("height", ctypes.c_int), ("width", ctypes.c_int),
                ("channels", ctypes.c_int), ("num_filters", ctypes.c_int),
                ("filters", ctypes.c_int * AE_MAX_FILTERS), ("latent_dim", ctypes.c_int),
                ("leaky_slope", ctypes.c_double), ("learning_rate", ctypes.c_double),
                ("decay", ctypes.c_double), ("patience", ctypes.c_int), ("keep_best", ctypes.c_int),
                ("augment", ctypes.c_uint), ("score", ctypes.c_char_p), ("sigma", ctypes.c_double),
                ("threshold_quantile", ctypes.c_double), ("bf16", ctypes.c_int),
                ("memory_budget", ctypes.c_size_t), ("threads", ctypes.c_int), ("bad_policy", ctypes.c_int),
                ("on_epoch", EPOCH_CALLBACK), ("user", ctypes.c_void_p),
                ("stop", ctypes.POINTER(ctypes.c_int))]


class ScoreRule(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("sigma", ctypes.c_double), ("top_percent", ctypes.c_double),
                ("knn_percent", ctypes.c_double)]


class Image(ctypes.Structure):
    _fields_ = [("height", ctypes.c_int), ("width", ctypes.c_int), ("channels", ctypes.c_int),
                ("pixels", ctypes.POINTER(ctypes.c_uint8))]


lib, path = _load()

_P = ctypes.c_void_p
_F = ctypes.POINTER(ctypes.c_float)
_U8 = ctypes.POINTER(ctypes.c_uint8)
_E = ctypes.POINTER(ErrorStruct)
_S = ctypes.c_size_t
_I = ctypes.c_int
_STATUS = ctypes.c_int

# name: (return type, argument types)
_SIGNATURES = {
    "ae_fit_options_init": (None, [ctypes.POINTER(FitOptions)]),
    "ae_fit_options_size": (_S, []),
    "ae_fit_pixels": (_STATUS, [_U8, _S, _I, _I, _I, ctypes.POINTER(FitOptions), ctypes.POINTER(_P),
                                ctypes.POINTER(_P), _E]),
    "ae_run_pixels": (_STATUS, [_P, _P, _U8, _S, _I, _I, _I, _F, _F, _F, _E]),
    "ae_run_floats": (_STATUS, [_P, _P, _F, _S, _F, _F, _F, _E]),
    "ae_model_save": (_STATUS, [ctypes.c_char_p, _P, _P, _I, _E]),
    "ae_model_load": (_STATUS, [ctypes.c_char_p, _I, ctypes.POINTER(_P), ctypes.POINTER(_P),
                                ctypes.POINTER(_I), _E]),
    "ae_model_free": (None, [_P]),
    "ae_model_config": (ctypes.POINTER(Config), [_P]),
    "ae_model_max_batch": (_I, [_P]),
    "ae_model_kernels": (ctypes.c_char_p, [_P]),
    "ae_meta_free": (None, [_P]),
    "ae_meta_get_float": (_I, [_P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)]),
    "ae_meta_get_str": (ctypes.c_char_p, [_P, ctypes.c_char_p]),
    "ae_meta_get_doubles": (ctypes.POINTER(ctypes.c_double), [_P, ctypes.c_char_p, ctypes.POINTER(_S)]),
    "ae_detector_from_meta": (_STATUS, [_P, _I, ctypes.c_char_p, ctypes.POINTER(_P), _E]),
    "ae_detector_free": (None, [_P]),
    "ae_detector_rule": (ctypes.POINTER(ScoreRule), [_P]),
    "ae_detector_set_rule": (None, [_P, ctypes.POINTER(ScoreRule)]),
    "ae_detector_ready": (_I, [_P]),
    "ae_score_rule_parse": (_STATUS, [ctypes.c_char_p, ctypes.POINTER(ScoreRule), _E]),
    "ae_image_load": (_STATUS, [ctypes.c_char_p, ctypes.POINTER(Image), _E]),
    "ae_image_free": (None, [ctypes.POINTER(Image)]),
    "ae_set_num_threads": (None, [_I]),
    "ae_get_num_threads": (_I, []),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

if lib.ae_fit_options_size() != ctypes.sizeof(FitOptions):
    raise ImportError("aedet: %s is another version of the library (ae_fit_options is %d bytes there, %d "
                      "here)" % (path, lib.ae_fit_options_size(), ctypes.sizeof(FitOptions)))


def check(status, err):
    if status != 0:
        raise Error(STATUS_NAMES.get(status, str(status)), err.message.decode("utf-8", "replace"))
