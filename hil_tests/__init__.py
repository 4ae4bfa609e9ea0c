"""The HIL bench: tests, the rig (`hil_tests.rig`) and benchmarks (`hil_tests.bench`).

Test modules mirror the package they test (hil_tests/gateway/ln tests gateway/ln, ...).
`REPO_ROOT` is the repository checkout; tests take it as the `repo_root` fixture.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
