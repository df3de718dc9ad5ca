"""Experiment files: one schema; every mistake is one ConfigError naming the file and the line."""

from pathlib import Path

import pytest

from toolkit.errors import ConfigError
from toolkit.experiments.loader import load_experiment, parse_sets

FLEET = tuple(f"smars-{i}" for i in range(1, 9))
RELEASES = ("7.1.0", "8.0.0", "8.0.1")

GOOD = """\
title: skipped
parameters:
  node: smars-8
  alerts: 3
steady_state:
  - probe: excess_shares
    tolerance: 0
method:
  - deploy: {release: "8.0.0", skip: ["{node}"]}
    label: all but {node}
  - alerts: {count: "{alerts}"}
  - kill:
rollbacks:
  - flag: {name: flag_7, value: off}
"""


def load(tmp_path: Path, text: str, sets: dict | None = None):
    path = tmp_path / "exp.yml"
    path.write_text(text)
    return path, load_experiment(path, sets or {}, fleet=FLEET, releases=RELEASES)


def fails(tmp_path: Path, text: str, sets: dict | None = None) -> tuple[Path, ConfigError]:
    path = tmp_path / "exp.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path, sets or {}, fleet=FLEET, releases=RELEASES)
    return path, info.value


def test_a_valid_file_loads_with_defaults_filled_and_parameters_typed(tmp_path):
    path, exp = load(tmp_path, GOOD)
    assert (exp.id, exp.path, exp.title) == ("exp", path, "skipped")
    assert exp.parameters == {"node": "smars-8", "alerts": 3}
    deploy, alerts, kill = exp.method
    assert deploy.name == "deploy"
    assert deploy.args == {
        "release": "8.0.0",
        "skip": ("smars-8",),
        "nodes": None,
        "mode": "manual",
        "start_at": None,
        "end_at": None,
        "stop_after": None,
    }
    assert deploy.label == "all but smars-8"
    assert deploy.on_refused == "stop"
    assert deploy.line == 9
    assert alerts.args == {"count": 3, "text": "Power Peg disabled", "node": None}
    assert kill.args == {}
    assert exp.rollbacks[0].args == {"name": "flag_7", "value": False, "meaning": None}
    assert exp.rollbacks[0].label == "flag name=flag_7 value=off"
    assert [(p.name, p.tolerance) for p in exp.steady_state] == [("excess_shares", 0)]


def test_set_overrides_a_default_with_the_default_type(tmp_path):
    _, exp = load(tmp_path, GOOD, {"node": "smars-3", "alerts": "7"})
    assert exp.method[0].args["skip"] == ("smars-3",)
    assert exp.method[0].label == "all but smars-3"
    assert exp.method[1].args["count"] == 7


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (GOOD + "colour: red\n", 15, "unknown key 'colour'"),
        (
            GOOD.replace("  - kill:\n", "  - kil: {}\n"),
            12,
            "unknown activity 'kil' (did you mean 'kill'?",
        ),
        (GOOD.replace('release: "8.0.0", ', ""), 9, "deploy: missing required argument 'release'"),
        (
            GOOD.replace("skip:", "skpi:"),
            9,
            "deploy: unknown argument 'skpi' (did you mean 'skip'?",
        ),
        (
            GOOD.replace('{count: "{alerts}"}', "{count: many}"),
            11,
            "alerts: count: expected a whole number",
        ),
        (GOOD.replace('"8.0.0"', '"9.9.9"'), 9, "unknown release '9.9.9'"),
        (
            GOOD.replace('"{node}"', '"smars-9"'),
            9,
            "unknown node 'smars-9' (fleet: smars-1..smars-8)",
        ),
        (
            GOOD.replace("label: all but {node}", "label: all but {nod}"),
            10,
            "unknown parameter {nod}",
        ),
        (GOOD.replace('["{node}"]', "[{node}]"), 9, 'write "{node}" in quotes'),
        (
            GOOD.replace("    label: all", "    on_refused: maybe\n    label: all"),
            10,
            "on_refused: 'maybe'",
        ),
        (GOOD.replace("probe: excess_shares", "probe: excess"), 6, "unknown probe 'excess'"),
        (GOOD.replace("tolerance: 0", "tolerance: -1"), 7, "below the minimum 0"),
        (GOOD + "abort:\n  - excess_over: 5\n", 16, "abort: unknown 'excess_over'"),
        (GOOD + "expect:\n  unsafe:\n    runaway: all\n", 17, "unknown expectation 'runaway'"),
        (GOOD + "expect:\n  careful:\n    deviated: true\n", 16, "unknown mode 'careful'"),
        (
            GOOD + "  - wait: {seconds: 1}\n    on_refused: continue\n",
            16,
            "rollbacks always all run",
        ),
        (GOOD.replace("title: skipped\n", ""), 1, "title: required"),
        (
            GOOD.replace("  - kill:\n", "  - kill:\n    flag: {name: flag_7, value: on}\n"),
            13,
            "one activity per step",
        ),
        (GOOD.replace('"8.0.0"', "8.0"), 9, "reads as a number: quote it"),
        (GOOD + "method: []\n", 15, "duplicate key 'method'"),
        ("title: x\nmethod:\n  - wait: {seconds: 1\n", 4, "invalid YAML"),
        (
            "title: x\nmethod:\n  - deploy: {release: '8.0.0', start_at: smars-1, end_at: smars-2}\n",
            3,
            "give start_at or end_at",
        ),
        (
            "title: x\nmethod:\n  - fault: {kind: stop, node: smars-2, delay_ms: 10}\n",
            3,
            "only a delay fault",
        ),
        ("title: x\nmethod: []\n", 2, "method: needs at least one step"),
        ("title: x\nmethod:\n  - wait: 5\n", 3, "wait: arguments are a mapping"),
    ],
)
def test_a_mistake_names_the_file_and_the_line(tmp_path, text, line, message):
    path, error = fails(tmp_path, text)
    assert (error.path, error.line) == (str(path), line), str(error)
    assert message in error.message
    assert str(error).startswith(f"{path}:{line}: ")
    assert error.exit_code == 2


