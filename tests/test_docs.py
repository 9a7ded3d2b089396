"""The Python examples in the README and the user guide run as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("document", ["README.md", "docs/guide.md"])
def test_python_examples_run(document):
    pytest.importorskip("torch")
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = BLOCK.findall(text)
    assert blocks, f"{document} has no python examples"
    namespace: dict = {}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{document} example {number}", "exec")
        exec(code, namespace)  # noqa: S102 - the project's own documentation
