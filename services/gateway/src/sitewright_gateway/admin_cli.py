"""`sitewright-admin`: create, list and revoke API keys, straight in the read model's database.

    sitewright-admin keys create --tenant acme [--admin] [--name ci]
    sitewright-admin keys list [--tenant acme]
    sitewright-admin keys revoke <key_id>
    sitewright-admin model digest                      # hash of the read model
    sitewright-admin model rebuild --into sw_v2 [--switch]  # replay jobs.events into a fresh database
    sitewright-admin model history <job_id> --at 2026-11-23T10:00:00Z  # a job as it was then

It reads the gateway's `SITEWRIGHT_*` settings (`keys` needs only the MongoDB ones).
A new key is printed once; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sitewright_runtime.mongo import connect
from sitewright_runtime.settings import load_settings

from .config import GatewaySettings
from .readmodel import audit
from .readmodel.rebuild import digest, rebuild
from .readmodel.rules import state_as_of
from .readmodel.store import Store
from .web.auth import KeyStore


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITEWRIGHT_", extra="ignore")

    mongo_url: str = Field(description="MongoDB connection string of the gateway's read model.")
    mongo_db: str = "sitewright"


async def _main(args: argparse.Namespace) -> int:
    settings_cls: type[GatewaySettings | AdminSettings] = GatewaySettings if args.group == "model" else AdminSettings
    settings = load_settings(settings_cls)
    client = connect(settings.mongo_url)
    try:
        store = Store(client[settings.mongo_db])
        await store.follow_active_model()
        if args.group == "model":
            return await _model(args, settings, store)  # type: ignore[arg-type]
        keys = KeyStore(store.api_keys)
        if args.action == "create":
            key, record = await keys.create(args.tenant, name=args.name, admin=args.admin)
            print(f"key_id {record['key_id']}  tenant {record['tenant']}  admin {record['admin']}")
            print(f"API key (shown once, store it now): {key}")
        elif args.action == "list":
            for k in await keys.list(args.tenant):
                state = f"revoked {k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "active"
                print(
                    f"{k['key_id']}  {k['tenant']:<20} {'admin' if k['admin'] else 'user ':<6} {k['name']:<16} {state}"
                )
        elif args.action == "revoke":
            if not await keys.revoke(args.key_id):
                print(f"no active key with id {args.key_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}; gateways stop accepting it within a few seconds")
        return 0
    finally:
        await client.close()


async def _model(args: argparse.Namespace, settings: GatewaySettings, store: Store) -> int:
    if args.action == "digest":
        print(json.dumps({"database": store.model.name, **await digest(store)}, indent=2))  # type: ignore[union-attr]
    elif args.action == "rebuild":
        report = await rebuild(settings, store, args.into, switch=args.switch, settle_s=args.settle)
        print(
            f"replayed {report.events} events into {report.database} in {report.seconds:.1f}s"
            + ("; it is now the active read model" if report.switched else "")
        )
        print(json.dumps(await digest(Store(store.db, store.db.client[args.into])), indent=2))
    elif args.action == "history":
        doc = state_as_of(await audit.job_events(store.events, args.job_id), args.at, settings.retry_policy)
        if doc is None:
            print(
                f"job {args.job_id} did not exist at {args.at.isoformat()} (or its events have expired)",
                file=sys.stderr,
            )
            return 1
        print(json.dumps({k: v for k, v in doc.items() if k != "seen"}, indent=2, default=str))
    return 0


def _time(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sitewright-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="group", required=True)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="")
    create.add_argument("--admin", action="store_true", help="may call /api/admin routes")
    lst = keys.add_parser("list", help="list keys (ids, never the keys)")
    lst.add_argument("--tenant")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    model = sub.add_parser("model", help="the read model: digest, rebuild, history").add_subparsers(
        dest="action", required=True
    )
    model.add_parser("digest", help="print a hash of the log-derived collections")
    rb = model.add_parser("rebuild", help="replay jobs.events from the beginning into a fresh database")
    rb.add_argument("--into", required=True, help="name of the new database")
    rb.add_argument("--switch", action="store_true", help="make it the active read model once caught up")
    rb.add_argument("--settle", type=float, default=10.0, help="seconds to keep applying after the switch")
    hist = model.add_parser("history", help="a job's state as of a time, folded from its events")
    hist.add_argument("job_id")
    hist.add_argument("--at", type=_time, default=datetime.now(UTC), help="RFC 3339 time (default: now)")
    sys.exit(asyncio.run(_main(parser.parse_args(argv))))
