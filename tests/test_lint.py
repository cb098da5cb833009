import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None and not (REPO / ".venv/bin/ruff").exists(),
                    reason="ruff is installed with the test extras")
def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(REPO / ".venv/bin/ruff")
    result = subprocess.run([ruff, "check", "monitor", "spiders", "tests", "bench"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout
