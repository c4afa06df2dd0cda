#!/bin/sh
# The install command of every image, also run by the tests outside a container: one app as
# its container holds it, in <dest>, with only that app's production dependencies.
# From the repository root, after `npm ci && npx turbo run build`:
#   infra/docker/install-app.sh <app> <dest>
set -eu
node infra/docker/stage-app.mjs "$1" "$2"
cd "$2"
npm ci --omit=dev --no-audit --no-fund
