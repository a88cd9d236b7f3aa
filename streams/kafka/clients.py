"""Connection options shared by Faust, the admin client and the CLI producer.

One place builds SASL/TLS options from settings so every client connects the same way.
"""

from __future__ import annotations

import ssl
from typing import Any

from config.settings import Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers(),
        "security_protocol": settings.kafka_security_protocol,
    }
    ctx = _ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if settings.kafka_sasl_mechanism:
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        assert settings.kafka_sasl_password is not None  # enforced by Settings validation
        kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


def faust_broker(settings: Settings) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in settings.bootstrap_servers().split(",") if hp]


def faust_credentials(settings: Settings) -> Any:
    import faust  # only the Faust worker needs it; the engine process never imports Faust

    ctx = _ssl_context(settings)
    if settings.kafka_sasl_mechanism:
        assert settings.kafka_sasl_password is not None
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None
