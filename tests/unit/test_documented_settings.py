"""The docs and deploy files name only settings that exist, and every required setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from sitewright_crawler.config import CrawlerSettings
from sitewright_gateway.admin_cli import AdminSettings
from sitewright_gateway.config import GatewaySettings
from sitewright_generator.config import GeneratorSettings
from sitewright_notifier.config import NotifierSettings

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    "README.md",
    "deploy/README.md",
    "docker-compose.yml",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "deploy").rglob("*.y*ml")),
]
SETTINGS = (GatewaySettings, CrawlerSettings, GeneratorSettings, NotifierSettings, AdminSettings)
NAME = re.compile(r"\bSITEWRIGHT_[A-Z0-9_]*[A-Z0-9]\b")


def setting_names() -> set[str]:
    names = set()
    for cls in SETTINGS:
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def names_the_code_reads() -> set[str]:
    """Variables read outside the settings classes: the CLI's, the devstack's and the tests' own."""
    found: set[str] = set()
    for folder in ("libs", "services", "tools", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(NAME.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_setting_the_docs_name_exists():
    known = setting_names() | names_the_code_reads()
    unknown = {
        f"{doc}: {name}"
        for doc in DOCUMENTS
        for name in NAME.findall((ROOT / doc).read_text(encoding="utf-8"))
        if name not in known
    }
    assert not unknown, f"documented but read by nothing: {sorted(unknown)}"


def test_every_required_setting_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    required = {
        f"{cls.model_config.get('env_prefix', '')}{name}".upper()
        for cls in SETTINGS
        for name, field in cls.model_fields.items()
        if field.is_required()
    }
    assert required and not {name for name in required if name not in readme}
