"""The local quality gate runs in CI too: lint, format, types and import layers stay clean on main."""

import subprocess
import sys

from hil_tests import REPO_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean():
    out = _run("ruff", "check", "--output-format", "concise", ".")
    assert out.returncode == 0, out.stdout[-3000:]


def test_ruff_format_is_clean():
    out = _run("ruff", "format", "--check", ".")
    assert out.returncode == 0, out.stdout[-3000:]


def test_gateway_boards_host_and_tools_type_check():
    out = _run("mypy")
    assert out.returncode == 0, out.stdout[-3000:]


def test_import_layers_hold():
    """The import-linter contracts of pyproject.toml: gateway.ln in layers, no import circles."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
