"""`python -m app [serve]`: serve the API with uvicorn on the configured host and port.
`python -m app run --worker-python PYTHON`: the API and the ingestion worker together, supervised (`make run`)."""

from __future__ import annotations

import argparse
import sys

from app.logs import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API (the default)")
    run = commands.add_parser("run", help="the API and the worker, restarted when they crash")
    run.add_argument("--worker-python", default=sys.executable, help="the Python of the worker's environment")
    args = parser.parse_args()
    configure_logging()
    if args.command == "run":
        from app.supervisor import supervise

        api = [sys.executable, "-m", "app", "serve"]
        worker = [args.worker_python, "-m", "ingest"]
        raise SystemExit(supervise({"API": api, "worker": worker}))
    serve()


def serve() -> None:
    import uvicorn

    from app.config import Settings
    from app.main import create_app

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port, log_config=None)


if __name__ == "__main__":
    main()
