import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff comes with the test extras")
def test_ruff_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "monitor", "spiders", "tests", "bench"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout
