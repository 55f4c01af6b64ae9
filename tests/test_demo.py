"""The README's demo: trains on shipped data and shows convex == non-convex objective."""

import re
import subprocess
import sys

from cvxnn.cli import main
from cvxnn.datasets import load_teacher_regression, load_three_blobs


def test_demo_runs_and_objectives_agree(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    conv = float(re.search(r"convex objective\s+:\s+([\d.eE+-]+)", out).group(1))
    nonconv = float(re.search(r"non-convex objective\s+:\s+([\d.eE+-]+)", out).group(1))
    assert abs(conv - nonconv) <= 1e-7 * conv
    assert "solver status           : optimal" in out
    assert re.search(r"active neurons\s+:\s+\d+", out)


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "cvxnn", "demo", "--n-gates", "10"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "convex objective" in res.stdout


def test_shipped_datasets():
    X, y = load_teacher_regression()
    assert X.shape == (80, 4) and y.shape == (80,)
    Xc, labels = load_three_blobs()
    assert Xc.shape == (120, 2) and set(labels) == {0, 1, 2}


def test_readme_explains_every_demo_line(capsys):
    """Each line the demo prints has a row in the README's table "What the demo prints"."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("### What the demo prints", 1)[1].split("\n## ", 1)[0]
    main(["demo", "--n-gates", "10"])
    labels = [line.split(":", 1)[0].strip() for line in capsys.readouterr().out.splitlines()[1:] if ":" in line]
    assert labels, "the demo printed no 'label : value' lines"
    missing = [label for label in labels if f"| `{label}` |" not in table]
    assert not missing, f"README does not explain the demo lines {missing}"
