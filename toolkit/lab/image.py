"""Build the lab image: a Debian base made locally with mmdebstrap, then the one-image-three-roles
lab image on top of it (or on top of `BASE_IMAGE`, any image with python3).

Each build command it runs is logged at debug level to "knight.image".
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker.errors
import tenacity

from toolkit.errors import KnightError
from toolkit.settings import Settings

from .engine import Engine

__all__ = ["BASE_PACKAGES", "build_base", "build_image", "build_observe_image"]

log = logging.getLogger("knight.image")

Progress = Callable[[str], None]

#: python3 for every role; iproute2 and procps so operators (and testinfra) can look inside.
BASE_PACKAGES = ("python3", "iproute2", "procps")

_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


def _ensure_mmdebstrap(say: Progress) -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() != 0:
        raise KnightError(
            "mmdebstrap is missing and this is not root: install it (apt-get install mmdebstrap), "
            "or set BASE_IMAGE to a local image that has python3"
        )
    say("installing mmdebstrap with apt-get")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "mmdebstrap"]):
        log.debug("run %s", shlex.join(cmd))
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if done.returncode != 0:
            raise KnightError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return shutil.which("mmdebstrap") or "mmdebstrap"


def build_base(
    settings: Settings, engine: Engine, progress: Progress | None = None, force: bool = False
) -> str:
    """The base image: a minimal Debian with python3, made by mmdebstrap and `docker import`."""
    say = progress or (lambda _m: None)
    if settings.base_image_override:
        if not engine.image_exists(settings.base_image_override):
            raise KnightError(f"BASE_IMAGE={settings.base_image_override} is not a local image")
        return settings.base_image_override
    if engine.image_exists(settings.base_image) and not force:
        say(f"{settings.base_image}: present")
        return settings.base_image
    tool = _ensure_mmdebstrap(say)
    with tempfile.TemporaryDirectory(prefix="knight-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        cmd = [tool, "--variant=apt", "--include=" + ",".join(BASE_PACKAGES)]
        cmd += [f"--dpkgopt=path-exclude={p}" for p in _EXCLUDES]
        cmd += [settings.debian_suite, str(tarball)]
        say(f"mmdebstrap {settings.debian_suite} (python3): about half a minute")
        # A mirror can drop a connection mid-download; a second go usually gets through.
        for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(3), reraise=True):
            with attempt:
                log.debug("run %s", shlex.join(cmd))
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise KnightError(f"mmdebstrap failed: {done.stderr.strip()[-800:]}")
        repo, tag = settings.base_image.split(":", 1)
        say(f"docker import → {settings.base_image}")
        log.debug("docker import %s as %s", tarball, settings.base_image)
        engine.client.api.import_image_from_file(
            str(tarball), repository=repo, tag=tag, changes=['CMD ["python3"]']
        )
    return settings.base_image


def _context(settings: Settings, into: Path) -> None:
    """Assemble the build context: Dockerfile, entry point, the router's keeper, sshd's configuration, the market package, vendored tenacity."""
    src = settings.image_source
    shutil.copy2(src / "Dockerfile", into / "Dockerfile")
    shutil.copy2(src / ".dockerignore", into / ".dockerignore")
    (into / "bin").mkdir()
    shutil.copy2(src / "bin" / "knight-node", into / "bin" / "knight-node")
    shutil.copy2(src / "routerd.py", into / "routerd.py")
    shutil.copy2(src / "sshd_config", into / "sshd_config")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(src / "market", into / "market", ignore=ignore)
    # tenacity is pure Python: the copy the toolkit runs with is the one the load generator gets.
    shutil.copytree(Path(tenacity.__file__).parent, into / "vendor" / "tenacity", ignore=ignore)


def build_image(settings: Settings, engine: Engine, progress: Progress | None = None) -> str:
    """Build the lab image; Docker's layer cache makes an unchanged rebuild take a second."""
    say = progress or (lambda _m: None)
    base = build_base(settings, engine, say)
    with tempfile.TemporaryDirectory(prefix="knight-image-") as tmp:
        _context(settings, Path(tmp))
        _docker_build(engine, Path(tmp), settings.image, base, "lab", say)
    return settings.image


def build_observe_image(
    settings: Settings, engine: Engine, progress: Progress | None = None
) -> str:
    """Build the observe image (Prometheus and Alertmanager from Debian's packages, and the
    webhook receiver) on the same base as the lab image; its own tag, so the lab image's build
    is not made longer by it."""
    say = progress or (lambda _m: None)
    base = build_base(settings, engine, say)
    src = settings.observe_source / "image"
    with tempfile.TemporaryDirectory(prefix="knight-observe-") as tmp:
        for name in ("Dockerfile", ".dockerignore", "knight-observe", "receiver.py"):
            shutil.copy2(src / name, Path(tmp) / name)
        say("the observe image installs Debian's prometheus packages: about a minute")
        _docker_build(engine, Path(tmp), settings.observe_image, base, "observe", say)
    return settings.observe_image


def _docker_build(
    engine: Engine, context: Path, tag: str, base: str, kind: str, say: Progress
) -> None:
    """`docker build` of a context FROM `base` (never pulled), labelled knight.image=<kind>;
    the untagged images earlier builds of that kind left are pruned."""
    say(f"docker build {tag} (FROM {base})")
    log.debug("docker build %s --tag %s --build-arg BASE_IMAGE=%s", context, tag, base)
    try:
        engine.client.images.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE_IMAGE": base},
            labels={"knight.image": kind},
            rm=True,
            forcerm=True,
            pull=False,
        )
    except docker.errors.BuildError as exc:
        output = "".join(
            str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log
        )
        raise KnightError(f"docker build failed: {exc.msg}\n{output[-1500:]}") from None
    except docker.errors.APIError as exc:
        raise KnightError(f"docker build failed: {exc.explanation or exc}") from None
    # Each rebuild leaves the previous image untagged: do not let them pile up.
    log.debug("docker image prune (dangling, label knight.image=%s)", kind)
    engine.client.images.prune(filters={"dangling": True, "label": f"knight.image={kind}"})
