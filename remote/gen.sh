#!/usr/bin/env bash
# Regenerates remote/raftpb/*.pb.go from remote/proto/raftkv/v1/raft.proto
# (the peer wire) and clientpb/*.pb.go from clientpb/proto/raftkv/v1/kv.proto
# (the client API, which imports raft.proto), in one protoc run.
#
# Run from anywhere:   go generate ./remote/ ./clientpb/   (or: bash remote/gen.sh)
#
# Needs protoc 3.21.x on PATH (Debian 12: apt-get install -y protobuf-compiler,
# which gives 3.21.12) or in $PROTOC. protoc-gen-go is not installed globally:
# it is the Go tool pinned in go.mod (`tool google.golang.org/protobuf/cmd/protoc-gen-go`),
# so its version is always the protobuf runtime's. The generated files are
# committed; `go build` never needs protoc.
set -euo pipefail

want_protoc='3.21.'
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
protoc="${PROTOC:-protoc}"

if ! command -v "$protoc" >/dev/null 2>&1; then
	echo "gen.sh: protoc not found (looked for '$protoc'); install protoc ${want_protoc}x, e.g. 'apt-get install -y protobuf-compiler' on Debian 12, or set PROTOC" >&2
	exit 1
fi
version="$("$protoc" --version)" # "libprotoc 3.21.12"
case "$version" in
"libprotoc ${want_protoc}"*) ;;
*)
	echo "gen.sh: need protoc ${want_protoc}x, found '$version' ($(command -v "$protoc")); a different protoc changes the generated headers" >&2
	exit 1
	;;
esac

cd "$root"
plugin="$(go tool -n protoc-gen-go)" || {
	echo "gen.sh: 'go tool -n protoc-gen-go' failed; go.mod must list 'tool google.golang.org/protobuf/cmd/protoc-gen-go'" >&2
	exit 1
}

grpc_plugin="$(go tool -n protoc-gen-go-grpc)" || {
	echo "gen.sh: 'go tool -n protoc-gen-go-grpc' failed; go.mod must list 'tool google.golang.org/grpc/cmd/protoc-gen-go-grpc'" >&2
	exit 1
}

# The module option maps each go_package (github.com/raftkv/raftkv/remote/raftpb,
# .../clientpb) to its directory under the module root.
"$protoc" \
	--plugin=protoc-gen-go="$plugin" \
	-I remote/proto \
	-I clientpb/proto \
	--go_out=. \
	--go_opt=module=github.com/raftkv/raftkv \
	--plugin=protoc-gen-go-grpc="$grpc_plugin" \
	--go-grpc_out=. \
	--go-grpc_opt=module=github.com/raftkv/raftkv \
	remote/proto/raftkv/v1/raft.proto clientpb/proto/raftkv/v1/kv.proto

echo "gen.sh: generated remote/raftpb/*.pb.go and clientpb/*.pb.go with $version, $("$plugin" --version), $("$grpc_plugin" --version)"
