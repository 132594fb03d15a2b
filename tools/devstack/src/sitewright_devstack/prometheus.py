"""Prometheus for the embedded stack: the deploy/ config with this machine's ports.

The stack starts Prometheus when a `prometheus` binary is installed (Debian's
package; `make setup` installs it). Its config is `deploy/prometheus/prometheus.yml`
itself, with two changes: each Sitewright job's service discovery becomes a
file_sd file that the stack rewrites whenever a service starts on a new port, and
the rule files are referenced by absolute path. Job names, rules and alerts are
the ones production uses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from . import infra

# deploy/prometheus in the repository this package is installed from (an editable workspace member).
DEPLOY_PROMETHEUS = Path(__file__).resolve().parents[4] / "deploy" / "prometheus"


def binary() -> str | None:
    return shutil.which("prometheus")


def render_config(
    base_dir: Path, targets_dir: Path, self_address: str, *, interval: str | None = None
) -> dict[str, Any]:
    """`base_dir/prometheus.yml` with file_sd targets under `targets_dir` and absolute rule paths."""
    config = yaml.safe_load((base_dir / "prometheus.yml").read_text())
    if interval:
        config.setdefault("global", {}).update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str((base_dir / f).resolve()) for f in config.get("rule_files", [])]
    for job in config.get("scrape_configs", []):
        name = job["job_name"]
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        if name == "prometheus":
            job["static_configs"] = [{"targets": [self_address]}]
        else:
            job["file_sd_configs"] = [{"files": [str(targets_dir / f"{name}.json")], "refresh_interval": "1s"}]
    return config


def write_targets(targets_dir: Path, targets: dict[str, list[str]]) -> None:
    """One file_sd file per job; written whole and renamed, so Prometheus never reads half a file."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    for job, addresses in targets.items():
        path = targets_dir / f"{job}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": sorted(addresses)}]))
        tmp.replace(path)


def start(
    home: Path, log_dir: Path, port: int, host: str, *, base_dir: Path = DEPLOY_PROMETHEUS, interval: str | None = None
) -> infra.Child:
    """Write the config under `home` and start Prometheus on host:port with its data in `home/data`."""
    exe = binary()
    if exe is None:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus; make setup does)")
    home.mkdir(parents=True, exist_ok=True)
    address = f"{host}:{port}"
    config = render_config(base_dir, home / "targets", address, interval=interval)
    (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [
        exe,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address={address}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    child = infra.spawn("prometheus", argv, log_dir, port=port)
    infra.wait_for_port(host, port, timeout_s=30, proc=child.proc, name="prometheus")
    return child
