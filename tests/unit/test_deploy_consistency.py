"""The deployment files agree with the code: every service (a folder under services/ with a service.py,
plus the gateway) is in docker-compose.yml and has a Kubernetes manifest; commands point to modules and
config files that exist; settings without a default are set; each database is created, owned by its
service and migrated before the service starts; no secret value is committed; the image is not root.

Services are discovered from the tree, so a new service folder fails here until it is deployed too.
Files are only parsed: nothing is imported, built or started."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
INIT_DB = REPO / "deploy" / "postgres" / "init-databases.sh"
DOCKERFILE = REPO / "Dockerfile"

HTTP_SERVICES = {"gateway"}  # services with an HTTP port: k8s Service + httpGet probes
ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:[^}]*)?\}")
COMPOSE_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|(^|_)KEY($|_)|TOKEN(?!_TTL)|CREDENTIAL|PRIVATE", re.I)
_URL_PART = r"(?:\$\{[^}]*\}|[^/\s:@$])+"  # literal characters or whole ${...} references
URL_CREDENTIALS = re.compile(rf"://{_URL_PART}:(?P<password>(?:\$\{{[^}}]*\}}|[^/\s@$])+)@")
DEV_DEFAULT = "dev-only"


# --- discovery ---------------------------------------------------------------------------------------


def discovered_services() -> list[str]:
    """Every nameko service of the tree: services/<name>/service.py (not `common`), and the gateway."""
    found = sorted(
        path.parent.name for path in (REPO / "services").glob("*/service.py") if path.parent.name != "common"
    )
    return [*found, "gateway"]


def service_folder(service: str) -> Path:
    return REPO / "gateway" if service == "gateway" else REPO / "services" / service


def service_module(service: str) -> str:
    return "gateway.service" if service == "gateway" else f"services.{service}.service"


@cache
def config_text(service: str) -> str:
    return (service_folder(service) / "config.yml").read_text(encoding="utf-8")


def config_env_refs(service: str) -> dict[str, str | None]:
    """`${VAR:default}` references of a service's config.yml: VAR -> default (None: no default)."""
    refs: dict[str, str | None] = {}
    for match in ENV_REF.finditer(config_text(service)):
        default = match.group("default")
        refs[match.group("name")] = default[1:] if default is not None else None
    return refs


def config_key_env(service: str) -> dict[str, str]:
    """Top-level config key -> the environment variable it reads (`KEY: ${VAR:...}`)."""
    pairs = re.findall(r"^([A-Za-z_][\w]*):\s*\$\{([A-Za-z_]\w*)", config_text(service), re.M)
    return dict(pairs)


def service_databases(service: str) -> dict[str, str]:
    """DB_URIS of a service's config.yml: database name -> environment variable of its URI."""
    raw = yaml.safe_load(config_text(service)) or {}
    databases = {}
    for name, value in (raw.get("DB_URIS") or {}).items():
        match = ENV_REF.search(str(value))
        assert match, f"{service}: DB_URIS.{name} is not read from the environment"
        databases[name] = match.group("name")
    return databases


def required_secrets(service: str) -> set[str]:
    """Environment variables behind `required_secret(config, "KEY", ...)` calls in a service's code."""
    keys = set()
    for path in service_folder(service).rglob("*.py"):
        keys.update(re.findall(r"required_secret\(\s*[^,]+,\s*[\"'](\w+)[\"']", path.read_text("utf-8")))
    mapping = config_key_env(service)
    return {mapping.get(key, key) for key in keys}


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_services() -> dict[str, dict]:
    return compose()["services"]


def platform_compose_services() -> dict[str, dict]:
    """Compose services that run the platform's own image (they have a `build`)."""
    return {name: svc for name, svc in compose_services().items() if "build" in svc}


def compose_env(name: str) -> dict[str, str]:
    env = compose_services()[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_list(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


@cache
def k8s_documents(service: str) -> list[dict]:
    path = K8S / f"{service}.yaml"
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def k8s_all_documents() -> dict[Path, list[dict]]:
    return {
        path: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        for path in sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))
    }


