#!/usr/bin/env bash
# Runs README's "Change the members" section as written, on a fresh
# cluster-data/, checking each step: grow 3 -> 5, remove node 2, replace a
# SIGKILLed node 3 by a new node 6. Leaves the cluster running; stop it
# with: kill $(cat cluster-data/*.pid)
set -euo pipefail
cd "$(dirname "$0")"
if [ -e cluster-data ]; then
  echo "cluster-data/ exists: stop that cluster and rm -rf cluster-data first" >&2
  exit 1
fi
export RAFTKV_ENDPOINTS=127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003
kv=./cluster-data/raftkv
step() { echo; echo "\$ $*"; "$@"; }
members() { $kv member list --json | grep -o '"id": [0-9]*' | grep -o '[0-9]*' | tr '\n' ' '; }

./start.sh
step $kv put greeting hello

step ./join.sh 4
step $kv member add 4 --peer 127.0.0.1:8004 --client 127.0.0.1:9004
step $kv member list
step $kv member promote 4
step ./join.sh 5
step $kv member add 5 --peer 127.0.0.1:8005 --client 127.0.0.1:9005
step $kv member promote 5
step $kv member list
[ "$(members)" = "1 2 3 4 5 " ] || { echo "want members 1-5, have $(members)"; exit 1; }

step $kv member remove 2
step kill "$(cat cluster-data/node2.pid)"

step kill -9 "$(cat cluster-data/node3.pid)"
step ./join.sh 6
step $kv member add 6 --peer 127.0.0.1:8006 --client 127.0.0.1:9006
step $kv member promote 6
step $kv member remove 3
step $kv member list
[ "$(members)" = "1 4 5 6 " ] || { echo "want members 1 4 5 6, have $(members)"; exit 1; }
got=$($kv get greeting)
[ "$got" = hello ] || { echo "get greeting: $got"; exit 1; }
echo; echo "walkthrough done: members $(members); greeting=$got"
