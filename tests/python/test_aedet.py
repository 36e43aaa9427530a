"""The Python package (python/aedet) against the tool: the same images,
options and seed must give the same model, scores, latents and
reconstructions through either. `make test-python` runs it with
PYTHONPATH=python, AEDET_LIBRARY (the build's libaedet.so) and AEDET (the
build's tool, made from the same objects)."""
import csv
import os
import re
import struct
import subprocess
import tempfile
import unittest

import numpy as np

import aedet

TOOL = os.environ.get("AEDET")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OPTIONS = {"epochs": 3, "seed": 5, "batch": 16}  # not the defaults, so each must reach the tool's run
FLAGS = ["--epochs", "3", "--seed", "5", "--batch", "16"]


def make_images(n=96, side=16, seed=7):
    """Smooth blobs over noise, a few of them with a bright bar (anomalies)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    images = np.empty((n, side, side), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(4, side - 4, 2)
        blob = 180 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
        img = blob + rng.normal(30, 8, (side, side))
        if i % 16 == 3:
            img[:, side // 2] = 250
        images[i] = np.clip(np.rint(img), 0, 255)
    return images


def write_idx(path, images):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, images.ndim))
        f.write(struct.pack(">" + "i" * images.ndim, *images.shape))
        f.write(np.ascontiguousarray(images, np.uint8).tobytes())


def tool(*args):
    if not TOOL:
        raise RuntimeError("set AEDET to the aedet tool (make test-python does)")
    run = subprocess.run([TOOL, *args, "--quiet"], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError("%s %s: exit %d\n%s" % (TOOL, " ".join(args), run.returncode, run.stderr))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_index(rows, column):
    """float32 values of column, ordered by the image's index ("#12")."""
    values = {int(r["image"].lstrip("#")): np.float32(r[column]) for r in rows}
    return np.array([values[i] for i in range(len(values))], np.float32)


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.images = make_images()
        cls.idx = os.path.join(cls.dir, "images.idx")
        write_idx(cls.idx, cls.images)
        cls.epochs = []
        cls.model = aedet.train(cls.images, on_epoch=lambda *e: cls.epochs.append(e), **OPTIONS)
        cls.cli_model = os.path.join(cls.dir, "cli.aedet")
        tool("train", cls.idx, "-o", cls.cli_model, *FLAGS)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_training_matches_the_tool(self):
        with aedet.load(self.cli_model) as cli:
            self.assertEqual(self.model.history, cli.history)
            self.assertEqual(len(self.model.history["loss"]), 3)
            self.assertEqual(self.model.threshold, cli.threshold)
            np.testing.assert_array_equal(self.model.score(self.images), cli.score(self.images))
        self.assertEqual([e[0] for e in self.epochs], [1, 2, 3])
        self.assertEqual([e[1] for e in self.epochs], self.model.history["loss"])

    def test_scores_match_the_tool(self):
        tool("score", self.cli_model, self.idx, "-o", self.path("scores.csv"))
        cli = by_index(read_csv(self.path("scores.csv")), "score")
        scores = self.model.score(self.images)
        self.assertEqual(scores.dtype, np.float32)
        np.testing.assert_array_equal(scores, cli)
        self.assertGreater(scores[3], np.median(scores))  # a bright bar is an anomaly
        np.testing.assert_array_equal(self.model.flag(self.images), scores >= self.model.threshold)

    def test_another_rule_matches_the_tool(self):
        # The batch the model was made for (the training batch): nearest-latent
        # distances come from one BLAS product per batch, whose last bits
        # depend on the batch's size (unlike the mean squared error).
        tool("score", self.cli_model, self.idx, "--score", "latent-knn", "--batch", "16", "-o", self.path("knn.csv"))
        cli = by_index(read_csv(self.path("knn.csv")), "score")
        np.testing.assert_array_equal(self.model.score(self.images, rule="latent-knn"), cli)
        self.assertEqual(self.model.rule, "mse")  # the override was for that call only
        self.assertFalse(np.array_equal(self.model.score(self.images), cli))

    def test_latents_match_the_tool(self):
        tool("encode", self.cli_model, self.idx, "-o", self.path("latents.csv"))
        rows = read_csv(self.path("latents.csv"))
        cli = np.array([[np.float32(r["z%d" % k]) for k in range(32)] for r in rows], np.float32)
        self.assertEqual([r["image"] for r in rows], ["#%d" % i for i in range(len(self.images))])
        np.testing.assert_array_equal(self.model.encode(self.images), cli)

    def test_reconstructions_match_the_tool(self):
        tool("reconstruct", self.cli_model, self.idx, "-o", self.path("recon"))
        recon = self.model.reconstruct(self.images)
        self.assertEqual(recon.shape, (len(self.images), 16, 16, 1))
        for row in read_csv(self.path("recon/index.csv")):
            i = int(row["image"].lstrip("#"))
            png = aedet.read_image(self.path("recon/" + row["reconstruction"]))
            # the tool's rounding to bytes: v * 255 + 0.5, truncated, in float32
            expected = np.clip(recon[i] * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)
            np.testing.assert_array_equal(png, expected)
        # the reconstruction is the one the score measured
        x = self.images[..., None].astype(np.float32) / np.float32(255)
        mse = ((x - recon) ** 2).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(mse, self.model.score(self.images), rtol=1e-5)

    def test_saved_model_scores_alike_in_the_tool(self):
        saved = self.path("python.aedet")
        self.model.save(saved)
        tool("score", saved, self.idx, "-o", self.path("saved.csv"))
        cli = by_index(read_csv(self.path("saved.csv")), "score")
        np.testing.assert_array_equal(self.model.score(self.images), cli)
        with aedet.load(saved) as again:
            np.testing.assert_array_equal(again.score(self.images), cli)
            self.assertEqual(again.threshold, self.model.threshold)

    def test_float_images_at_the_model_size_are_used_as_they_are(self):
        floats = self.images.astype(np.float32) / np.float32(255)  # the loader's pixels / 255
        np.testing.assert_array_equal(self.model.score(floats), self.model.score(self.images))
        noisy = np.clip(floats + np.float32(1e-3), 0, 1)  # no longer 8-bit values
        self.assertFalse(np.array_equal(self.model.score(noisy), self.model.score(self.images)))

    def test_other_sizes_are_resized_as_the_tool_does(self):
        big = np.repeat(np.repeat(self.images[:20], 2, axis=1), 2, axis=2)  # 32x32
        idx = self.path("big.idx")
        write_idx(idx, big)
        tool("score", self.cli_model, idx, "-o", self.path("big.csv"))
        cli = by_index(read_csv(self.path("big.csv")), "score")
        np.testing.assert_array_equal(self.model.score(big), cli)
        np.testing.assert_array_equal(self.model.score(big.astype(np.float32) / 255), cli)  # rounded to bytes

    def test_one_image_and_rgb(self):
        one = self.model.score(self.images[5])
        self.assertEqual(one.shape, (1,))
        self.assertEqual(one[0], self.model.score(self.images)[5])
        rgb = np.repeat(self.images[:8, :, :, None], 3, axis=3)  # gray again after the luma conversion
        np.testing.assert_array_equal(self.model.score(rgb), self.model.score(self.images[:8]))

    def test_bad_input_is_refused(self):
        with self.assertRaises(TypeError):
            aedet.train(self.images, epoch=1)
        with self.assertRaises(ValueError):
            self.model.score(np.zeros((2, 16, 16, 2), np.uint8))
        with self.assertRaises(ValueError):
            self.model.score(np.full((1, 16, 16), 1.5, np.float32))
        with self.assertRaises(aedet.Error) as e:
            aedet.train(self.images, epochs=1, val_fraction=1.0)
        self.assertEqual(e.exception.status, "usage")
        with self.assertRaises(aedet.Error) as e:
            aedet.load(self.path("missing.aedet"))
        self.assertIn("missing.aedet", str(e.exception))

    def test_a_callback_can_stop_training(self):
        def stop(epoch, *_):
            raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            aedet.train(self.images, epochs=3, on_epoch=stop)

    def test_versions_agree(self):
        with open(os.path.join(ROOT, "include", "aedet", "common.h")) as f:
            version = re.search(r'AE_VERSION_STRING "([^"]+)"', f.read()).group(1)
        with open(os.path.join(ROOT, "python", "pyproject.toml")) as f:
            packaged = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
        self.assertEqual((aedet.__version__, packaged), (version, version))
        self.assertEqual(aedet._lib.SONAME, "libaedet.so." + version.split(".")[0])


if __name__ == "__main__":
    unittest.main()