def k8s_deployment(service: str) -> dict:
    for doc in k8s_documents(service):
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == service:
            return doc
    raise AssertionError(f"deploy/k8s/{service}.yaml has no Deployment named {service}")


def pod_containers(deployment: dict) -> list[dict]:
    spec = deployment["spec"]["template"]["spec"]
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def init_database_names() -> list[str]:
    match = re.search(r'^SERVICE_DATABASES="([^"]*)"', INIT_DB.read_text(encoding="utf-8"), re.M)
    assert match, 'deploy/postgres/init-databases.sh must define SERVICE_DATABASES="..."'
    return match.group(1).split()


# --- command checks (shared by compose and k8s) --------------------------------------------------


def module_file(module: str) -> Path | None:
    base = REPO / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py", base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


def command_problems(where: str, command: list[str]) -> list[str]:
    """A command must run an existing module with an existing config file."""
    if not command:
        return [f"{where}: no command"]
    if command[:2] == ["nameko", "run"]:
        args = command[2:]
        if "--config" not in args or args.index("--config") + 1 >= len(args):
            return [f"{where}: nameko run without --config"]
        config = args[args.index("--config") + 1]
        targets = [a for i, a in enumerate(args) if not a.startswith("-") and args[i - 1] != "--config"]
        problems = [] if (REPO / config).is_file() else [f"{where}: config file {config} does not exist"]
        if not targets:
            problems.append(f"{where}: nameko run names no service module")
        for target in targets:
            module, _, cls = target.partition(":")
            path = module_file(module)
            if path is None:
                problems.append(f"{where}: module {module} does not exist")
            elif cls and not re.search(rf"^class {re.escape(cls)}\b", path.read_text("utf-8"), re.M):
                problems.append(f"{where}: {module} defines no class {cls}")
        return problems
    if command[:2] == ["python", "-m"] and len(command) > 2:
        module, args = command[2], command[3:]
        if module_file(module) is None:
            return [f"{where}: module {module} does not exist"]
        if module == "services.common.migrate":
            return [
                f"{where}: {svc} has no migrations folder"
                for svc in args
                if not (REPO / "services" / svc / "migrations").is_dir()
            ]
        if module == "deploy.probe":
            known = {*discovered_services(), "invoices_site"}  # the site: HTTP only, probed on /health
            return [f"{where}: probe of unknown service {svc}" for svc in args[:1] if svc not in known]
        return []
    return [f"{where}: unexpected command {command!r} (nameko run or python -m)"]


# --- tests -------------------------------------------------------------------------------------------


def test_discovery_finds_the_services():
    services = discovered_services()
    assert "identity" in services and "gateway" in services
    assert "common" not in services


