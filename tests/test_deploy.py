"""The deploy recipes validate: the Ray cluster-launcher YAML passes Ray's own schema check, the
KubeRay RayJob has every field KubeRay requires, the image is built from the Ray version the
project pins, token authentication stays on and no credential is written into a recipe.

No cloud or Kubernetes cluster is started here; deploy/run-sweep.sh is run for real by
tests/test_object_store.py.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CLUSTER = DEPLOY / "cluster-aws.yaml"
RAYJOB = DEPLOY / "rayjob.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
RECIPES = sorted(DEPLOY.glob("*.yaml"))


def _pins() -> dict[str, str]:
    """`name -> version` of pyproject's exact pins (extras stripped: ray[tune] -> ray)."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", dep.strip())
        assert m, f"pyproject dependency {dep!r} is not an exact pin"
        pins[m.group(1).lower()] = m.group(3)
    return pins


def _ray_tag() -> str:
    return f"rayproject/ray:{_pins()['ray']}-py311"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _rayjob() -> dict[str, Any]:
    jobs = [d for d in _docs(RAYJOB) if d.get("kind") == "RayJob"]
    assert len(jobs) == 1, f"{RAYJOB} holds {len(jobs)} RayJob documents, expected 1"
    return jobs[0]


def test_every_recipe_parses_to_mappings() -> None:
    assert {p.name for p in RECIPES} >= {"cluster-aws.yaml", "rayjob.yaml"}
    for path in RECIPES:
        docs = _docs(path)
        assert docs, f"{path} is empty"
        assert all(isinstance(d, dict) for d in docs), f"{path}: a document is not a mapping"


def test_cluster_yaml_passes_rays_schema_check() -> None:
    util = pytest.importorskip("ray.autoscaler._private.util")  # private: only here, in a test
    pytest.importorskip("jsonschema")
    cfg = yaml.safe_load(CLUSTER.read_text())
    util.validate_config(util.prepare_config(cfg))
    # the check can fail: an unknown key is refused
    with pytest.raises(Exception, match="not_a_ray_key"):
        util.validate_config(util.prepare_config({**cfg, "not_a_ray_key": 1}))


def test_cluster_yaml_has_head_cpu_workers_and_one_gpu_type_on_the_pinned_ray() -> None:
    cfg = yaml.safe_load(CLUSTER.read_text())
    types = cfg["available_node_types"]
    head = cfg["head_node_type"]
    workers = {k: v for k, v in types.items() if k != head}
    gpu = [k for k, v in workers.items() if v.get("resources", {}).get("GPU", 0) > 0]
    assert len(gpu) == 1, f"expected one GPU worker type, got {gpu}"
    assert len(workers) - len(gpu) >= 1, "no CPU worker type"
    assert cfg["docker"]["image"] == _ray_tag()
    assert types[gpu[0]]["docker"]["worker_image"] == _ray_tag() + "-gpu"
    # the project with its pinned requirements on every node
    setup = " ".join(cfg["setup_commands"])
    assert "-c /home/ray/ocfb-suite/deploy/constraints.txt /home/ray/ocfb-suite" in setup
    assert f"torch=={_pins()['torch']}" in setup
    assert cfg["file_mounts"]["/home/ray/ocfb-suite"] == "."


def test_constraints_pin_what_pyproject_pins() -> None:
    lines = (DEPLOY / "constraints.txt").read_text().splitlines()
    frozen = dict(ln.lower().split("==", 1) for ln in lines if ln and not ln.startswith("#"))
    for name, version in _pins().items():
        assert frozen.get(name) == version, f"constraints.txt: {name} {frozen.get(name)}"


def _containers(group: dict[str, Any]) -> list[dict[str, Any]]:
    return group["template"]["spec"]["containers"]


def test_rayjob_has_the_fields_kuberay_requires() -> None:
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    assert job["metadata"]["name"]
    spec = job["spec"]
    assert "ocfb-suite sweep" in Path(REPO / "deploy" / "run-sweep.sh").read_text()
    assert "deploy/run-sweep.sh configs/paper.yaml" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == _pins()["ray"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for g in cluster["workerGroupSpecs"]:
        assert g["groupName"] and 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
    for g in groups:
        # KubeRay's RayStartParams is map[string]string: a bare number is refused
        assert isinstance(g["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in g["rayStartParams"].values()), g["rayStartParams"]
        for c in _containers(g):
            assert c["name"] and c["image"], c
    assert any(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
               for g in cluster["workerGroupSpecs"] for c in _containers(g)), "no GPU group"
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["OCFB_STORAGE_PATH"].startswith("s3://")


def test_rayjob_image_is_built_from_the_dockerfile_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    cluster = _rayjob()["spec"]["rayClusterSpec"]
    for g in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        for c in _containers(g):
            assert c["image"].split(":")[-1].startswith(version), c["image"]


def test_dockerfile_builds_from_the_pinned_ray_tag() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert base and base.group(1) == _ray_tag(), base and base.group(1)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    assert "-c deploy/constraints.txt ." in text
    assert f"torch=={_pins()['torch']}" in text


def test_token_auth_stays_on_and_no_credentials_in_recipes() -> None:
    texts = {p: p.read_text() for p in [*RECIPES, DOCKERFILE, DEPLOY / "run-sweep.sh"]}
    for path, text in texts.items():
        assert not re.search(r"RAY_AUTH_MODE\s*[=:]\s*\"?disabled", text), path
        secret = r"AWS_(SECRET_ACCESS_KEY|ACCESS_KEY_ID|SESSION_TOKEN)\s*[=:]"
        assert not re.search(secret, text), path
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), path  # an AWS access key id
    cfg = yaml.safe_load(CLUSTER.read_text())
    starts = cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]
    assert sum("RAY_AUTH_MODE=token" in s for s in starts) == 2
    assert _rayjob()["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"


def test_ray_stop_runs_only_inside_the_cluster_nodes_own_container() -> None:
    """A plain `ray stop` kills every Ray process it can see. The cluster recipe's start commands
    run it inside ray_container, whose PID namespace holds only the Ray those commands start;
    sharing the host's (`--pid=host`) or running it anywhere else would reach other Rays."""
    cfg = yaml.safe_load(CLUSTER.read_text())
    assert cfg["docker"]["container_name"] and cfg["docker"]["image"].startswith("rayproject/")
    options = " ".join(cfg["docker"].get("run_options", []))
    for node in cfg["available_node_types"].values():
        options += " " + " ".join(node.get("docker", {}).get("worker_run_options", []))
    assert not re.search(r"--pid[= ]+host|--privileged", options), options
    stops = {k for k, v in cfg.items() if isinstance(v, list) and "ray stop" in v}
    assert stops == {"head_start_ray_commands", "worker_start_ray_commands"}, stops
    others = [DOCKERFILE, RAYJOB, DEPLOY / "run-sweep.sh", REPO / "Makefile", REPO / ".ci" / "run"]
    assert not [p for p in others if "ray stop" in p.read_text()]


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_run_sweep_script_refuses_missing_arguments_and_a_second_storage_path(
        tmp_path: Path) -> None:
    script = str(DEPLOY / "run-sweep.sh")
    p = subprocess.run(["bash", script], capture_output=True, text=True)
    assert p.returncode == 2 and "usage:" in p.stderr
    cfg = tmp_path / "s.yaml"
    cfg.write_text("name: x\nstorage_path: /tmp/somewhere\n")
    p = subprocess.run(["bash", script, str(cfg), str(tmp_path / "out")], capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin", "OCFB_STORAGE_PATH": "s3://b/p"})
    assert p.returncode == 2 and "already sets storage_path" in p.stderr
