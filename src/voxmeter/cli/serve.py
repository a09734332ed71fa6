"""``voxmeter serve`` and ``voxmeter demo``."""

from __future__ import annotations

import copy
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import click
import orjson
import uvicorn

from voxmeter.cli._common import info, prepare_schema, settings, with_services
from voxmeter.domain.clock import system_clock
from voxmeter.domain.demo import DEMO_OPERATION, month_of_usage
from voxmeter.domain.models import TokenScope
from voxmeter.server import connections
from voxmeter.services import Services
from voxmeter.services.admin import IssuedToken


def _logging_config() -> dict[str, Any]:
    """uvicorn's own logging, plus voxmeter's JSON lines on stderr."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["message"] = {"format": "%(message)s"}
    config["handlers"]["voxmeter"] = {
        "formatter": "message",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["voxmeter"] = {"handlers": ["voxmeter"], "level": "INFO", "propagate": False}
    return config


def _serve(
    host: str, port: int, workers: int, certfile: Path | None = None, keyfile: Path | None = None
) -> None:
    url = settings().database_url
    prepare_schema(url)
    # Workers are separate processes: they read their settings from the
    # environment, which is where the CLI's own options were put. Their
    # metrics meet in a directory they all write (prometheus multiprocess).
    with tempfile.TemporaryDirectory(prefix="voxmeter-metrics-") as metrics_dir:
        if workers > 1:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run(
            "voxmeter.server.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=_logging_config(),
            access_log=False,  # voxmeter writes its own, with the request id
            timeout_graceful_shutdown=70,  # in-flight calls finish (60 s limit + margin)
            # Header, body and connection limits, answered in the envelope.
            http=connections.PROTOCOL_PATH,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            **connections.uvicorn_options(),
        )


_HOST = click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
_PORT = click.option("--port", type=int, default=8000, show_default=True, help="Port to bind.")
_WORKERS = click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True,
    help="Worker processes; they share the database and its limits.",
)  # fmt: skip


_PEM = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@_HOST
@_PORT
@_WORKERS
@click.option(
    "--ssl-certfile", type=_PEM,
    help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile.",
)  # fmt: skip
@click.option("--ssl-keyfile", type=_PEM, help="The PEM private key of --ssl-certfile.")
def serve(
    host: str, port: int, workers: int, ssl_certfile: Path | None, ssl_keyfile: Path | None
) -> None:
    """Serve the wolkvox-compatible API (HTTPS with --ssl-certfile and --ssl-keyfile)."""
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise click.UsageError("give --ssl-certfile and --ssl-keyfile together")
    _serve(host, port, workers, ssl_certfile, ssl_keyfile)


@click.command()
@click.option(
    "--database", default="voxmeter-demo.db", show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file for the demo; replaced if it exists.",
)  # fmt: skip
@_HOST
@_PORT
@click.option("--no-serve", is_flag=True, help="Build the demo database and exit.")
def demo(database: Path, host: str, port: int, no_serve: bool) -> None:
    """Build a demo operation with a month of usage, print a token, and serve it."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    os.environ["VOXMETER_DATABASE_URL"] = f"sqlite:///{database}"

    async def build(services: Services) -> tuple[int, IssuedToken, IssuedToken]:
        demo = DEMO_OPERATION
        operation = await services.operations.create(
            demo.name,
            licenses=demo.licenses,
            pbx=demo.pbx,
            services=demo.services,
            timezone=demo.timezone,
            server_id=demo.server_id,
        )
        report = await services.tokens.create(operation, TokenScope.REPORT, "demo reports")
        ingest = await services.tokens.create(operation, TokenScope.INGEST, "demo ingestion")
        usage = month_of_usage(operation.timezone, system_clock(), operation.services)
        outcome = await services.usage.record(operation, list(usage))
        return len(outcome.accepted), report, ingest

    count, report, ingest = with_services(build)
    base = f"http://{host}:{port}"
    event = orjson.dumps(
        {
            "id": f"try-{uuid.uuid4()}",
            "meter": "ivr_calls",
            "quantity": 1,
            "time": system_clock().isoformat(timespec="seconds"),
        }
    ).decode()
    info(f"demo operation {DEMO_OPERATION.name!r} with {count} usage events in {database}")
    info(f"report token ({report.token.id}), then ingest token ({ingest.token.id}):")
    click.echo(report.secret)
    click.echo(ingest.secret)
    info("try:")
    info(f"  curl -s -H 'wolkvox-token: {report.secret}' '{base}/api/v2/billing.php?api=ivr_calls'")
    info(
        f"  curl -s -H 'wolkvox-token: {ingest.secret}' -H 'content-type: application/x-ndjson'"
        f" '{base}/api/v2/events' -d '{event}'"
    )
    if not no_serve:
        _serve(host, port, 1)
