//! `docket-bench`: docket's figures, each as a ratio against a baseline measured in the same
//! process and run (native vs component, group commit vs fsync per entry). Prints a Markdown
//! table for BENCHMARKS.md. Run: `cargo run --release -p docket-tests --bin docket-bench`.
//! Subcommands: `peers [N]` (docket's evaluators and the real OPA engine on the same inputs),
//! `conformance` (the conformance suite natively, through the component and in OPA),
//! `verify-cores [N]` (verification on 1 and 2 threads), `verify-export FILE PUB` and
//! `js-vectors OUT N` (baselines and vectors for the browser tests), `hot WHAT [SECONDS]` (one
//! operation in a loop, for `perf record`), `json-check [N]` (docket's JSON rule against a plain
//! syntax check, on sealed decision records).

#[path = "conformance/suite.rs"]
mod suite;

use docket_ledger::record::{PolicyVersion, SigningMode};
use docket_ledger::{GenesisParams, Sealer, SecretKey, Verifier};
use docket_policy::PolicyEngine;
use docket_runtime::log::AuditLog;
use docket_runtime::{self as runtime, Runtime, Verdict};
use docket_server::examples::{ABAC, ALL, RBAC, Requests};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

/// Best of `ROUNDS` timings of `f`, which performs `n` operations; returns µs per operation.
fn best_us(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best.as_secs_f64() * 1e6 / n as f64
}

fn row(what: &str, value: String, baseline: String, ratio: String) {
    println!("| {what} | {value} | {baseline} | {ratio} |");
}

