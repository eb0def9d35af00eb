"""The Kubernetes manifests under deploy/k8s say what they should.

There is no cluster and no kustomize binary on these machines, so a small ``kustomize build`` below
renders the base, the example overlay, and the overlay with the KEDA component enabled. It
implements only the features these kustomizations use (resources, components, patches as JSON 6902
or a strategic-merge ``$patch: delete``, namespace, labels without selectors, images) and fails
loudly on any other field, so a manifest that needs more cannot pass unnoticed. The standard objects
it renders are validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict mode);
KEDA ScaledObjects get a structural check of the fields used (no CRD schema offline). Then the
references between objects are resolved the way the API server and the controllers would: selectors
against pod labels, ports against container ports, env against ConfigMaps and the documented Secret,
autoscalers against Deployments and the topic partitions, NetworkPolicies against who may connect.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from crm_shared.devstack import discover_services

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
KEDA = K8S / "components" / "keda"
NAMESPACE = "crm"
SECRET = "crm-secrets"

SERVICES = {"gateway": 8000, "profile": 8001, "loyalty": 8002, "tickets": 8003, "churn": 8004, "campaigns": 8005}
RECOMMENDED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component")
# The oldest Kubernetes these manifests claim (PDB unhealthyPodEvictionPolicy is GA there) and the newest
# schemas kubernetes-validate ships.
K8S_VERSIONS = sorted({"1.31.0", kubernetes_validate.latest_version()})


# --- a small, strict kustomize build --------------------------------------------------------------


class KustomizeFeatureMissing(AssertionError):
    """The kustomization uses something this build does not implement (or kustomize would refuse)."""


KUSTOMIZATION_FILE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZATION_KINDS = {"Kustomization": "kustomize.config.k8s.io/v1beta1",
                       "Component": "kustomize.config.k8s.io/v1alpha1"}
IMPLEMENTED_FIELDS = {"apiVersion", "kind", "resources", "components", "patches", "namespace", "labels", "images"}
# Kinds whose scope this build knows; any other kind fails (its namespace handling is not modelled).
CLUSTER_SCOPED_KINDS = {"Namespace"}
NAMESPACED_KINDS = {"ConfigMap", "Service", "Deployment", "Job", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                    "NetworkPolicy", "ScaledObject"}


def kustomization_file(directory: Path) -> Path:
    found = [directory / name for name in KUSTOMIZATION_FILE_NAMES if (directory / name).is_file()]
    if len(found) != 1:
        raise KustomizeFeatureMissing(f"{directory}: expected exactly one kustomization file, found {found}")
    return found[0]


def read_documents(path: Path) -> list[dict]:
    text = path.read_text()
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise KustomizeFeatureMissing(f"{path}: YAML anchors/aliases (not modelled here; write the YAML out)")
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
            raise KustomizeFeatureMissing(f"{path}: not a Kubernetes object: {str(doc)[:80]}")
        if doc["kind"].endswith("List"):
            raise KustomizeFeatureMissing(f"{path}: {doc['kind']} (lists are not modelled)")
    return documents


def inside(directory: Path, entry: str) -> Path:
    """A file named by a kustomization: kustomize's load restrictor refuses files outside its folder."""
    if "://" in entry or entry.startswith(("github.com/", "git@")):
        raise KustomizeFeatureMissing(f"{directory}: remote resource {entry}")
    path = (directory / entry).resolve()
    if not path.is_relative_to(directory):
        raise KustomizeFeatureMissing(f"{directory}: file {entry} is outside the kustomization's folder")
    if not path.is_file():
        raise KustomizeFeatureMissing(f"{directory}: {entry} does not exist")
    return path


def kustomize_build(directory: Path, *, extra_components: tuple[Path, ...] = ()) -> list[dict]:
    """``kustomize build directory``; ``extra_components`` as if listed in its ``components:``."""
    return _build(directory.resolve(), "Kustomization", [], extra_components)


def _build(directory: Path, kind: str, accumulated: list[dict], extra_components: tuple[Path, ...] = ()) -> list[dict]:
    kustomization = yaml.safe_load(kustomization_file(directory).read_text())
    if kustomization.get("kind", "Kustomization") != kind:
        raise KustomizeFeatureMissing(f"{directory}: expected a {kind}, found {kustomization.get('kind')}")
    if kustomization.get("apiVersion") != KUSTOMIZATION_KINDS[kind]:
        raise KustomizeFeatureMissing(f"{directory}: apiVersion {kustomization.get('apiVersion')}")
    if unknown := set(kustomization) - IMPLEMENTED_FIELDS:
        raise KustomizeFeatureMissing(f"{directory}: {sorted(unknown)} not implemented by this build")

    # A component works on what its parent has accumulated so far; a kustomization starts empty.
    objects = list(accumulated)
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects += _build(path, "Kustomization", []) if path.is_dir() else read_documents(inside(directory, entry))
    components = [(directory / c).resolve() for c in kustomization.get("components", [])]
    for component in [*components, *(c.resolve() for c in extra_components)]:
        objects = _build(component, "Component", objects)

    # kustomize's order of built-in transformers: patches, namespace, labels, images.
    objects = apply_patches(directory, kustomization.get("patches", []), objects)
    if "namespace" in kustomization:
        set_namespace(objects, kustomization["namespace"])
    for spec in kustomization.get("labels", []):
        add_labels(objects, spec)
    for image in kustomization.get("images", []):
        set_image(objects, image)

    ids = [object_id(o) for o in objects]
    if duplicates := {i for i in ids if ids.count(i) > 1}:
        raise KustomizeFeatureMissing(f"{directory}: the same object twice: {sorted(duplicates)}")
    return objects


