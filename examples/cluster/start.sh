#!/usr/bin/env bash
# Starts the three nodes of cluster.yaml in the background, logging to
# cluster-data/node<N>.log. Stop them with: kill $(cat cluster-data/*.pid)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p cluster-data
go build -o cluster-data/raftkv ../../cmd/raftkv
for id in 1 2 3; do
  ./cluster-data/raftkv serve --config cluster.yaml --id "$id" >"cluster-data/node$id.log" 2>&1 </dev/null &
  echo $! > "cluster-data/node$id.pid"
done
for id in 1 2 3; do
  for _ in $(seq 50); do
    grep -q "ready" "cluster-data/node$id.log" && break
    sleep 0.1
  done
  grep -m1 "ready" "cluster-data/node$id.log" || { echo "node $id did not start; see cluster-data/node$id.log"; exit 1; }
done
echo "cluster up. Try: ./cluster-data/raftkv status --endpoints 127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003"
