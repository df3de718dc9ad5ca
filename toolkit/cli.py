"""`knight`, the one entry point: a thin caller of the toolkit's API that prints and exits.

Results go to stdout (a table, or JSON with `--json`); progress goes to stderr; any KnightError
ends in one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click
import docker.errors
import requests.exceptions
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import KnightError
from .settings import node_key

__all__ = ["main"]

# Piped output (CI logs, `| less`) gets a width wide enough for the status table.
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140)
err = Console(stderr=True)


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False))


@contextmanager
def _progress(title: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr with the latest step; each step is also printed as a line."""
    if quiet or not err.is_terminal:
        yield (lambda msg: err.print(f"[dim]{msg}[/dim]") if not quiet else None)
        return
    with err.status(title) as status:

        def step(msg: str) -> None:
            status.update(f"{title} — {msg}")
            err.print(f"[dim]{msg}[/dim]")

        yield step


#: How often a live view is redrawn (at least twice a second, so elapsed time moves smoothly).
LIVE_REFRESH_HZ = 4

_NO_LIVE = click.option(
    "--no-live",
    is_flag=True,
    help="Print a plain line per event instead of the live view (as a pipe gets).",
)


def _live_wanted(no_live: bool, quiet: bool = False) -> bool:
    """A live view only on a terminal (stdout and stderr both: a pipe gets plain lines), and
    neither with --no-live nor with --json."""
    if no_live or quiet or err.is_dumb_terminal:
        return False
    return err.is_terminal and out.is_terminal


