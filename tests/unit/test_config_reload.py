"""The rota and key reload (streams/worker/config_reload.py): a changed file that passes its
start-up checks replaces the one in use; one that does not is refused with the same one-line
error and the old one stays; every outcome is counted; nothing is retried until the file
changes again. Plain files, the real loaders."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from config.errors import ConfigError
from config.loading import load_policy
from config.policy import Rota
from config.settings import POLICY_DIR
from streams.worker.config_reload import Reloader, Watched


def policy_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dest


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    st = path.stat()  # a rewrite within the same mtime tick must still be seen
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


class Harness:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.rota: Rota = load_policy(directory).rota
        self.counted: Counter[tuple[str, str]] = Counter()
        self.reloader = Reloader(
            [Watched("rota", directory / "rota.yaml", self.load, self.apply)],
            count=lambda kind, outcome: self.counted.update([(kind, outcome)]),
        )

    def load(self) -> Rota:
        return load_policy(self.directory).rota

    def apply(self, rota: Any) -> None:
        self.rota = rota


def test_an_unchanged_file_is_left_alone(tmp_path: Path) -> None:
    h = Harness(policy_copy(tmp_path))
    before = h.rota
    assert h.reloader.check() == [("rota", "unchanged", "")]
    assert h.rota is before and not h.counted


def test_a_good_change_is_applied_once_and_counted(tmp_path: Path) -> None:
    h = Harness(policy_copy(tmp_path))
    rewrite(h.directory / "rota.yaml", '"+447700900101"', '"+447700900199"')
    ((kind, outcome, sha),) = h.reloader.check()
    assert (kind, outcome) == ("rota", "applied") and len(sha) == 16
    assert h.rota.people["dsw-day"].phone == "+447700900199"
    assert h.reloader.check() == [("rota", "unchanged", "")]
    assert h.counted == Counter({("rota", "applied"): 1})


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ('"+447700900101"', '"07700 900101"', "people.dsw-day.phone"),  # not E.164
        ("{office_hours: [dsw-day], out_of_hours: [edt]}", "{office_hours: [nobody]}", "nobody"),
        ("people:", "people: [", "line 8"),  # half-written: the YAML error names the line
    ],
)
def test_a_bad_change_is_refused_and_the_old_rota_stays(
    tmp_path: Path, old: str, new: str, names: str
) -> None:
    h = Harness(policy_copy(tmp_path))
    before = h.rota
    rewrite(h.directory / "rota.yaml", old, new)
    ((kind, outcome, message),) = h.reloader.check()
    assert (kind, outcome) == ("rota", "refused") and names in message, message
    assert "\n" not in message and "+4477" not in message  # one line, no phone numbers
    assert h.rota is before
    # Not retried on every poll: only when the file changes again, and then applied.
    assert h.reloader.check() == [("rota", "unchanged", "")]
    rewrite(h.directory / "rota.yaml", new, old)
    assert h.reloader.check()[0][1] == "applied"
    assert h.counted == Counter({("rota", "refused"): 1, ("rota", "applied"): 1})


def test_a_deleted_file_is_refused_and_a_loader_that_raises_elsewhere_is_not_swallowed(
    tmp_path: Path,
) -> None:
    h = Harness(policy_copy(tmp_path))
    (h.directory / "rota.yaml").unlink()
    ((_, outcome, message),) = h.reloader.check()
    assert outcome == "refused" and "cannot read" in message

    def broken() -> Any:
        raise RuntimeError("a bug, not a bad file")

    path = tmp_path / "keys.yaml"
    path.write_text("keys: []\n")
    watched = Watched("api_keys", path, broken, lambda _ring: None)
    path.write_text("keys: []\n# changed\n")
    with pytest.raises(RuntimeError):
        Reloader([watched]).check()


def test_each_file_is_judged_on_its_own(tmp_path: Path) -> None:
    applied: list[str] = []
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("a")
    bad.write_text("a")

    def refuse() -> Any:
        raise ConfigError(f"{bad}: keys.0.sha256: wrong")

    reloader = Reloader(
        [
            Watched("api_keys", bad, refuse, applied.append),
            Watched("rota", good, lambda: "new rota", applied.append),
        ]
    )
    good.write_text("bb")
    bad.write_text("bb")
    outcomes = [(k, o) for k, o, _ in reloader.check()]
    assert outcomes == [("api_keys", "refused"), ("rota", "applied")]
    assert applied == ["new rota"]
