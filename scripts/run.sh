#!/usr/bin/env bash
# Sets up and runs the main job: `docusign-billing run` when credentials are configured,
# otherwise the demo load of the bundled sandbox into docusign_billing_demo.duckdb (its own
# pipeline state and file: the demo never mixes with real data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
if [ -f .dlt/secrets.toml ] || env | grep -q '^SOURCES__DOCUSIGN_BILLING__CREDENTIALS__'; then
  exec .venv/bin/docusign-billing run "$@"
fi
echo "run: no DocuSign credentials configured (.dlt/secrets.toml); loading the demo sandbox instead" >&2
exec .venv/bin/docusign-billing demo "$@"
