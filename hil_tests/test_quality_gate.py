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


LAYOUT = {"firmware", "gateway", "boards", "hil_tests", "tools", "deploy", "docs", "pyproject.toml",
          "uv.lock", "README.md", ".gitignore", ".ci"}  # fmt: skip


def test_the_repository_root_holds_only_the_layout():
    # a 200 KB profile dump named '--data-dir' (a mistyped option) was committed to the root once
    tracked = _git_ls_files()
    assert {path.split("/")[0] for path in tracked} <= LAYOUT
    big = [
        p for p in tracked if (REPO_ROOT / p).is_file() and (REPO_ROOT / p).stat().st_size > 1 << 20
    ]
    assert big == [], "tracked files over 1 MiB"


def _git_ls_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, timeout=60)
    if out.returncode != 0:  # not a git checkout (an sdist): nothing to check
        return []
    return [p for p in out.stdout.decode().split("\0") if p]
