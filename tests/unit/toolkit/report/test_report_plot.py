"""The per-run plot: every alert, guard event and kill gets its line, and the labels of marks that
come within a second of each other are laid out side by side, never on top of each other."""

from __future__ import annotations

from itertools import combinations

from matplotlib.text import Text

from toolkit.report.plot import LABEL_GID, draw_run, label_groups, marks, plot_run

FLEET = [f"smars-{i}" for i in range(1, 9)]
RULES = ("overfill", "order_rate_anomaly", "flag_meaning_drift", "error_burst")


def crowded_run(span: float = 40.0) -> dict:
    """A run in which a deploy, a flag, the runaway, sixteen alerts of four rules on four nodes,
    a guard's refusal and the kill all come within about a second."""
    timeline = [
        {"t": 10.0, "kind": "deploy", "node": None, "detail": "copy 8.0.0: 8.0.0 on 7 nodes"},
        {"t": 10.3, "kind": "flag", "node": None, "detail": "flag_7 on: on every node"},
        {"t": 10.4, "kind": "runaway", "node": None, "detail": "first child order beyond"},
    ]
    for i, (rule, node) in enumerate((r, n) for r in RULES for n in FLEET[:4]):
        timeline.append(
            {
                "t": 10.5 + i * 0.03,
                "kind": "alert",
                "node": node,
                "detail": f"{rule} critical owner=risk action=kill runbook=x: {node} ran away",
            }
        )
    timeline += [
        {"t": 11.0, "kind": "guard", "node": None, "detail": "the risk guard refused: x"},
        {"t": 11.1, "kind": "kill", "node": None, "detail": "kill switch on every node"},
        {"t": 30.0, "kind": "rollback_kill", "node": None, "detail": "kill switch: done"},
    ]
    t = [i * 0.5 for i in range(int(span * 2) + 1)]
    return {
        "experiment": "rollback",
        "mode": "unsafe",
        "guards": {},
        "timeline": timeline,
        "series": {"t": t, "child_orders_per_s": {n: [40.0] * len(t) for n in FLEET}},
        "outcome": {"runaway_nodes": FLEET[:4]},
    }


def label_texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if (t.get_gid() or "").startswith(LABEL_GID)]


def test_labels_of_marks_within_a_second_do_not_overlap():
    fig = draw_run(crowded_run())
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    # The texts alone (an annotation's own extent takes in its leader too).
    boxes = [Text.get_window_extent(t, renderer) for t in label_texts(fig)]
    assert len(boxes) >= 8  # deploy, flag, runaway, four alert rules, guard, kill, kill
    overlapping = [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    assert overlapping == []
    axes = fig.axes[0].get_window_extent()
    assert all(axes.x0 - 1 <= b.x0 and b.x1 <= axes.x1 + 1 for b in boxes)  # inside the axes


def test_every_alert_guard_event_and_kill_has_its_own_line():
    fig = draw_run(crowded_run())
    (ticks,) = [c for c in fig.axes[0].collections if c.get_gid() == "mark-alerts"]
    assert sorted(round(seg[0][0], 2) for seg in ticks.get_segments()) == [
        round(10.5 + i * 0.03, 2) for i in range(16)
    ]
    gids = [a.get_gid() or "" for a in fig.axes[0].get_lines()]
    assert sum(g.startswith("mark-guard-") for g in gids) == 1
    assert sum(g.startswith("mark-kill-") for g in gids) == 2  # the monitor's and the rollback's
    assert sum(g.startswith("mark-runaway-") for g in gids) == 1


def test_a_burst_of_one_alert_shares_a_label_and_different_rules_do_not():
    found = [m for m in marks(crowded_run()["timeline"]) if m.kind == "alert"]
    groups = label_groups(found, gap=1.0)
    assert [(g[0].group, len(g)) for g in groups] == [(f"alert {r}", 4) for r in RULES]
    assert [len(g) for g in label_groups(found, gap=1.0, by_kind=True)] == [16]


def test_too_many_labels_to_fit_side_by_side_fall_back_to_one_per_kind_and_still_apart():
    doc = crowded_run(span=2.0)
    doc["timeline"] = [
        {"t": 0.5 + i * 0.001, "kind": "alert", "node": FLEET[i % 8], "detail": f"rule{i} x"}
        for i in range(150)
    ]
    fig = draw_run(doc)
    fig.draw_without_rendering()
    texts = label_texts(fig)
    assert [t.get_text().strip() for t in texts] == ["alert ×150"]


def test_the_plot_is_written_as_png_and_as_svg_with_its_labels_as_text(tmp_path):
    drawn = plot_run(crowded_run(), tmp_path / "run.png")
    assert drawn.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn.svg.lstrip().startswith("<?xml")
    assert 'id="mark-label-top-0"' in drawn.svg
    assert "alert overfill ×4" in drawn.svg
    assert plot_run(crowded_run(), tmp_path / "again.png").svg == drawn.svg  # reproducible
