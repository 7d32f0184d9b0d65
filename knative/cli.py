"""`growbin`: run the system locally, invoke one function, migrate, render, inspect dead letters."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"


def _dev(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from knative import local
    from knative.server import ContractHandler
    from shared.core.settings import settings

    os.environ["PORT"] = str(args.port)
    settings.cache_clear()
    local.configure_logging()
    system = local.start()
    server = make_server(
        args.host, args.port, system.app, threaded=True, request_handler=ContractHandler
    )
    http = sum(f.kind == "http" for f in system.registry.values())
    print(
        f"growbin dev: {http} HTTP functions on http://{args.host}:{args.port}, "
        f"{len(system.broker.triggers)} triggers, {len(system.cron.scheduled)} schedules; "
        f"data in {settings().data_dir}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        system.stop()
    return 0


class Refused(Exception):
    """A mistake at the keyboard: `main` prints it as one line and exits 2."""


def _pairs(items: list[str], sep: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise Refused(f"{item!r} is not of the form name{sep}value")
        out[key.strip()] = value.strip()
    return out


def _data(raw: str | None) -> Any:
    if raw is None:
        return None
    if raw.startswith("@"):
        try:
            with open(raw[1:], encoding="utf-8") as handle:
                raw = handle.read()
        except OSError as exc:
            raise Refused(f"cannot read {raw[1:]}: {exc.strerror or exc}") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Refused(f"--data is not JSON: {exc}") from None


class _Said(logging.Handler):
    """The function's own log lines while it runs in-process: what it did."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _invoke(args: argparse.Namespace) -> int:
    from cloudevents.conversion import to_binary, to_structured

    from functions import load_all
    from shared.core.events import make

    registry = load_all()
    function = registry.get(args.name)
    if function is None:
        print(f"no function {args.name}; known: {', '.join(sorted(registry))}", file=sys.stderr)
        return 2
    headers = _pairs(args.header, ":")
    data = _data(args.data)
    if function.kind == "http":
        params = _pairs(args.param, "=")
        missing = [n for n in re.findall(r"\{(\w+)\}", function.path) if n not in params]
        if missing:
            raise Refused(f"{function.path} needs " + " ".join(f"--param {n}=..." for n in missing))
        path = function.path.format(**params)
        method = function.method
        body = json.dumps(data).encode() if data is not None else None
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        if args.token:
            headers["Authorization"] = f"Bearer {args.token}"
        query = _pairs(args.query, "=")
    else:
        attributes = {k: v for k, v in function.filter.items() if k != "type"}
        event = make(args.type or function.filter["type"], data or {}, **attributes)
        headers_, body = (to_structured if args.structured else to_binary)(event)
        headers.update(headers_)
        path, method, query = f"/_functions/{function.name}", "POST", {}

    if args.local:
        from knative import local

        said = _Said()
        growbin_log = logging.getLogger("growbin")
        level = growbin_log.level
        system = local.start(with_cron=False)
        growbin_log.addHandler(said)
        growbin_log.setLevel(logging.INFO)
        try:
            response = system.app.test_client().open(
                path, method=method, headers=headers, data=body, query_string=query
            )
            system.broker.wait_idle(args.wait)
            status, text = response.status_code, response.get_data(as_text=True)
        finally:
            growbin_log.removeHandler(said)
            growbin_log.setLevel(level)
            system.stop()
        if function.kind == "event" and not text:
            text = "\n".join(said.lines) or f"{function.name} ran and logged nothing"
    else:
        import requests

        try:
            response = requests.request(
                method,
                args.url.rstrip("/") + path,
                headers=headers,
                data=body,
                params=query,
                timeout=args.wait,
            )
        except requests.ConnectionError:
            raise Refused(
                f"no server at {args.url}: start one with `./task dev`, or add --local"
            ) from None
        except requests.Timeout:
            raise Refused(f"{args.url} did not answer within {args.wait:g} s") from None
        status, text = response.status_code, response.text
        if function.kind == "event" and status < 400 and not text:
            text = f"{function.name} handled the event; what it did is in the server's log"
    print(status)
    if text:
        print(text)
    return 0 if status < 400 else 1


