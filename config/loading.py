"""Read the policy directory (escalation.yaml, risk.yaml, rota.yaml, templates/) into the pure
models of config/policy.py, turning every problem into a one-line ConfigError that names the
file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import jinja2
import yaml
from pydantic import BaseModel, ValidationError

from config.errors import ConfigError, describe_validation_error
from config.policy import (
    EscalationPolicy,
    Policy,
    RiskRules,
    Rota,
    Templates,
    police_routing_gaps,
)
from schemas.alerts import Channel

_TEMPLATE_SUFFIX = {Channel.SMS: ".sms.j2", Channel.EMAIL: ".email.j2"}
M = TypeVar("M", bound=BaseModel)


def _load_yaml_model(path: Path, model: type[M]) -> M:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from None


def _load_templates(directory: Path) -> Templates:
    sources: dict[tuple[str, Channel], str] = {}
    if not directory.is_dir():
        raise ConfigError(f"{directory}: template directory not found")
    for channel, suffix in _TEMPLATE_SUFFIX.items():
        for path in sorted(directory.glob(f"*{suffix}")):
            source = path.read_text()
            try:
                Templates({("check", channel): source})
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"{path}: line {exc.lineno}: {exc.message}") from None
            sources[(path.name.removesuffix(suffix), channel)] = source
    return Templates(sources)


def load_policy(directory: Path) -> Policy:
    """Load and cross-check every policy file; raises ConfigError with a one-line message."""
    risk = _load_yaml_model(directory / "risk.yaml", RiskRules)
    escalation = _load_yaml_model(directory / "escalation.yaml", EscalationPolicy)
    rota = _load_yaml_model(directory / "rota.yaml", Rota)
    templates = _load_templates(directory / "templates")
    needed = escalation.template_names() | {(escalation.tier_raised_template, c) for c in Channel}
    missing = sorted(
        f"{name}{_TEMPLATE_SUFFIX[ch]}" for name, ch in needed if not templates.has(name, ch)
    )
    if missing:
        raise ConfigError(
            f"{directory / 'escalation.yaml'}: templates not found in "
            f"{directory / 'templates'}: {', '.join(missing)}"
        )
    unrouted = police_routing_gaps(escalation, rota)
    if unrouted:
        raise ConfigError(
            f"{directory / 'rota.yaml'}: local_authorities.{unrouted[0]}.police_contact: "
            "required because a ladder notifies the police_liaison role (who is told when the "
            "child's police force is unknown)"
        )
    return Policy(risk=risk, escalation=escalation, rota=rota, templates=templates)
