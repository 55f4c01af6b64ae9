"""QA of the tutorials as a new user meets them: where their plots go, and what the docs tell users to
install for them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9]*.py"))


def _output_folder(script: Path, namespace: dict, cwd: Path, monkeypatch) -> str:
    """Run the lines of ``script`` that choose its output folder, in ``cwd`` without the variable."""
    lines = [ln for ln in script.read_text().splitlines() if ln.startswith(("HERE = ", "OUT = "))]
    assert any(ln.startswith("OUT = ") for ln in lines), f"{script.name} has no OUT = line"
    monkeypatch.delenv("CVXNN_TUTORIAL_OUTPUT", raising=False)
    monkeypatch.chdir(cwd)
    namespace = {"os": os, **namespace}
    exec("\n".join(lines), namespace)
    return os.path.normpath(namespace["OUT"])


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_default_output_is_tutorials_output_from_any_directory(script, tmp_path, monkeypatch):
    """docs/index.md: plots are saved to tutorials/_output. That holds for `python tutorials/NN.py`
    from the repository, for `python NN.py` from tutorials/ or from anywhere else, and for a
    notebook (no __file__; Jupyter runs it in the notebook's folder). Before, the default was the
    relative "tutorials/_output", which put a notebook's plots into tutorials/tutorials/_output."""
    expected = os.path.normpath(ROOT / "tutorials" / "_output")
    as_script = {"__file__": str(script)}
    for cwd in (ROOT, ROOT / "tutorials", tmp_path):
        assert _output_folder(script, as_script, cwd, monkeypatch) == expected
    assert _output_folder(script, {}, ROOT / "tutorials", monkeypatch) == expected  # a notebook


def test_tutorials_needing_scikit_learn_are_named_in_the_docs():
    """The docs ask for the sklearn extra by naming the tutorials that import scikit-learn."""
    needs = {t.name[:2] for t in TUTORIALS if re.search(r"^\s*(from|import) sklearn\b", t.read_text(), re.M)}
    index = " ".join((ROOT / "docs" / "index.md").read_text().split())
    m = re.search(r"tutorials ((?:\d\d, )*\d\d and \d\d) load scikit-learn", index)
    assert m, "docs/index.md no longer says which tutorials need scikit-learn"
    named = set(re.findall(r"\d\d", m.group(1)))
    assert needs == named


def test_extras_named_in_readme_and_docs_exist():
    tomllib = pytest.importorskip("tomllib")
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    readme = " ".join((ROOT / "README.md").read_text().split())
    listed = re.search(r"\(extras: ([^)]*)\)", readme)
    assert listed
    assert set(re.findall(r"`(\w+)`", listed.group(1))) <= extras
    for page in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for group in re.findall(r"\.\[([\w,]+)\]", page.read_text()):
            assert set(group.split(",")) <= extras, f"{page.name} installs an undeclared extra: {group}"
