#!/usr/bin/env bash
# Validates a node image's SBOMs with validators kindred did not write: `kindred bom IMAGE -o spdx`
# with spdx-tools (pyspdxtools parses and validates SPDX 2.3), `-o cyclonedx` against the
# CycloneDX 1.5 JSON schema in strict mode (cyclonedx-python-lib), and every purl in both with
# packageurl-python (it must parse and be in canonical form). Fails loudly on the first
# invalid document.
#
#   hack/validate-bom.sh [IMAGE]   # IMAGE: a node image or a BOM file; default: `kindred bom`'s
#
# The validators live in a Python venv cached under ${KINDRED_CACHE_DIR:-~/.cache/kindred}
# (made on first use, from PyPI; they then work offline), with pinned versions.
# KINDRED names the kindred binary (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."

kindred=${KINDRED:-${CARGO_TARGET_DIR:-target}/debug/kindred}
venv=${KINDRED_CACHE_DIR:-$HOME/.cache/kindred}/validate-bom-venv
pins=("cyclonedx-python-lib[json-validation]==11.12.0" "spdx-tools==0.8.5")

if [[ ! -x $kindred ]]; then
  echo "validate-bom: no kindred binary at $kindred; build it (cargo build) or set KINDRED" >&2
  exit 1
fi
# (Re)made when missing or when the pins change.
if [[ "$(cat "$venv/.pins" 2>/dev/null)" != "${pins[*]}" ]]; then
  echo "validate-bom: installing ${pins[*]} into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || {
    echo "validate-bom: cannot make a Python venv; install python3 and python3-venv" >&2
    exit 1
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" >"$venv/.pins"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# No IMAGE: kindred picks this host's default node image, as `kindred bom` does.
"$kindred" -q bom ${1:+"$1"} -o spdx >"$tmp/bom.spdx.json"
"$kindred" -q bom ${1:+"$1"} -o cyclonedx >"$tmp/bom.cdx.json"

echo "validate-bom: SPDX 2.3 (pyspdxtools)" >&2
# pyspdxtools prints the problems and exits non-zero on an invalid document, nothing otherwise.
"$venv/bin/pyspdxtools" -i "$tmp/bom.spdx.json"
echo "SPDX 2.3: valid"

echo "validate-bom: CycloneDX 1.5 (strict JSON schema) and purls" >&2
"$venv/bin/python" - "$tmp/bom.cdx.json" "$tmp/bom.spdx.json" <<'EOF'
import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

cdx_path, spdx_path = sys.argv[1], sys.argv[2]
with open(cdx_path) as f:
    cdx_text = f.read()
errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(cdx_text)
if errors:
    sys.exit(f"validate-bom: CycloneDX document is INVALID: {errors}")

failures = []
def check(where, purl, sha256):
    try:
        canonical = PackageURL.from_string(purl).to_string()
        if canonical != purl:
            failures.append(f"{where}: purl {purl!r} is not in canonical form {canonical!r}")
    except ValueError as e:
        failures.append(f"{where}: purl {purl!r} does not parse: {e}")
    if not sha256:
        failures.append(f"{where}: no sha256")

cdx = json.loads(cdx_text)
for c in cdx["components"]:
    sha = [h["content"] for h in c.get("hashes", []) if h["alg"] == "SHA-256"]
    check(f"CycloneDX {c['bom-ref']}", c.get("purl", ""), sha)
with open(spdx_path) as f:
    spdx = json.load(f)
for p in spdx["packages"][1:]:  # the first is the node image itself
    purls = [r["referenceLocator"] for r in p.get("externalRefs", []) if r["referenceType"] == "purl"]
    sha = [c["checksumValue"] for c in p.get("checksums", []) if c["algorithm"] == "SHA256"]
    check(f"SPDX {p['SPDXID']}", purls[0] if purls else "", sha)
if failures:
    sys.exit("validate-bom: INVALID:\n" + "\n".join(failures))
print(f"CycloneDX 1.5: valid; {len(cdx['components'])} components, "
      f"{len(spdx['packages']) - 1} SPDX packages, every one with a purl and a sha256")
EOF
