"""The one build step pyproject.toml cannot declare: every build starts from an empty build/lib, so a file
deleted from the sources (a task YAML, say) never ships from an earlier build's copy (setuptools' build_py
only adds and overwrites). Everything else is in pyproject.toml."""

import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class CleanBuildPy(build_py):
    def run(self) -> None:
        shutil.rmtree(self.build_lib, ignore_errors=True)
        super().run()


setup(cmdclass={"build_py": CleanBuildPy})
