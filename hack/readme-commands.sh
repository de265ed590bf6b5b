#!/usr/bin/env bash
# Prints the shell command of README's numbered quick-start step N (1: set up and create a
# cluster, 2: run the tests): the first ```sh block after the line starting with "**N.".
# CI runs exactly what this prints, so README's first screen cannot drift from what works.
set -euo pipefail
n=${1:?usage: hack/readme-commands.sh STEP}
readme="$(dirname "$0")/../README.md"
cmd=$(awk -v step="**$n." '
  index($0, step) == 1 { found = 1; next }
  found && /^```sh$/ { inside = 1; next }
  inside && /^```$/ { exit }
  inside { print }
' "$readme")
[[ -n "$cmd" ]] || { echo "readme-commands: README.md has no step $n with a \`\`\`sh block" >&2; exit 1; }
printf '%s\n' "$cmd"
