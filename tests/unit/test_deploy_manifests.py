"""deploy/: every kustomize overlay builds, every object validates against the Kubernetes schemas,
and the manifests keep the promises the service relies on (probes, GPUs, grace period, Redis
persistence, network isolation, documented settings, images that match the Dockerfile)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from automl.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["cpu", "gpu"]
K8S_VERSION = "1.30.0"  # the oldest release we support; the schemas only grow


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to build deploy/k8s; install it"
    built = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
                           capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix))


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def test_every_object_validates_against_the_kubernetes_schemas(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    assert len(objects) >= 12
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"].get("namespace", "automl") == "automl" or obj["kind"] == "Namespace", obj


def test_the_api_is_probed_scaled_and_migrates_first(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    spec = find(objects, "Deployment", "automl-api")["spec"]["template"]["spec"]
    api = spec["containers"][0]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}  # its own listener
    config = find(objects, "ConfigMap", "automl-config")["data"]
    assert {"name": "probes", "containerPort": int(config["AUTOML_PROBE_PORT"])} in api["ports"]
    assert spec["initContainers"][0]["command"] == ["automl", "db", "upgrade"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    hpa = find(objects, "HorizontalPodAutoscaler", "automl-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "automl-api"
    assert find(objects, "Service", "automl-api")["spec"]["ports"][0]["targetPort"] == "http"


def test_workers_hand_back_before_they_are_killed(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = overlay
    config = find(objects, "ConfigMap", "automl-config")["data"]
    worker = find(objects, "Deployment", "automl-worker")["spec"]["template"]["spec"]
    # Longer than a lease (so the trial is handed back, not reaped) and than a long epoch.
    assert worker["terminationGracePeriodSeconds"] >= max(600, 4 * int(config["AUTOML_JOB_LEASE_S"]))
    container = worker["containers"][0]
    assert container["command"] == ["automl", "worker", "--concurrency", "1"]  # one process per GPU
    if name == "gpu":
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert worker["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert container["image"].endswith("automl-worker-gpu:0.1.0")
    else:
        assert "nvidia.com/gpu" not in str(container["resources"])


def test_stores_persist_and_only_the_api_is_exposed(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = overlay
    redis_conf = find(objects, "ConfigMap", "automl-redis")["data"]["redis.conf"]
    assert "appendonly yes" in redis_conf and "maxmemory-policy noeviction" in redis_conf
    assert find(objects, "StatefulSet", "automl-redis")["spec"]["volumeClaimTemplates"]
    data = find(objects, "PersistentVolumeClaim", "automl-data")["spec"]["accessModes"]
    assert data == (["ReadWriteMany"] if name == "gpu" else ["ReadWriteOnce"])
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["automl-default-deny"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policies["automl-default-deny"]  # deny all by default
    assert policies["automl-api-ingress"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]
    has_postgres = any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "automl-postgres" for o in objects)
    assert has_postgres == (name == "cpu")  # production uses an external database


def test_every_setting_the_manifests_use_exists_and_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    first_cells = [line.split("|")[1] for line in readme.splitlines() if line.startswith("| `AUTOML_")]
    documented = {name for cell in first_cells for name in re.findall(r"AUTOML_[A-Z0-9_]+", cell)}
    used: set[str] = set()
    for name in OVERLAYS:
        for obj in render(name):
            if obj["kind"] in ("ConfigMap", "Secret"):
                used |= {k for k in obj.get("data", {}) if k.startswith("AUTOML_")}
    used |= set(re.findall(r"\b(AUTOML_[A-Z0-9_]+)=", (ROOT / "deploy/docker/Dockerfile").read_text()))
    assert used >= {"AUTOML_DATABASE_URL", "AUTOML_BROKER_URL", "AUTOML_DATA_DIR"}
    assert sorted(used - documented) == [], "settings used by deploy/ but missing from the README table"
    server_only = {"AUTOML_BIND", "AUTOML_API_WORKERS", "AUTOML_API_THREADS", "AUTOML_SKIP_MIGRATE",
                     "AUTOML_PROBE_PORT"}
    fields = {f"AUTOML_{name.upper()}" for name in Settings.model_fields}
    assert sorted(used - fields - server_only) == [], "a manifest sets a variable nothing reads"


def test_the_images_run_what_the_manifests_run() -> None:
    dockerfile = (ROOT / "deploy/docker/Dockerfile").read_text()
    targets = set(re.findall(r"^FROM \S+ AS ([\w-]+)$", dockerfile, re.MULTILINE))
    assert {"api", "worker", "worker-gpu", "runtime"} <= targets
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)  # non-root
    assert 'CMD ["python", "-m", "api.server"]' in dockerfile
    assert dockerfile.count('CMD ["automl", "worker", "--concurrency", "1"]') == 2
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1:] and "!requirements.lock" in ignored  # only what the build copies


def test_pods_are_locked_down_and_redis_needs_its_password(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = overlay
    pods = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert {o["metadata"]["name"] for o in pods} >= {"automl-api", "automl-worker", "automl-redis"}
    for pod in pods:
        spec = pod["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False, pod["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, pod["metadata"]["name"]
    redis = find(objects, "StatefulSet", "automl-redis")["spec"]["template"]["spec"]["containers"][0]
    assert redis["command"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in redis["env"]}
    assert set(refs) == {"REDIS_PASSWORD", "REDISCLI_AUTH"}  # the server's password and the probe's
    assert all(r["name"].startswith("automl-redis") and r["key"] == "REDIS_PASSWORD" for r in refs.values())
    config = find(objects, "ConfigMap", "automl-config")["data"]
    assert "AUTOML_BROKER_URL" not in config  # it holds the password: only in a Secret
    if name == "cpu":
        import base64

        secret = find(objects, "Secret", "automl-secrets")["data"]
        password = base64.b64decode(find(objects, "Secret", "automl-redis")["data"]["REDIS_PASSWORD"]).decode()
        assert f":{password}@automl-redis:6379" in base64.b64decode(secret["AUTOML_BROKER_URL"]).decode()


def test_egress_is_denied_but_for_dns_and_the_stores(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = overlay
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["automl-default-deny"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in policies["automl-default-deny"]
    dns = policies["automl-dns-egress"]["egress"][0]["ports"]
    assert {(p["protocol"], p["port"]) for p in dns} == {("UDP", 53), ("TCP", 53)}
    app = policies["automl-app-egress"]
    assert app["podSelector"]["matchExpressions"][0]["values"] == ["api", "worker"]
    ports = {p["port"] for rule in app["egress"] for p in rule["ports"]}
    assert ports == {6379, 5432}  # nothing else: no downloads, no other services
