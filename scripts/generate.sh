#!/usr/bin/env bash
# Regenerates gen/ from proto/ with protoc (Debian's protobuf-compiler) and the ts-proto plugin.
# The output is committed; never edit it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen
mkdir -p gen
protoc \
  --plugin=protoc-gen-ts_proto=./node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=gen \
  --ts_proto_opt=outputServices=grpc-js,outputServices=generic-definitions,forceLong=bigint,oneof=unions-value,env=node,importSuffix=.js,esModuleInterop=true,useExactTypes=false \
  -I proto \
  $(find proto -name '*.proto' | sort)
# The descriptors the engine's server reflection serves: with the .proto comments
# (--include_source_info) and fully qualified type names, for ControlEngine, DataPlaneSync and
# the gRPC health service.
protoc --include_source_info --include_imports --descriptor_set_out=gen/descriptors.binpb \
  -I proto -I node_modules/grpc-health-check/proto \
  $(find proto -name '*.proto' | sort) health/v1/health.proto
printf '# Generated code\n\nMade by `npm run generate` (scripts/generate.sh) from `proto/`. Do not edit by hand.\n`descriptors.binpb` is the FileDescriptorSet (with comments) that the engine serves over gRPC reflection.\n' > gen/README.md
