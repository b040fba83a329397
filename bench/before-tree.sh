#!/usr/bin/env bash
# Builds the "before" tree for the side-by-side throughput comparison in
# BENCHMARKS.md: this checkout's committed src/ with the API clients of
# src/kube/cluster.ts made as before the fix (kubeConfig.makeApiClient, a new
# undici Agent and so a new TLS connection per request). Nothing in the
# repository changes; the tree goes to $1 (default /tmp/usher-before).
#
#   bash bench/before-tree.sh /tmp/usher-before
#   npm run bench -- --only throughput --skip-limit --operator-root /tmp/usher-before --out bench/results/before.json
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/usher-before}
rm -rf "$dir"
mkdir -p "$dir"
git -C "$root" archive HEAD src package.json | tar -x -C "$dir"
ln -s "$root/node_modules" "$dir/node_modules"
file="$dir/src/kube/cluster.ts"
grep -q 'makePooledApiClient(kubeConfig, CoreV1Api, auth)' "$file"
sed -i \
  -e 's/^    const auth = new PooledAuthentication(kubeConfig);$//' \
  -e 's/makePooledApiClient(kubeConfig, \(CoreV1Api\|CustomObjectsApi\|EventsV1Api\), auth)/kubeConfig.makeApiClient(\1)/' \
  "$file"
grep -c 'kubeConfig.makeApiClient' "$file" >/dev/null
echo "before tree in $dir (src/kube/cluster.ts: per-request API clients)"
