#!/usr/bin/env bash
# Starts node N of grow.yaml in the background as a node joining the
# running cluster (raftkv serve --join), logging to cluster-data/node<N>.log,
# and waits until it is ready. It is not a member until 'raftkv member add'.
set -euo pipefail
cd "$(dirname "$0")"
id=${1:?usage: ./join.sh ID}
./cluster-data/raftkv serve --config grow.yaml --id "$id" --join >"cluster-data/node$id.log" 2>&1 </dev/null &
echo $! > "cluster-data/node$id.pid"
for _ in $(seq 50); do
  grep -q "ready" "cluster-data/node$id.log" && break
  sleep 0.1
done
grep -m1 "ready" "cluster-data/node$id.log" || { echo "node $id did not start; see cluster-data/node$id.log"; exit 1; }
