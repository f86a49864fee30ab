"""The suite runs with the `dev` extras alone (`make setup` installs no more): no test module may
import what only `.[bench]` installs. A developer's venv usually has both, so a test importing a
bench module that needs psutil passes here and fails CI's fresh clone; this test catches it first."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_ONLY = ("langgraph", "matplotlib", "psutil")  # the importable packages of the bench extras

# Blocks the bench-only packages (a None in sys.modules makes their import fail) and imports every
# test module, printing the first that cannot be imported.
IMPORT_EVERY_TEST_MODULE = """
import importlib, sys
from pathlib import Path
for name in sys.argv[1:]:
    sys.modules[name] = None
for path in sorted(Path("tests").rglob("test_*.py")):
    module = ".".join(path.with_suffix("").parts)
    try:
        importlib.import_module(module)
    except ImportError as error:
        sys.exit(f"{module}: {error}")
"""


def test_the_blocked_packages_are_the_bench_extras_and_not_dev() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    bench, dev = " ".join(extras["bench"]), " ".join(extras["dev"])
    for package in BENCH_ONLY:
        assert package in bench
        assert package not in dev


def test_every_test_module_imports_without_the_bench_extras() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_TEST_MODULE, *BENCH_ONLY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
