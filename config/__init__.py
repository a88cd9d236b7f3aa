"""Settings from the environment and the policy files (escalation ladder, risk rules, rota,
templates), validated at start-up so a bad deployment fails before it handles a child."""

from config.errors import ConfigError
from config.loading import load_policy
from config.policy import Policy
from config.settings import Settings, load_settings

__all__ = ["ConfigError", "Policy", "Settings", "load_policy", "load_settings"]
