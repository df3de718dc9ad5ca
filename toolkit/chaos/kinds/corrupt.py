"""corrupt: the node's staged copy of a release is damaged (one file gets an extra line), as a
bad copy or a full disk would leave it. A deploy must notice before it runs that copy."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.errors import KnightError
from toolkit.lab.lab import Lab
from toolkit.lab.paths import SMARS_HOME
from toolkit.releases.catalog import VERSION


class Corrupt(Fault):
    NAME = "corrupt"
    SUMMARY = "staged release damaged"

    def inject(self) -> None:
        release = self.options["release"]
        if not VERSION.fullmatch(str(release)):  # it becomes part of a path in a shell command
            raise KnightError(f"corrupt: {release!r} is not a release version")
        path = f"{SMARS_HOME}/releases/{release}/smars/wire.py"
        # Release trees belong to the deploy user: the router's own user cannot write them.
        self.lab.engine.exec(
            self.container,
            ["sh", "-c", f"[ -f {path} ] && echo '# corrupt' >> {path}"],
            user=self.lab.settings.deploy_user,
        )

    def undo(self) -> None:
        _drop_damaged(self.lab, self.container)

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return repair(lab, lambda c: _drop_damaged(lab, c))


def _drop_damaged(lab: Lab, container) -> bool:
    """Remove staged copies that carry the fault's mark, except the one running (a deploy
    stages a verified copy again)."""
    script = (
        f"cd {SMARS_HOME}/releases && current=$(basename $(readlink {SMARS_HOME}/current)) && "
        'found=1 && for d in */; do d=${d%/}; [ "$d" = "$current" ] && continue; '
        'grep -q \'^# corrupt$\' "$d/smars/wire.py" 2>/dev/null && rm -rf "$d" && found=0; '
        "done; exit $found"
    )
    code, _ = lab.engine.exec(container, ["sh", "-c", script], user=lab.settings.deploy_user)
    return code == 0