def object_id(obj: dict) -> tuple[str, str, str, str]:
    return (obj["apiVersion"].rpartition("/")[0], obj["kind"], obj["metadata"].get("namespace", ""),
            obj["metadata"]["name"])


def select(objects: list[dict], target: dict) -> list[dict]:
    if unknown := set(target) - {"group", "version", "kind", "name", "namespace"}:
        raise KustomizeFeatureMissing(f"patch target by {sorted(unknown)}")
    if re.search(r"[\\^$.*+?()\[\]{}|]", target.get("name", "")):
        raise KustomizeFeatureMissing(f"patch target name {target['name']!r} (kustomize reads it as a regex)")

    def selected(obj: dict) -> bool:
        group, _, version = obj["apiVersion"].rpartition("/")
        actual = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"],
                  "namespace": obj["metadata"].get("namespace", "")}
        return all(actual[key] == value for key, value in target.items())

    return [o for o in objects if selected(o)]


def apply_patches(directory: Path, patches: list[dict], objects: list[dict]) -> list[dict]:
    for entry in patches:
        if unknown := set(entry) - {"path", "patch", "target"}:
            raise KustomizeFeatureMissing(f"{directory}: patch with {sorted(unknown)}")
        if ("path" in entry) == ("patch" in entry):
            raise KustomizeFeatureMissing(f"{directory}: a patch needs exactly one of path and patch")
        body = yaml.safe_load(entry["patch"] if "patch" in entry else inside(directory, entry["path"]).read_text())
        if isinstance(body, list):  # JSON 6902
            if "target" not in entry:
                raise KustomizeFeatureMissing(f"{directory}: a JSON 6902 patch needs a target")
            matched = select(objects, entry["target"])
            if not matched:
                raise KustomizeFeatureMissing(f"{directory}: patch target {entry['target']} matches nothing")
            for obj in matched:
                json6902(obj, body)
        elif isinstance(body, dict):  # strategic merge: only the delete form is implemented
            if body.get("$patch") != "delete" or set(body) - {"$patch", "apiVersion", "kind", "metadata"}:
                raise KustomizeFeatureMissing(f"{directory}: strategic-merge patches other than $patch: delete")
            group, _, version = body["apiVersion"].rpartition("/")
            target = entry.get("target") or {"group": group, "version": version, "kind": body["kind"],
                                             "name": body["metadata"]["name"]}
            matched = select(objects, target)
            if not matched:
                raise KustomizeFeatureMissing(f"{directory}: delete patch for {target} matches nothing")
            objects = [o for o in objects if not any(o is m for m in matched)]
        else:
            raise KustomizeFeatureMissing(f"{directory}: patch is neither a list nor a mapping")
    return objects


def json6902(obj: dict, operations: list[dict]) -> None:
    for operation in operations:
        op = operation.get("op")
        if op not in {"add", "remove", "replace", "test"} or set(operation) - {"op", "path", "value"}:
            raise KustomizeFeatureMissing(f"JSON 6902 operation {operation}")
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        node = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        value = copy.deepcopy(operation.get("value"))
        if isinstance(node, list):
            index = len(node) if (op == "add" and last == "-") else int(last)
            if not 0 <= index <= len(node) - (op != "add"):
                raise KustomizeFeatureMissing(f"JSON 6902 {op} {operation['path']}: index out of range")
        elif op != "add" and last not in node:
            raise KustomizeFeatureMissing(f"JSON 6902 {op} {operation['path']}: no such field")
        else:
            index = last
        if op == "add" and isinstance(node, list):
            node.insert(index, value)
        elif op in {"add", "replace"}:
            node[index] = value
        elif op == "remove":
            del node[index]
        elif node[index] != value:
            raise KustomizeFeatureMissing(f"JSON 6902 test {operation['path']} failed")


def set_namespace(objects: list[dict], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED_KINDS:
            if obj["kind"] == "Namespace" and obj["metadata"]["name"] != namespace:
                raise KustomizeFeatureMissing(f"Namespace {obj['metadata']['name']} under namespace: {namespace}")
        elif obj["kind"] in NAMESPACED_KINDS:
            obj["metadata"]["namespace"] = namespace
        else:
            raise KustomizeFeatureMissing(f"kind {obj['kind']}: its scope is not modelled by this build")


def add_labels(objects: list[dict], spec: dict) -> None:
    if set(spec) - {"pairs", "includeSelectors", "includeTemplates"}:
        raise KustomizeFeatureMissing(f"labels with {sorted(set(spec) - {'pairs'})}")
    if spec.get("includeSelectors") or spec.get("includeTemplates"):
        raise KustomizeFeatureMissing("labels on selectors or templates are not implemented")
    if not all(isinstance(v, str) for v in spec["pairs"].values()):
        raise KustomizeFeatureMissing(f"label values must be strings: {spec['pairs']}")
    for obj in objects:  # includeSelectors false: metadata/labels only
        obj["metadata"].setdefault("labels", {}).update(spec["pairs"])


def split_image(image: str) -> tuple[str, str]:
    """'registry/x:1@sha256:…' → ('registry/x', ':1@sha256:…')."""
    name, at, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon:] + at + digest
    return name, at + digest


