"""Every tutorial (tutorials/*.py) runs to completion in a fresh interpreter, with plots saved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9]*.py"))


def test_tutorials_exist():
    names = [t.name for t in TUTORIALS]
    assert "01_convex_vs_nonconvex.py" in names
    assert "02_declarative_verification.py" in names
    assert "07_real_data_cross_validation.py" in names


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorials_are_notebooks_that_show_plots(script):
    """Jupytext percent format, and no forced backend: a notebook shows the plots inline (the test
    run below selects the non-interactive backend through MPLBACKEND instead)."""
    text = script.read_text()
    assert "format_name: percent" in text and "# %%" in text
    assert "matplotlib.use(" not in text, f"{script.name} forces a matplotlib backend"
    assert "plt.close(" not in text, f"{script.name} closes its figures before a notebook can show them"
    assert "CVXNN_TUTORIAL_OUTPUT" in text and "savefig" in text


@pytest.mark.slow
@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs(script, tmp_path):
    pytest.importorskip("matplotlib")
    env = dict(os.environ, MPLBACKEND="Agg", CVXNN_TUTORIAL_OUTPUT=str(tmp_path))
    try:
        out = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} ran longer than 120 s")
    assert out.returncode == 0, f"{script.name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    pngs = list(tmp_path.glob("*.png"))
    assert pngs, f"{script.name} wrote no plot to CVXNN_TUTORIAL_OUTPUT"
    assert all(p.stat().st_size > 1000 for p in pngs)
