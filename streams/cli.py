"""``missing-alerts``: run the worker, create topics, send a test absence, check configuration.

Configuration problems end the process with one line on stderr (exit 2), never a traceback: the
operator reading it at night needs the file and field, not a stack.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from config.errors import ConfigError
from config.loading import load_policy
from config.policy import Policy
from config.settings import Settings, load_settings
from schemas.common import Category, Reporter, RiskFlag
from schemas.events import AbsenceReported, ChildProfile


def _load() -> tuple[Settings, Policy]:
    settings = load_settings()
    policy = load_policy(settings.policy_dir)
    from streams.web.auth import load_checked_keys

    load_checked_keys(settings, policy.rota)  # a bad keys file stops start-up here, in one line
    return settings, policy


@click.group()
def cli() -> None:
    """missing-alerts: escalation of missing-from-care episodes."""


@cli.command("check-config")
def check_config() -> None:
    """Load settings and policy files and report what was loaded."""
    settings, policy = _load()
    click.echo(
        f"ok: policy {settings.policy_dir} ({len(policy.escalation.tiers)} tiers, "
        f"{len(policy.rota.people)} people, {len(policy.templates.sources)} templates)"
    )


@cli.command("create-topics")
def create_topics() -> None:
    """Create the pipeline's topics (idempotent; checks partition counts)."""
    from streams.kafka.admin import ensure_topics

    settings, _ = _load()
    created = asyncio.run(ensure_topics(settings))
    click.echo(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))