def missing_deployments(services: list[str]) -> list[str]:
    """Services that have no compose entry or no k8s manifest (listed in kustomization.yaml)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    resources = set(kustomization.get("resources") or [])
    problems = []
    for service in services:
        if service not in compose_services():
            problems.append(f"{service}: no service in docker-compose.yml")
        if not (K8S / f"{service}.yaml").is_file():
            problems.append(f"{service}: no deploy/k8s/{service}.yaml")
        elif f"{service}.yaml" not in resources:
            problems.append(f"{service}: deploy/k8s/{service}.yaml is not in kustomization.yaml resources")
    return problems


def test_every_service_is_deployed():
    assert missing_deployments(discovered_services()) == []


def test_a_new_service_folder_without_deployment_is_caught():
    problems = missing_deployments([*discovered_services(), "newly_added"])
    assert [problem for problem in problems if problem.startswith("newly_added")] == [
        "newly_added: no service in docker-compose.yml",
        "newly_added: no deploy/k8s/newly_added.yaml",
    ]


@pytest.mark.parametrize("service", discovered_services())
def test_compose_runs_the_service_module(service):
    command = command_list(compose_services()[service].get("command"))
    folder = service_folder(service).relative_to(REPO)
    assert command[:4] == ["nameko", "run", "--config", f"{folder}/config.yml"], command
    assert command[4].partition(":")[0] == service_module(service)
    module_text = module_file(service_module(service)).read_text("utf-8")
    assert re.search(rf"^\s+name = [\"']{service}[\"']", module_text, re.M), f"{service}: nameko name"
    if service not in HTTP_SERVICES:
        assert re.search(r"def health\(self\)", module_text), f"{service}: no health RPC for the probe"


def test_every_command_points_to_existing_files():
    problems = []
    for name, svc in platform_compose_services().items():
        problems += command_problems(f"compose {name}", command_list(svc.get("command")))
        test = command_list((svc.get("healthcheck") or {}).get("test"))
        if test[:1] == ["CMD"]:
            problems += command_problems(f"compose {name} healthcheck", test[1:])
    for path, docs in k8s_all_documents().items():
        for doc in docs:
            if doc.get("kind") != "Deployment":
                continue
            for container in pod_containers(doc):
                where = f"{path.name} {container['name']}"
                problems += command_problems(where, command_list(container.get("command")))
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    exec_command = ((container.get(probe) or {}).get("exec") or {}).get("command")
                    if exec_command:
                        problems += command_problems(f"{where} {probe}", command_list(exec_command))
    assert problems == []


@pytest.mark.parametrize("service", discovered_services())
def test_compose_and_k8s_run_the_same_command(service):
    k8s_server = k8s_deployment(service)["spec"]["template"]["spec"]["containers"][0]
    assert command_list(k8s_server["command"]) == command_list(compose_services()[service]["command"])


@pytest.mark.parametrize("service", discovered_services())
def test_settings_without_default_are_set(service):
    """`${VAR}` with no default (and secrets the code requires in production) must be provided:
    in compose by the service's environment, in k8s by its ConfigMaps or named as a Secret key."""
    needed = {name for name, default in config_env_refs(service).items() if default is None}
    needed |= required_secrets(service)
    env = compose_env(service)
    assert sorted(needed - set(env)) == [], f"{service}: not set in docker-compose.yml"
    manifest_text = (K8S / f"{service}.yaml").read_text(encoding="utf-8")
    shared = (K8S / "config.yaml").read_text(encoding="utf-8")
    missing = sorted(var for var in needed if var not in manifest_text and var not in shared)
    assert missing == [], f"{service}: neither in its ConfigMaps nor listed as Secret keys in k8s"


@pytest.mark.parametrize("service", discovered_services())
def test_compose_service_is_production_like(service):
    svc = compose_services()[service]
    env = compose_env(service)
    assert env.get("ENVIRONMENT") == "production"
    assert "@rabbitmq:" in env.get("AMQP_URI", ""), "AMQP_URI must point at the compose broker"
    assert svc.get("read_only") is True and "ALL" in (svc.get("cap_drop") or [])
    assert svc.get("healthcheck", {}).get("test"), f"{service}: no healthcheck"
    depends = svc.get("depends_on") or {}
    assert depends.get("rabbitmq", {}).get("condition") == "service_healthy"
    if "SMTP_URL" in config_env_refs(service):
        assert "mailpit:1025" in env.get("SMTP_URL", ""), f"{service}: SMTP_URL must reach the mail catcher"