def test_an_unknown_set_key_names_the_parameters(tmp_path):
    _, error = fails(tmp_path, GOOD, {"nod": "smars-3"})
    assert error.line == 2
    assert (
        error.message
        == "--set nod: no such parameter (did you mean 'node'? parameters: node, alerts)"
    )


def test_a_set_value_of_the_wrong_type_names_the_parameter_line(tmp_path):
    _, error = fails(tmp_path, GOOD, {"alerts": "lots"})
    assert error.line == 4
    assert error.message == "--set alerts='lots': expected a whole number like the default 3"


def test_a_parameter_without_default_must_be_set(tmp_path):
    text = GOOD.replace("node: smars-8", "node:")
    _, error = fails(tmp_path, text)
    assert (error.line, error.message) == (
        3,
        "parameters: node has no default: give --set node=VALUE",
    )
    _, exp = load(tmp_path, text, {"node": "smars-2"})
    assert exp.method[0].args["skip"] == ("smars-2",)


def test_a_missing_file_and_an_unknown_id_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_experiment(tmp_path / "nope.yml", {}, fleet=FLEET, releases=RELEASES)
    (tmp_path / "alpha.yml").write_text(GOOD)
    with pytest.raises(ConfigError) as info:
        load_experiment("beta", {}, fleet=FLEET, releases=RELEASES, directory=tmp_path)
    assert str(info.value) == "unknown experiment 'beta' (known: alpha; or give a file path)"
    assert (
        load_experiment("alpha", {}, fleet=FLEET, releases=RELEASES, directory=tmp_path).id
        == "alpha"
    )


def test_flag_values_read_on_and_off_however_yaml_spells_them(tmp_path):
    text = GOOD.replace("value: off", "value: 'on'")
    _, exp = load(tmp_path, text)
    assert exp.rollbacks[0].args["value"] is True


def test_parse_sets_splits_at_the_first_equals_sign():
    assert parse_sets(["node=smars-3", "text=a=b"]) == {"node": "smars-3", "text": "a=b"}
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE, got 'node'"):
        parse_sets(["node"])


