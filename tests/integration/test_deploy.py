"""The deployment files, checked with the real tools available offline.

- Prometheus: `promtool check config`, `check rules` and `test rules` (Debian's promtool), every
  alert has a unit test, and a real Prometheus loads the config and its rules.
- Grafana: every dashboard is valid JSON with unique panel ids, uses the provisioned datasource,
  and every query parses as PromQL through Prometheus' API and names only metrics the code defines.
- docker-compose.yml: validated against the compose-spec JSON schema (check-jsonschema ships it;
  Docker itself is not available here, so `docker compose config` cannot run), plus the structure
  the stack relies on: build contexts, health checks, dependency conditions, mounts, replicas.
- deploy/Dockerfile: its COPY sources exist, and its `uv sync` step is replayed for each service
  in a context staged as Docker would (honouring .dockerignore), then the command's module resolves.
- deploy/k8s: selectors, probes, config references and kustomization resources agree.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sitewright_devstack import infra
from sitewright_devstack import prometheus as prometheus_server

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SERVICES = ("gateway", "crawler", "generator", "notifier")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `make setup` installs it (Debian package prometheus)")
    return found


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


# -- Prometheus -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", [PROMETHEUS / "prometheus.yml", DEPLOY / "k8s" / "prometheus.yml"], ids=["compose", "k8s"]
)
def test_promtool_checks_the_configs(config: Path):
    out = run(
        tool("promtool"), "check", "config", "--syntax-only" if "k8s" in str(config) else "--lint=all", str(config)
    )
    assert "SUCCESS" in out.stdout + out.stderr


def test_promtool_checks_and_tests_the_rules():
    rules = sorted((PROMETHEUS / "rules").glob("*.yml"))
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert rules and tests
    run(tool("promtool"), "check", "rules", *map(str, rules))
    out = run(tool("promtool"), "test", "rules", *map(str, tests))
    assert "SUCCESS" in out.stdout


def alert_names() -> set[str]:
    names = set()
    for path in (PROMETHEUS / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["alert"] for r in group["rules"] if "alert" in r}
    return names


def test_every_alert_has_a_unit_test_that_expects_it_to_fire():
    tested = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    required = {
        "SitewrightJobsStuck",
        "SitewrightJobFailureRateHigh",
        "SitewrightConsumerLagGrowing",
        "SitewrightNoThroughput",
        "SitewrightServiceDown",
        "SitewrightDeadLetters",
    }
    assert required <= alert_names()
    assert alert_names() - tested == set(), "alerts without a firing test"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus running the deploy config and rules (no targets: it only parses and evaluates)."""
    tool("prometheus")
    home = tmp_path_factory.mktemp("prometheus")
    port = infra.free_port()
    child = prometheus_server.start(home, home / "logs", port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}"
    child.stop()


def test_prometheus_loads_the_deploy_rules(prometheus: str):
    groups = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    loaded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert loaded == alert_names()
    assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups


# -- Grafana ----------------------------------------------------------------------------------


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in json.loads(path.read_text())["panels"] for t in p.get("targets", [])]


def defined_metric_names() -> set[str]:
    """Every series name the services can expose (counters' _total, histograms' _bucket/_count/_sum)."""
    from prometheus_client import REGISTRY

    from sitewright_runtime import metrics  # noqa: F401  (registers them)

    names = {"up"}
    for family in REGISTRY.collect():
        names.add(family.name)
        names |= {s.name for s in family.samples}
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_dashboards_are_valid_with_unique_panel_ids_and_the_provisioned_datasource():
    assert {p.stem for p in DASHBOARDS} == {"overview", "stages", "log"}
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ][0]
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        uids.add(board["uid"])
        for panel in board["panels"]:
            assert panel["targets"], f"{path.name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == panel["datasource"]["uid"] == datasource["uid"]
    assert len(uids) == len(DASHBOARDS)
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/sitewright.yml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in compose["services"]["grafana"]["volumes"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_dashboard_query_parses_and_uses_defined_metrics(path: Path, prometheus: str):
    known = defined_metric_names()
    for title, expr in dashboard_queries(path):
        for variable, value in {"$__rate_interval": "1m", "$__range": "1h", "$stage": ".+"}.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{path.name} {title!r}: a Grafana variable the check does not know: {expr}"
        body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", f"{path.name} {title!r}: {body.get('error')}"
        used = set(re.findall(r"\b(sitewright_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$)", expr))
        assert used and used <= known, f"{path.name} {title!r}: unknown metrics {used - known}"


def test_rules_use_defined_metrics():
    known = defined_metric_names()
    for path in (PROMETHEUS / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used = set(re.findall(r"\b(sitewright_[a-z_]+)\b", rule["expr"]))
                assert used <= known, f"{rule.get('alert') or rule.get('record')}: unknown metrics {used - known}"


# -- docker-compose.yml -----------------------------------------------------------------------


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=120
    )


def test_compose_file_matches_the_compose_spec(tmp_path: Path):
    result = check_compose_schema(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator does reject a mistake (a misspelt key), so a pass above means something.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("healthcheck:", "healthchek:", 1))
    assert check_compose_schema(broken).returncode != 0


def test_compose_stack_structure():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redpanda", "mongo", "prometheus", "grafana", *SERVICES} <= set(services)
    assert any(v.startswith("redpanda:") for v in services["redpanda"]["volumes"]), (
        "the broker needs a persistent volume"
    )
    assert "--replSet" in services["mongo"]["command"], "MongoDB must run as a replica set"
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in ("service_healthy", "service_started", "service_completed_successfully")
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency} to be healthy; it has no check"
                )
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    for name in SERVICES:
        service = services[name]
        build = service["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        assert build["args"]["SERVICE"] == name
        assert "healthcheck" in service
        assert service["depends_on"]["redpanda"]["condition"] == "service_healthy"
        assert service["depends_on"]["mongo"]["condition"] == "service_healthy"
        if name != "gateway":
            assert service["deploy"]["replicas"] >= 2
    # Prometheus scrapes each service by its compose name, on the port the service serves /metrics on.
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    ports = {
        j["job_name"]: (j["dns_sd_configs"][0]["names"], j["dns_sd_configs"][0]["port"])
        for j in scrape
        if j["job_name"] in SERVICES
    }
    assert set(ports) == set(SERVICES)
    for name, (names, port) in ports.items():
        env = services[name]["environment"]
        assert names == [name]
        assert str(port) == (env["SITEWRIGHT_GATEWAY_PORT"] if name == "gateway" else env["SITEWRIGHT_METRICS_PORT"])


# -- deploy/Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stage_context(dest: Path) -> None:
    """Copy the repository as Docker would send it as the build context (without .dockerignore's paths)."""
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]

    def ignored(rel: str) -> bool:
        return any(
            fnmatch.fnmatch(rel, p)
            or fnmatch.fnmatch(rel, p.removeprefix("**/"))
            or fnmatch.fnmatch(Path(rel).name, p.removeprefix("**/"))
            for p in patterns
        )

    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if any(ignored("/".join(rel.split("/")[: i + 1])) for i in range(rel.count("/") + 1)) or path.is_dir():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / rel)


