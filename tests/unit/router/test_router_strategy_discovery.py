"""The strategy registry imports only modules that have their source in the release tree: a
sourceless `x.pyc` dropped beside them (no file of the tree hash) is never imported."""

from __future__ import annotations

import py_compile
import sys

from smars.strategies import Strategy, discover


def test_a_sourceless_module_beside_the_strategies_is_never_imported(tmp_path, monkeypatch):
    package = tmp_path / "strats_under_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(
        "from smars.strategies import Strategy\n\nclass Good(Strategy):\n    NAME = 'good'\n"
    )
    witness = tmp_path / "evil-ran"
    evil = tmp_path / "evil_source.py"
    evil.write_text(f"open({str(witness)!r}, 'w').close()\n")
    py_compile.compile(str(evil), cfile=str(package / "evil.pyc"), doraise=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = discover("strats_under_test")
    finally:
        for name in [m for m in sys.modules if m.startswith("strats_under_test")]:
            del sys.modules[name]
    assert list(found) == ["good"]
    assert issubclass(found["good"], Strategy)
    assert not witness.exists()
