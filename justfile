# docket's common jobs. `just` installs with `pip install rust-just`.

# List the recipes.
default:
    @just --list

# The main job: seal and verify a few thousand decisions on the example policies.
demo *args:
    cargo run --release -p docket -- demo {{args}}

# Every test, as CI runs it (sets up Rust targets itself).
test:
    bash tests/run

# Build the policy-and-audit component (wasm32-wasip2) and print its size and WIT world.
component:
    rustup target add wasm32-wasip2
    CARGO_TARGET_DIR=target/wasm cargo build --package docket-component --target wasm32-wasip2 --profile component
    ls -l target/wasm/wasm32-wasip2/component/docket_component.wasm
    -wasm-tools component wit target/wasm/wasm32-wasip2/component/docket_component.wasm

# Benchmarks: native vs component, sealing and verification (figures go to BENCHMARKS.md).
bench n="3000":
    cargo run --release -p docket-tests --bin docket-bench -- {{n}}

# Serve OPA's API with every decision sealed (example policies, ./docket-data).
serve *args:
    cargo run --release -p docket -- serve {{args}}

# Load test: docket serve vs the real OPA engine, same clients and requests (BENCHMARKS.md).
loadtest *args:
    bash tests/setup-python.sh
    cargo build --release -p docket -p docket-tests
    "${CARGO_TARGET_DIR:-target}/release/docket-loadtest" {{args}}

# Build the Envoy filter (proxy-wasm, wasm32-wasip1).
envoy-filter:
    rustup target add wasm32-wasip1
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/wasm" cargo build -p docket-envoy --target wasm32-wasip1 --profile component
    ls -l "${CARGO_TARGET_DIR:-target}/wasm/wasm32-wasip1/component/docket_envoy.wasm"

# docket serve, an upstream and Envoy with the docket filter, with allowed and denied requests.
envoy-demo: envoy-filter
    bash tests/setup-python.sh
    cargo build --release -p docket
    python3 examples/envoy/run.py

# The crash harness at full size: 100 SIGKILLs of a loaded server, 50 of the CLI writer.
crash kills="100":
    DOCKET_CRASH_KILLS={{kills}} cargo test --release -p docket --test crash -- --nocapture

# The tamper suite at full size: 10,000 seeded structural mutations (5,000 per signing mode)
# besides every single-bit flip of every entry.
tamper cases="5000":
    DOCKET_TAMPER_CASES={{cases}} cargo test --release -p docket-ledger --test tamper -- --nocapture

# Format the code.
fmt:
    cargo fmt --all

# Check formatting and run clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the format's test vectors after a deliberate format change.
vectors:
    DOCKET_REGENERATE_VECTORS=1 cargo test -p docket-ledger --test vectors
