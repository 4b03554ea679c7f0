"""`python -m app [serve]`: serve the API with uvicorn on the configured host and port.
`python -m app run --worker-python PYTHON`: the API and the ingestion worker together, supervised (`make run`).
`python -m app keys create|list|revoke`: the API keys (app/access.py)."""

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
    keys = commands.add_parser("keys", help="create, list or revoke API keys").add_subparsers(dest="action")
    create = keys.add_parser("create", help="print a new key (it is shown only this once)")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["read", "write", "admin"], default="read")
    create.add_argument("--collections", default="default", help="comma-separated, or * for every collection")
    keys.add_parser("list", help="every key, without the keys themselves")
    revoke = keys.add_parser("revoke", help="the key stops working at once")
    revoke.add_argument("--name", required=True)
    args = parser.parse_args()
    if args.command == "keys":
        raise SystemExit(manage_keys(args))
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
    from app.index import separate_process_problem
    from app.main import create_app
    from app.store import open_store

    settings = Settings()
    if problem := separate_process_problem(settings):
        raise SystemExit(problem)
    server = settings.server
    if server.keys_required and not any(key.revoked_at is None for key in open_store(settings.storage).list_keys()):
        raise SystemExit(
            f"API keys are required (server.require_keys; the API listens on {server.host}) but none exists: "
            "create one with `python -m app keys create --name admin --scope admin --collections '*'`"
        )
    uvicorn.run(create_app(settings), host=server.host, port=server.port, log_config=None)


def manage_keys(args: argparse.Namespace) -> int:
    from app.access import create_key
    from app.config import Settings
    from app.errors import RagError
    from app.store import open_store

    store = open_store(Settings().storage)
    try:
        if args.action == "create":
            collections = [c.strip() for c in args.collections.split(",") if c.strip()]
            print(create_key(store, args.name, args.scope, collections))
        elif args.action == "revoke":
            if not store.revoke_key(args.name):
                print(f"no active key named {args.name!r}", file=sys.stderr)
                return 1
        elif args.action == "list":
            for key in store.list_keys():
                state = "revoked" if key.revoked_at else "active"
                print(f"{key.name}\t{key.scope}\t{','.join(key.collections)}\t{state}")
        else:
            print("usage: python -m app keys create|list|revoke", file=sys.stderr)
            return 2
    except RagError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    main()
