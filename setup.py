"""Maps the fixed top-level folders onto the ``chronotope`` namespace (``envs/`` -> ``chronotope.envs`` ...)."""

from setuptools import find_packages, setup

_FOLDERS = ("envs", "agents", "memory", "maps", "scripts", "assets")

packages: list[str] = []
package_dir: dict[str, str] = {}
for folder in _FOLDERS:
    packages.append(f"chronotope.{folder}")
    package_dir[f"chronotope.{folder}"] = folder
    for sub in find_packages(folder):
        packages.append(f"chronotope.{folder}.{sub}")

setup(packages=packages, package_dir=package_dir)