def containers_anywhere(node):
    """Every container of every pod spec in an object (kustomize's images look in the same places)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"containers", "initContainers"} and isinstance(value, list):
                yield from value
            else:
                yield from containers_anywhere(value)
    elif isinstance(node, list):
        for item in node:
            yield from containers_anywhere(item)


def set_image(objects: list[dict], image: dict) -> None:
    if unknown := set(image) - {"name", "newName", "newTag", "digest"}:
        raise KustomizeFeatureMissing(f"images with {sorted(unknown)}")
    for obj in objects:
        for container in containers_anywhere(obj):
            name, reference = split_image(container["image"])
            if name != image["name"]:
                continue
            if "digest" in image:
                reference = "@" + image["digest"]
            elif "newTag" in image:
                reference = ":" + str(image["newTag"])
            container["image"] = image.get("newName", name) + reference


# --- what the tests look at ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builds() -> dict[str, list[dict]]:
    return {
        "base": kustomize_build(BASE),
        "overlay": kustomize_build(OVERLAY),
        # What the overlay's commented `components:` line does once uncommented.
        "overlay+keda": kustomize_build(OVERLAY, extra_components=(KEDA,)),
    }


@pytest.fixture(scope="module")
def specs():
    return discover_services()


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_templates(objects: list[dict]) -> list[tuple[dict, dict]]:
    """(owner, pod template) for every workload."""
    return [(o, o["spec"]["template"]) for o in objects if o["kind"] in {"Deployment", "Job"}]


def service_of(obj: dict) -> str:
    """The CRM service a workload belongs to: Deployment <name>, Job crm-<name>-migrate."""
    if obj["kind"] == "Job":
        match = re.fullmatch(r"crm-(\w+)-migrate", obj["metadata"]["name"])
        assert match, obj["metadata"]["name"]
        return match.group(1)
    return obj["metadata"]["name"]


def selector_matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) or a Service's plain map."""
    if set(selector) - {"matchLabels", "matchExpressions"}:
        selector = {"matchLabels": selector}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not ok:
            return False
    return True


def matching_workloads(objects: list[dict], selector: dict) -> list[dict]:
    return [owner for owner, template in pod_templates(objects)
            if selector_matches(selector, template["metadata"].get("labels", {}))]


def resolve_port(container: dict, port: int | str) -> dict | None:
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            return declared
    return None


def autoscalers_of(objects: list[dict], deployment: str) -> list[dict]:
    return [o for o in objects if o["kind"] in {"HorizontalPodAutoscaler", "ScaledObject"}
            and o["spec"]["scaleTargetRef"]["name"] == deployment]


def replica_bounds(autoscaler: dict) -> tuple[int, int]:
    spec = autoscaler["spec"]
    if autoscaler["kind"] == "ScaledObject":
        return spec["minReplicaCount"], spec["maxReplicaCount"]
    return spec["minReplicas"], spec["maxReplicas"]


def partitions(objects: list[dict]) -> int:
    return int(of_kind(objects, "ConfigMap")["crm-config"]["data"]["KAFKA_TOPIC_PARTITIONS"])


def documented_secret_keys() -> set[str]:
    """The keys of crm-secrets as configmap.yaml documents them (its `kubectl create secret` example)."""
    keys = set(re.findall(r"--from-literal=([a-z0-9-]+)=", (BASE / "configmap.yaml").read_text()))
    assert keys, "configmap.yaml no longer documents the Secret's keys"
    return keys


# --- the builder itself -------------------------------------------------------------------------


def kustomization_entries(directory: Path) -> tuple[list[str], list[str]]:
    """(local files named by resources and patch paths, directories named by resources/components)."""
    kustomization = yaml.safe_load(kustomization_file(directory).read_text())
    files, directories = [], []
    for entry in kustomization.get("resources", []):
        (directories if (directory / entry).is_dir() else files).append(entry)
    files += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    directories += kustomization.get("components", [])
    return files, directories


@pytest.mark.parametrize("directory", [BASE, OVERLAY, KEDA], ids=lambda p: str(p.relative_to(K8S)))
def test_every_kustomization_lists_exactly_the_files_in_its_folder(directory):
    files, directories = kustomization_entries(directory)
    assert len(files) == len(set(files))
    present = {p.name for p in directory.iterdir() if p.suffix in {".yaml", ".yml"}} - {"kustomization.yaml"}
    assert set(files) == present
    assert all((directory / d).is_dir() for d in directories)


def test_the_overlay_says_how_to_enable_the_keda_component():
    text = kustomization_file(OVERLAY).read_text()
    commented = re.search(r"^# components:\n#\s+- (\S+)$", text, re.MULTILINE)
    assert commented, "the example overlay no longer shows how to enable the KEDA component"
    assert (OVERLAY / commented.group(1)).resolve() == KEDA.resolve()
    assert yaml.safe_load(kustomization_file(KEDA).read_text())["kind"] == "Component"
    assert "components" not in yaml.safe_load(text), "KEDA is optional: the example overlay leaves it off"


