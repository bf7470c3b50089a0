"""The README's Python blocks run, in order, as a reader would run them after training a model."""

import os
import re
import textwrap

import numpy as np
import pytest

from conftest import trained_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ["README.md", "reproductions/README.md"]
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


@pytest.mark.parametrize("document", DOCUMENTS)
def test_python_blocks_run_in_order(document, tmp_path, monkeypatch):
    blocks = python_blocks(document)
    if document == "README.md":
        assert len(blocks) >= 9
    monkeypatch.chdir(tmp_path)
    namespace = reader_session()
    for number, block in enumerate(blocks, 1):
        if any(marker in block for marker in NEEDS_A_CLUSTER):
            continue
        code = compile(textwrap.dedent(block), f"{document} block {number}", "exec")
        exec(code, namespace)
    if document == "README.md":
        assert np.isfinite(namespace["surface"].losses["train"]).all()