@cli.command("worker")
@click.option("--web-port", type=int, default=None, help="Override MISSING_ALERTS_WEB_PORT.")
@click.option("--loglevel", default=None, help="Override MISSING_ALERTS_LOG_LEVEL.")
def worker(web_port: int | None, loglevel: str | None) -> None:
    """Run a stream worker (engine + dispatch + web server)."""
    import faust

    from streams.app import Resources, create_app
    from streams.kafka.admin import ensure_topics
    from streams.runtime.clock import clock_from_settings
    from telemetry.logging import configure_logging

    # SIGHUP means "reload the rota and keys" (streams/reload.py), never "exit": ignored until
    # the handler is installed, so one sent during start-up cannot stop the worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings, policy = _load()
    if web_port is not None:
        settings = settings.model_copy(update={"web_port": web_port})
    asyncio.run(ensure_topics(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    wiring = create_app(
        Resources(settings=settings, policy=policy, clock=clock_from_settings(settings))
    )
    level = (loglevel or settings.log_level).upper()
    # Our redacting structlog pipeline owns stdlib logging; Faust must not replace it.
    configure_logging(settings.log_format, level)
    json_logs = settings.log_format == "json"
    wk = faust.Worker(wiring.app, loglevel=level, override_logging=False, quiet=json_logs)
    if json_logs:
        wk.spinner = None  # its progress characters would break the one-JSON-object-a-line stream
    try:
        wk.execute_from_commandline()
    except SystemExit:
        if wiring.engine is not None and wiring.engine.failed_with is not None:
            raise SystemExit(3) from None  # the engine died: let the supervisor restart us
        raise


@cli.command("send-absence")
@click.option("--child", "child_ref", required=True, help="Child reference, e.g. C123.")
@click.option(
    "--risk",
    "flags",
    multiple=True,
    type=click.Choice([f.value for f in RiskFlag] + ["trafficking"]),
    help="Risk flag reported (repeatable); 'trafficking' means trafficking_suspected.",
)
@click.option("--category", type=click.Choice(["missing", "away"]), default="missing")
@click.option("--last-seen", type=click.DateTime(), default=None, help="UTC; default now.")
@click.option("--danger/--no-danger", default=False, help="Reporter marks immediate danger.")
@click.option(
    "--profile-initials", default=None, help="Also send a minimal profile with these initials."
)
def send_absence(
    child_ref: str,
    flags: tuple[str, ...],
    category: str,
    last_seen: datetime | None,
    danger: bool,
    profile_initials: str | None,
) -> None:
    """Produce a test absence report onto the events topic (acks=all)."""
    from streams.kafka.producer import produce

    settings, _ = _load()
    now = datetime.now(UTC)
    seen = last_seen.replace(tzinfo=UTC) if last_seen else now
    risk = frozenset(
        RiskFlag.TRAFFICKING_SUSPECTED if f == "trafficking" else RiskFlag(f) for f in flags
    )
    events: list[Any] = []
    if profile_initials:
        events.append(
            ChildProfile(
                occurred_at=now,
                child_ref=child_ref,
                initials=profile_initials,
                date_of_birth=datetime(2010, 1, 1).date(),
                local_authority=load_policy(settings.policy_dir).rota.default_local_authority,
            )
        )
    events.append(
        AbsenceReported(
            occurred_at=now,
            child_ref=child_ref,
            last_seen_at=min(seen, now),
            category=Category(category),
            reporter=Reporter(role="carer"),
            reported_flags=risk,
            immediate_danger=danger,
        )
    )
    asyncio.run(produce(settings, settings.topic("events"), events))
    click.echo(f"sent absence {events[-1].event_id} for {child_ref}")


@cli.group("export")
def export() -> None:
    """Statutory exports."""


@export.command("ssda903")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option(
    "--rhi-out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write return home interview offered/accepted per period to this CSV.",
)
@click.option(
    "--local-authority",
    "authority",
    default=None,
    help="Whose return (default: the rota's default_local_authority).",
)
def export_ssda903(
    start: datetime, end: datetime, rhi_out: str | None, authority: str | None
) -> None:
    """Write the SSDA903 "Missing" table (CSV) for periods overlapping [--from, --to]."""
    from streams.kafka.reader import read_all
    from streams.ssda903.export import (
        fold_records,
        of_authority,
        rhi_csv,
        select_periods,
        ssda903_csv,
    )

    settings, policy = _load()
    default = policy.rota.default_local_authority

    async def _read() -> tuple[list[dict[str, Any]], dict[str, date]]:
        records = await read_all(settings, settings.topic("episode-events"))
        profiles = await read_all(settings, settings.topic("profiles"))
        events = await read_all(settings, settings.topic("events"))
        dobs: dict[str, date] = {}
        # An imported period's row gave a DOB; a profile (which may also arrive on the events
        # topic) says what the case system holds now, so it wins.
        for wanted in ("historic_episode", "profile"):
            for _key, value in [*profiles, *events]:
                if value.get("type") == wanted and value.get("date_of_birth"):
                    dobs[str(value["child_ref"])] = date.fromisoformat(value["date_of_birth"])
        return [v for _k, v in records], dobs

    records, dobs = asyncio.run(_read())
    periods = of_authority(fold_records(records).values(), authority or default, default)
    result = select_periods(periods, dobs, start.date(), end.date())
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(ssda903_csv(result, dobs), nl=False)
    if rhi_out:
        Path(rhi_out).write_text(rhi_csv(result))


@cli.group("import")
def import_group() -> None:
    """Bring in history from before the system was used."""


@import_group.command("ssda903")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--local-authority",
    "authority",
    default=None,
    help="Whose table it is (default: the rota's default_local_authority).",
)
@click.option("--dry-run", is_flag=True, help="Check the file and report; send nothing.")
def import_ssda903(path: str, authority: str | None, dry_run: bool) -> None:
    """Record the closed periods of an SSDA903 Missing table (the columns the export writes)
    as past episodes: no alert is sent, and re-importing the same file changes nothing. Bad
    rows are refused with their row number and reason (exit 1 if any was refused)."""
    from streams.kafka.producer import produce
    from streams.ssda903.history import MAX_ROWS, parse_missing_table

    settings, policy = _load()
    default = policy.rota.default_local_authority
    if Path(path).stat().st_size > MAX_ROWS * 200:
        raise click.ClickException(f"{path}: larger than {MAX_ROWS} rows of a Missing table")
    raw = Path(path).read_bytes()
    parsed = parse_missing_table(
        raw, authority=authority or default, default_authority=default, now=datetime.now(UTC)
    )
    for refusal in parsed.refused:
        click.echo(f"refused: {refusal}", err=True)
    if parsed.episodes and not dry_run:
        asyncio.run(produce(settings, settings.topic("events"), parsed.episodes))
    verb = "checked" if dry_run else "sent"
    click.echo(f"{verb} {len(parsed.episodes)} periods, refused {len(parsed.refused)} rows")
    if parsed.refused:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="missing-alerts", standalone_mode=False)
    except ConfigError as exc:
        print(f"missing-alerts: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except click.exceptions.Abort:
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main(sys.argv[1:])