UNIMPLEMENTED = {
    "a name prefix": {"namePrefix": "x-"},
    "commonLabels (they reach selectors)": {"commonLabels": {"a": "b"}},
    "a generator": {"configMapGenerator": [{"name": "x", "literals": ["a=b"]}]},
    "labels on selectors": {"labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]},
    "a strategic-merge patch": {"patches": [{"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                                                      "data: {a: b}\n"}]},
    "a patch that matches nothing": {"patches": [{"target": {"kind": "ConfigMap", "name": "nope"},
                                                  "patch": "- {op: add, path: /data/a, value: b}"}]},
    "a replace of a missing field": {"patches": [{"target": {"kind": "ConfigMap", "name": "c"},
                                                  "patch": "- {op: replace, path: /data/missing, value: b}"}]},
    "a regex patch target": {"patches": [{"target": {"kind": "ConfigMap", "name": "c.*"},
                                          "patch": "- {op: add, path: /data/a, value: b}"}]},
    "a file outside the folder": {"resources": ["../outside.yaml"]},
    "an unknown kind": {"resources": ["role.yaml"]},
    "the same object twice": {"resources": ["c.yaml", "c-again.yaml"]},
    "a YAML alias": {"resources": ["aliased.yaml"]},
}


@pytest.mark.parametrize("feature", UNIMPLEMENTED, ids=list(UNIMPLEMENTED))
def test_the_builder_fails_loudly_on_what_it_does_not_implement(tmp_path, feature):
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"
    (tmp_path / "outside.yaml").write_text(configmap)
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "c.yaml").write_text(configmap)
    (folder / "c-again.yaml").write_text(configmap)
    (folder / "role.yaml").write_text("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\n")
    (folder / "aliased.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n"
                                         "data: {a: &v b, c: *v}\n")
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "namespace": "n", "resources": ["c.yaml"], **UNIMPLEMENTED[feature]}
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    with pytest.raises(KustomizeFeatureMissing):
        kustomize_build(folder)


def test_the_builder_applies_what_it_implements(tmp_path):
    (tmp_path / "c.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\n"
                                     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
                                     "  template: {spec: {containers: [{name: x, image: 'img:1'}]}}\n")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "n",
        "resources": ["c.yaml"], "labels": [{"pairs": {"l": "v"}, "includeSelectors": False}],
        "images": [{"name": "img", "newName": "reg/img", "newTag": "2"}],
        "patches": [{"target": {"kind": "ConfigMap", "name": "c"}, "patch": "- {op: replace, path: /data/a, value: z}"},
                    {"patch": "$patch: delete\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\n"}]}))
    with pytest.raises(KustomizeFeatureMissing, match="matches nothing"):
        kustomize_build(tmp_path)
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    kustomization["patches"].pop()
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    configmap, deployment = kustomize_build(tmp_path)
    assert configmap["data"] == {"a": "z"}
    assert configmap["metadata"] == {"name": "c", "namespace": "n", "labels": {"l": "v"}}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/img:2"


# --- schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("build", ["base", "overlay", "overlay+keda"])
def test_every_object_is_valid_against_the_kubernetes_schemas(builds, build, version):
    standard = [o for o in builds[build] if o["kind"] != "ScaledObject"]
    assert {o["kind"] for o in standard} == {"Namespace", "ConfigMap", "Deployment", "Service", "Job",
                                             "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"}
    for obj in standard:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")


