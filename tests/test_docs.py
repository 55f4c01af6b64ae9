"""The documentation: the site builds with warnings as errors (mkdocs build --strict), every
relative link resolves, nothing cites a missing MATH.md, and the Python code blocks of the README
and the docs run.

Code blocks. Every fenced ```python block of README.md and docs/*.md runs. The blocks of a page
run in order as one script in a fresh interpreter (later blocks may use names from earlier ones);
a block with an ``if __name__ == "__main__":`` guard is a complete script and runs on its own.
HTML comments on the lines just above a fence control it:

* ``<!-- cvxnn: skip (reason) -->``: not runnable here (needs a cluster, a service, ...);
* ``<!-- cvxnn: requires torch -->``: runs only where the named modules import.

A block whose first line starts with ``>>>`` is a console transcript and is not run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


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
    assert (site / "export" / "index.html").exists()
    assert "Keep a Changelog" in (site / "changelog" / "index.html").read_text()


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


# --- links and references -------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code (links there are not links)."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """Python-Markdown's default toc slug of a heading."""
    text = re.sub(r"<[^>]+>|`|\*|\$", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", _FENCE.sub("", page.read_text()), re.M)}


def _relative_links(page: Path):
    for target in _LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        yield target


def test_docs_pages_exist():
    names = {p.name for p in PAGES}
    assert {"README.md", "math.md", "export.md", "changelog.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    """Every relative link (and its #anchor, for markdown targets) points at something that exists."""
    bad = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not bad, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(bad)


def test_link_checker_catches_broken_links(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "math.md").write_text("# Title\n\n## Notation\n")
    page.write_text("[ok](math.md#notation) [missing](nope.md) [anchor](math.md#nothing) "
                    "`[code](ignored.md)` [web](https://example.org)\n")
    assert list(_relative_links(page)) == ["math.md#notation", "nope.md", "math.md#nothing"]
    assert _anchors(tmp_path / "math.md") == {"title", "notation"}
    assert _slug("lam_max and regularisation paths") == "lam_max-and-regularisation-paths"
    assert _slug("Conventions cvxnn fixes") == "conventions-cvxnn-fixes"


def test_math_page_is_in_the_nav_and_readme_links_it():
    config = (ROOT / "mkdocs.yml").read_text()
    for page in ("math.md", "export.md", "changelog.md"):
        assert re.search(rf":\s*{re.escape(page)}\s*$", config, re.M), f"{page} is not in the nav"
    assert "(docs/math.md" in (ROOT / "README.md").read_text()


def test_no_bare_math_md_references():
    """The mathematics page is docs/math.md; nothing may cite a file MATH.md that does not exist."""
    assert not (ROOT / "MATH.md").exists()
    files = [*PAGES, *sorted((ROOT / "cvxnn").rglob("*.py")), *sorted((ROOT / "tutorials").glob("*.py"))]
    hits = [f"{f.relative_to(ROOT)}:{i}: {line.strip()}"
            for f in files for i, line in enumerate(f.read_text().splitlines(), 1)
            if "MATH.md" in line]
    assert not hits, "cite docs/math.md (a link in docs, 'docs/math.md, \"Section\"' in docstrings):\n" + \
        "\n".join(hits)


def test_cited_math_sections_exist():
    """A citation 'docs/math.md, "Section"' (docstrings, tutorials, docs) names a heading of the page."""
    headings = {re.sub(r"[`$]", "", h).strip()
                for h in re.findall(r"^#{1,6}\s+(.*?)\s*$", (ROOT / "docs" / "math.md").read_text(), re.M)}
    cite = re.compile(r"docs/math\.md`*,?\s*((?:\"[^\"]+\"(?:,\s*|\s+and\s+)?)+)")
    files = [*sorted((ROOT / "cvxnn").rglob("*.py")), *sorted((ROOT / "tutorials").glob("*.py")), *PAGES]
    bad = []
    for f in files:
        text = re.sub(r"\s*\n\s*#?\s*", " ", f.read_text())  # join wrapped lines (and comments)
        for group in cite.findall(text):
            bad += [f"{f.relative_to(ROOT)}: {name!r}" for name in re.findall(r'"([^"]+)"', group)
                    if name not in headings]
    assert not bad, "no such section in docs/math.md:\n" + "\n".join(bad)


def test_notation_table_in_math_page():
    """One notation table; the symbols that used to mean different things have one meaning."""
    text = (ROOT / "docs" / "math.md").read_text()
    notation = text.split("## Notation", 1)[1].split("\n## ", 1)[0]
    for symbol in ("theta_k", "`nu`", "`c_k`", "`g0_j`", "`lam`", "`Xt_i`", "`q_k`", "`rho_k`"):
        assert symbol in notation, symbol


# --- code blocks ----------------------------------------------------------------------------

_BLOCK = re.compile(r"((?:^[ \t]*<!--.*?-->[ \t]*\n)*)^```python[ \t]*\n(.*?)^```", re.S | re.M)


def _code_blocks(page: Path):
    """(code, skip_reason or None) for each python block of a page."""
    out = []
    for comments, code in _BLOCK.findall(page.read_text()):
        reason = None
        skip = re.search(r"<!--\s*cvxnn:\s*skip\b\s*(.*?)\s*-->", comments)
        if skip:
            reason = f"marked not runnable {skip.group(1)}".strip()
        for req in re.findall(r"<!--\s*cvxnn:\s*requires\s+(.*?)\s*-->", comments):
            missing = [m for m in req.replace(",", " ").split() if importlib.util.find_spec(m) is None]
            if missing and reason is None:
                reason = f"needs {', '.join(missing)}"
        if code.lstrip().startswith(">>>"):
            reason = reason or "console transcript"
        out.append((code, reason))
    return out


def test_code_block_markers(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n\n<!-- cvxnn: skip (needs a cluster) -->\n```python\nimport ray\n```\n\n"
                    "<!-- cvxnn: requires no_such_module_xyz -->\n```python\nimport no_such_module_xyz\n```\n\n"
                    "```python\nx = 1\n```\n\n```python\n>>> 1 + 1\n2\n```\n")
    blocks = _code_blocks(page)
    assert [code for code, _ in blocks] == ["import ray\n", "import no_such_module_xyz\n", "x = 1\n", ">>> 1 + 1\n2\n"]
    assert [reason is None for _, reason in blocks] == [False, False, True, False]


# Pages owned by other guides continue from data their prose introduces; these are the names
# their examples assume (a page that defines its data in its first block needs no entry).
_CONTEXT = {
    "estimators.md": (
        "from cvxnn.datasets import load_teacher_regression\n"
        "from cvxnn.estimators import ConvexGatedReLURegressor, ConvexReLURegressor\n"
        "X, y = load_teacher_regression()\n"
    ),
    "paths.md": (
        "import cvxnn\n"
        "from cvxnn.datasets import load_teacher_regression\n"
        "X, y = load_teacher_regression()\n"
        "patterns = cvxnn.sample_patterns(X, 20, seed=0, bias=True)\n"
    ),
    "reliability.md": (
        "import numpy as np\n"
        "import cvxnn\n"
        "from cvxnn.datasets import load_teacher_regression\n"
        "X, y = load_teacher_regression()\n"
    ),
}
_CODE_PAGES = [p for p in PAGES if _code_blocks(p)]


@pytest.mark.slow
@pytest.mark.parametrize("page", _CODE_PAGES, ids=[str(p.relative_to(ROOT)) for p in _CODE_PAGES])
def test_code_blocks_run(page, tmp_path):
    blocks = _code_blocks(page)
    runnable = [code for code, reason in blocks if reason is None]
    if not runnable:
        pytest.skip("; ".join(sorted({reason for _, reason in blocks})))
    scripts = []
    continued = [code for code in runnable if "__name__ == \"__main__\"" not in code]
    if continued:
        scripts.append(_CONTEXT.get(page.name, "") + "\n".join(continued))
    scripts += [code for code in runnable if "__name__ == \"__main__\"" in code]
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for k, source in enumerate(scripts):
        script = tmp_path / f"{page.stem}_{k}.py"
        script.write_text(source)
        out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (f"a code block of {page.relative_to(ROOT)} failed:\n{source}\n"
                                     f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
