"""Static checks of deploy/ and helm/sfu; run through deploy/check.sh, which
installs the tools. Prints one line per check and exits 1 if any failed."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = ROOT / "helm" / "sfu"

results = []


def check(name):
    def wrap(fn):
        try:
            detail = fn()
            results.append((name, True, detail or ""))
            print(f"ok    {name}" + (f": {detail}" if detail else ""))
        except Exception as err:  # noqa: BLE001 - report every failure
            results.append((name, False, str(err)))
            print(f"FAIL  {name}: {err}")
        return fn

    return wrap


def run(cmd, env=None, input=None, ok_codes=(0,)):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, input=input, cwd=ROOT)
    if p.returncode not in ok_codes:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def ensure(cond, message):
    if not cond:
        raise AssertionError(message)


args = argparse.ArgumentParser()
args.add_argument("--helm", required=True)
args.add_argument("--bin", required=True, help="directory with hadolint, docker-compose, kubernetes-validate")
opts = args.parse_args()
BIN = Path(opts.bin)
TOOLS = Path(opts.helm).resolve().parent.parent
# Tools keep their caches and settings in target/deploy-tools, and compose
# sees no variable of the caller's environment but PATH.
CLEAN_ENV = {
    "PATH": os.environ["PATH"],
    "HOME": str(TOOLS / "home"),
    "DOCKER_CONFIG": str(TOOLS / "docker"),
    "HELM_CACHE_HOME": str(TOOLS / "helm-home" / "cache"),
    "HELM_CONFIG_HOME": str(TOOLS / "helm-home" / "config"),
    "HELM_DATA_HOME": str(TOOLS / "helm-home" / "data"),
}

# ---- Dockerfile ---------------------------------------------------------------

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
INSTRUCTIONS = [
    l.strip() for l in re.sub(r"\\\n", " ", DOCKERFILE).splitlines() if l.strip() and not l.lstrip().startswith("#")
]


@check("hadolint deploy/Dockerfile")
def _():
    p = run([BIN / "hadolint", "--no-color", "--failure-threshold", "info", "deploy/Dockerfile"], env=CLEAN_ENV)
    return (p.stdout.strip() or "no findings") + f" ({run([BIN / 'hadolint', '--version']).stdout.strip()})"


@check("Dockerfile: multi-stage, cached dependency layer, pinned base tags")
def _():
    froms = [l.split()[1] for l in INSTRUCTIONS if l.upper().startswith("FROM ")]
    ensure(len(froms) >= 2, f"one stage only: {froms}")
    for image in froms:
        ensure(":" in image and re.search(r":\S*\d+\.\d+", image) and "latest" not in image, f"{image} is not pinned to a version tag")
    builds = [i for i, l in enumerate(INSTRUCTIONS) if "cargo build" in l]
    sources = [i for i, l in enumerate(INSTRUCTIONS) if re.match(r"COPY (sfu|signaling|loadtest) ", l)]
    ensure(len(builds) == 2 and sources and builds[0] < min(sources) < builds[1], "dependencies are not built before the sources are copied")
    ensure(any(re.match(r"COPY Cargo\.toml Cargo\.lock", l) for l in INSTRUCTIONS), "Cargo.lock not copied first")
    # Every workspace member's manifest must be in the dependency layer, and
    # its sources copied afterwards.
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", (ROOT / "Cargo.toml").read_text()).group(1)
    for member in re.findall(r'"([^"]+)"', members):
        ensure(any(re.match(rf"COPY {re.escape(member)}/Cargo\.toml ", l) for l in INSTRUCTIONS), f"workspace member {member}: its Cargo.toml is not copied into the dependency layer")
        ensure(any(re.match(rf"COPY {re.escape(member)} {re.escape(member)}$", l) for l in INSTRUCTIONS), f"workspace member {member}: its sources are not copied")
    return ", ".join(froms)


@check("Dockerfile: non-root user, HEALTHCHECK on /healthz, EXPOSE, both binaries")
def _():
    users = [l.split()[1] for l in INSTRUCTIONS if l.upper().startswith("USER ")]
    ensure(users and users[-1].split(":")[0] not in ("0", "root"), f"runs as {users}")
    health = [l for l in INSTRUCTIONS if l.upper().startswith("HEALTHCHECK ")]
    ensure(health and "sfu-healthcheck" in health[-1], f"HEALTHCHECK: {health}")
    ensure('/healthz"' in (DEPLOY / "docker" / "sfu-healthcheck").read_text(), "sfu-healthcheck does not ask /healthz")
    exposed = set(" ".join(l.split()[1:]) for l in INSTRUCTIONS if l.upper().startswith("EXPOSE ")).pop().split()
    for port in ("8080/tcp", "7882/udp", "7881/tcp"):
        ensure(port in exposed, f"{port} not exposed: {exposed}")
    ensure(any("sfu-server" in l and "sfu-loadtest" in l for l in INSTRUCTIONS if l.startswith("COPY --from=build")), "both binaries must be in the image")
    ensure(INSTRUCTIONS[-1] == 'ENTRYPOINT ["sfu-server"]', "ENTRYPOINT is not sfu-server")
    for script in ("sfu-healthcheck", "sfu-drain"):
        run(["sh", "-n", DEPLOY / "docker" / script])
        ensure(os.access(DEPLOY / "docker" / script, os.X_OK), f"{script} is not executable")
    return f"USER {users[-1]}, EXPOSE {' '.join(exposed)}"


# ---- compose.yaml ---------------------------------------------------------------

COMPOSE = [BIN / "docker-compose", "-f", "deploy/compose.yaml"]


def compose_config(env_file):
    p = run([*COMPOSE, "--env-file", env_file, "config", "--format", "json"], env=CLEAN_ENV)
    return json.loads(p.stdout)


CONFIG = {}


@check("docker compose config (deploy/compose.yaml with .env.example)")
def _():
    run([*COMPOSE, "--env-file", "deploy/.env.example", "config", "--quiet"], env=CLEAN_ENV)
    CONFIG.update(compose_config("deploy/.env.example"))
    version = run([BIN / "docker-compose", "version", "--short"], env=CLEAN_ENV).stdout.strip()
    return f"services {', '.join(sorted(CONFIG['services']))} (Docker Compose {version})"


@check("compose: the stack and its settings")
def _():
    s = CONFIG["services"]
    for name in ("sfu-server", "prometheus", "grafana", "coturn", "redis"):
        ensure(name in s, f"no service {name}")
    sfu = s["sfu-server"]
    ensure(sfu.get("network_mode") == "host", "sfu-server is not on host networking")
    ensure(re.search(r"#.*[Hh]ost networking.*\n(\s*#.*\n)+\s*network_mode: host", (DEPLOY / "compose.yaml").read_text()), "no comment says why sfu-server needs host networking")
    ensure(sfu["build"]["dockerfile"] == "deploy/Dockerfile", "sfu-server not built from deploy/Dockerfile")
    env = sfu["environment"]
    prom = s["prometheus"]["command"]
    ensure("--storage.tsdb.retention.time=15d" in prom, f"no 15-day retention: {prom}")
    ensure(any(v["target"] == "/etc/prometheus/prometheus.yml" and v["source"].endswith("deploy/prometheus/prometheus.yml") for v in s["prometheus"]["volumes"]), "prometheus.yml not mounted")
    turn = s["coturn"]["command"]
    ensure(f"--static-auth-secret={env['SFU_TURN_SECRET']}" in turn, "coturn's static-auth-secret is not sfu-server's SFU_TURN_SECRET")
    ensure(any(v["source"].endswith("deploy/coturn/turnserver.conf") for v in s["coturn"]["volumes"]), "turnserver.conf not mounted")
    ensure("use-auth-secret" in (DEPLOY / "coturn" / "turnserver.conf").read_text(), "coturn does not use the TURN REST scheme")
    ensure(env["SFU_TURN_URL"].startswith("turn:"), "no TURN URL for clients")
    g = {v["target"]: v["source"] for v in s["grafana"]["volumes"]}
    ensure(g.get("/etc/grafana/provisioning", "").endswith("deploy/grafana/provisioning"), "Grafana provisioning not mounted")
    ensure(any(src.endswith("deploy/grafana/sfu-dashboard.json") for src in g.values()), "dashboard not mounted")
    for name, svc in s.items():
        image = svc.get("image", "")
        ensure(re.search(r":v?\d+\.\d+", image) or name == "sfu-server", f"{name}: image {image!r} not pinned")
    return f"coturn secret = SFU_TURN_SECRET, retention 15d, {len(env)} sfu-server variables"


@check("compose: refuses to start without SFU_PUBLIC_IP and secrets")
def _():
    with tempfile.NamedTemporaryFile("w", suffix=".env") as f:
        f.write("")
        f.flush()
        p = run([*COMPOSE, "--env-file", f.name, "config", "--quiet"], env=CLEAN_ENV, ok_codes=(1, 14, 15))
        ensure(p.returncode != 0, "compose config passed without any settings")
    ensure("SFU_PUBLIC_IP" in p.stderr or "SFU_TURN_SECRET" in p.stderr or "required" in p.stderr, p.stderr)
    return p.stderr.strip().splitlines()[-1][:100]


@check(".env.example documents every knob of compose.yaml")
def _():
    text = (DEPLOY / "compose.yaml").read_text()
    knobs = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    # Variables passed through when set (listed under environment: with no value).
    knobs |= set(re.findall(r"^ +([A-Z_][A-Z0-9_]*):[ \t]*$", text, re.M))
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    documented = {}
    for i, line in enumerate(lines):
        m = re.match(r"^#? ?([A-Z_][A-Z0-9_]*)=", line)
        if m:
            documented[m.group(1)] = i
    missing = sorted(knobs - documented.keys())
    ensure(not missing, f"not in .env.example: {missing}")
    unknown = sorted(documented.keys() - knobs)
    ensure(not unknown, f"in .env.example but not used by compose.yaml: {unknown}")
    for name, i in documented.items():
        j = i - 1
        while j >= 0 and re.match(r"^#? ?[A-Z_][A-Z0-9_]*=", lines[j]):
            j -= 1
        ensure(j >= 0 and lines[j].startswith("# ") and not re.match(r"^# [A-Z_]+=", lines[j]), f"{name} has no comment above it")
    return f"{len(knobs)} knobs"


@check("promtool check config deploy/prometheus/prometheus.yml")
def _():
    if not shutil.which("promtool"):
        raise AssertionError("promtool not installed (apt-get install prometheus)")
    return run(["promtool", "check", "config", "deploy/prometheus/prometheus.yml"]).stdout.strip().splitlines()[-1]


@check("Grafana provisioning: data source and dashboard provider")
def _():
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    ensure(len(ds) == 1 and ds[0]["type"] == "prometheus" and ds[0]["isDefault"], f"data sources: {ds}")
    ensure(ds[0]["url"] == "${PROMETHEUS_URL}", "data source url is not ${PROMETHEUS_URL}")
    genv = CONFIG["services"]["grafana"]["environment"]
    listen = next(c.split("=", 1)[1] for c in CONFIG["services"]["prometheus"]["command"] if c.startswith("--web.listen-address="))
    ensure(genv["PROMETHEUS_URL"] == f"http://{listen}", f"PROMETHEUS_URL {genv['PROMETHEUS_URL']} is not Prometheus' {listen}")
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/sfu.yaml").read_text())["providers"]
    path = prov[0]["options"]["path"]
    g = {v["target"]: v["source"] for v in CONFIG["services"]["grafana"]["volumes"]}
    ensure(f"{path}/sfu-dashboard.json" in g, f"nothing mounted in {path}")
    ensure(genv["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{path}/sfu-dashboard.json", "home dashboard path")
    dash = json.loads((DEPLOY / "grafana/sfu-dashboard.json").read_text())
    dsvar = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    ensure(dsvar and dsvar[0]["query"] == "prometheus", "the dashboard has no Prometheus data source variable")
    return f"{ds[0]['name']} at {genv['PROMETHEUS_URL']}, dashboard '{dash['title']}' from {path}"


@check("every SFU_* variable of compose.yaml and the chart is a flag of sfu-server")
def _():
    flags = set(re.findall(r'env = "(SFU_[A-Z0-9_]+)"', (ROOT / "signaling/src/config.rs").read_text()))
    ensure(len(flags) > 10, "no env names found in signaling/src/config.rs")
    # Settings of the stack itself.
    not_flags = {"SFU_IMAGE", "SFU_STOP_GRACE_PERIOD"}
    used = set(re.findall(r"SFU_[A-Z0-9_]+", (DEPLOY / "compose.yaml").read_text()))
    for tpl in (CHART / "templates").glob("*.yaml"):
        used |= set(re.findall(r"name: (SFU_[A-Z0-9_]+)", tpl.read_text()))
    unknown = sorted(used - flags - not_flags)
    ensure(not unknown, f"not sfu-server flags (see signaling/src/config.rs): {unknown}")
    return f"{len(used - not_flags)} variables"


# ---- Helm ---------------------------------------------------------------------

HELM = [opts.helm]
CI_VALUES = ["-f", str(CHART / "ci" / "test-values.yaml")]


def template(*extra):
    return run([*HELM, "template", "sfu", str(CHART), *CI_VALUES, *extra], env=CLEAN_ENV).stdout


def validate(manifests):
    p = run([BIN / "kubernetes-validate", "--strict", "-"], env=CLEAN_ENV, input=manifests)
    return p.stdout + p.stderr


def docs(manifests):
    return {d["kind"]: d for d in yaml.safe_load_all(manifests) if d}


@check("helm lint helm/sfu")
def _():
    p = run([*HELM, "lint", "--strict", str(CHART), *CI_VALUES], env=CLEAN_ENV)
    version = run([*HELM, "version", "--short"], env=CLEAN_ENV).stdout.strip()
    return f"{p.stdout.strip().splitlines()[-1]} (helm {version})"


@check("helm template helm/sfu: hostNetwork, one pod per node, probes, preStop drain, grace period")
def _():
    out = template()
    k = docs(out)
    for kind in ("Deployment", "Service", "Ingress", "Secret", "ServiceMonitor", "PodDisruptionBudget"):
        ensure(kind in k, f"no {kind} rendered")
    spec = k["Deployment"]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    ensure(spec["hostNetwork"] is True, "hostNetwork is not true")
    grace = spec["terminationGracePeriodSeconds"]
    env = {e["name"]: e for e in c["env"]}
    drain = int(env["SFU_DRAIN_TIMEOUT_SECS"]["value"])
    ensure(grace > drain >= 600, f"grace {grace} s, drain {drain} s")
    ensure(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness is not /readyz")
    ensure(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness is not /healthz")
    ensure(c["lifecycle"]["preStop"]["exec"]["command"] == ["sfu-drain"], "preStop does not drain")
    ensure("/api/drain" in (DEPLOY / "docker" / "sfu-drain").read_text(), "sfu-drain does not POST /api/drain")
    ensure(env["SFU_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "admin-token", "admin token not from the Secret")
    ensure(env["SFU_PUBLIC_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP", "public IP not from the node")
    ensure(env["SFU_TURN_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "turn-secret", "TURN secret not from the Secret")
    ensure(set(k["Secret"]["stringData"]) == {"admin-token", "api-key", "api-secret", "turn-secret"}, "Secret keys")
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    ensure(anti["topologyKey"] == "kubernetes.io/hostname", "no one-pod-per-node anti-affinity")
    ensure(k["Ingress"]["spec"]["tls"], "Ingress without TLS")
    ensure(k["ServiceMonitor"]["spec"]["endpoints"][0]["path"] == "/metrics", "ServiceMonitor path")
    ports = {p["name"]: (p["containerPort"], p["protocol"]) for p in c["ports"]}
    ensure(ports == {"http": (8080, "TCP"), "media-udp": (7882, "UDP"), "media-tcp": (7881, "TCP")}, f"ports {ports}")
    # Show the lines that matter, from helm's own output.
    wanted = ("kind:", "hostNetwork:", "terminationGracePeriodSeconds:", "path: /readyz", "path: /healthz", 'command: ["sfu-drain"]', "topologyKey:", "fieldPath: status.hostIP")
    for line in out.splitlines():
        if any(w in line for w in wanted):
            print(f"        | {line.strip()}")
    return f"grace {grace} s > drain {drain} s"


@check("kubernetes-validate --strict: rendered manifests (Deployment, and DaemonSet/stun/TLS variant)")
def _():
    report = validate(template())
    report += validate(
        template("--set", "kind=DaemonSet", "--set", "publicIp.mode=stun", "--set", "publicIp.stunServer=stun.example.com:3478",
                 "--set", "tls.secretName=sfu-server-tls", "--set", "iceTcp=false", "--set", "serviceMonitor.enabled=false")
    )
    passed = report.count("passed for resource")
    ensure(passed >= 10, report)
    ensure("ERROR" not in report and "FAIL" not in report, report)
    return f"{passed} resources valid against Kubernetes 1.37 schemas (ServiceMonitor is a CRD: not in them)"


@check("helm template refuses bad values")
def _():
    for extra, why in (
        (["--set", "secrets.adminToken="], "secrets.adminToken"),
        (["--set", "terminationGracePeriodSeconds=30"], "terminationGracePeriodSeconds"),
        (["--set", "publicIp.mode=static"], "publicIp.static"),
        (["--set", "secrets.apiSecret="], "secrets.apiSecret"),
    ):
        p = run([*HELM, "template", "sfu", str(CHART), *CI_VALUES, *extra], env=CLEAN_ENV, ok_codes=(1,))
        ensure(why in p.stderr, p.stderr)
    return "missing admin token or API secret, grace period not above the drain, static mode without an address"


failed = [r for r in results if not r[1]]
print(f"\ndeploy checks: {len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