@contextmanager
def _shown(title: str, view: Any | None, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """`view` live on stderr, redrawn LIVE_REFRESH_HZ times a second, each line said printed
    above it; without a view, the plain progress (`_progress`)."""
    if view is None:
        with _progress(title, quiet) as say:
            yield say
        return
    from rich.live import Live

    with Live(view, console=err, refresh_per_second=LIVE_REFRESH_HZ) as live:
        yield lambda msg: live.console.print(f"[dim]{msg}[/dim]")


class _Group(click.Group):
    """Turns toolkit errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KnightError as exc:
            err.print(
                f"[red]knight: error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err.print("knight: interrupted")
            sys.exit(130)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # The engine went away or stopped answering in the middle of a command.
            err.print(
                f"[red]knight: error:[/red] the Docker engine: {escape(str(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)


def _show_logs(verbosity: int) -> None:
    """The toolkit logs what it does to the "knight" logger (Docker calls, Ansible runs) at
    debug level; `-v` shows them on stderr, beside the progress."""
    if verbosity <= 0:
        return
    from rich.logging import RichHandler

    handler = RichHandler(console=err, show_path=False, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("knight")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="knight")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Show the Docker calls and Ansible runs the command makes (on stderr).",
)
def main(verbose: int) -> None:
    """Re-enact the 2012 Knight Capital deployment failure on an eight-node Docker lab, and
    measure which guards stop it.

    Set KNIGHT_LAB to run a lab under another name (default: knight).
    """
    _show_logs(verbose)


def _lab(transport: str | None = None):
    from dataclasses import replace

    from .lab.lab import Lab
    from .settings import load_settings

    settings = load_settings()
    return Lab(replace(settings, transport=transport) if transport else settings)


def _inventory_option(f: Callable) -> Callable:
    return click.option(
        "--inventory",
        "inventory",
        type=click.Path(path_type=Path),
        envvar="KNIGHT_INVENTORY",
        metavar="PATH",
        help="Reach the fleet this Ansible inventory declares (a YAML file, or a folder with "
        "hosts.yml) instead of the lab's (default: KNIGHT_INVENTORY).",
    )(f)


def _fleet(inventory: Path | None):
    """The fleet a command reaches: the one an inventory declares (checked whole first: a
    missing host or variable is exit 2, nothing ran), else the lab's own."""
    if inventory is None:
        return _lab()
    from .deploy.fleet import Fleet
    from .settings import load_settings

    return Fleet.from_inventory(inventory, load_settings())


def _experiment_lab(inventory: Path | None):
    """What an experiment or a fault campaign acts on: the lab, or the fleet an inventory
    declares with the market it names (checked whole first: exit 2, nothing ran)."""
    if inventory is None:
        return _lab()
    from .deploy.fleet_lab import fleet_lab
    from .settings import load_settings

    return fleet_lab(inventory, load_settings())


def _guards_option(f: Callable) -> Callable:
    return click.option(
        "--guards",
        "guards_text",
        metavar="LIST",
        help="Guards to run with: comma-separated names of atomic, fencing, flags, risk, "
        "monitor, rollback; or all, none (default: KNIGHT_GUARDS, else "
        "atomic,fencing,risk,rollback).",
    )(f)


def _guards(text: str | None, unsafe: bool = False):
    from .deploy.operations import resolve_guards
    from .guards.sets import GuardSet

    if unsafe and text:
        raise click.UsageError("--unsafe means no guard; leave out --guards")
    return resolve_guards(GuardSet.parse(text) if text is not None else None, unsafe)


# -- image -------------------------------------------------------------------------------------
@main.group()
def image() -> None:
    """Build the lab image (base made locally with mmdebstrap; nothing is pulled)."""


@image.command("build")
@click.option("--force-base", is_flag=True, help="Rebuild the Debian base even if present.")
@click.option(
    "--observe",
    is_flag=True,
    help="Also build the observe image (Prometheus and Alertmanager from Debian's packages, "
    "tagged <lab image>-observe); `lab up --observe` builds it when missing.",
)
def image_build(force_base: bool, observe: bool) -> None:
    """Build knight-base (mmdebstrap + docker import) if missing, then the lab image.

    BASE_IMAGE=<image with python3> skips the Debian base.
    """
    from .lab.engine import Engine
    from .lab.image import build_base, build_image, build_observe_image
    from .settings import load_settings

    settings = load_settings()
    engine = Engine(settings.lab)
    started = time.monotonic()
    with _progress("building the lab image") as say:
        if force_base:
            build_base(settings, engine, say, force=True)
        tag = build_image(settings, engine, say)
        out.print(f"{tag} built in {time.monotonic() - started:.1f}s")
        if observe:
            started = time.monotonic()
            tag = build_observe_image(settings, engine, say)
            out.print(f"{tag} built in {time.monotonic() - started:.1f}s")


# -- release -----------------------------------------------------------------------------------
@main.group()
def release() -> None:
    """Release artifacts: a reproducible tarball and manifest per catalog version."""


@release.command("build")
@click.argument("versions", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the artifacts as JSON.")
def release_build(versions: tuple[str, ...], as_json: bool) -> None:
    """Build VERSIONS (default: every release of router_image/releases.yaml) into dist/releases/."""
    from .deploy.operations import check_version
    from .releases.artifacts import build
    from .releases.catalog import load_catalog
    from .settings import load_settings

    for version in versions:
        check_version(version)
    s = load_settings()
    catalog = load_catalog(s.catalog_path, s.router_source)
    built = [build(catalog, v, s.router_source, s.dist) for v in (versions or catalog.versions)]
    _print_artifacts(built, as_json)


@release.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the artifacts as JSON.")
def release_list(as_json: bool) -> None:
    """List built artifacts with their tree hash and flag meanings."""
    from .releases.artifacts import list_artifacts
    from .settings import load_settings

    _print_artifacts(list_artifacts(load_settings().dist), as_json)


def _print_artifacts(artifacts: list, as_json: bool) -> None:
    if as_json:
        _emit_json([a.to_json() for a in artifacts])
        return
    table = Table("release", "tree", "strategies", "flags", "artifact")
    for a in artifacts:
        flags = ", ".join(f"{k}→{v}" for k, v in a.manifest["flags"].items())
        table.add_row(
            a.version, a.tree[:16], ", ".join(a.manifest["strategies"]), flags, str(a.tarball)
        )
    out.print(table)


# -- lab ---------------------------------------------------------------------------------------
@main.group()
def lab() -> None:
    """The lab: network, venue, client and the router nodes smars-1..8."""


@lab.command("up")
@click.option(
    "--transport",
    type=click.Choice(["docker", "ssh"]),
    help="How the nodes are reached: docker exec, or ssh with sshd in every node (default: "
    "KNIGHT_TRANSPORT, else as the lab runs, else docker).",
)
@click.option(
    "--observe",
    is_flag=True,
    help="Also run Prometheus (scraping every node and the venue each second, with "
    "monitor/prometheus/rules.yml), Alertmanager and its webhook receiver, ports on 127.0.0.1; "
    "builds their image first when missing (about a minute).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def lab_up(transport: str | None, observe: bool, as_json: bool) -> None:
    """Create and start whatever is missing (idempotent) and wait until every node is healthy."""
    lab_ = _lab(transport)
    started = time.monotonic()
    with _progress("bringing the lab up", quiet=as_json) as say:
        status = lab_.up(progress=say, observe=observe)
    if as_json:
        _emit_json(status.to_json() | {"elapsed_s": round(time.monotonic() - started, 2)})
    else:
        _print_status(status)
        out.print(f"lab {status.lab} up in {time.monotonic() - started:.1f}s")


@lab.command("down")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def lab_down(as_json: bool) -> None:
    """Remove every container, network and volume with the lab's label."""
    removed = _lab().down()
    if as_json:
        _emit_json({"removed": removed})
    else:
        out.print(", ".join(f"{v} {k}" for k, v in removed.items()) + " removed")


@lab.command("status")
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def lab_status(inventory: Path | None, as_json: bool) -> None:
    """Each node's release, tree hash, flags, health and trading state (with --inventory, read
    from each node's admin API at knight_admin_url, else smars_admin_url)."""
    status = _fleet(inventory).status()
    if as_json:
        _emit_json(status.to_json())
    else:
        _print_status(status)
    if not status.up:
        sys.exit(1)


@lab.command("inventory")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write it to this file (default: print it).",
)
def lab_inventory(out_path: Path | None) -> None:
    """The Ansible inventory of a lab of the ssh transport, in the shape of
    playbooks/inventories/staging.example: ssh to 127.0.0.1 at each node's port, the lab's
    deploy key, host keys pinned in its known_hosts."""
    from .deploy.inventory import render_lab

    lab_ = _lab()
    if lab_.transport != "ssh":
        raise click.UsageError(
            f"lab {lab_.settings.lab} runs the docker transport: its inventory is "
            "playbooks/inventories/lab's; bring it up with `knight lab up --transport ssh`"
        )
    text = render_lab(lab_)
    if out_path is None:
        click.echo(text, nl=False)
        return
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    out.print(f"inventory of lab {lab_.settings.lab} written to {out_path}", highlight=False)


@lab.command("reset")
def lab_reset() -> None:
    """Put every node back on the baseline release and flags, trading, intake open; new venue run."""
    from .chaos.kinds import halt_all

    lab_ = _lab()
    with _progress("resetting the lab") as say:
        undone = {kind: nodes for kind, nodes in halt_all(lab_).items() if nodes}
        say(f"faults undone: {undone or 'none'}")
        lab_.reset()
        say("baseline restored")
    _print_status(lab_.status())


@lab.command("halt-all")
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print what was undone as JSON.")
def lab_halt_all(inventory: Path | None, as_json: bool) -> None:
    """Undo every chaos fault in the lab (paused, stopped or killed nodes, partitions, network
    delays, damaged staged releases), found from Docker's state: works after the process that
    injected them died; and end every load generator still sending (a run's background load).
    With --inventory, on that fleet: routerd thaws and starts every router that does not answer,
    and the load generators on its load host end."""
    from .chaos.kinds import halt_all
    from .lab.load import stop_loads

    lab_ = _experiment_lab(inventory)
    undone = halt_all(lab_) | {"load": stop_loads(lab_)}
    if as_json:
        _emit_json(undone)
        return
    for kind, nodes in undone.items():
        out.print(f"{kind}: {', '.join(nodes) if nodes else 'none found'}", highlight=False)


@lab.command("guards")
@click.argument("guards_text", metavar="[LIST]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print each node's switches as JSON.")
def lab_guards(guards_text: str | None, as_json: bool) -> None:
    """Show, or with LIST set, the guards the routers enforce themselves (fencing, flags,
    risk). LIST is comma-separated guard names, all or none; the other guards act in the
    toolkit and are chosen per command (--guards)."""
    from .guards.sets import GuardSet

    lab_ = _lab()
    if guards_text is not None:
        lab_.set_guards(GuardSet.parse(guards_text))
    found = {n: lab_.node_admin(n).get("/version").get("guards") for n in lab_.settings.node_names}
    if as_json:
        _emit_json(found)
        return
    table = Table("node", "fencing", "flags", "risk", "error", title="router guards")
    for node, g in found.items():
        g = g or {}
        table.add_row(
            node,
            *("on" if g.get(k) else "off" for k in ("fencing", "flags", "risk")),
            escape(g.get("error") or "-"),
        )
    out.print(table)


def _flag_text(name: str, flag: dict) -> str:
    text = f"{name} {'[bold]ON[/bold]' if flag.get('value') else 'off'}"
    code = flag.get("code_meaning")
    if flag.get("meaning") != code:
        # The 2012 condition: the file says one thing, the running code does another.
        text += f" [yellow](declared {flag.get('meaning')}, code runs {code or 'nothing'})[/yellow]"
    return text


def _print_status(status) -> None:
    title = f"lab {status.lab}" if hasattr(status, "lab") else f"fleet {status.inventory}"
    table = Table("node", "state", "release", "tree", "flags", "healthy", "trading", title=title)
    for n in status.nodes:
        flags = ", ".join(_flag_text(k, v) for k, v in sorted(n.flags.items()))
        table.add_row(
            n.name,
            n.state,
            n.release or "-",
            (n.tree or "-")[:12],
            flags or "-",
            "[green]yes[/green]" if n.healthy else f"[red]no[/red] {escape(n.error or '')}",
            n.trading or "-",
        )
    out.print(table)
    if not hasattr(status, "venue"):  # a fleet of an inventory: no venue of knight's
        return
    v = status.venue
    out.print(
        f"venue: {v.get('state')}, {'healthy' if v.get('healthy') else 'unhealthy'}, "
        f"messages {v.get('messages', '-')}/{v.get('cap', '-')}, "
        f"executions {v.get('executions', '-')}, excess shares {v.get('excess_shares', '-')}"
    )


# -- load --------------------------------------------------------------------------------------
class _Finite(click.FloatRange):
    """A number in a range, and finite: click's FloatRange lets `nan` through (it fails no
    comparison), and no rate, duration or share is `nan` or `inf`."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


@main.command()
@click.option("--node", "nodes", multiple=True, help="Send to this node (repeat; default: all).")
@click.option(
    "--rate",
    type=_Finite(min=0),
    default=200.0,
    show_default=True,
    help="Parent orders per second over all targets (0: as fast as the window allows).",
)
@click.option(
    "--duration",
    type=_Finite(min=0.1, max=3600),
    default=5.0,
    show_default=True,
    help="Seconds of sending.",
)
@click.option(
    "--rlp-share",
    type=_Finite(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of orders in the Retail Liquidity Program.",
)
@click.option(
    "--qty",
    type=click.IntRange(1, 1_000_000),
    default=100,
    show_default=True,
    help="Shares per parent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the load generator's account as JSON.")
def load(
    nodes: tuple[str, ...], rate: float, duration: float, rlp_share: float, qty: int, as_json: bool
) -> None:
    """Send parent orders from the client container and account for every one of them."""
    from .deploy.operations import check_node_name
    from .lab.load import LoadSpec, run_load

    for node in nodes:
        check_node_name(node)
    lab_ = _lab()
    spec = LoadSpec(nodes=nodes, rate=rate, duration_s=duration, rlp_share=rlp_share, qty=qty)
    with _progress("sending orders", quiet=as_json) as say:
        result = run_load(lab_, spec, on_progress=lambda d: say(json.dumps(d.get("progress", d))))
    if as_json:
        _emit_json(result.raw)
        return
    columns = ("sent", "acked", "filled", "rejected", "cancelled", "working", "unanswered")
    table = Table("node", *columns, "excess shares")
    for target, row in sorted(result.per_target.items(), key=lambda kv: node_key(kv[0])):
        cells = [str(row.get(k, 0)) for k in (*columns, "excess_shares")]
        table.add_row(target.split(":")[0], *cells)
    out.print(table)
    out.print(
        f"{result.sent} sent, {result.filled} filled, {result.unanswered} unanswered, "
        f"{result.orders_per_s:.0f} orders/s"
    )


# -- deploy, rollback, flags, kill switch ----------------------------------------------------
def _ansible_progress(step: Callable[[str], None]) -> Callable:
    """Ansible events as progress lines: one per phase started, one per node failure."""

    def show(ev) -> None:
        if ev.kind == "task_start":
            step(ev.task)
        elif ev.kind in ("failed", "unreachable"):
            step(f"[red]{ev.host}: {escape(ev.message or ev.kind)}[/red]")

    return show


def _print_deploy(result) -> None:
    colour = "green" if result.ok else "red"
    table = Table("node", "before", "after", "switch", title=f"{result.action} {result.release}")
    for node in sorted(result.nodes, key=node_key):
        row = result.nodes[node]
        table.add_row(
            node, row["before"] or "-", row["after"] or "-", result.switches.get(node, "-")
        )
    out.print(table)
    by = f" by the {result.refused_by} guard" if result.refused_by else ""
    out.print(
        f"[{colour}]{result.status}{by}[/{colour}] in {result.duration_s:.1f}s"
        + (f" — {escape(result.error)}" if result.error else "")
    )
    if result.plan and not result.plan.get("safe", True):
        out.print("The safe sequence:")
        for i, step in enumerate(result.plan.get("sequence", []), 1):
            out.print(f"  {i}. {escape(step['command'])}", highlight=False)
    timings = {k: v for k, v in result.timings.items() if v is not None and k != "playbook_s"}
    if timings:
        out.print(", ".join(f"{k} {v}" for k, v in timings.items()))


def _finish(result, as_json: bool) -> None:
    if as_json:
        _emit_json(result.to_json())
    else:
        _print_deploy(result)
    sys.exit(0 if result.ok else 1)


@main.command("deploy")
@click.argument("version")
@click.option(
    "--skip",
    "skip",
    multiple=True,
    metavar="NODE",
    help="Leave NODE out (repeat). Guarded: refused. --unsafe: that node keeps the old code.",
)
@click.option(
    "--unsafe", is_flag=True, help="The 2012 way: host by host, no barrier, no verification."
)
@_guards_option
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def deploy_cmd(
    version: str,
    skip: tuple[str, ...],
    unsafe: bool,
    guards_text: str | None,
    inventory: Path | None,
    as_json: bool,
) -> None:
    """Deploy VERSION to every node, or to none (exit 0 only when every node runs VERSION).

    With the atomic guard (the default) a partial fleet is refused; without it the release is
    installed host by host as in 2012. The flags guard refuses a release that fails
    `knight flags lint`; fencing writes the fleet manifest to every node.
    """
    from .deploy.operations import check_node_name, check_version, deploy

    # Checked before anything else (the API checks again): a bad value is exit 2, nothing ran.
    check_version(version)
    for node in skip:
        check_node_name(node)
    guards = _guards(guards_text, unsafe)
    fleet = _fleet(inventory)
    with _progress(f"deploying {version}", quiet=as_json) as say:
        result = deploy(
            fleet, version, skip=list(skip), on_event=_ansible_progress(say), guards=guards
        )
    _finish(result, as_json)


@main.command("rollback")
@click.option(
    "--to", "to", metavar="VERSION", help="Release to go back to (default: the baseline)."
)
@click.option("--unsafe", is_flag=True, help="Host by host, no planner, no checks.")
@_guards_option
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def rollback_cmd(
    to: str | None, unsafe: bool, guards_text: str | None, inventory: Path | None, as_json: bool
) -> None:
    """Put every node back on an earlier release, all or none.

    The rollback guard plans it first: a rollback that would run code where an active flag
    means something else (2012: flag_7 on, meaning RLP, back onto Power Peg code) is refused,
    and the safe sequence is printed.
    """
    from .deploy.operations import check_version, rollback

    if to is not None:
        check_version(to)
    guards = _guards(guards_text, unsafe)
    fleet = _fleet(inventory)
    with _progress("rolling back", quiet=as_json) as say:
        result = rollback(fleet, to=to, on_event=_ansible_progress(say), guards=guards)
    _finish(result, as_json)


@main.group()
def flags() -> None:
    """Feature flags across the fleet."""


@flags.command("set")
@click.argument("name")
@click.argument("value", type=click.Choice(["on", "off"]))
@click.option(
    "--meaning", help="Declared meaning (default: what the newest release reading it means)."
)
@click.option("--unsafe", is_flag=True, help="Set it as asked, without the flag registry's checks.")
@_guards_option
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def flags_set(
    name: str,
    value: str,
    meaning: str | None,
    unsafe: bool,
    guards_text: str | None,
    inventory: Path | None,
    as_json: bool,
) -> None:
    """Set flag NAME on or off on every node.

    With the flags guard, turning it on is refused when any node's code gives the flag another
    meaning than the declared one.
    """
    from .deploy.operations import check_flag_name, check_meaning, flag

    check_flag_name(name)
    if meaning is not None:
        check_meaning(meaning)
    guards = _guards(guards_text, unsafe)
    fleet = _fleet(inventory)
    with _progress(f"flag {name} {value}", quiet=as_json) as say:
        result = flag(
            fleet, name, value == "on", meaning, on_event=_ansible_progress(say), guards=guards
        )
    _finish_fleet(result, as_json)


@flags.command("lint")
@click.option(
    "--release", metavar="VERSION", help="Lint this release (default: the registry and the newest)."
)
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The flag registry (default: flags.yaml at the repository root).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def flags_lint(release: str | None, registry_path: Path | None, as_json: bool) -> None:
    """Check the flag registry against the release catalog and the router source: no reused
    name, no expired, unregistered or retired flag (exit 1 when a problem is found)."""
    from .deploy.operations import check_version
    from .guards.flag_registry import lint, load_registry
    from .releases.catalog import load_catalog
    from .settings import load_settings

    if release is not None:
        check_version(release)
    s = load_settings()
    registry = load_registry(registry_path or s.registry_path)
    report = lint(registry, load_catalog(s.catalog_path, s.router_source), release)
    name = registry.path.name
    if as_json:
        _emit_json(report.to_json())
    elif report.ok:
        out.print(f"{name}: {report.flags} flags, release {report.release}: ok", highlight=False)
    else:
        table = Table(
            "flag", "release", "rule", "problem", title=f"{name}: release {report.release}"
        )
        for p in report.problems:
            table.add_row(p.flag, p.release or "-", p.rule, escape(p.message))
        out.print(table)
        count = len(report.problems)
        out.print(
            f"[red]{name}: {report.flags} flags, release {report.release}: "
            f"{count} problem{'s' if count > 1 else ''}[/red]",
            highlight=False,
        )
    sys.exit(0 if report.ok else 1)


def _finish_fleet(result, as_json: bool) -> None:
    if as_json:
        _emit_json(result.to_json())
    else:
        colour = "green" if result.status == "done" else "red"
        out.print(
            f"{result.action}: [{colour}]{result.status}[/{colour}] on {len(result.nodes)} nodes "
            f"in {result.duration_s:.1f}s" + (f" — {escape(result.error)}" if result.error else "")
        )
    sys.exit(0 if result.status == "done" else 1)


def _killswitch(kill: bool, inventory: Path | None, as_json: bool) -> None:
    from .deploy.operations import killswitch

    fleet = _fleet(inventory)
    with _progress("kill switch" if kill else "resume trading", quiet=as_json) as say:
        result = killswitch(fleet, kill, on_event=_ansible_progress(say))
    _finish_fleet(result, as_json)


@main.command("kill")
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def kill_cmd(inventory: Path | None, as_json: bool) -> None:
    """Kill switch: every node stops trading and cancels its working orders."""
    _killswitch(True, inventory, as_json)


@main.command("resume")
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def resume_cmd(inventory: Path | None, as_json: bool) -> None:
    """Lift the kill switch on every node."""
    _killswitch(False, inventory, as_json)


_VIA = click.Choice(["builtin", "prometheus", "both"])


def _monitors(via: str) -> tuple[str, ...]:
    return ("builtin", "prometheus") if via == "both" else (via,)


@main.command("monitor")
@click.option(
    "--mailbox",
    is_flag=True,
    help="The 2012 way: alerts go to a mailbox file nobody reads; nothing acts.",
)
@click.option(
    "--via",
    type=_VIA,
    default="builtin",
    show_default=True,
    help="builtin: knight's own scraper; prometheus: the lab's Prometheus and Alertmanager "
    "(knight lab up --observe), whose kill webhook knight reads; both: side by side.",
)
@click.option(
    "--duration",
    type=_Finite(min=0.1),
    help="Watch this many seconds (default: until Ctrl-C).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the alerts and kills as JSON.")
def monitor_cmd(mailbox: bool, via: str, duration: float | None, as_json: bool) -> None:
    """Watch every node: raise owned alerts for version or flag-meaning drift, overfill,
    order-rate anomalies and error bursts; on a critical alert, kill the fleet (unless
    --mailbox). Built in: a scrape every 200 ms, alerts in reports/monitor/alerts.jsonl.
    Through Prometheus: a scrape and an evaluation every second, critical alerts routed by
    Alertmanager to the kill webhook; alerts in reports/monitor/prometheus-alerts.jsonl."""
    from .monitor import watch, watch_prometheus

    lab_ = _lab()
    paths = _monitors(via)
    watchers: dict[str, Any] = {}
    if "prometheus" in paths:
        watchers["prometheus"] = watch_prometheus(lab_, acting=not mailbox)
    if "builtin" in paths:
        watchers["builtin"] = watch(lab_, acting=not mailbox)
    if not as_json:
        out.print(f"watching {len(lab_.settings.node_names)} nodes via {via}; Ctrl-C to stop")
    with suppress(KeyboardInterrupt):
        _follow_alerts(watchers, duration, quiet=as_json)
    results = {path: w.stop() for path, w in watchers.items()}
    if as_json:
        doc = {path: r.to_json() for path, r in results.items()}
        _emit_json(doc.get(via, doc))
    else:
        for path, r in results.items():
            out.print(f"{path}: {len(r.alerts)} alerts, {len(r.kills)} kills", highlight=False)


def _follow_alerts(watchers: dict[str, Any], duration: float | None, quiet: bool) -> None:
    """Print each new alert of every path as it comes, for `duration` s or until Ctrl-C."""
    deadline = time.monotonic() + duration if duration else None
    seen = dict.fromkeys(watchers, 0)
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.2)
        for path, watcher in watchers.items():
            alerts = watcher.alerts
            for alert in alerts[seen[path] :]:
                if not quiet:
                    out.print(
                        f"{path}: {alert.severity} {alert.rule} {alert.node}: "
                        f"{escape(alert.summary)} (owner {alert.owner}, action {alert.action}, "
                        f"runbook {alert.runbook})",
                        highlight=False,
                    )
            seen[path] = len(alerts)


# -- experiments and the report ---------------------------------------------------------------
@main.group()
def experiment() -> None:
    """Chaos experiments: the 2012 failures, run unsafe (to reproduce the damage) or guarded."""


@experiment.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def experiment_list(as_json: bool) -> None:
    """The experiments in experiments/ (a file that does not load is listed with its error)."""
    from .experiments.loader import list_experiments

    infos = list_experiments()
    if as_json:
        _emit_json([i.to_json() for i in infos])
        return
    table = Table("id", "title", "parameters", title="experiments")
    for i in infos:
        params = ", ".join(f"{k}={v}" for k, v in i.parameters.items())
        table.add_row(i.id, escape(i.error or i.title), escape(params) or "-")
    out.print(table)


_MODE = click.option(
    "--mode",
    type=click.Choice(["unsafe", "guarded"]),
    default="unsafe",
    show_default=True,
    help="unsafe: no guard (the 2012 way); guarded: every guard.",
)


@experiment.command("run")
@click.argument("ident", metavar="ID|FILE")
@_MODE
@click.option(
    "--guards",
    "guards_text",
    metavar="LIST",
    help="Exactly these guards instead (comma-separated, all or none); the mode then only "
    "labels the run.",
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter (repeat).")
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the journal here (default: reports/journals/...).",
)
@click.option(
    "--expect",
    "judge_expectations",
    is_flag=True,
    help="Exit 0 when the file's expectations for the mode were met (an unsafe run is "
    "expected to deviate), 1 otherwise.",
)
@click.option(
    "--monitor",
    "via",
    type=_VIA,
    default="builtin",
    show_default=True,
    help="Which path of the monitor watches the run: knight's own scraper, the lab's "
    "Prometheus and Alertmanager (knight lab up --observe), or both side by side.",
)
@_inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the journal as JSON.")
@_NO_LIVE
def experiment_run(
    ident: str,
    mode: str,
    guards_text: str | None,
    sets: tuple[str, ...],
    journal_path: Path | None,
    judge_expectations: bool,
    via: str,
    inventory: Path | None,
    as_json: bool,
    no_live: bool,
) -> None:
    """Run one experiment (exit 0: the hypothesis held; 1: it deviated; 2: bad input).

    On a terminal a live table follows the run: per node its release, what each flag the
    experiment sets means to its code, parent and child orders per second, excess shares,
    alerts and marks; the step under way and the time since the start.

    With --inventory the experiment acts on the fleet the inventory declares, over ssh and
    HTTP alone: its group `routers` must also name the market (knight_venue_url,
    knight_venue_token_file, knight_load_host; `knight lab inventory` writes them for an ssh
    lab). A fault that needs the Docker engine (partition, delay, corrupt) is refused before
    the run starts, naming its step; see docs/fleets.md."""
    from .experiments.loader import load_experiment, parse_sets
    from .experiments.run import run_experiment
    from .guards.sets import GuardSet
    from .view.run import RunView

    lab_ = _experiment_lab(inventory)
    nodes = lab_.settings.node_names if inventory is not None else None
    exp = load_experiment(ident, parse_sets(sets), fleet=nodes)
    guards = GuardSet.parse(guards_text) if guards_text is not None else GuardSet.for_mode(mode)
    view = RunView(lab_.settings.node_names) if _live_wanted(no_live, as_json) else None
    title = f"{exp.id} ({mode}, guards {guards.label()})"
    with _shown(title, view, quiet=as_json) as say:
        observe = view.observe if view is not None else None
        result = run_experiment(
            lab_, exp, mode, guards, journal_path, say=say, observe=observe, monitors=_monitors(via)
        )
    if as_json:
        _emit_json(result.journal)
    else:
        _print_run(result)
    if judge_expectations and result.journal["status"] != "interrupted":
        sys.exit(0 if result.journal.get("expectations_met") else 1)
    sys.exit(result.exit_code)


def _print_run(result) -> None:
    doc = result.journal
    o = doc["outcome"]
    colour = "green" if not doc["deviated"] else "red"
    out.print(
        f"[{colour}]{doc['experiment']} {doc['mode']}: {doc['status']}[/{colour}] in "
        f"{doc['duration_s']:.1f}s — excess shares {o['excess_shares']:,}, runaway nodes "
        f"{', '.join(o['runaway_nodes']) or 'none'}, detected {o['detected_at_s']}, killed "
        f"{o['killed_at_s']}, loss ${o['loss_usd']:,.0f}",
        highlight=False,
    )
    for guard in (e for e in doc["timeline"] if e["kind"] == "guard"):
        out.print(f"  {guard['t']:.2f}s {escape(guard['detail'])}", highlight=False)
    met = doc.get("expectations_met")
    if met is not None:
        out.print(f"expectations {'met' if met else '[red]NOT met[/red]'}")
    out.print(f"journal: {result.path}", highlight=False)


@experiment.command("export")
@click.argument("ident", metavar="ID|FILE")
@click.option(
    "--to",
    "to",
    type=click.Choice(["chaostoolkit"]),
    required=True,
    help="The format: chaostoolkit (a Chaos Toolkit experiment, JSON).",
)
@_MODE
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter (repeat).")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write it here (default: standard output).",
)
@click.option(
    "--inventory",
    "inventory",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Run it on the fleet this inventory declares: its path goes into the configuration "
    "as knight_inventory (docs/chaostoolkit.md).",
)
def experiment_export(
    ident: str,
    to: str,
    mode: str,
    sets: tuple[str, ...],
    out_path: Path | None,
    inventory: Path | None,
) -> None:
    """Write an experiment as a Chaos Toolkit experiment to run with `chaos run` (its
    parameters are the configuration: `chaos run --var node=smars-3` sets one)."""
    from .chaostoolkit.export import export_experiment
    from .experiments.loader import load_experiment, parse_sets

    nodes = None
    if inventory is not None:
        nodes = _experiment_lab(inventory).settings.node_names  # checked whole: exit 2
    exp = load_experiment(ident, parse_sets(sets), fleet=nodes)
    doc = export_experiment(exp, mode, to, inventory)
    text = json.dumps(doc, indent=2) + "\n"
    if out_path is None:
        click.echo(text, nl=False)
        return
    try:
        out_path.write_text(text)
    except OSError as exc:
        raise click.UsageError(f"--out {out_path}: {exc.strerror}") from None
    err.print(f"wrote {escape(str(out_path))}", highlight=False)


@experiment.command("matrix")
@click.option(
    "--experiments",
    "ids",
    metavar="LIST",
    help="Comma-separated experiment ids (default: skipped_node, reused_flag, rollback).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
@_NO_LIVE
def experiment_matrix(ids: str | None, as_json: bool, no_live: bool) -> None:
    """Every experiment x {no guard, each guard alone, all guards}: the defense-in-depth table
    of excess shares (journals in reports/journals, the table in reports/index.md). On a
    terminal it shows the runs done, the time left and the run under way, live."""
    from .experiments.matrix import matrix_size, run_matrix
    from .view.progress import Countdown
    from .view.run import RunsView

    chosen = [i.strip() for i in ids.split(",")] if ids else None
    lab_ = _lab()
    view = None
    if _live_wanted(no_live, as_json):
        view = RunsView(Countdown("matrix", matrix_size(chosen), "runs"), lab_.settings.node_names)
    with _shown("matrix", view, quiet=as_json) as say:
        matrix = run_matrix(lab_, chosen, say=say, observe=view.observe if view else None)
    met = _matrix_expectations(matrix.journals)
    missed = [f"{e} with {c}" for e, row in met.items() for c, ok in row.items() if ok is False]
    if as_json:
        _emit_json(matrix.to_json() | {"expectations_met": met})
    else:
        table = Table("experiment", *matrix.columns, title="excess shares by guard set")
        for exp_id, row in matrix.cells.items():
            table.add_row(
                exp_id, *(f"{row[c]:,}" if row.get(c) is not None else "-" for c in matrix.columns)
            )
        out.print(table)
        if missed:
            out.print(f"[red]expectations NOT met: {', '.join(missed)}[/red]", highlight=False)
    sys.exit(1 if missed else 0)


def _matrix_expectations(journals: dict[str, dict[str, str]]) -> dict[str, dict[str, bool | None]]:
    """experiment -> column -> whether the run met its file's expectations: true or false where
    the column's guards are its mode's own (none, all), null where they are not (one guard
    alone: measured, not judged). A journal that cannot be read counts as not met."""
    from .experiments.journal import JournalError, read_journal

    met: dict[str, dict[str, bool | None]] = {}
    for exp_id, row in journals.items():
        for column, path in row.items():
            try:
                ok = read_journal(Path(path)).get("expectations_met")
            except JournalError:
                ok = False
            met.setdefault(exp_id, {})[column] = ok
    return met


@main.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def report_cmd(as_json: bool) -> None:
    """Write reports/index.md and index.html (the runs beside 2012, the defense-in-depth
    matrix) and a page (Markdown and HTML) and a plot per run, from the journals; print the
    table."""
    from .report.build import SUMMARY_COLUMNS, build_report
    from .settings import load_settings

    s = load_settings()
    result = build_report(s.reports / "journals", s.reports)
    if as_json:
        _emit_json(result.to_json())
        return
    table = Table(*SUMMARY_COLUMNS, title=str(result.index))
    for row in result.rows:
        table.add_row(*(escape(row[c]) for c in SUMMARY_COLUMNS))
    out.print(table)
    for path, reason in result.skipped:
        out.print(f"[yellow]skipped {escape(str(path))}: {escape(reason)}[/yellow]")


@main.command("verify")
@click.option(
    "--release", metavar="VERSION", help="Every node must run VERSION (default: only uniform)."
)
@_inventory_option
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def verify_cmd(release: str | None, inventory: Path | None, pytest_args: tuple[str, ...]) -> None:
    """Run the testinfra suite (tests/infra) on every node: release, tree hash, flags, ports,
    user, throughput floor, and one fleet-wide check that names each node that differs.
    The exit code is pytest's own (0 passed, 1 a test failed, 2 interrupted, 4 usage error, 5 no
    test collected)."""
    from .deploy.operations import check_version
    from .deploy.verify import verify

    if release is not None:
        check_version(release)
    result = verify(_fleet(inventory), release, list(pytest_args))
    # A pytest ended by a signal exits as a shell would report it: 128 + the signal.
    sys.exit(result.returncode if result.returncode >= 0 else 128 - result.returncode)


@main.command("faults")
@click.option(
    "--seed", type=int, default=2012, show_default=True, help="Seed of the fault schedules."
)
@click.option(
    "--count",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="How many schedules (fault, node, phase) to run.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the campaign (default: reports/faults.json).",
)
@_inventory_option
@_NO_LIVE
def faults_cmd(
    seed: int, count: int, json_path: Path | None, inventory: Path | None, no_live: bool
) -> None:
    """Deploy under a seeded campaign of faults (stop, pause, partition, corrupt a staged
    artifact) landing in each phase; count mixed-version end states and lost orders. On a
    terminal it shows the schedules done and the time left, live.

    With --inventory the campaign runs on that fleet and draws only the faults that can be done
    over ssh (kill, stop and pause of the router by signal); see docs/fleets.md."""
    from .chaos.campaign import run_campaign
    from .view.progress import Countdown

    lab_ = _experiment_lab(inventory)
    path = json_path or lab_.settings.reports / "faults.json"
    title = f"fault campaign, seed {seed}"
    done = Countdown(title, count, "schedules")
    with _shown(title, done if _live_wanted(no_live) else None) as say:

        def show(r) -> None:
            done.done += 1
            mark = "ok" if r.ok else "[red]BROKEN[/red]"
            say(f"{done.done}/{count} {r.schedule}: {r.status}, lost {r.lost_orders} — {mark}")

        campaign = run_campaign(lab_, seed, count, progress=show)
    doc = campaign.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    out.print(
        f"{doc['schedules']} schedules{' (interrupted)' if campaign.interrupted else ''}: "
        f"{doc['mixed_end_states']} mixed end states, {doc['lost_orders']} lost orders; "
        f"statuses {doc['statuses']} — written to {path}"
    )
    if campaign.interrupted:
        sys.exit(130)
    sys.exit(0 if campaign.mixed == 0 and campaign.lost_orders == 0 else 1)


# -- bench -------------------------------------------------------------------------------------
#: The parts of `knight bench`, in the order they run (each one's figures: toolkit/report/bench.py).
BENCH_PARTS = ("lab", "deploy", "ssh", "guards", "observe", "chaos", "scale")


@main.command()
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the figures (default: reports/bench.json).",
)
@click.option(
    "--only",
    type=click.Choice(list(BENCH_PARTS)),
    multiple=True,
    help="Measure only these parts (default: all).",
)
@click.option("--check", is_flag=True, help="Exit 1 when a figure measured misses its goal.")
def bench(json_path: Path | None, only: tuple[str, ...], check: bool) -> None:
    """Measure the lab's performance figures, each as a ratio within one run."""
    from .report.bench import run_bench

    lab_ = _lab()
    path = json_path or lab_.settings.reports / "bench.json"
    with _progress("benchmarking") as say:
        figures = run_bench(
            lab_,
            path,
            progress=say,
            parts=only or BENCH_PARTS,
        )
    table = Table("figure", "value", "goal")
    for name, entry in figures.items():
        table.add_row(name, escape(str(entry.get("value"))), escape(entry.get("goal") or ""))
    out.print(table)
    out.print(f"written to {path}")
    if not check:
        return
    missed = [
        f"{name} {entry.get('value')} (goal {entry['goal']})"
        for name, entry in figures.items()
        if entry.get("goal") and not goal_met(entry.get("value"), entry["goal"])
    ]
    for line in missed:
        out.print(f"[red]goal missed: {escape(line)}[/red]", highlight=False)
    if not missed:
        out.print("every goal met")
    sys.exit(1 if missed else 0)


#: A bench goal as toolkit/report/bench.py writes it: a comparison and a number, "<= 250".
_GOAL = re.compile(r"\s*(>=|<=|==|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*")
_COMPARE = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}


def goal_met(value: Any, goal: str) -> bool:
    """Whether a bench figure meets its goal. A figure that is not a finite number (not
    measured: null) does not meet any."""
    found = _GOAL.fullmatch(goal)
    if found is None:
        raise ValueError(f"goal {goal!r}: expected a comparison and a number, like '<= 10'")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return bool(_COMPARE[found.group(1)](value, float(found.group(2))))


if __name__ == "__main__":  # pragma: no cover
    main()
