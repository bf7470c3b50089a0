"""The README's Python blocks run, in order, as a reader would run them after training a model."""

import os
import re
import textwrap

import numpy as np
import pytest

from conftest import trained_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ["README.md", "reproductions/README.md"]
# The documentation site's pages whose Python blocks run, in the order of mkdocs.yml's nav, in one session.
SITE_PAGES = ["docs/index.md", "docs/getting-started.md", "docs/guide/data.md", "docs/guide/beyond-random.md",
              "docs/guide/long-runs.md", "docs/guide/reproductions.md", "docs/architecture.md", "docs/benchmarks.md",
              "docs/development.md"]
# Blocks that start clusters or GPU workers; the tests of distributed.py run the same calls on local workers.
NEEDS_A_CLUSTER = ("process_pool(4", "SLURMCluster", "LocalCluster")


def python_blocks(document):
    with open(os.path.join(ROOT, document), encoding="utf-8") as file:
        text = file.read()
    return re.findall(r"^ *```python\n(.*?)^ *```", text, flags=re.S | re.M)


def reader_session():
    """What the README assumes the reader has: a trained model, its data, and two solutions to interpolate."""
    model, x, y = trained_classifier(600, 10, 16, epochs=3)
    other, _, _ = trained_classifier(600, 10, 16, epochs=1)
    x_train, y_train, x_test, y_test = x[:400], y[:400], x[400:], y[400:]
    return dict(
        model=model, x=x, y=y, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        small_batch_model=model, large_batch_model=other,
    )


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_python_blocks_run_in_order(document, tmp_path, monkeypatch):
    blocks = python_blocks(document)
    if document == "README.md":
        assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace = reader_session()
    for number, block in enumerate(blocks, 1):
        if any(marker in block for marker in NEEDS_A_CLUSTER):
            continue
        code = compile(textwrap.dedent(block), f"{document} block {number}", "exec")
        exec(code, namespace)
    if document == "README.md":
        assert np.isfinite(namespace["surface"].losses["train"]).all()


@pytest.mark.slow
def test_the_sites_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = reader_session()
    ran = 0
    for page in SITE_PAGES:
        for number, block in enumerate(python_blocks(page), 1):
            if any(marker in block for marker in NEEDS_A_CLUSTER):
                continue
            exec(compile(textwrap.dedent(block), f"{page} block {number}", "exec"), namespace)
            ran += 1
    assert ran >= 10
    assert np.isfinite(namespace["surface"].losses["train"]).all()


def test_every_page_of_the_site_is_in_its_nav_and_runs_here():
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as file:
        nav = re.findall(r"^ +- [^:]+: (\S+\.md)$", file.read(), flags=re.M)
    pages = sorted(os.path.relpath(os.path.join(folder, name), os.path.join(ROOT, "docs"))
                   for folder, _, names in os.walk(os.path.join(ROOT, "docs")) for name in names
                   if name.endswith(".md") and "readme_files" not in folder)
    assert sorted(nav) == pages
    assert sorted(SITE_PAGES) == sorted(f"docs/{page}" for page in pages if page not in ("api.md", "changelog.md"))


def _slug(heading):
    from markdown.extensions.toc import slugify

    return slugify(heading.strip(), "-")


def test_every_link_of_the_readme_resolves():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        text = file.read()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(links) >= 15
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        path = os.path.join(ROOT, target) if target else os.path.join(ROOT, "README.md")
        assert os.path.exists(path), link
        if anchor:
            with open(path, encoding="utf-8") as file:
                headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", file.read(), flags=re.S), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, link


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(tmp_path / "site" / "api" / "index.html")
    with open(tmp_path / "site" / "api" / "index.html", encoding="utf-8") as file:
        api = file.read()
    assert "compute_surface" in api and "plot_loss_3D" in api and "&gt;&gt;&gt;" in api