def test_infrastructure_has_healthchecks():
    services = compose_services()
    for name in ("rabbitmq", "postgres", "mailpit"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    init_mounts = [v for v in services["postgres"].get("volumes", []) if "init-databases.sh" in str(v)]
    assert init_mounts and "/docker-entrypoint-initdb.d/" in init_mounts[0]


@pytest.mark.parametrize("service", discovered_services())
def test_databases_are_created_owned_and_migrated(service):
    databases = service_databases(service)
    if not databases:
        assert f"{service}-migrate" not in compose_services(), f"{service} has no database to migrate"
        return
    created = init_database_names()
    postgres_env = compose_env("postgres")
    env = compose_env(service)
    k8s_text = (K8S / f"{service}.yaml").read_text(encoding="utf-8")
    for database, uri_var in databases.items():
        assert database in created, f"init-databases.sh does not create {database}"
        password_var = f"{database.upper()}_DB_PASSWORD"
        assert password_var in postgres_env, f"postgres service lacks {password_var}"
        for consumer in (service, f"{service}-migrate"):
            uri = compose_env(consumer).get(uri_var, "")
            match = re.fullmatch(r"postgresql\+psycopg2://(\w+):(\$\{[^}]+\})@postgres:5432/(\w+)", uri)
            assert match, f"compose {consumer}: {uri_var} must be a PostgreSQL URI on the postgres service"
            user, password, name = match.groups()
            assert user == name == database, f"compose {consumer}: {uri_var} must use the {database} role"
            assert password == postgres_env[password_var], f"compose {consumer}: not postgres' password"
        assert uri_var in env
        assert uri_var in k8s_text, f"k8s {service}: {uri_var} not listed among its Secret keys"
    migrate = compose_services()[f"{service}-migrate"]
    assert command_list(migrate["command"]) == ["python", "-m", "services.common.migrate", service]
    depends = compose_services()[service].get("depends_on") or {}
    assert depends.get(f"{service}-migrate", {}).get("condition") == "service_completed_successfully"
    init = k8s_deployment(service)["spec"]["template"]["spec"].get("initContainers") or []
    migrate_command = ["python", "-m", "services.common.migrate", service]
    assert any(command_list(c.get("command")) == migrate_command for c in init), (
        f"k8s {service}: no init container migrating its database"
    )


def test_every_created_database_belongs_to_a_service():
    owned = {db for service in discovered_services() for db in service_databases(service)}
    assert sorted(set(init_database_names()) - owned) == []


@pytest.mark.parametrize("service", discovered_services())
def test_k8s_manifest_shape(service):
    deployment = k8s_deployment(service)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    for container in pod_containers(deployment):
        name = f"{service}/{container['name']}"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), f"{name}: resources.{bound}"
        sources = container.get("envFrom") or []
        assert {"configMapRef": {"name": "portail-config"}} in sources, f"{name}: shared ConfigMap"
        assert {"secretRef": {"name": f"{service}-secrets"}} in sources, f"{name}: Secret by name"
    server = pod["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in server, f"{service}: no {probe}"
    kinds = {doc["kind"] for doc in k8s_documents(service)}
    if service in HTTP_SERVICES:
        assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert server["livenessProbe"]["httpGet"]["path"] == "/health"
        assert "Service" in kinds, f"{service}: has a port, needs a Service"
    else:
        probe = ["python", "-m", "deploy.probe", service]
        assert command_list(server["readinessProbe"]["exec"]["command"]) == probe
        assert command_list(server["livenessProbe"]["exec"]["command"])[:4] == probe


def secret_problems(where: str, node: object, key: str = "") -> list[str]:
    """Values that look like committed secrets, anywhere in a parsed manifest."""
    if isinstance(node, dict):
        if node.get("kind") == "Secret" and (node.get("data") or node.get("stringData")):
            return [f"{where}: a Secret with values is committed"]
        problems = []
        for child_key, child in node.items():
            problems += secret_problems(where, child, str(child_key))
        if "name" in node and "value" in node and SECRET_NAME.search(str(node["name"])) and node["value"]:
            problems.append(f"{where}: env {node['name']} has a literal value")
        return problems
    if isinstance(node, list):
        return [problem for item in node for problem in secret_problems(where, item, key)]
    if isinstance(node, str):
        if SECRET_NAME.search(key) and node:
            return [f"{where}: {key} holds a value"]
        if URL_CREDENTIALS.search(node):
            return [f"{where}: {key or 'a value'} holds a URL with credentials"]
    return []


def test_no_secret_values_in_k8s_manifests():
    problems = []
    for path, docs in k8s_all_documents().items():
        for doc in docs:
            problems += secret_problems(path.name, doc)
    assert problems == []


def test_secret_checker_catches_literals():
    configmap = {"kind": "ConfigMap", "data": {"DB_PASSWORD": "hunter2", "X": "amqp://u:p@h/"}}
    env = {"env": [{"name": "OIDC_CLIENT_SECRET", "value": "s"}]}
    assert len(secret_problems("t", configmap)) == 2
    assert len(secret_problems("t", env)) == 1
    assert secret_problems("t", {"data": {"ACCESS_TOKEN_TTL": "600", "PUBLIC_URL": "https://x/"}}) == []


def test_compose_commits_no_real_secret():
    """Secrets come from the environment; a default, if any, is marked development-only."""
    problems = []
    for name in compose_services():
        for var, value in compose_env(name).items():
            carriers = [value] if SECRET_NAME.search(var) else []
            carriers += [m.group("password") for m in URL_CREDENTIALS.finditer(value)]
            for carrier in carriers:
                ref = COMPOSE_REF.fullmatch(carrier)
                if carrier and ref is None:
                    problems.append(f"{name}: {var} is a literal secret")
                elif ref and ref.group("default") and not ref.group("default").startswith(DEV_DEFAULT):
                    problems.append(f"{name}: {var} default is not marked {DEV_DEFAULT}")
    assert problems == []


def test_compose_uses_one_anchor_for_common_env():
    text = COMPOSE.read_text(encoding="utf-8")
    anchor = re.search(r"^x-[\w-]+: &(\S+)\s*$(?:\n  .*)*?\n  ENVIRONMENT:", text, re.M)
    assert anchor, "the common service environment is one YAML anchor"
    for service in discovered_services():
        assert compose_env(service).get("ENVIRONMENT") == "production"


@cache
def dockerfile_uid() -> int:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert users, "Dockerfile sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "USER must be numeric so that Kubernetes' runAsNonRoot can verify it"
    return int(user)


def test_image_runs_as_non_root():
    assert dockerfile_uid() != 0
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install -c requirements/constraints.txt ." in text


def test_gateway_readiness_covers_every_backend():
    """The gateway's /ready (its readiness probe) asks READY_SERVICES; every backend must be there."""
    default = config_env_refs("gateway").get("READY_SERVICES")
    if default is None and "READY_SERVICES" not in config_env_refs("gateway"):
        pytest.skip("the gateway has no READY_SERVICES setting")
    backends = set(discovered_services()) - {"gateway"}
    effective = {
        "compose": compose_env("gateway").get("READY_SERVICES", default or ""),
        "k8s": next(
            (
                doc["data"]["READY_SERVICES"]
                for doc in k8s_documents("gateway")
                if doc.get("kind") == "ConfigMap" and "READY_SERVICES" in (doc.get("data") or {})
            ),
            default or "",
        ),
    }
    for where, value in effective.items():
        listed = {name.strip() for name in value.split(",") if name.strip()}
        assert sorted(backends - listed) == [], f"{where}: READY_SERVICES misses backends"


def test_operations_doc_lists_every_setting():
    """docs/operations.md has the table of settings: each `${VAR}` of each config.yml is in it."""
    doc = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = {
        service: sorted(var for var in config_env_refs(service) if f"`{var}`" not in doc)
        for service in discovered_services()
    }
    assert {service: names for service, names in missing.items() if names} == {}


def test_default_migrate_covers_every_database():
    """`python -m services.common.migrate` without argument (make migrate) upgrades SERVICES_WITH_DB."""
    text = (REPO / "services" / "common" / "migrate.py").read_text(encoding="utf-8")
    match = re.search(r"^SERVICES_WITH_DB\s*=\s*\(([^)]*)\)", text, re.M)
    assert match, "services/common/migrate.py defines no SERVICES_WITH_DB tuple"
    listed = set(re.findall(r"[\"'](\w+)[\"']", match.group(1)))
    with_db = {service for service in discovered_services() if service_databases(service)}
    assert sorted(with_db - listed) == []
