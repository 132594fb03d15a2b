"""`sitewright-admin`: create, list and revoke API keys, straight in the read model's database.

    sitewright-admin keys create --tenant acme [--admin] [--name ci]
    sitewright-admin keys list [--tenant acme]
    sitewright-admin keys revoke <key_id>

It reads `SITEWRIGHT_MONGO_URL` and `SITEWRIGHT_MONGO_DB` like the gateway.
A new key is printed once; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sitewright_runtime.mongo import connect
from sitewright_runtime.settings import load_settings

from .auth import KeyStore
from .store import Store


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITEWRIGHT_", extra="ignore")

    mongo_url: str = Field(description="MongoDB connection string of the gateway's read model.")
    mongo_db: str = "sitewright"


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings(AdminSettings)
    client = connect(settings.mongo_url)
    try:
        store = Store(client[settings.mongo_db])
        await store.create_indexes()
        keys = KeyStore(store.api_keys)
        if args.action == "create":
            key, record = await keys.create(args.tenant, name=args.name, admin=args.admin)
            print(f"key_id {record['key_id']}  tenant {record['tenant']}  admin {record['admin']}")
            print(f"API key (shown once, store it now): {key}")
        elif args.action == "list":
            for k in await keys.list(args.tenant):
                state = f"revoked {k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "active"
                print(f"{k['key_id']}  {k['tenant']:<20} {'admin' if k['admin'] else 'user ':<6} {k['name']:<16} {state}")
        elif args.action == "revoke":
            if not await keys.revoke(args.key_id):
                print(f"no active key with id {args.key_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}; gateways stop accepting it within a few seconds")
        return 0
    finally:
        await client.close()


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sitewright-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    sys.exit(asyncio.run(_main(parser.parse_args(argv))))