SCALED_OBJECT_FIELDS = {
    (): {"apiVersion", "kind", "metadata", "spec"},
    ("metadata",): {"name", "namespace", "labels", "annotations"},
    ("spec",): {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
                "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"},
    ("spec", "scaleTargetRef"): {"apiVersion", "kind", "name", "envSourceContainerName"},
    ("spec", "advanced"): {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig"},
    ("spec", "advanced", "horizontalPodAutoscalerConfig"): {"name", "behavior"},
}
TRIGGER_FIELDS = {"type", "name", "metadata", "metricType", "authenticationRef", "useCachedMetrics"}
TRIGGER_METADATA = {
    "kafka": {"bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "consumerGroupFromEnv", "topic",
              "topicFromEnv", "lagThreshold", "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers",
              "scaleToZeroOnInvalidOffset", "excludePersistentLag", "limitToPartitionsWithLag", "version",
              "partitionLimitation", "sasl", "tls", "unsafeSsl"},
    "cpu": {"value", "containerName"},
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_scaled_objects_have_the_shape_keda_accepts(builds, version):
    scaled_objects = of_kind(builds["overlay+keda"], "ScaledObject")
    assert scaled_objects
    for name, so in scaled_objects.items():
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        for path, allowed in SCALED_OBJECT_FIELDS.items():
            node = so
            for key in path:
                node = node.get(key, {})
            assert set(node) <= allowed, f"ScaledObject {name} {'.'.join(path)}: {set(node) - allowed}"
        spec = so["spec"]
        for field in ("pollingInterval", "minReplicaCount", "maxReplicaCount"):
            assert type(spec[field]) is int and spec[field] >= 1, field
        assert spec["triggers"]
        for trigger in spec["triggers"]:
            assert set(trigger) <= TRIGGER_FIELDS
            assert set(trigger["metadata"]) <= TRIGGER_METADATA[trigger["type"]], trigger
            # The CRD types metadata as map[string]string: an unquoted false or 1000 is refused.
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger
        # The HPA KEDA creates from it must be valid: validate that HPA against the real schema.
        target = {k: v for k, v in spec["scaleTargetRef"].items() if k != "envSourceContainerName"}
        hpa_spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", **target},
                    "minReplicas": spec["minReplicaCount"], "maxReplicas": spec["maxReplicaCount"]}
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior:
            hpa_spec["behavior"] = behavior
        hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": f"keda-hpa-{name}"}, "spec": hpa_spec}
        kubernetes_validate.validate(hpa, version, strict=True)


# --- workloads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", ["base", "overlay"])
def test_every_service_has_a_probed_deployment_and_a_service(builds, build):
    objects = builds[build]
    deployments, services = of_kind(objects, "Deployment"), of_kind(objects, "Service")
    configmaps = of_kind(objects, "ConfigMap")
    assert set(deployments) == set(SERVICES)
    assert set(services) == set(SERVICES)
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == name
        assert labels["app.kubernetes.io/part-of"] == "crm"
        assert "app.kubernetes.io/component" in labels
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in container["ports"]] == [SERVICES[name]]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["startupProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
            assert resolve_port(container, container[probe]["httpGet"]["port"]), f"{name} {probe} port"
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
        assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["crm-config", f"crm-{name}-config"]
        assert configmaps[f"crm-{name}-config"]["data"]["HTTP_PORT"] == str(SERVICES[name])
        assert configmaps[f"crm-{name}-config"]["data"]["SERVICE_NAME"] == name
        (port,) = services[name]["spec"]["ports"]
        assert port["port"] == SERVICES[name]
        assert resolve_port(container, port["targetPort"]), f"Service {name} targetPort {port['targetPort']}"
        assert services[name]["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize("build", ["base", "overlay", "overlay+keda"])
def test_every_selector_matches_exactly_its_own_services_pods(builds, build):
    objects = builds[build]
    deployments = of_kind(objects, "Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]
        assert matching_workloads(objects, selector) == [deployment], f"Deployment {name} selector"
        # Stable: only name and part-of, never a version or managed-by that changes.
        assert selector == {"matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "crm"}}
    for kind, get_selector in (("Service", lambda o: o["spec"]["selector"]),
                               ("PodDisruptionBudget", lambda o: o["spec"]["selector"]),
                               ("NetworkPolicy", lambda o: o["spec"]["podSelector"])):
        for name, obj in of_kind(objects, kind).items():
            if kind == "NetworkPolicy" and not get_selector(obj):
                continue  # the namespace-wide default deny
            matched = matching_workloads(objects, get_selector(obj))
            owner = obj["metadata"]["labels"]["app.kubernetes.io/name"]
            assert matched == [deployments[owner]], f"{kind} {name} selects {[service_of(m) for m in matched]}"


@pytest.mark.parametrize("build", ["base", "overlay"])
def test_images_are_the_services_own(builds, build):
    for owner, template in pod_templates(builds[build]):
        (container,) = template["spec"]["containers"]
        name, reference = split_image(container["image"])
        if build == "base":
            assert container["image"] == f"crm-{service_of(owner)}"
        else:
            assert name == f"registry.example.com/crm/crm-{service_of(owner)}"
            assert reference == ":0.1.0"


def test_the_example_overlay_sets_every_service_image_and_the_kafka_address(builds):
    overlay = yaml.safe_load(kustomization_file(OVERLAY).read_text())
    assert overlay["resources"] == ["../../base"]
    images = {image["name"]: image for image in overlay["images"]}
    assert set(images) == {f"crm-{name}" for name in SERVICES}
    assert all(image.get("newTag") for image in images.values())
    (patch,) = overlay["patches"]
    (replace,) = yaml.safe_load(patch["patch"])
    base_config = of_kind(builds["base"], "ConfigMap")["crm-config"]["data"]
    overlay_config = of_kind(builds["overlay"], "ConfigMap")["crm-config"]["data"]
    assert overlay_config["KAFKA_BOOTSTRAP_SERVERS"] == replace["value"] != base_config["KAFKA_BOOTSTRAP_SERVERS"]


def test_the_gateway_reaches_each_backend_through_its_service(builds):
    objects = builds["overlay"]
    services = of_kind(objects, "Service")
    config = of_kind(objects, "ConfigMap")["crm-gateway-config"]["data"]
    for name in set(SERVICES) - {"gateway"}:
        url = urlsplit(config[f"{name.upper()}_URL"])
        assert url.hostname == name and url.hostname in services
        assert url.port == services[name]["spec"]["ports"][0]["port"]


@pytest.mark.parametrize("build", ["overlay", "overlay+keda"])
def test_config_and_secret_references_resolve_to_what_is_defined_or_documented(builds, build):
    objects = builds[build]
    configmaps = of_kind(objects, "ConfigMap")
    used_keys = set()
    for owner, template in pod_templates(objects):
        service = service_of(owner)
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert set(source) == {"configMapRef"}, source  # no Secret pulled in wholesale
                assert source["configMapRef"]["name"] in configmaps
            names = [e["name"] for e in container.get("env", [])]
            assert len(names) == len(set(names))
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in configmaps[ref["configMapKeyRef"]["name"]]["data"]
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["name"] == SECRET
                    used_keys.add(ref["secretKeyRef"]["key"])
                if env["name"] == "DATABASE_URL":  # a Job must migrate the database its service uses
                    assert ref["secretKeyRef"]["key"] == f"{service}-database-url", owner["metadata"]["name"]
            if owner["kind"] == "Job":
                assert names == ["DATABASE_URL"]
    assert used_keys == documented_secret_keys()
    # The consumer group is crm-<name> (what the KEDA triggers watch) unless CONSUMER_GROUP is set.
    assert not any("CONSUMER_GROUP" in cm.get("data", {}) for cm in configmaps.values())


@pytest.mark.parametrize("name", SERVICES)
def test_every_variable_a_deployment_sets_is_a_setting_its_service_reads(builds, specs, name):
    # A misspelt variable would be ignored without a word. The one exception is documented in
    # configmap.yaml: KAFKA_TOPIC_PARTITIONS is read by `crm topics`, and here by the replica-cap checks.
    objects = builds["overlay"]
    configmaps = of_kind(objects, "ConfigMap")
    (container,) = of_kind(objects, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
    variables = {key for source in container["envFrom"] for key in configmaps[source["configMapRef"]["name"]]["data"]}
    variables |= {env["name"] for env in container.get("env", [])}
    known = {field.upper() for field in specs[name].settings_class.model_fields}
    assert variables - known == {"KAFKA_TOPIC_PARTITIONS"}


@pytest.mark.parametrize("build", ["base", "overlay"])
def test_each_service_has_a_migration_job_running_crm_migrate_with_its_own_image(builds, build, specs):
    objects = builds[build]
    jobs = of_kind(objects, "Job")
    deployments = of_kind(objects, "Deployment")
    assert set(jobs) == {f"crm-{name}-migrate" for name in SERVICES}
    for job in jobs.values():
        service = service_of(job)
        spec, pod = job["spec"], job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert [*container.get("command", []), *container.get("args", [])] == ["crm", "migrate", service]
        (service_container,) = deployments[service]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == service_container["image"]
        assert pod["restartPolicy"] in {"Never", "OnFailure"}
        assert 1 <= spec["backoffLimit"] <= 10
        assert spec["ttlSecondsAfterFinished"] > 0
        assert spec["activeDeadlineSeconds"] > 0
        # `crm migrate NAME` migrates only services that are installed and have migrations.
        assert specs[service].migrations
        assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_image_can_migrate_its_own_database(name):
    """The Job runs the service's image: it must hold crm-shared (the `crm` command) and the service."""
    dockerfile = (ROOT / "services" / name / "Dockerfile").read_text()
    runtime = dockerfile[dockerfile.rindex("\nFROM "):]
    assert re.search(rf"pip install [^\n]*crm-{name}\b", runtime)
    assert re.search(rf"pip wheel [^\n]*\./shared [^\n]*\./services/{name}\b", dockerfile)
    assert f'CMD ["crm", "serve", "{name}"]' in runtime


@pytest.mark.parametrize("build", ["base", "overlay+keda"])
def test_every_pod_meets_the_restricted_pod_security_standard(builds, build):
    objects = builds[build]
    namespace = of_kind(objects, "Namespace")[NAMESPACE]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for owner, template in pod_templates(objects):
        pod = template["spec"]
        where = owner["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert not any("hostPath" in v for v in pod.get("volumes", [])), where
        assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys(), where
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"] and not context.get("privileged"), where
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, where


# --- availability and scaling -------------------------------------------------------------------


@pytest.mark.parametrize("build", ["overlay", "overlay+keda"])
def test_every_deployment_has_one_autoscaler_within_the_partition_count(builds, build, specs):
    objects = builds[build]
    limit = partitions(objects)
    for name, deployment in of_kind(objects, "Deployment").items():
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the replica count"
        (autoscaler,) = autoscalers_of(objects, name)  # two autoscalers on one Deployment fight
        reference = autoscaler["spec"]["scaleTargetRef"]
        assert (reference.get("apiVersion", "apps/v1"), reference.get("kind", "Deployment")) == ("apps/v1",
                                                                                                  "Deployment")
        low, high = replica_bounds(autoscaler)
        assert 2 <= low <= high
        if specs[name].subscribes:
            assert high <= limit, f"{name}: {high} replicas for {limit} partitions; the extra consumers sit idle"
            assert autoscaler["kind"] == ("ScaledObject" if build == "overlay+keda" else "HorizontalPodAutoscaler")
        else:
            assert autoscaler["kind"] == "HorizontalPodAutoscaler", f"{name} consumes no topic: CPU only"
        if autoscaler["kind"] == "HorizontalPodAutoscaler":
            metrics = autoscaler["spec"]["metrics"]
            assert metrics and all(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics)
    assert set(of_kind(objects, "ScaledObject")) == ({n for n in SERVICES if specs[n].subscribes}
                                                    if build == "overlay+keda" else set())


def test_scaled_objects_watch_each_services_own_consumer_group_and_topics(builds, specs):
    objects = builds["overlay+keda"]
    deployments = of_kind(objects, "Deployment")
    configmaps = of_kind(objects, "ConfigMap")
    for name, so in of_kind(objects, "ScaledObject").items():
        target = so["spec"]["scaleTargetRef"]["name"]
        assert target == name and target in deployments
        (container,) = deployments[target]["spec"]["template"]["spec"]["containers"]
        env = {k for source in container["envFrom"] for k in configmaps[source["configMapRef"]["name"]]["data"]}
        kafka = [t["metadata"] for t in so["spec"]["triggers"] if t["type"] == "kafka"]
        assert sorted(t["topic"] for t in kafka) == sorted(specs[name].subscribes)
        for trigger in kafka:
            assert trigger["consumerGroup"] == f"crm-{name}"
            assert trigger["allowIdleConsumers"] == "false"
            assert trigger["offsetResetPolicy"] == "earliest"  # what the consumers do (kafka.new_consumer)
            assert int(trigger["lagThreshold"]) > 0
            # Resolved by KEDA from the target container's env, which crm-config provides.
            assert trigger["bootstrapServersFromEnv"] in env and "bootstrapServers" not in trigger
        (cpu,) = [t for t in so["spec"]["triggers"] if t["type"] == "cpu"]
        assert cpu["metricType"] in {"Utilization", "AverageValue"}
        assert so["spec"]["maxReplicaCount"] <= partitions(objects)


@pytest.mark.parametrize("build", ["overlay", "overlay+keda"])
def test_every_deployment_has_a_disruption_budget_that_lets_a_drain_proceed(builds, build):
    objects = builds[build]
    budgets = list(of_kind(objects, "PodDisruptionBudget").values())
    for name, deployment in of_kind(objects, "Deployment").items():
        (budget,) = [b for b in budgets if deployment in matching_workloads(objects, b["spec"]["selector"])]
        low, _ = replica_bounds(autoscalers_of(objects, name)[0])
        spec = budget["spec"]
        assert ("maxUnavailable" in spec) != ("minAvailable" in spec)
        if "maxUnavailable" in spec:
            assert isinstance(spec["maxUnavailable"], int) and 1 <= spec["maxUnavailable"] < low
        else:  # at the autoscaler's minimum a drain may still evict one pod
            assert isinstance(spec["minAvailable"], int) and 1 <= spec["minAvailable"] < low


# --- network policies ---------------------------------------------------------------------------


def admits(objects: list[dict], target: dict, port: int, source: dict | None) -> bool:
    """Whether the NetworkPolicies let ``source`` connect to a pod of ``target`` (a workload) on ``port``.

    ``source`` is {"namespace": ..., "labels": ...} for a pod, or None for a client outside the cluster.
    The Kubernetes semantics: a pod selected by any Ingress policy of its namespace admits only what one
    of those policies' rules admits; a rule without `from` admits any source; a peer with podSelector
    alone means pods of the policy's own namespace; namespaceSelector and podSelector in one peer must
    both match.
    """
    namespace = target["metadata"]["namespace"]
    labels = target["spec"]["template"]["metadata"]["labels"]
    container = target["spec"]["template"]["spec"]["containers"][0]
    policies = [p for p in of_kind(objects, "NetworkPolicy").values()
                if p["metadata"]["namespace"] == namespace and selector_matches(p["spec"]["podSelector"], labels)
                and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not policies:
        return True

    def port_matches(rule_port: dict) -> bool:
        if "endPort" in rule_port:
            raise AssertionError("port ranges are not modelled by this test")
        if rule_port.get("protocol", "TCP") != "TCP":
            return False
        if "port" not in rule_port:
            return True
        if isinstance(rule_port["port"], int):
            return rule_port["port"] == port
        # A named port means the target container's port of that name.
        return (resolve_port(container, rule_port["port"]) or {}).get("containerPort") == port

    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports", [])
            if ports and not any(port_matches(p) for p in ports):
                continue
            peers = rule.get("from", [])
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    raise AssertionError("ipBlock peers are not modelled by this test")
                if source is None:
                    continue
                in_namespace = (selector_matches(peer["namespaceSelector"],
                                                 {"kubernetes.io/metadata.name": source["namespace"]})
                                if "namespaceSelector" in peer else source["namespace"] == namespace)
                if in_namespace and selector_matches(peer.get("podSelector", {}), source["labels"]):
                    return True
    return False


def pod(namespace: str, **labels: str) -> dict:
    return {"namespace": namespace, "labels": {f"app.kubernetes.io/{k.replace('_', '-')}": v
                                               for k, v in labels.items()}}


SOURCES = {
    "the internet": None,
    "gateway": pod("crm", name="gateway", part_of="crm"),
    "profile": pod("crm", name="profile", part_of="crm"),
    "a migration Job": pod("crm", name="loyalty-migrate", part_of="crm", component="migration"),
    "prometheus": pod("monitoring", name="prometheus"),
    "grafana in monitoring": pod("monitoring", name="grafana"),
    "prometheus elsewhere": pod("default", name="prometheus"),
    "a gateway look-alike elsewhere": pod("default", name="gateway", part_of="crm"),
}


@pytest.mark.parametrize("build", ["base", "overlay+keda"])
def test_only_the_gateway_admits_traffic_from_outside_and_backends_only_the_gateway_and_prometheus(builds, build):
    objects = builds[build]
    default_deny = [p for p in of_kind(objects, "NetworkPolicy").values()
                    if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
                    and not p["spec"].get("ingress")]
    assert default_deny, "no namespace-wide default-deny ingress policy"
    expected = {"gateway": set(SOURCES), "profile": {"gateway", "prometheus"}, "loyalty": {"gateway", "prometheus"},
                "tickets": {"gateway", "prometheus"}, "churn": {"gateway", "prometheus"},
                "campaigns": {"gateway", "prometheus"}}
    for owner, _template in pod_templates(objects):
        name = owner["metadata"]["name"]
        port = SERVICES[service_of(owner)]
        admitted = {label for label, source in SOURCES.items() if admits(objects, owner, port, source)}
        if owner["kind"] == "Job":
            assert admitted == set(), f"{name} serves nothing yet admits {admitted}"
        else:
            assert admitted == expected[name], f"{name} on its http port admits {sorted(admitted)}"
            other_port = {label for label, source in SOURCES.items() if admits(objects, owner, 5432, source)}
            assert other_port == set(), f"{name} on a port it does not serve admits {other_port}"


def egress_allowed(objects: list[dict], source: dict, port: int, protocol: str = "TCP",
                   destination: dict | None = None) -> bool:
    """Whether the Egress NetworkPolicies let a pod of ``source`` (a workload) connect out on ``port``.

    ``destination`` is {"namespace", "labels"} for a pod, or None for an address outside the cluster.
    Same semantics as ``admits``: no Egress policy selecting the pod, everything is allowed; a rule
    without `to` allows any destination on its ports.
    """
    namespace = source["metadata"]["namespace"]
    labels = source["spec"]["template"]["metadata"]["labels"]
    policies = [p for p in of_kind(objects, "NetworkPolicy").values()
                if p["metadata"]["namespace"] == namespace and selector_matches(p["spec"]["podSelector"], labels)
                and "Egress" in p["spec"].get("policyTypes", [])]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            ports = rule.get("ports", [])
            if any("endPort" in p or isinstance(p.get("port"), str) for p in ports):
                raise AssertionError("port ranges and named ports are not modelled by this test")
            if ports and not any(p.get("protocol", "TCP") == protocol and p.get("port", port) == port for p in ports):
                continue
            peers = rule.get("to", [])
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    raise AssertionError("ipBlock peers are not modelled by this test")
                if destination is None:
                    continue
                in_namespace = (selector_matches(peer["namespaceSelector"],
                                                 {"kubernetes.io/metadata.name": destination["namespace"]})
                                if "namespaceSelector" in peer else destination["namespace"] == namespace)
                if in_namespace and selector_matches(peer.get("podSelector", {}), destination["labels"]):
                    return True
    return False


@pytest.mark.parametrize("build", ["base", "overlay+keda"])
def test_campaigns_reaches_pii_only_through_the_gateway_and_its_infrastructure_and_providers(builds, build):
    objects = builds[build]
    deployments, services = of_kind(objects, "Deployment"), of_kind(objects, "Service")
    campaigns = deployments["campaigns"]
    config = of_kind(objects, "ConfigMap")["crm-campaigns-config"]["data"]
    gateway_url = urlsplit(config["GATEWAY_URL"])
    assert gateway_url.hostname == "gateway" and gateway_url.port == services["gateway"]["spec"]["ports"][0]["port"]
    assert egress_allowed(objects, campaigns, SERVICES["gateway"], destination=SOURCES["gateway"])
    for name in SERVICES.keys() - {"gateway", "campaigns"}:  # the profile's PII only through the gateway
        target = pod("crm", name=name, part_of="crm")
        assert not egress_allowed(objects, campaigns, SERVICES[name], destination=target), name
    assert egress_allowed(objects, campaigns, 53, "UDP") and egress_allowed(objects, campaigns, 53, "TCP")
    kafka_ports = {int(a.rpartition(":")[2]) for a in
                   of_kind(objects, "ConfigMap")["crm-config"]["data"]["KAFKA_BOOTSTRAP_SERVERS"].split(",")}
    for port in {5432, int(config["SMTP_PORT"]), 443, *kafka_ports}:
        assert egress_allowed(objects, campaigns, port), f"campaigns cannot reach port {port}"
    # Every other workload keeps open egress (their destinations are per environment).
    for owner, _template in pod_templates(objects):
        if owner is not campaigns:
            assert egress_allowed(objects, owner, 8001, destination=SOURCES["profile"]), owner["metadata"]["name"]


# --- labels and namespace -----------------------------------------------------------------------


@pytest.mark.parametrize("build", ["base", "overlay", "overlay+keda"])
def test_every_object_carries_the_recommended_labels_and_lives_in_the_crm_namespace(builds, build):
    objects = builds[build]
    overlay_tags = {str(i["newTag"]) for i in yaml.safe_load(kustomization_file(OVERLAY).read_text())["images"]}
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert all(labels.get(k) for k in RECOMMENDED_LABELS), f"{where} lacks {RECOMMENDED_LABELS}"
        assert labels["app.kubernetes.io/part-of"] == "crm", where
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize", where
        if build == "base":
            assert "app.kubernetes.io/version" not in labels, where
        else:  # the release the overlay deploys, the same as its image tags
            assert {labels.get("app.kubernetes.io/version")} == overlay_tags, where
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE and "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, where
    for owner, template in pod_templates(objects):
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "crm"
        # Pod templates stay free of the release label: a label change alone would roll every pod.
        assert "app.kubernetes.io/version" not in template["metadata"]["labels"], owner["metadata"]["name"]


def test_kafka_topic_partitions_in_the_config_is_what_crm_topics_creates_by_default(builds):
    """The replica caps are checked against crm-config; it must say what `crm topics` really does."""
    import crm_shared.cli

    if "KAFKA_TOPIC_PARTITIONS" in os.environ:
        pytest.skip("KAFKA_TOPIC_PARTITIONS is set for this test run")
    assert partitions(builds["overlay"]) == crm_shared.cli.TOPIC_PARTITIONS