# -- hostile and absurd input ------------------------------------------------------------------
NUMBERS = """\
title: numbers
parameters:
  rate: 200.0
  seconds: 1.5
method:
  - load: {rate: "{rate}", duration_s: 1}
  - wait: {seconds: "{seconds}"}
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (NUMBERS.replace("seconds: 1.5", "seconds: .nan"), 4),
        (NUMBERS.replace("rate: 200.0", "rate: .inf"), 3),
        (NUMBERS.replace('{seconds: "{seconds}"}', "{seconds: -.inf}"), 7),
        (NUMBERS.replace("duration_s: 1", "duration_s: .NaN"), 6),
        (NUMBERS + "abort:\n  - duration_over_s: .inf\n", 9),
    ],
)
def test_a_number_that_is_not_finite_names_the_file_and_line(tmp_path, text, line):
    path, error = fails(tmp_path, text)
    assert (error.path, error.line) == (str(path), line), str(error)
    assert "finite" in error.message


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_a_set_value_that_is_not_finite_is_refused_on_the_parameter_line(tmp_path, value):
    _, error = fails(tmp_path, NUMBERS, {"rate": value})
    assert error.line == 3
    assert error.message == f"--set rate={value!r}: expected a finite number like the default 200.0"


def test_the_number_kinds_refuse_what_is_not_finite():
    from toolkit.experiments.activities.schema import ArgError, Context, number

    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ArgError, match="finite"):
            number()(value, Context(FLEET))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (GOOD.replace("  node: smars-8", "  node: &n smars-8"), 3),
        (GOOD.replace('skip: ["{node}"]', "skip: &s [smars-2]") + "  - wait: *s\n", 9),
        ("base: &b {seconds: 1}\ntitle: x\nmethod:\n  - wait:\n      <<: *b\n", 1),
        ("title: x\nmethod:\n  - wait: *missing\n", 3),
    ],
)
def test_yaml_anchors_and_aliases_are_refused_with_their_line(tmp_path, text, line):
    path, error = fails(tmp_path, text)
    assert (error.path, error.line) == (str(path), line), str(error)
    assert "anchors and aliases" in error.message


# Nine levels of nine: 387 million strings once expanded, 2 kB as written; under `expect`, which
# the loader walks whole before it reads any expectation.
LAUGHS = (
    "title: lol\nmethod:\n  - wait: {seconds: 1}\nexpect:\n"
    "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"  {chr(c + 1)}: &{chr(c + 1)} [{', '.join(['*' + chr(c)] * 9)}]\n"
        for c in range(97, 97 + 9)
    )
)


def test_a_billion_laughs_file_is_listed_with_its_error_at_once(tmp_path):
    # Run apart, so that a loader that expands the aliases is killed instead of hanging the suite.
    import subprocess
    import sys

    (tmp_path / "lol.yml").write_text(LAUGHS)
    (tmp_path / "ok.yml").write_text("title: fine\nmethod:\n  - wait: {seconds: 1}\n")
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from toolkit.experiments.loader import list_experiments\n"
        "infos = list_experiments(Path(sys.argv[1]), fleet=['smars-1'], releases=['7.1.0'])\n"
        "print(json.dumps([[i.id, i.error] for i in infos]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    import json

    (lol_id, lol_error), ok = json.loads(done.stdout)
    assert ok == ["ok", None]
    assert lol_id == "lol"
    assert lol_error.startswith(f"{tmp_path / 'lol.yml'}:5: ")
    assert "anchors and aliases" in lol_error


@pytest.mark.parametrize(
    "meaning", ["$(touch /tmp/pwned)", "rlp; id", "RLP", "power peg", "rlp\\n"]
)
def test_a_flag_meaning_that_is_no_strategy_name_is_refused(tmp_path, meaning):
    text = GOOD.replace(
        "{name: flag_7, value: off}", f"{{name: flag_7, value: on, meaning: {meaning!r}}}"
    )
    path, error = fails(tmp_path, text)
    assert (error.path, error.line) == (str(path), 14), str(error)
    assert "flag: meaning:" in error.message and "is not a meaning" in error.message


def test_a_flag_meaning_set_from_the_command_line_is_checked_too(tmp_path):
    text = GOOD.replace("  alerts: 3\n", "  alerts: 3\n  meaning: rlp\n").replace(
        "{name: flag_7, value: off}", '{name: flag_7, value: on, meaning: "{meaning}"}'
    )
    _, exp = load(tmp_path, text)
    assert exp.rollbacks[0].args["meaning"] == "rlp"
    _, error = fails(tmp_path, text, {"meaning": "$(id)"})
    assert "is not a meaning" in error.message and error.line == 15
