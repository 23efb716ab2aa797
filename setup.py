"""Build hook for colcon/ament_python and pip; the metadata lives in pyproject.toml.

Two things need code rather than TOML: the top-level ``envs/`` and ``policies/`` folders are
installed as ``robot_il.envs`` and ``robot_il.policies`` (every subpackage must be listed), and
ament_python needs the manifest, the ament index marker and the launch files under share/.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_ROOTS = {"robot_il": "robot_il", "robot_il.envs": "envs", "robot_il.policies": "policies"}


def _all_packages() -> list[str]:
    packages = list(PACKAGE_ROOTS)
    for name, folder in PACKAGE_ROOTS.items():
        packages += [f"{name}.{sub}" for sub in find_packages(folder)]
    return sorted(set(packages))


setup(
    package_dir=PACKAGE_ROOTS,
    packages=_all_packages(),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/robot_il"]),
        ("share/robot_il", ["package.xml"]),
        ("share/robot_il/launch", glob("launch/*.yaml")),
        ("share/robot_il/launch/params", glob("launch/params/*.yaml")),
    ],
)
