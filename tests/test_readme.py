"""The README's commands are the ones CI runs, so the README stays true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_ci_runs_exactly_the_readme_install_and_test_commands():
    setup, test, *_ = bash_blocks((ROOT / "README.md").read_text())
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line for line in ci.splitlines() if line and not line.startswith("#")]
    assert setup in lines and test in lines
    assert lines.index(setup) < lines.index(test)
