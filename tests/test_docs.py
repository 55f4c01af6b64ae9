"""The documentation site builds with warnings as errors (mkdocs build --strict)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    html = (site / "api" / "estimators" / "index.html").read_text()
    for name in ("ConvexReLURegressor", "ConvexReLUClassifier", "ConvexGatedReLURegressor",
                 "ConvexGatedReLUClassifier", "cross_validate_lam"):
        assert f'id="cvxnn.estimators.{name}"' in html, name
    assert (site / "math" / "index.html").exists()


def test_every_module_has_an_api_page():
    """Each public module of the package is documented by a mkdocstrings page in the nav."""
    config = (ROOT / "mkdocs.yml").read_text()
    pages = " ".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    modules = sorted(
        "cvxnn." + ".".join(p.relative_to(ROOT / "cvxnn").with_suffix("").parts)
        for p in (ROOT / "cvxnn").rglob("*.py")
        if not any(part.startswith("_") for part in p.relative_to(ROOT / "cvxnn").parts)
    )
    packages = {m.rsplit(".", 1)[0] for m in modules if m.count(".") > 1}
    for module in modules:
        top = module if module.count(".") == 1 else module.rsplit(".", 1)[0]
        assert re.search(rf"::: {re.escape(module)}\b", pages) or (
            top in packages and re.search(rf"::: {re.escape(top)}\b", pages)
        ), f"{module} has no API page"
    for page in (ROOT / "docs" / "api").glob("*.md"):
        assert f"api/{page.name}" in config, f"{page.name} is not in the mkdocs nav"
