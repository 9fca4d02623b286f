"""Run fxmm's command-line tools from tests, as a user would."""
import subprocess
import sys
from typing import Sequence


def run_python(args: Sequence[str], cwd: str, timeout: int = 900) -> str:
    """Run ``python ARGS`` in ``cwd`` and return its stdout + stderr.

    Raises:
        AssertionError: the command failed; the message holds the end of both streams.
    """
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr
