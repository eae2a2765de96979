"""What `pip install` puts in site-packages: one `ragtune` namespace, every subpackage in it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_installed_under_ragtune() -> None:
    """A wheel holds only the listed packages: a folder missing from the list would install
    without its modules (an editable install would hide that), so the list must be complete."""
    setuptools = PROJECT["tool"]["setuptools"]
    folders = {
        "ragtune." + ".".join(init.parent.relative_to(REPO).parts)
        for top in ("engine", "tui", "themes")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == folders
    assert setuptools["package-dir"] == {
        f"ragtune.{top}": top for top in ("engine", "tui", "themes")
    }


def test_the_console_script_and_module_entry_points_resolve() -> None:
    for target in PROJECT["project"]["scripts"].values():
        module, _, func = target.partition(":")
        assert module.startswith("ragtune.")
        assert callable(getattr(importlib.import_module(module), func))
    for module in ("ragtune.engine.__main__", "ragtune.tui.__main__"):
        assert importlib.util.find_spec(module) is not None, module