def test_dockerfile_copy_sources_exist():
    copies = [args.split() for op, args in dockerfile_instructions() if op == "COPY" and not args.startswith("--from")]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository root"
            assert not (ROOT / ".dockerignore").read_text().count(f"\n{source}\n"), (
                f"COPY {source} is excluded by .dockerignore"
            )


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_builds_each_service(service: str, tmp_path: Path):
    """Replay the build stage's COPY and `uv sync`, then check the image's command would find its module."""
    context, app = tmp_path / "context", tmp_path / "app"
    stage_context(context)
    app.mkdir()
    instructions = dockerfile_instructions()
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            *sources, dest = args.split()
            for source in sources:
                target = app / (dest if dest not in ("./", ".") else Path(source).name)
                if (context / source).is_dir():
                    shutil.copytree(context / source, target)
                else:
                    shutil.copy2(context / source, target if dest not in ("./", ".") else app / Path(source).name)
    sync = [args for op, args in instructions if op == "RUN" and "uv sync" in args]
    assert len(sync) == 1
    argv = shlex.split(sync[0].replace("${SERVICE}", service))
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    run(uv, *argv[1:], "--quiet", cwd=app, env={**env, "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"})
    cmd = json.loads(next(args for op, args in instructions if op == "CMD"))
    assert cmd[-1] == "exec python -m sitewright_${SERVICE}"
    python = app / ".venv" / "bin" / "python"
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec('sitewright_{service}.__main__') is None)"
    run(str(python), "-c", probe, cwd=tmp_path)
    # The image holds only its own service: another service's package is not installed.
    other = next(s for s in SERVICES if s != service)
    missing = subprocess.run([str(python), "-c", f"import sitewright_{other}"], capture_output=True, cwd=tmp_path)
    assert missing.returncode != 0


# -- deploy/k8s -------------------------------------------------------------------------------


def k8s_documents() -> list[dict]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / "k8s" / resource).read_text()) if d]
    return docs


def test_k8s_manifests_agree_with_each_other():
    docs = k8s_documents()
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == set(SERVICES)
    configmaps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    images = {i["name"] for i in yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["images"]}
    for _name, deployment in deployments.items():
        spec = deployment["spec"]
        assert spec["replicas"] >= 2
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        (container,) = spec["template"]["spec"]["containers"]
        assert container["image"] in images
        port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] in port_names
        annotations = spec["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) in port_names.values()
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps
        env = {**configmaps["sitewright-config"]["data"], **{e["name"]: e["value"] for e in container.get("env", [])}}
        assert "SITEWRIGHT_KAFKA_BOOTSTRAP" in env
        assert int(env["SITEWRIGHT_TOPIC_PARTITIONS"]) >= spec["replicas"], (
            "replicas beyond the partition count sit idle"
        )
    for service in by_kind["Service"]:
        selector = service["spec"]["selector"]
        matching = [
            d for d in deployments.values() if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matching, f"Service {service['metadata']['name']} selects no pods"
    # Prometheus in the cluster scrapes each headless Service by name on the port the pods serve.
    headless = {s["metadata"]["name"]: s for s in by_kind["Service"] if s["spec"].get("clusterIP") == "None"}
    for job in yaml.safe_load((DEPLOY / "k8s" / "prometheus.yml").read_text())["scrape_configs"]:
        (sd,) = job["dns_sd_configs"]
        service = headless[sd["names"][0].split(".")[0]]
        assert service["spec"]["ports"][0]["port"] == sd["port"]
        assert service["spec"]["selector"]["app.kubernetes.io/name"] == job["job_name"]
