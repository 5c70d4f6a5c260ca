"""Build hook: ship the top-level ``schemas/`` folder inside the wheel as ``vindr_cli/schemas``.

The data (Annex E table, profiles, allowlists, label sets, table schemas) stays at the top
of the repository where people read and review it; the wheel carries a copy as package
data, found at run time by ``vindr_cli.resources``. Everything else is in pyproject.toml.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithSchemas(build_py):
    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        src = os.path.join(here, "schemas")
        dst = os.path.join(self.build_lib, "vindr_cli", "schemas")
        if os.path.isdir(src):
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithSchemas})