/// `docket-bench verify-export FILE PUB`: verifies an export natively (docket-ledger) and through
/// the component, best of 3 each, and prints entries/s as JSON (the browser benchmark's baselines).
fn verify_export(file: &str, public: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let vkey = std::fs::read_to_string(public).unwrap();
    let key = docket_ledger::PublicKey::from_vkey(vkey.trim()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut entries = 0;
    let native_s = (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut v = docket_ledger::export::ExportVerifier::new(Verifier::new(key.clone()));
            for line in &lines {
                v.push_line(line).unwrap();
            }
            entries = v.finish().unwrap().entries;
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    let runtime = Runtime::new(Some(&std::env::temp_dir().join("docket-bench-cache"))).unwrap();
    let mut instance = runtime.instantiate().unwrap();
    let component_s = (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut v = instance.verifier(vkey.trim()).unwrap();
            for line in &lines {
                v.push_export_line(line).unwrap();
            }
            v.finish().unwrap();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    println!(
        "{{\"entries\":{entries},\"native_entries_per_s\":{:.0},\"component_entries_per_s\":{:.0}}}",
        entries as f64 / native_s,
        entries as f64 / component_s
    );
}

/// `docket-bench js-vectors OUT N`: the expected results of N decisions on the example policies
/// made by the native crates with a fixed clock and key, for the JavaScript runs of the component
/// (tests/browser/component_js.mjs) to compare byte for byte.
fn js_vectors(out: &str, n: usize) {
    const NOW_NS: u64 = 1_795_464_000_000_000_000;
    let seed = [7u8; 32];
    let mut engine = PolicyEngine::new();
    for p in ALL {
        engine.add_policy(p.id, p.source).unwrap();
        engine.add_data(p.data).unwrap();
    }
    let key = SecretKey::from_seed("docket-js", &seed).unwrap();
    let params = GenesisParams {
        origin: "docket.test/js".into(),
        instance_id: "js-1".into(),
        signing: SigningMode::Checkpoint,
    };
    let (mut sealer, genesis) = Sealer::genesis(key, params, NOW_NS).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut entries = vec![hex(&genesis.encode())];
    let mut requests = Requests::new(5);
    let mut asked = Vec::new();
    let mut results = Vec::new();
    for _ in 0..n {
        let (path, input) = requests.next_request();
        let decision = engine.evaluate(path, Some(&input)).unwrap();
        results.push(decision.result.clone());
        let entry = sealer
            .seal_decision(&decision, NOW_NS, &mut no_masking)
            .unwrap()
            .into_entry()
            .unwrap();
        entries.push(hex(&entry.encode()));
        asked.push(serde_json::json!([path, input]));
    }
    let (_, note) = sealer.checkpoint();
    let doc = serde_json::json!({
        "now_ns": NOW_NS.to_string(),
        "seed": hex(&seed),
        "key_name": "docket-js",
        "origin": "docket.test/js",
        "instance_id": "js-1",
        "policies": ALL.iter().map(|p| serde_json::json!({"id": p.id, "source": p.source, "data": p.data})).collect::<Vec<_>>(),
        "requests": asked,
        "results": results,
        "entries": entries,
        "checkpoint": note,
    });
    std::fs::write(out, doc.to_string()).unwrap();
}

/// Times `f` over every input, best of `ROUNDS`; returns µs per input and the last answers.
fn time_each<T>(inputs: &[String], mut f: impl FnMut(&str) -> T) -> (f64, Vec<T>) {
    let mut answers = Vec::new();
    let us = best_us(inputs.len(), || {
        answers = inputs.iter().map(|input| f(input)).collect();
    });
    (us, answers)
}

/// An answer as JSON, for comparing engines that serialize differently.
fn as_json(answer: Option<&str>) -> Option<serde_json::Value> {
    answer.map(|text| serde_json::from_str(text).expect("engines answer JSON"))
}

/// Runs the real OPA engine on `spec` in a child process (tests/opa_engine_bench.py, which
/// documents the spec and its answer).
fn run_opa_engine_bench(spec: &serde_json::Value) -> serde_json::Value {
    let spec_file =
        std::env::temp_dir().join(format!("docket-opa-bench-{}.json", std::process::id()));
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let output = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/opa_engine_bench.py"))
        .arg(&spec_file)
        .output()
        .expect("python3 runs (bash tests/setup-python.sh installs the OPA engine)");
    let _ = std::fs::remove_file(&spec_file);
    assert!(
        output.status.success(),
        "the OPA engine benchmark failed (bash tests/setup-python.sh installs it):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `docket-bench peers [N]`: the RBAC and ABAC examples on the same N seeded inputs each, with
/// native regorus (interpreter, as docket runs it, and the bytecode VM), the docket component in
/// wasmtime, and the real OPA engine (tests/opa_engine_bench.py, which says how the Python
/// overhead is kept out). Prints µs per decision, the ratios, and how often each engine agrees
/// with OPA.
fn peers(n: usize) {
    use regorus::languages::rego::compiler::Compiler;
    use regorus::rvm::vm::RegoVM;

    let mut requests = Requests::new(4242);
    let work: Vec<(&str, Vec<String>)> = vec![
        (RBAC.path, (0..n).map(|_| requests.rbac()).collect()),
        (ABAC.path, (0..n).map(|_| requests.abac()).collect()),
    ];

    // The real OPA engine, in a child process, on the same inputs.
    let spec = serde_json::json!({
        "policies": ALL.iter().map(|p| serde_json::json!({"id": p.id, "source": p.source, "data": p.data})).collect::<Vec<_>>(),
        "work": work.iter().map(|(path, inputs)| (path.to_string(), serde_json::json!(inputs))).collect::<serde_json::Map<_, _>>(),
    });
    let opa = run_opa_engine_bench(&spec);

    let mut interpreter = PolicyEngine::new();
    interpreter.set_vm_enabled(false);
    let mut chosen = PolicyEngine::new();
    let rt = Runtime::new(Some(&std::env::temp_dir().join("docket-bench-cache"))).unwrap();
    let mut component = rt.instantiate().unwrap();
    let mut data = serde_json::Map::new();
    let mut vm_engine = regorus::Engine::new();
    for p in ALL {
        interpreter.add_policy(p.id, p.source).unwrap();
        interpreter.add_data(p.data).unwrap();
        chosen.add_policy(p.id, p.source).unwrap();
        chosen.add_data(p.data).unwrap();
        component.add_policy(p.id, p.source).unwrap();
        component.add_data(p.data).unwrap();
        vm_engine
            .add_policy(p.id.to_string(), p.source.to_string())
            .unwrap();
        let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(p.data).unwrap();
        data.extend(doc);
    }
    let data = regorus::Value::from_json_str(&serde_json::Value::Object(data).to_string()).unwrap();

    println!(
        "Measured {} on {}: {n} inputs per policy, µs per decision (input JSON in, result JSON out), best of {ROUNDS}.\n",
        chrono_free_date(),
        std::env::consts::ARCH
    );
    println!(
        "| policy | docket, interpreter only | docket (VM path) | regorus VM alone | docket component (VM path) | OPA v1.20 engine | interpreter / OPA | VM path / OPA | component / OPA | component / native | agree with OPA (interp., VM path, comp.) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (path, inputs) in &work {
        let (interp_us, interp) = time_each(inputs, |input| {
            interpreter.evaluate(path, Some(input)).unwrap().result
        });
        assert_eq!(
            chosen.evaluation_path(path),
            docket_policy::EvaluationPath::Vm,
            "{path} should run on the VM"
        );
        let (chosen_us, chosen_answers) = time_each(inputs, |input| {
            chosen.evaluate(path, Some(input)).unwrap().result
        });

        let entry = docket_policy::data_ref(path);
        let compiled = vm_engine
            .compile_with_entrypoint(&entry.as_str().into())
            .unwrap();
        let program = Compiler::compile_from_policy(&compiled, &[entry.as_str()]).unwrap();
        let mut vm = RegoVM::new();
        vm.load_program(program);
        vm.set_data(data.clone()).unwrap();
        let (vm_us, _) = time_each(inputs, |input| {
            vm.set_input(regorus::Value::from_json_str(input).unwrap());
            match vm.execute().unwrap() {
                regorus::Value::Undefined => None,
                v => Some(serde_json::to_string(&v).unwrap()),
            }
        });

        let (component_us, component_answers) = time_each(inputs, |input| {
            component.evaluate(path, Some(input)).unwrap().result
        });

        let opa_path = &opa[*path];
        let opa_us = opa_path["us"].as_f64().unwrap();
        let opa_answers: Vec<Option<serde_json::Value>> = opa_path["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| as_json(r.as_str()))
            .collect();
        let agree = |answers: &[Option<String>]| {
            answers
                .iter()
                .zip(&opa_answers)
                .filter(|(a, o)| as_json(a.as_deref()) == **o)
                .count()
        };
        println!(
            "| `{path}` | {interp_us:.1} | {chosen_us:.1} | {vm_us:.1} | {component_us:.1} | {opa_us:.1} (gross {:.1}, Python {:.1}) | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {}, {}, {} of {} |",
            opa_path["gross_us"].as_f64().unwrap(),
            opa_path["overhead_us"].as_f64().unwrap(),
            interp_us / opa_us,
            chosen_us / opa_us,
            component_us / opa_us,
            component_us / chosen_us,
            agree(&interp),
            agree(&chosen_answers),
            agree(&component_answers),
            inputs.len()
        );
    }
}

/// Verification of `log` (binary entries, then one checkpoint) on `threads` threads: windows of
/// entries are prechecked in parallel (decode, hash, record, signature), then pushed in order.
/// Returns µs per entry, best of `ROUNDS`.
fn verify_on_threads(
    threads: usize,
    log: &[Vec<u8>],
    note: &str,
    key: &docket_ledger::PublicKey,
) -> f64 {
    const WINDOW: usize = 4096;
    best_us(log.len(), || {
        let mut verifier = Verifier::new(key.clone());
        for window in log.chunks(WINDOW) {
            let per_thread = window.len().div_ceil(threads);
            let prechecked: Vec<docket_ledger::Prechecked> = std::thread::scope(|scope| {
                let handles: Vec<_> = window
                    .chunks(per_thread)
                    .skip(1)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .map(|e| docket_ledger::precheck(e, Some(key)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let mut all: Vec<_> = window[..per_thread.min(window.len())]
                    .iter()
                    .map(|e| docket_ledger::precheck(e, Some(key)))
                    .collect();
                for h in handles {
                    all.extend(h.join().unwrap());
                }
                all
            });
            for p in &prechecked {
                verifier.push_prechecked(p).unwrap();
            }
        }
        verifier.push_checkpoint(note).unwrap();
        verifier.finish().unwrap();
    })
}

/// Seals `decision` natively doing what one `seal-decision` call into the component does:
/// read the wall clock, seal, and encode the entry for storage. The ratio to the component
/// compares the same work.
fn seal_natively(sealer: &mut Sealer, decision: &docket_ledger::Decision) -> Vec<u8> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let sealed = sealer
        .seal_decision(decision, now_ns, &mut no_masking)
        .unwrap();
    sealed.into_entry().unwrap().encode()
}

/// The salt source for decisions without mask rules: never called.
fn no_masking() -> [u8; 32] {
    unreachable!("the benchmarks' decisions mask nothing")
}

/// `docket-bench json-check [N]`: the cost of docket's JSON rule (`docket_ledger::json`: unique
/// names, depth, surrogates, finite numbers) on sealed decision records, against the syntax-only
/// check the verifier made before it (serde's `IgnoredAny`), in the same run.
fn json_check(n: usize) {
    let key = SecretKey::from_seed("bench", &[9; 32]).unwrap();
    let params = GenesisParams {
        origin: "bench/json".into(),
        instance_id: "j".into(),
        signing: SigningMode::Checkpoint,
    };
    let (mut sealer, _) = Sealer::genesis(key, params, 1).unwrap();
    let mut requests = Requests::new(3);
    let records: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let decision = docket_ledger::Decision {
                path: RBAC.path.into(),
                input: Some(if i % 2 == 0 {
                    requests.rbac()
                } else {
                    requests.abac()
                }),
                result: Some("true".into()),
                policy_version: PolicyVersion {
                    digest: format!("sha256:{}", "ab".repeat(32)),
                    revision: None,
                },
                log: Default::default(),
            };
            let sealed = sealer
                .seal_decision(&decision, 2 + i as u64, &mut no_masking)
                .unwrap();
            sealed.into_entry().unwrap().record
        })
        .collect();
    let bytes: usize = records.iter().map(Vec::len).sum();
    let time = |f: &dyn Fn(&[u8]) -> bool| {
        (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                for r in &records {
                    assert!(f(r));
                }
                started.elapsed().as_secs_f64() * 1e6 / n as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let rule = time(&|r| docket_ledger::json::check_bytes(r).is_ok());
    let syntax = time(&|r| serde_json::from_slice::<serde::de::IgnoredAny>(r).is_ok());
    println!(
        "Measured {} on {}: {n} sealed decision records (RBAC and ABAC inputs, {} bytes on average), µs per record, best of {ROUNDS}.\n",
        chrono_free_date(),
        std::env::consts::ARCH,
        bytes / n
    );
    println!("| check | µs/record | ratio |\n|---|---|---|");
    println!(
        "| docket's JSON rule (`json::check_bytes`) | {rule:.3} | {:.2}× |",
        rule / syntax
    );
    println!("| syntax only (`IgnoredAny`, the check before) | {syntax:.3} | 1× |");
}

/// `docket-bench verify-cores [N]`: native verification of an N-decision log on 1 and 2 threads,
/// in both signing modes, against the plain one-entry-at-a-time verifier in the same run.
fn verify_cores(n: usize) {
    let decision = docket_ledger::Decision {
        path: RBAC.path.into(),
        input: Some(Requests::new(1).rbac()),
        result: Some("true".into()),
        policy_version: PolicyVersion {
            digest: format!("sha256:{}", "ab".repeat(32)),
            revision: None,
        },
        log: Default::default(),
    };
    println!(
        "Measured {} on {} ({} cores available): a log of {n} decisions, µs per entry, best of {ROUNDS}.\n",
        chrono_free_date(),
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| signing mode | one entry at a time (push_entry_bytes) | prechecked, 1 thread | prechecked, 2 threads | 2 threads vs 1 | entries/s on 2 threads |"
    );
    println!("|---|---|---|---|---|---|");
    for mode in [SigningMode::Checkpoint, SigningMode::Entry] {
        let key = SecretKey::from_seed("bench", &[9; 32]).unwrap();
        let params = GenesisParams {
            origin: "bench/verify".into(),
            instance_id: "v".into(),
            signing: mode,
        };
        let (mut sealer, genesis) = Sealer::genesis(key.clone(), params, 1).unwrap();
        let mut log = vec![genesis.encode()];
        for i in 0..n {
            log.push(
                sealer
                    .seal_decision(&decision, 2 + i as u64, &mut no_masking)
                    .unwrap()
                    .into_entry()
                    .unwrap()
                    .encode(),
            );
        }
        let (_, note) = sealer.checkpoint();
        let public = key.public().clone();
        let plain = best_us(log.len(), || {
            let mut v = Verifier::new(public.clone());
            for e in &log {
                v.push_entry_bytes(e).unwrap();
            }
            v.push_checkpoint(&note).unwrap();
            v.finish().unwrap();
        });
        let one = verify_on_threads(1, &log, &note, &public);
        let two = verify_on_threads(2, &log, &note, &public);
        println!(
            "| {} | {plain:.2} | {one:.2} | {two:.2} | {:.2}× faster | {:.0} |",
            mode.as_str(),
            one / two,
            1e6 / two
        );
    }
}

/// `docket-bench conformance`: the conformance suite (tests/conformance/) with docket natively,
/// through the component, and with the real OPA engine in the same run; µs per decision over
/// all of its decisions (errors and undefined answers included, as in the suite).
fn conformance() {
    let suite = suite::Suite::load();
    let mut work: Vec<(String, Vec<String>)> = Vec::new();
    for policy in &suite.policies {
        for (query, _) in &policy.cases[0].expect {
            work.push((
                query.clone(),
                policy.cases.iter().map(|c| c.input.clone()).collect(),
            ));
        }
    }
    let decisions: usize = work.iter().map(|(_, inputs)| inputs.len()).sum();
    let spec = serde_json::json!({
        "policies": suite.modules.iter().enumerate().map(|(i, (id, source))| serde_json::json!({
            "id": id, "source": source, "data": if i == 0 { suite.data.as_str() } else { "{}" },
        })).collect::<Vec<_>>(),
        "work": work.iter().map(|(path, inputs)| (path.clone(), serde_json::json!(inputs))).collect::<serde_json::Map<_, _>>(),
    });
    let opa = run_opa_engine_bench(&spec);
    // OPA's figure per path is µs per decision; weight by decisions for the suite's total.
    let opa_total_us: f64 = work
        .iter()
        .map(|(path, inputs)| opa[path]["us"].as_f64().unwrap() * inputs.len() as f64)
        .sum();

    let mut native = PolicyEngine::new();
    let mut interpreter = PolicyEngine::new();
    interpreter.set_vm_enabled(false);
    let rt = Runtime::new(Some(&std::env::temp_dir().join("docket-bench-cache"))).unwrap();
    let mut component = rt.instantiate().unwrap();
    for (id, source) in &suite.modules {
        native.add_policy(id, source).unwrap();
        interpreter.add_policy(id, source).unwrap();
        component.add_policy(id, source).unwrap();
    }
    native.add_data(&suite.data).unwrap();
    interpreter.add_data(&suite.data).unwrap();
    component.add_data(&suite.data).unwrap();
    let interpreter_us = best_us(decisions, || {
        for (path, inputs) in &work {
            for input in inputs {
                let _ = interpreter.evaluate(path, Some(input));
            }
        }
    });
    let native_us = best_us(decisions, || {
        for (path, inputs) in &work {
            for input in inputs {
                let _ = native.evaluate(path, Some(input));
            }
        }
    });
    let component_us = best_us(decisions, || {
        for (path, inputs) in &work {
            for input in inputs {
                // Policy errors are answers the suite expects; only a stopped call is a failure.
                let _ = component.evaluate(path, Some(input)).verdict().unwrap();
            }
        }
    });
    let opa_us = opa_total_us / decisions as f64;
    println!(
        "Measured {} on {}: the conformance suite, {decisions} decisions, µs per decision, best of {ROUNDS}.\n",
        chrono_free_date(),
        std::env::consts::ARCH
    );
    println!(
        "| docket native, interpreter only | docket native (VM path) | docket component (VM path) | OPA v1.20 engine | interpreter only / OPA | native / OPA | component / OPA | component / native |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let paths = native.path_counts();
    println!(
        "| {interpreter_us:.1} | {native_us:.1} | {component_us:.1} | {opa_us:.1} | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
        interpreter_us / opa_us,
        native_us / opa_us,
        component_us / opa_us,
        component_us / native_us
    );
    let total = (paths.vm + paths.interpreter + paths.fallback).max(1) as f64;
    println!(
        "\nPaths natively: VM {:.1}%, interpreter {:.1}%, VM error then interpreter {:.1}% of documents.",
        100.0 * paths.vm as f64 / total,
        100.0 * paths.interpreter as f64 / total,
        100.0 * paths.fallback as f64 / total
    );
}

/// The benchmarks' log: one seed and genesis (checkpoint signing, no signature per entry) for the
/// native sealer and the component alike.
const LOG_SEED: [u8; 32] = [5; 32];

fn log_key() -> SecretKey {
    SecretKey::from_seed("bench", &LOG_SEED).unwrap()
}

fn log_params() -> GenesisParams {
    GenesisParams {
        origin: "bench/x".into(),
        instance_id: "b".into(),
        signing: SigningMode::Checkpoint,
    }
}

fn start_component_log(instance: &mut runtime::Instance) {
    instance
        .start_log(
            &LOG_SEED,
            "bench",
            "bench/x",
            "b",
            runtime::SigningMode::Checkpoint,
        )
        .unwrap();
}

/// The genesis entry and `n` seals of `decision`, encoded, and the checkpoint note over them.
fn sealed_log(decision: &docket_ledger::Decision, n: usize) -> (Vec<Vec<u8>>, String) {
    let (mut sealer, genesis) = Sealer::genesis(log_key(), log_params(), 1).unwrap();
    let mut log = vec![genesis.encode()];
    for _ in 0..n {
        let sealed = sealer.seal_decision(decision, 2, &mut no_masking).unwrap();
        log.push(sealed.into_entry().unwrap().encode());
    }
    let (_, note) = sealer.checkpoint();
    (log, note)
}

fn verify_natively(key: &docket_ledger::PublicKey, log: &[Vec<u8>], note: &str) {
    let mut v = Verifier::new(key.clone());
    for e in log {
        v.push_entry_bytes(e).unwrap();
    }
    v.push_checkpoint(note).unwrap();
    v.finish().unwrap();
}

fn verify_in_component(
    instance: &mut runtime::Instance,
    key: &docket_ledger::PublicKey,
    log: &[Vec<u8>],
    note: &str,
) {
    let mut v = instance.verifier(&key.to_vkey()).unwrap();
    for run in log.chunks(docket_runtime::log::VERIFY_RUN) {
        v.push_entries(run).unwrap();
    }
    v.push_checkpoint(note).unwrap();
    v.finish().unwrap();
}

/// As `verify_in_component`, one call per entry: what batching saves.
fn verify_in_component_entry_by_entry(
    instance: &mut runtime::Instance,
    key: &docket_ledger::PublicKey,
    log: &[Vec<u8>],
    note: &str,
) {
    let mut v = instance.verifier(&key.to_vkey()).unwrap();
    for e in log {
        v.push_entry(e).unwrap();
    }
    v.push_checkpoint(note).unwrap();
    v.finish().unwrap();
}

/// `docket-bench hot WHAT [SECONDS] [COMPONENT.wasm]`: repeats one operation for SECONDS
/// (default 10) so `perf record` sees nothing else; WHAT is `eval`, `seal` or `verify` through
/// the component, or the same with `-native`, or `call` (a call that does almost nothing). With
/// `DOCKET_WASM_PROFILER=perfmap` perf names the component's functions; pass an unstripped
/// build as COMPONENT.wasm to see Rust names.
fn hot(what: &str, seconds: f64, wasm: Option<&str>) {
    let runtime = match wasm {
        Some(path) => Runtime::from_wasm(&std::fs::read(path).unwrap(), None).unwrap(),
        None => Runtime::new(Some(&std::env::temp_dir().join("docket-bench-cache"))).unwrap(),
    };
    let mut instance = runtime.instantiate().unwrap();
    let mut native = PolicyEngine::new();
    for p in ALL {
        native.add_policy(p.id, p.source).unwrap();
        native.add_data(p.data).unwrap();
        instance.add_policy(p.id, p.source).unwrap();
        instance.add_data(p.data).unwrap();
    }
    let mut requests = Requests::new(99);
    let inputs: Vec<String> = (0..1000).map(|_| requests.rbac()).collect();
    let decision = native.evaluate(RBAC.path, Some(&inputs[0])).unwrap();
    let (mut sealer, _) = Sealer::genesis(log_key(), log_params(), 1).unwrap();
    start_component_log(&mut instance);
    let wit_decision = instance.evaluate(RBAC.path, Some(&inputs[0])).unwrap();
    let (log, note) = sealed_log(&decision, 1000);
    let key = log_key();
    let mut operation: Box<dyn FnMut()> = match what {
        "eval" => Box::new(|| {
            for input in &inputs {
                instance.evaluate(RBAC.path, Some(input)).unwrap();
            }
        }),
        "eval-native" => Box::new(|| {
            for input in &inputs {
                native.evaluate(RBAC.path, Some(input)).unwrap();
            }
        }),
        // The cost of crossing into the component and back with a small answer.
        "call" => Box::new(|| {
            for _ in 0..1000 {
                instance.policy_version().unwrap();
            }
        }),
        "seal" => Box::new(|| {
            for _ in 0..1000 {
                instance.seal_decision(&wit_decision).unwrap().unwrap();
            }
        }),
        "seal-native" => Box::new(|| {
            for _ in 0..1000 {
                seal_natively(&mut sealer, &decision);
            }
        }),
        "verify" => Box::new(|| verify_in_component(&mut instance, key.public(), &log, &note)),
        "verify-each" => Box::new(|| {
            verify_in_component_entry_by_entry(&mut instance, key.public(), &log, &note)
        }),
        "verify-native" => Box::new(|| verify_natively(key.public(), &log, &note)),
        other => panic!("hot {other}: use call, or eval, seal or verify, optionally with -native"),
    };
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        operation();
        rounds += 1;
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / (rounds * 1000) as f64;
    println!("{what}: {us:.2} µs per operation over {rounds} rounds of 1000");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("hot") {
        let seconds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
        return hot(&args[2], seconds, args.get(4).map(String::as_str));
    }
    if args.get(1).map(String::as_str) == Some("conformance") {
        return conformance();
    }
    let count =
        |i: usize, default: usize| args.get(i).and_then(|n| n.parse().ok()).unwrap_or(default);
    if args.get(1).map(String::as_str) == Some("peers") {
        return peers(count(2, 2000));
    }
    if args.get(1).map(String::as_str) == Some("verify-cores") {
        return verify_cores(count(2, 50_000));
    }
    if args.get(1).map(String::as_str) == Some("json-check") {
        return json_check(count(2, 20_000));
    }
    if args.get(1).map(String::as_str) == Some("verify-export") {
        return verify_export(&args[2], &args[3]);
    }
    if args.get(1).map(String::as_str) == Some("js-vectors") {
        return js_vectors(
            &args[2],
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(50),
        );
    }
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let scratch = std::env::temp_dir().join(format!("docket-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();

    // Component load: compile vs load from cache, and instantiation.
    let cache = scratch.join("cache");
    let t = Instant::now();
    let compiled = Runtime::new(Some(&cache)).unwrap();
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(compiled);
    let t = Instant::now();
    let rt = Runtime::new(Some(&cache)).unwrap();
    let cached_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(rt.load_info().from_cache);
    let instantiate_us = best_us(50, || {
        for _ in 0..50 {
            drop(rt.instantiate().unwrap());
        }
    });

    let mut requests = Requests::new(99);
    let rbac_inputs: Vec<String> = (0..n).map(|_| requests.rbac()).collect();
    let mixed: Vec<(&str, String)> = (0..n).map(|_| requests.next_request()).collect();

    let mut native = PolicyEngine::new();
    let mut wasm = rt.instantiate().unwrap();
    for p in ALL {
        native.add_policy(p.id, p.source).unwrap();
        native.add_data(p.data).unwrap();
        wasm.add_policy(p.id, p.source).unwrap();
        wasm.add_data(p.data).unwrap();
    }

    let native_eval = best_us(n, || {
        for input in &rbac_inputs {
            native.evaluate(RBAC.path, Some(input)).unwrap();
        }
    });
    let wasm_eval = best_us(n, || {
        for input in &rbac_inputs {
            wasm.evaluate(RBAC.path, Some(input)).unwrap();
        }
    });

    // Sealing alone (checkpoint mode: no per-entry signature), native vs component.
    let decision = native.evaluate(RBAC.path, Some(&rbac_inputs[0])).unwrap();
    let (mut sealer, _) = Sealer::genesis(log_key(), log_params(), 1).unwrap();
    let native_seal = best_us(n, || {
        for _ in 0..n {
            seal_natively(&mut sealer, &decision);
        }
    });
    start_component_log(&mut wasm);
    let wit_decision = wasm.evaluate(RBAC.path, Some(&rbac_inputs[0])).unwrap();
    let wasm_seal = best_us(n, || {
        for _ in 0..n {
            wasm.seal_decision(&wit_decision).unwrap().unwrap();
        }
    });
    let native_sign = best_us(n, || {
        for _ in 0..n {
            sealer.checkpoint();
        }
    });
    let wasm_sign = best_us(n, || {
        for _ in 0..n {
            wasm.checkpoint().unwrap();
        }
    });

    // Verification of a log of n decisions, native vs component.
    let (log, note) = sealed_log(&decision, n);
    let key = log_key();
    let native_verify = best_us(n, || verify_natively(key.public(), &log, &note));
    let wasm_verify = best_us(n, || {
        verify_in_component(&mut wasm, key.public(), &log, &note)
    });

    // End to end: evaluate + seal + durable append, group commit vs fsync per entry.
    let end_to_end = |batch: usize, tag: &str| -> f64 {
        let dir = scratch.join(format!("log-{tag}"));
        let mut log = AuditLog::create(
            &dir,
            &rt,
            &key,
            "bench/e2e",
            "b",
            runtime::SigningMode::Checkpoint,
        )
        .unwrap();
        for p in ALL {
            log.instance().add_policy(p.id, p.source).unwrap();
            log.instance().add_data(p.data).unwrap();
        }
        let t = Instant::now();
        for (i, (path, input)) in mixed.iter().enumerate() {
            log.decide(path, Some(input)).unwrap();
            if (i + 1).is_multiple_of(batch) {
                log.commit().unwrap();
            }
        }
        log.commit().unwrap();
        t.elapsed().as_secs_f64() * 1e6 / mixed.len() as f64
    };
    let per_entry = end_to_end(1, "fsync-each");
    let grouped = end_to_end(256, "group");

    println!(
        "Measured {} on {} ({} requests per figure, best of {ROUNDS}):\n",
        chrono_free_date(),
        std::env::consts::ARCH,
        n
    );
    println!("| measure | docket | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    row(
        "RBAC policy eval, µs/decision",
        format!("component {wasm_eval:.1}"),
        format!("native {native_eval:.1}"),
        format!("{:.2}×", wasm_eval / native_eval),
    );
    row(
        "seal a decision (chain + hash), µs",
        format!("component {wasm_seal:.1}"),
        format!("native {native_seal:.1}"),
        format!("{:.2}×", wasm_seal / native_seal),
    );
    row(
        "sign a checkpoint (Ed25519), µs",
        format!("component {wasm_sign:.1}"),
        format!("native {native_sign:.1}"),
        format!("{:.2}×", wasm_sign / native_sign),
    );
    row(
        "verify, µs/entry",
        format!("component {wasm_verify:.2}"),
        format!("native {native_verify:.2}"),
        format!("{:.2}×", wasm_verify / native_verify),
    );
    row(
        "eval + seal + durable append, decisions/s (RBAC+ABAC mix, one thread)",
        format!("group commit of 256: {:.0}", 1e6 / grouped),
        format!("fsync per entry: {:.0}", 1e6 / per_entry),
        format!("{:.1}×", per_entry / grouped),
    );
    row(
        "component load, ms",
        format!("from cache {cached_ms:.2}"),
        format!("compile {compile_ms:.0}"),
        format!("{:.0}× faster", compile_ms / cached_ms),
    );
    row(
        "instantiate (InstancePre), µs",
        format!("{instantiate_us:.0}"),
        "–".into(),
        "–".into(),
    );
    row(
        "component size, bytes",
        format!("{}", runtime::COMPONENT_WASM.len()),
        "–".into(),
        "–".into(),
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The date for the table header, from the system clock (UTC), without a date crate.
fn chrono_free_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    docket_ledger::record::rfc3339(secs)[..10].to_string()
}