def _jwks(_args: argparse.Namespace) -> int:
    """Print the public key set for JWT_PUBLIC_KEYS, from JWT_PRIVATE_KEY (or the local key)."""
    from shared.auth import tokens

    print(json.dumps(tokens.jwks()))
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from shared.core import db

    db.migrate()
    print("database is at the newest revision of every branch")
    return 0


def _import(args: argparse.Namespace) -> int:
    from shared.core import datasets, db
    from shared.core.settings import settings
    from shared.ops import knowledge

    if settings().local:
        db.migrate()
    try:
        reports = knowledge.run(only_if_changed=not args.force)
    except datasets.Missing as exc:
        print(f"growbin import: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reports, ensure_ascii=False, indent=2, default=str))
    else:
        for report in reports:
            print(knowledge.summary(report))
    return 0


def _import_bins(args: argparse.Namespace) -> int:
    from shared.core import db
    from shared.core.settings import settings
    from shared.locations import bin_import, bins

    if args.type and args.type not in bins.TYPES:
        print(f"--type must be one of {', '.join(bins.TYPES)}", file=sys.stderr)
        return 2
    if settings().local:
        db.migrate()
    paths = args.files or bin_import.public_files()
    reports, failed = [], 0
    for path in paths:
        try:
            reports.append(bin_import.import_file(path, args.type))
        except (bin_import.BinFileError, OSError) as exc:
            failed += 1
            print(f"{path}: not imported: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=2))
    else:
        for report in reports:
            print(bin_import.summary(report))
    return 1 if failed else 0


def _dead_letters(args: argparse.Namespace) -> int:
    from eventing import dead_letters

    if args.replay:
        import requests

        response = requests.post(
            f"{args.url.rstrip('/')}/_broker/dead-letters/{args.replay}/replay", timeout=10
        )
        print(response.status_code, response.text)
        return 0 if response.ok else 1
    letters = dead_letters.listing(include_replayed=args.all)
    for letter in letters:
        print(
            json.dumps(
                {
                    k: letter[k]
                    for k in (
                        "id",
                        "trigger",
                        "event_id",
                        "event_type",
                        "attempts",
                        "error",
                        "failed_at",
                        "replayed_at",
                    )
                },
                ensure_ascii=False,
                default=str,
            )
        )
    print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    return 0


def _render(args: argparse.Namespace) -> int:
    from knative.render.files import write_all

    differ = write_all(check=args.check)
    for path in differ:
        print(path)
    if args.check and differ:
        print(f"{len(differ)} derived file(s) stale: run `growbin render`", file=sys.stderr)
        return 1
    return 0


def _grant_admin(args: argparse.Namespace) -> int:
    from shared.auth import accounts, sessions

    if not accounts.set_role(args.user_id, "user" if args.revoke else "admin"):
        print(f"no user {args.user_id}", file=sys.stderr)
        return 1
    # The role is in the access token: end the user's sessions so the next login carries it.
    sessions.revoke_all(args.user_id, "role_changed")
    print(f"{args.user_id} is now {'a user' if args.revoke else 'an admin'}; they sign in again")
    return 0


def _reports(_args: argparse.Namespace) -> int:
    from shared.ops import reports

    for report in reports.listing():
        print(report["day"], report["url"])
    return 0


def _corrections(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from shared.core import db
    from shared.waste import corrections

    since = db.now() - timedelta(days=args.days)
    pairs = corrections.frequent(since=since, limit=args.limit)
    for pair in pairs:
        proposed, chosen = pair["proposed"], pair["chosen"]
        print(
            f"{pair['count']:>5}  {pair['detected_name']}: {proposed['name']} "
            f"({proposed['guide_id']}) -> {chosen['name']} ({chosen['guide_id']})"
        )
    print(f"{len(pairs)} correction pair(s) in the last {args.days} days", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="growbin", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="serve every function on one port, broker and cron")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    dev.set_defaults(run=_dev)

    invoke = commands.add_parser("invoke", help="call one function, HTTP or CloudEvent")
    invoke.add_argument("name", help="the function's target name, e.g. waste_status")
    invoke.add_argument("--param", action="append", help="path parameter k=v")
    invoke.add_argument("--query", action="append", help="query parameter k=v")
    invoke.add_argument("--header", "-H", action="append", help="header 'Name: value'")
    invoke.add_argument("--data", "-d", help="JSON body or event data, or @file")
    invoke.add_argument("--token", help="bearer access token")
    invoke.add_argument("--type", help="CloudEvent type (default: the function's filter)")
    invoke.add_argument("--structured", action="store_true", help="structured-mode CloudEvent")
    invoke.add_argument("--url", default=DEFAULT_URL, help="the running dev server")
    invoke.add_argument("--local", action="store_true", help="in-process, no server needed")
    invoke.add_argument("--wait", type=float, default=30.0, help="seconds to wait")
    invoke.set_defaults(run=_invoke)

    keys = commands.add_parser("jwks", help="print JWT_PUBLIC_KEYS for the signing key")
    keys.set_defaults(run=_jwks)

    migrate = commands.add_parser("migrate", help="apply the Alembic migrations")
    migrate.set_defaults(run=_migrate)

    knowledge = commands.add_parser(
        "import", help="import the datasets folder: dictionary, schedules, bins (what changed)"
    )
    knowledge.add_argument("--force", action="store_true", help="re-import unchanged files too")
    knowledge.add_argument("--json", action="store_true", help="print the reports as JSON")
    knowledge.set_defaults(run=_import)

    bins = commands.add_parser(
        "import-bins", help="import bin location files (no FILE: those of the datasets folder)"
    )
    bins.add_argument("files", nargs="*", metavar="FILE", help="CSV or JSON, kind told by content")
    bins.add_argument("--type", help="what the files' bins are (clothing, battery, ...)")
    bins.add_argument("--json", action="store_true", help="print the reports as JSON")
    bins.set_defaults(run=_import_bins)

    letters = commands.add_parser("dead-letters", help="list dead letters, or replay one")
    letters.add_argument("--all", action="store_true", help="include replayed ones")
    letters.add_argument("--replay", metavar="ID", help="send one back to its trigger")
    letters.add_argument("--url", default=DEFAULT_URL)
    letters.set_defaults(run=_dead_letters)

    admin = commands.add_parser("grant-admin", help="make a user an operator (or --revoke)")
    admin.add_argument("user_id")
    admin.add_argument("--revoke", action="store_true")
    admin.set_defaults(run=_grant_admin)

    fixes = commands.add_parser(
        "corrections", help="the most frequent answers users corrected: candidate aliases"
    )
    fixes.add_argument("--days", type=int, default=30, help="how far back (default 30)")
    fixes.add_argument("--limit", type=int, default=20)
    fixes.set_defaults(run=_corrections)

    listing = commands.add_parser("reports", help="list the operator reports with links")
    listing.set_defaults(run=_reports)

    render = commands.add_parser("render", help="write manifests, chart and OpenAPI")
    render.add_argument("--check", action="store_true", help="fail if a derived file is stale")
    render.set_defaults(run=_render)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except Refused as exc:
        print(f"growbin {args.command}: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        # The image ships the functions, the library and this CLI; dev and render need a checkout.
        if (exc.name or "").split(".")[0] not in {"knative", "eventing"}:
            print(f"growbin {args.command}: {exc}", file=sys.stderr)
            return 1
        print(f"growbin {args.command}: runs from a checkout ({exc})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the person at the keyboard; the log has the rest
        print(f"growbin {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
