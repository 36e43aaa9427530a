"""Records where libaedet was installed, so the installed package finds it
without environment variables: `make install-python` sets
AEDET_INSTALLED_LIBRARY to PREFIX/lib/libaedet.so.MAJOR, and the build
writes it into aedet/_install.py (which the source tree does not have)."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_recording_library(build_py):
    def run(self):
        super().run()
        path = os.environ.get("AEDET_INSTALLED_LIBRARY", "")
        with open(os.path.join(self.build_lib, "aedet", "_install.py"), "w") as f:
            f.write("# Written by setup.py at install time.\nLIBRARY = %r\n" % path)


setup(cmdclass={"build_py": build_py_recording_library})
