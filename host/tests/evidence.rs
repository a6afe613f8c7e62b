//! Evidence that never lies (issue 20): each attack that once made docket lose an acknowledged
//! entry, say "verified" wrongly or seal a masked value in clear, replayed against the real
//! binary and the real server.

use crate::common::{Server, docket_command, scratch, serve_to_exit, verify_dir};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn docket(args: &[&str]) -> Output {
    docket_command().args(args).output().unwrap()
}

/// `docket eval` of the RBAC example on the log in `log` with `key`, `input` on stdin.
fn eval_stdin(log: &Path, key: &Path, input: &str) -> Output {
    let examples = crate::common::repo().join("examples/policies");
    let mut child = docket_command()
        .args(["eval", "--path", "rbac/allow", "--dir"])
        .arg(log)
        .arg("--key")
        .arg(key)
        .arg("--policy")
        .arg(examples.join("rbac.rego"))
        .arg("--data")
        .arg(examples.join("rbac.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The command exited with `code` and said `says` (stdout or stderr).
fn assert_exit(out: &Output, code: i32, says: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    assert!(text(out).contains(says), "{}", text(out));
}

/// The command failed (a server refusing to start) and said `says`.
fn assert_refused(out: &Output, says: &str) {
    assert!(!out.status.success(), "{}", text(out));
    assert!(text(out).contains(says), "{}", text(out));
}

/// `docket log export LOG -o TO`, which must succeed.
fn export_log(log: &Path, to: &Path) {
    let out = docket(&[
        "log",
        "export",
        log.to_str().unwrap(),
        "-o",
        to.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

fn log_size(c: &Client, s: &Server) -> u64 {
    let log: Value = c.get(s.url("/v1/log")).send().unwrap().json().unwrap();
    log["size"].as_u64().unwrap()
}

fn verify(log: &Path, public: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        log.to_str().unwrap(),
        "--pub",
        public.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    docket(&args)
}

const DUPLICATED: &[&str] = &[
    // The attack as reported: the engine decides on the last `ip`, the masker removed the first.
    r#"{"user":"bob","action":"read","resource":{"type":"document"},"context":{"ip":"10.1.1.1","ip":"203.0.113.77"}}"#,
    r#"{"user":"bob","action":"read","resource":{"type":"document"},"context":{"ip":false,"ip":"203.0.113.77"}}"#,
    r#"{"user":"bob","action":"read","resource":{"type":"document"},"context":{"ip":"10.1.1.1"},"context":{"ip":"203.0.113.77"}}"#,
    // At the top and deep in arrays, and spelled differently.
    r#"{"user":"bob","user":"alice","action":"read","resource":{"type":"document"}}"#,
    r#"{"user":"bob","action":"read","resource":{"type":"document","tags":[{"a":1},{"k":1,"k":2}]}}"#,
    r#"{"user":"bob","action":"read","resource":{"type":"document"},"context":{"ip":"10.1.1.1","\u0069p":"203.0.113.77"}}"#,
];

#[test]
fn duplicate_names_are_refused_at_every_entry_point_and_nothing_is_sealed() {
    let dir = scratch("evidence-dup");
    let server = Server::start(&dir, &[]);
    let c = client();
    let before = log_size(&c, &server);
    for input in DUPLICATED {
        // The Data API body.
        let body = format!(r#"{{"input":{input}}}"#);
        let answer = c
            .post(server.url("/v1/data/rbac/allow"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 400, "{input}");
        let message = answer.text().unwrap();
        assert!(message.contains("twice"), "{message}");
        assert!(message.contains("/input"), "the path is named: {message}");
        // `?input=`.
        let answer = c
            .get(server.url("/v1/data/rbac/allow"))
            .query(&[("input", input)])
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 400, "GET ?input={input}");
        assert!(answer.text().unwrap().contains("twice"));
        // OPA's default decision: the body is the input.
        let answer = c
            .post(server.url("/"))
            .header("content-type", "application/json")
            .body(input.to_string())
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 400, "POST / {input}");
        // An OPA decision-log upload holding the event.
        let upload = format!(r#"[{{"decision_id":"d-1","path":"rbac/allow","input":{input}}}]"#);
        let answer = c
            .post(server.url("/logs"))
            .bearer_auth(server.token())
            .body(upload)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 400, "upload of {input}");
        assert!(answer.text().unwrap().contains("nothing was logged"));
    }
    // The top level of the body itself.
    let answer = c
        .post(server.url("/v1/data/rbac/allow"))
        .header("content-type", "application/json")
        .body(r#"{"input":{"user":"alice"},"input":{"user":"bob"}}"#)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    // A data document.
    let answer = c
        .put(server.url("/v1/data/extra"))
        .bearer_auth(server.token())
        .body(r#"{"admins":["alice"],"admins":["mallory"]}"#)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    assert_eq!(log_size(&c, &server), before, "nothing was sealed");
    server.stop();
    verify_dir(&dir);
}

#[test]
fn duplicate_names_are_refused_by_eval_and_in_exports() {
    let dir = scratch("evidence-dup-cli");
    let out = docket(&[
        "keygen",
        "--out",
        dir.to_str().unwrap(),
        "--name",
        "dup.test",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let log = dir.join("log");
    let key = dir.join("docket.key");
    let eval = |input: &str| eval_stdin(&log, &key, input);
    let good = eval(r#"{"user":"alice","action":"read","resource":{"type":"document"}}"#);
    assert!(good.status.success(), "{}", text(&good));
    for input in DUPLICATED {
        let out = eval(input);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains("twice"), "{message}");
        assert!(!message.contains("Input(\""), "no Debug output: {message}");
    }
    let public = dir.join("docket.pub");
    let out = verify(&log, &public, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["kinds"]["decision"], 1,
        "only the good decision: {report}"
    );

    // An export line with a repeated field: one tool would take the first, another the last.
    let export = dir.join("log.jsonl");
    export_log(&log, &export);
    assert!(verify(&export, &public, &[]).status.success());
    let original = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let entry = lines
        .iter()
        .position(|l| l.contains(r#""kind":"decision""#))
        .unwrap();
    let doubled = lines[entry].replacen(
        r#""kind":"decision""#,
        r#""kind":"decision","kind":"genesis""#,
        1,
    );
    let mut tampered = lines.clone();
    tampered[entry] = &doubled;
    std::fs::write(&export, tampered.join("\n") + "\n").unwrap();
    let out = verify(&export, &public, &[]);
    assert_exit(&out, 1, "\"kind\" twice");
}

/// A server's log directory with `decisions` acknowledged decisions, stopped; returns the
/// decision ids it acknowledged.
fn served_log(dir: &Path, decisions: usize, extra: &[&str]) -> Vec<String> {
    let server = Server::start(dir, extra);
    let c = client();
    let ids = (0..decisions)
        .map(|i| {
            let input = json!({"user": "alice", "action": "read", "resource": {"type": "document", "id": i}});
            let answer: Value = c
                .post(server.url("/v1/data/rbac/allow"))
                .json(&json!({ "input": input }))
                .send()
                .unwrap()
                .json()
                .unwrap();
            answer["decision_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(server.stop().success());
    ids
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    docket_store::segment_paths(&dir.join("data/log")).unwrap()
}

/// The byte offsets of every frame in a segment.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut starts = Vec::new();
    while at + 9 <= bytes.len() {
        starts.push(at);
        at += 9 + u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    starts
}

#[test]
fn a_damaged_length_field_is_refused_not_cut_by_serve_and_verify() {
    let dir = scratch("evidence-length");
    let ids = served_log(&dir, 60, &["--commit-max-entries", "4"]);
    let segment = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let starts = frame_starts(&bytes);
    // A frame in the middle of the segment claims a huge length; valid frames follow it.
    let victim = starts[starts.len() / 2];
    let original_length: [u8; 4] = bytes[victim..victim + 4].try_into().unwrap();
    bytes[victim..victim + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    std::fs::write(&segment, &bytes).unwrap();

    let out = verify(&dir.join("data/log"), &dir.join("data/docket.pub"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.starts_with("REJECTED: the log is damaged"), "{said}");
    assert!(said.contains(&format!("at byte {victim}")), "{said}");
    assert!(said.contains("the last good entry is"), "{said}");

    // The server refuses to start and changes nothing.
    let out = serve_to_exit(&dir);
    assert_refused(&out, "the log is damaged");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing was cut");

    // Repaired, the server opens it and every acknowledged decision is there.
    bytes[victim..victim + 4].copy_from_slice(&original_length);
    std::fs::write(&segment, &bytes).unwrap();
    let server = Server::start(&dir, &[]);
    for id in &ids {
        assert_eq!(
            server.decision_bundle(id)["entry"]["record"]["decision_id"],
            id.as_str()
        );
    }
}

/// Copies a log directory's files (segments and the `checkpoint` copy) to `to`.
fn copy_log(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.join("segments")).unwrap();
    std::fs::copy(from.join("checkpoint"), to.join("checkpoint")).unwrap();
    for segment in docket_store::segment_paths(from).unwrap() {
        std::fs::copy(
            &segment,
            to.join("segments").join(segment.file_name().unwrap()),
        )
        .unwrap();
    }
}

#[test]
fn damage_at_every_byte_of_the_last_commits_loses_nothing_acknowledged() {
    use docket_store::{Store, scan_dir};
    let dir = scratch("evidence-every-byte");
    served_log(&dir, 6, &[]);
    let pristine = dir.join("data/log");
    let acknowledged = scan_dir(&pristine).unwrap().unwrap().entries();
    let segment_name = segments(&dir)
        .pop()
        .unwrap()
        .file_name()
        .unwrap()
        .to_owned();
    let original = std::fs::read(pristine.join("segments").join(&segment_name)).unwrap();
    let starts = frame_starts(&original);
    // The last two commits: each is an entry frame and a checkpoint frame (requests were
    // sent one at a time), so they start four frames from the end.
    let from = starts[starts.len() - 4];
    let work = dir.join("work");
    let segment = work.join("segments").join(&segment_name);
    let mut refused = 0;
    for position in from..original.len() {
        for damage in [0x01u8, 0x80, 0xff] {
            copy_log(&pristine, &work);
            let mut bytes = original.clone();
            bytes[position] ^= damage;
            std::fs::write(&segment, &bytes).unwrap();
            match Store::open(&work) {
                Err(e) => {
                    let message = format!("{e:#}");
                    assert!(
                        message.contains("the log is damaged")
                            && message.contains(&*segment.to_string_lossy()),
                        "byte {position} ^ {damage:#x}: {message}"
                    );
                    assert_eq!(
                        std::fs::read(&segment).unwrap(),
                        bytes,
                        "byte {position}: nothing cut"
                    );
                    refused += 1;
                }
                Ok((store, _, recovery)) => panic!(
                    "byte {position} ^ {damage:#x} of an acknowledged commit was accepted: {} entries, {recovery:?}",
                    store.entries()
                ),
            }
        }
    }
    // A crash during the next commit: every prefix of it, and a file extended with zeros.
    let mut next = Vec::new();
    next.extend_from_slice(&original[starts[starts.len() - 2]..]);
    let mut tails: Vec<Vec<u8>> = (1..next.len()).map(|n| next[..n].to_vec()).collect();
    tails.push(vec![0; 4096]);
    tails.push([&next[..next.len() / 2], &[0u8; 512][..]].concat());
    for tail in &tails {
        copy_log(&pristine, &work);
        std::fs::write(&segment, [&original[..], tail].concat()).unwrap();
        let (store, frames, recovery) = Store::open(&work)
            .unwrap_or_else(|e| panic!("a torn tail of {} bytes: {e:#}", tail.len()));
        assert_eq!(store.entries(), acknowledged);
        assert_eq!(recovery.truncated_bytes, tail.len() as u64);
        assert_eq!(frames.len(), starts.len());
        drop(store);
        assert_eq!(
            std::fs::read(&segment).unwrap(),
            original,
            "cut back to the last commit"
        );
    }
    println!(
        "every-byte fault injection: {} positions x 3 damages of the last 2 commits refused ({refused}); {} torn tails cut, {acknowledged} acknowledged entries kept each time",
        original.len() - from,
        tails.len()
    );
}

#[test]
fn a_removed_last_commit_is_noticed_through_the_checkpoint_copy() {
    let dir = scratch("evidence-cut");
    served_log(&dir, 5, &[]);
    let segment = segments(&dir).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let starts = frame_starts(&bytes);
    // Cut the last commit's checkpoint frame: its entry would look unfinished.
    std::fs::write(&segment, &bytes[..starts[starts.len() - 1]]).unwrap();
    let out = verify(&dir.join("data/log"), &dir.join("data/docket.pub"), &[]);
    assert_exit(&out, 1, "acknowledged entries are missing");
    let out = serve_to_exit(&dir);
    assert_refused(&out, "acknowledged entries are missing");
}

#[test]
fn a_torn_tail_is_reported_by_verify_not_called_verified() {
    let dir = scratch("evidence-torn");
    served_log(&dir, 3, &[]);
    let segment = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0, 0, 1, 0, 1, 7, 7]);
    std::fs::write(&segment, &bytes).unwrap();
    let out = verify(&dir.join("data/log"), &dir.join("data/docket.pub"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("ends in an unfinished commit: 7 bytes"),
        "{said}"
    );
    assert!(!said.contains("verified:"), "{said}");
    // The next writer cuts it; then the log verifies.
    let server = Server::start(&dir, &[]);
    server.stop();
    verify_dir(&dir);
}

#[test]
fn segment_names_are_checked_against_what_they_hold() {
    let dir = scratch("evidence-names");
    served_log(&dir, 2, &[]);
    let stray = dir.join("data/log/segments/99999999999999999999.seg");
    std::fs::write(&stray, b"").unwrap();
    let out = verify(&dir.join("data/log"), &dir.join("data/docket.pub"), &[]);
    assert_exit(&out, 1, "is not where its name says");
    let out = serve_to_exit(&dir);
    assert_refused(&out, "stray or misnamed");
    assert_eq!(
        std::fs::read(&stray).unwrap(),
        b"",
        "nothing was appended to it"
    );
    std::fs::remove_file(&stray).unwrap();
    let misnamed = dir.join("data/log/segments/00000000000000000001.seg");
    std::fs::rename(segments(&dir).pop().unwrap(), &misnamed).unwrap();
    let out = verify(&dir.join("data/log"), &dir.join("data/docket.pub"), &[]);
    assert_exit(&out, 1, "its name claims its first entry is 1");
}

#[test]
fn the_writer_lock_survives_a_deleted_lock_file() {
    let dir = scratch("evidence-lock");
    let first = Server::start(&dir, &[]);
    std::fs::remove_file(dir.join("data/log/LOCK")).unwrap();
    let out = serve_to_exit(&dir);
    assert_refused(&out, "in use by another writer");
    first.stop();
    verify_dir(&dir);
}

#[test]
fn a_trusted_checkpoint_must_be_of_this_log_and_signed_by_its_key() {
    let dir = scratch("evidence-trusted");
    served_log(&dir, 4, &[]);
    let log = dir.join("data/log");
    let public = dir.join("data/docket.pub");
    let genuine = docket_store::latest_checkpoint(&log).unwrap().unwrap();
    let path = dir.join("trusted.note");
    std::fs::write(&path, &genuine).unwrap();
    let out = verify(&log, &public, &["--checkpoint", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("consistent with the trusted checkpoint"));

    // The genuine body, a signature by a key named `evil` that is not the log's.
    let body = genuine
        .split(
            "

",
        )
        .next()
        .unwrap();
    let evil = docket_ledger::SecretKey::from_seed("evil", &[7; 32]).unwrap();
    let checkpoint = docket_ledger::Checkpoint::parse_body(&format!(
        "{body}
"
    ))
    .unwrap();
    std::fs::write(&path, checkpoint.sign(&evil)).unwrap();
    let out = verify(&log, &public, &["--checkpoint", path.to_str().unwrap()]);
    assert_exit(&out, 1, "proves nothing");
    // ... unless the user trusts that key.
    let evil_pub = dir.join("evil.pub");
    std::fs::write(&evil_pub, evil.public().to_vkey()).unwrap();
    let out = verify(
        &log,
        &public,
        &[
            "--checkpoint",
            path.to_str().unwrap(),
            "--checkpoint-key",
            evil_pub.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Another log's checkpoint: "another log", not "truncated".
    let other = docket_ledger::Checkpoint {
        origin: "some.other/origin".into(),
        ..checkpoint.clone()
    };
    std::fs::write(&path, other.sign(&evil)).unwrap();
    let out = verify(
        &log,
        &public,
        &["--checkpoint", path.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["failure"], "foreign-checkpoint", "{verdict}");
    assert!(
        verdict["message"]
            .as_str()
            .unwrap()
            .contains("belongs to another log")
    );
}

#[test]
fn an_ingested_chunk_is_sealed_whole_or_not_at_all() {
    let dir = scratch("evidence-chunk");
    let server = Server::start(&dir, &[]);
    let c = client();
    let before = log_size(&c, &server);
    let big = "x".repeat(17 << 20);
    let chunk = format!(
        r#"[{{"decision_id":"small-1","path":"a","result":true}},{{"decision_id":"big-1","path":"a","result":"{big}"}}]"#
    );
    let answer = c
        .post(server.url("/logs"))
        .bearer_auth(server.token())
        .body(chunk)
        .send()
        .unwrap();
    let status = answer.status().as_u16();
    let message = answer.text().unwrap();
    assert!(status == 413 || status == 400, "{status} {message}");
    assert!(message.contains("event 1"), "{message}");
    assert_eq!(
        log_size(&c, &server),
        before,
        "the small event was not sealed either"
    );
    server.stop();
    verify_dir(&dir);
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = scratch("evidence-pipe");
    served_log(&dir, 3, &[]);
    let script = format!(
        "{} log show {} | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_docket"),
        dir.join("data/log").display()
    );
    // `log show` prints far more than one byte; the pipe closes under it.
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

/// libfaketime (Debian `faketime`, installed by the test command): the wall clock of a process
/// is shifted by the offset in a file, re-read on every reading; the monotonic clock is not.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

pub(crate) fn faketime_env(offset_file: &Path) -> Vec<(&'static str, String)> {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install faketime (tests/run does)"
    );
    vec![
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}

#[test]
fn one_wrong_clock_reading_is_not_adopted_and_prune_does_not_trust_a_clock_far_ahead() {
    let dir = scratch("evidence-clock");
    let offset = dir.join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let env = faketime_env(&offset);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with_env(&dir, &[], &env);
    let c = client();
    let decide = |c: &Client| {
        let input = json!({"user": "alice", "action": "read", "resource": {"type": "document"}});
        let answer: Value = c
            .post(server.url("/v1/data/rbac/allow"))
            .json(&json!({ "input": input }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["decision_id"].as_str().unwrap().to_string()
    };
    let before = decide(&c);
    // Ten years ahead, for one decision.
    std::fs::write(&offset, "+315360000\n").unwrap();
    let during = decide(&c);
    std::fs::write(&offset, "+0\n").unwrap();
    let after = decide(&c);
    let stamp = |id: &str| {
        let bundle = server.decision_bundle(id);
        bundle["entry"]["timestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let now_year = docket_ledger::record::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    )[..4]
        .to_string();
    for id in [&before, &during, &after] {
        let at = stamp(id);
        assert!(at.starts_with(&now_year), "decision {id} stamped {at}");
    }
    server.stop();
    verify_dir(&dir);

    // A prune by a clock 400 days ahead is refused without --idle-log, and changes nothing.
    std::fs::write(&offset, "+34560000\n").unwrap();
    let mut prune = docket_command();
    prune
        .args(["log", "prune"])
        .arg(dir.join("data/log"))
        .arg("--key")
        .arg(dir.join("data/docket.key"))
        .envs(env.iter().copied());
    let segments_before: Vec<Vec<u8>> = segments(&dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let out = prune.output().unwrap();
    assert_exit(&out, 2, "days after the log's newest entry");
    assert!(text(&out).contains("--idle-log"), "{}", text(&out));
    let segments_after: Vec<Vec<u8>> = segments(&dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(
        segments_before, segments_after,
        "nothing was pruned or sealed"
    );
}

/// Runs `docket eval` on the log in `log` with the server's key; the decision id it printed.
fn eval_into(dir: &Path, log: &Path, user: &str) -> String {
    let input = format!(r#"{{"user":"{user}","action":"read","resource":{{"type":"document"}}}}"#);
    let out = eval_stdin(log, &dir.join("data/docket.key"), &input);
    assert!(out.status.success(), "{}", text(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    printed["decision_id"].as_str().unwrap().to_string()
}

/// The byte ranges of a segment's commits after `from` (each ends with a checkpoint frame).
fn commits_after(bytes: &[u8], from: usize) -> Vec<std::ops::Range<usize>> {
    let mut commits = Vec::new();
    let mut start = from;
    let mut at = from;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = bytes[at + 4];
        at += 9 + len;
        if kind == docket_store::FRAME_CHECKPOINT {
            commits.push(start..at);
            start = at;
        }
    }
    commits
}

#[test]
fn a_fork_is_named_at_open_and_split_into_histories_that_keep_every_acknowledged_entry() {
    let dir = scratch("evidence-fork");
    served_log(&dir, 3, &[]);
    let log = dir.join("data/log");
    let segment_name = segments(&dir)
        .pop()
        .unwrap()
        .file_name()
        .unwrap()
        .to_owned();
    let shared = std::fs::read(log.join("segments").join(&segment_name)).unwrap();
    // Two writers that both believed they held the log: each continues the same state.
    let (a, b) = (dir.join("writer-a"), dir.join("writer-b"));
    copy_log(&log, &a);
    copy_log(&log, &b);
    let mut acknowledged = Vec::new();
    for (k, writer) in [&a, &b, &a, &b].into_iter().enumerate() {
        acknowledged.push(eval_into(&dir, writer, &format!("user-{k}")));
    }
    let tail = |w: &Path| std::fs::read(w.join("segments").join(&segment_name)).unwrap();
    let (ta, tb) = (tail(&a), tail(&b));
    let (ca, cb) = (
        commits_after(&ta, shared.len()),
        commits_after(&tb, shared.len()),
    );
    assert_eq!((ca.len(), cb.len()), (2, 2));
    // Their commits interleaved in the one file, as two appenders leave them.
    let forked = [
        &shared[..],
        &ta[ca[0].clone()],
        &tb[cb[0].clone()],
        &ta[ca[1].clone()],
        &tb[cb[1].clone()],
    ]
    .concat();
    std::fs::write(log.join("segments").join(&segment_name), &forked).unwrap();

    // Opening names the situation and the way forward, and changes nothing.
    let out = serve_to_exit(&dir);
    assert_refused(&out, "docket log split-fork");
    assert_eq!(
        std::fs::read(log.join("segments").join(&segment_name)).unwrap(),
        forked
    );

    // Split: two histories, each verifying, every acknowledged decision in one of them.
    let histories = dir.join("histories");
    let out = docket(&[
        "log",
        "split-fork",
        log.to_str().unwrap(),
        "--out",
        histories.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut exported = String::new();
    for name in ["history-1", "history-2"] {
        let history = histories.join(name);
        let verified = verify(&history, &dir.join("data/docket.pub"), &[]);
        assert!(verified.status.success(), "{name}: {}", text(&verified));
        let export = dir.join(format!("{name}.jsonl"));
        export_log(&history, &export);
        exported.push_str(&std::fs::read_to_string(&export).unwrap());
    }
    for id in &acknowledged {
        assert!(
            exported.contains(id.as_str()),
            "acknowledged decision {id} was lost"
        );
    }
    assert!(!histories.join("history-3").exists());
    // A log that has not forked is not "split".
    let out = docket(&[
        "log",
        "split-fork",
        a.to_str().unwrap(),
        "--out",
        dir.join("none").to_str().unwrap(),
    ]);
    assert_exit(&out, 2, "has not forked");
}

/// A server that cannot listen (its port is taken, or the address is OPA's `:PORT`) stops before
/// it opens the log: a failed start seals nothing, not even a policy load.
#[test]
fn a_start_that_cannot_listen_writes_nothing() {
    let dir = scratch("cannot-listen");
    let s = Server::start(&dir, &[]);
    assert!(s.stop().success());
    let entries = || {
        docket_store::read_frames(&dir.join("data/log"))
            .unwrap()
            .0
            .len()
    };
    let before = entries();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (wanted, says) in [
        (addr.as_str(), "cannot listen on"),
        (":8181", "every interface"),
        ("nowhere", "not an address to listen on"),
    ] {
        let out = docket_command()
            .args(["serve", "--addr", wanted, "--dir"])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{wanted}: {stderr}");
        assert!(stderr.contains(says), "{wanted}: {stderr}");
        assert_eq!(
            entries(),
            before,
            "{wanted}: the failed start wrote to the log"
        );
    }
    drop(taken);
    verify_dir(&dir);
}
