"""``precompile``: bytecode for the Lambda runtime (CPython 3.13, by Pyodide) or the host, else an error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bundling import COMPILE_BYTECODE_SCRIPT, PYODIDE_PYTHON_VERSION, precompile

#: ``importlib.util.MAGIC_NUMBER`` of CPython 3.13 (3571).
CPYTHON_313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"
#: PEP 552 flags word: hash-based (bit 0) and not checked against the source (bit 1 clear).
UNCHECKED_HASH_FLAGS = (0b01).to_bytes(4, "little")
HOST_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
#: A native CPython 3.13 to run Pyodide's bytecode with, where this machine has one.
NATIVE_313 = sorted(Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))


def _tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("def value() -> int:\n    return 1\n")
    (root / "top.py").write_text("import pkg.mod\n")
    return root


@pytest.fixture(scope="module")
def lambda_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree compiled for the Lambda target once: each Pyodide start takes seconds."""
    tree = _tree(tmp_path_factory.mktemp("lambda") / "tree")
    precompile(tree, "3.13")
    return tree


def test_lambda_target_bytecode_is_cpython_313_with_unchecked_hashes(lambda_tree: Path) -> None:
    assert PYODIDE_PYTHON_VERSION == "3.13"
    sources = sorted(lambda_tree.rglob("*.py"))
    headers = [(s.parent / "__pycache__" / f"{s.stem}.cpython-313.pyc").read_bytes()[:8] for s in sources]
    assert headers == [CPYTHON_313_MAGIC + UNCHECKED_HASH_FLAGS] * 3


def test_host_target_bytecode_comes_from_this_interpreter(tmp_path: Path) -> None:
    from importlib.util import MAGIC_NUMBER

    tree = _tree(tmp_path / "tree")
    precompile(tree, HOST_VERSION)
    tag = sys.implementation.cache_tag
    assert (tree / "pkg" / "__pycache__" / f"mod.{tag}.pyc").read_bytes()[:8] == MAGIC_NUMBER + UNCHECKED_HASH_FLAGS


def test_a_version_nobody_here_can_compile_for_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    assert HOST_VERSION != "3.9"
    tree = _tree(tmp_path / "tree")
    with pytest.raises(RuntimeError, match=r"cannot compile bytecode for Python 3\.9"):
        precompile(tree, "3.9")
    assert not list(tree.rglob("*.pyc"))


def test_the_script_refuses_a_version_pyodide_does_not_run(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    result = subprocess.run(
        ["node", str(COMPILE_BYTECODE_SCRIPT), "3.12", str(tree)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "Pyodide runs Python 3.13, but bytecode for Python 3.12 was asked for" in result.stderr
    assert not list(tree.rglob("*.pyc"))


def test_a_module_that_does_not_compile_fails_the_build(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    (tree / "broken.py").write_text("def (:\n")
    with pytest.raises(subprocess.CalledProcessError):
        precompile(tree, "3.13")


@pytest.mark.skipif(not NATIVE_313, reason="no native CPython 3.13 under ~/.pyenv")
def test_native_cpython_313_runs_pyodide_bytecode_unchecked(lambda_tree: Path, tmp_path: Path) -> None:
    tree = shutil.copytree(lambda_tree, tmp_path / "tree")
    # Unchecked hashes: the interpreter must run the bytecode, not this newer source.
    (tree / "pkg" / "mod.py").write_text("def value() -> int:\n    return 2\n")
    result = subprocess.run(
        [str(NATIVE_313[-1]), "-E", "-s", "-B", "-c", "import top, pkg.mod; print(pkg.mod.value())"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "1\n"
