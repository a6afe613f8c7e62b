//! docket's JetStream log against a real NATS cluster (three `nats-server` processes on
//! loopback): commits read back byte for byte, batches larger than a message, the fence that
//! keeps a second writer from forking a log, refusals of streams and servers that could lose
//! a commit, and a server killed with SIGKILL while commits are being acknowledged.

mod cluster;

use cluster::Cluster;
use docket_nats::{Durability, JetStreamLog, Location, Requirements};
use docket_store::{Frame, encode_segment};

/// A commit as the store encodes one: `n` opaque entries of `size` bytes and a checkpoint.
fn commit(tag: u32, n: usize, size: usize) -> Vec<Frame> {
    let mut frames: Vec<Frame> = (0..n)
        .map(|i| {
            let mut bytes = format!("entry {tag}/{i} ").into_bytes();
            bytes.resize(size.max(bytes.len()), (tag % 251) as u8);
            Frame::Entry(bytes)
        })
        .collect();
    frames.push(Frame::Checkpoint(format!("checkpoint {tag}\n")));
    frames
}

fn open(cluster: &Cluster, log: &str, replicas: usize) -> anyhow::Result<JetStreamLog> {
    let location = Location::parse(&cluster.url("DOCKET", log))?;
    JetStreamLog::open(
        &location,
        Requirements { replicas },
        &Durability::checked(cluster.monitors()),
        true,
    )
}

#[test]
fn commits_read_back_exactly_and_a_writer_behind_the_log_is_fenced_out() {
    // Messages of at most 64 KiB, so a 200 KiB commit is an atomic batch of four.
    let cluster = Cluster::start(3, Some(64 << 10));
    let one = open(&cluster, "node-1", 3).unwrap();
    assert!(one.read().unwrap().frames.is_empty());
    let mut expected = Vec::new();
    for (tag, n, size) in [(1, 1, 100), (2, 40, 5_000), (3, 3, 10)] {
        let frames = commit(tag, n, size);
        one.append(&encode_segment(&frames)).unwrap();
        expected.extend(frames);
    }
    let two = open(&cluster, "node-1", 3).unwrap();
    let read = two.read().unwrap();
    assert_eq!(read.frames, expected);
    assert!(
        read.messages >= 6,
        "the large commit took several messages: {read:?}"
    );

    let three = open(&cluster, "node-1", 3).unwrap();
    three.read().unwrap();
    // `one` appends; `two` and `three` read before that and are refused, with nothing appended.
    let c4 = commit(4, 2, 10);
    one.append(&encode_segment(&c4)).unwrap();
    expected.extend(c4);
    let stale = two.append(&encode_segment(&commit(5, 1, 10))).unwrap_err();
    assert!(
        format!("{stale:#}").contains("another writer appended"),
        "{stale:#}"
    );
    // A stale large batch is refused whole, too.
    let stale = three
        .append(&encode_segment(&commit(6, 40, 5_000)))
        .unwrap_err();
    assert!(format!("{stale:#}").contains("another writer"), "{stale:#}");
    // After a failed append a writer does not know where the log ends, and must read it first.
    let unread = three
        .append(&encode_segment(&commit(6, 1, 10)))
        .unwrap_err();
    assert!(format!("{unread:#}").contains("must be read"), "{unread:#}");
    assert_eq!(two.read().unwrap().frames, expected);
    // Having read again, `two` may append, and now `one` is behind.
    let c7 = commit(7, 1, 10);
    two.append(&encode_segment(&c7)).unwrap();
    expected.extend(c7);
    assert!(one.append(&encode_segment(&commit(8, 1, 10))).is_err());
    assert_eq!(one.read().unwrap().frames, expected);

    // Another log in the same stream is its own subject, unaffected.
    let other = open(&cluster, "node-2", 3).unwrap();
    assert!(other.read().unwrap().frames.is_empty());
    other.append(&encode_segment(&commit(9, 1, 10))).unwrap();
    assert_eq!(one.read().unwrap().frames, expected);
}

#[test]
fn streams_and_servers_that_could_lose_a_commit_are_refused() {
    let cluster = Cluster::start(3, None);
    // A stream made with one replica (explicitly asked for) is refused to a writer needing 3.
    let location = Location::parse(&cluster.url("SINGLE", "a")).unwrap();
    let durability = Durability::checked(cluster.monitors());
    JetStreamLog::open(&location, Requirements { replicas: 1 }, &durability, true).unwrap();
    let refused =
        JetStreamLog::open(&location, Requirements { replicas: 3 }, &durability, true).err();
    let refused = format!("{:#}", refused.expect("refused"));
    assert!(
        refused.contains("1 replica(s), fewer than the 3"),
        "{refused}"
    );
    assert!(!refused.contains("Error {"), "{refused}");
    // Fewer monitoring endpoints than replicas: the servers' fsync cannot be checked.
    let few = Durability::checked(cluster.monitors()[..1].to_vec());
    let refused = JetStreamLog::open(&location, Requirements { replicas: 3 }, &few, true).err();
    assert!(format!("{:#}", refused.expect("refused")).contains("monitoring endpoint(s)"));
    // Without create, a stream that is not there is named.
    let missing = Location::parse(&cluster.url("NONE", "a")).unwrap();
    let refused =
        JetStreamLog::open(&missing, Requirements { replicas: 3 }, &durability, false).err();
    assert!(format!("{:#}", refused.expect("refused")).contains("there is no stream NONE"));

    // A server that fsyncs lazily is refused, unless the operator says otherwise.
    let lazy = Cluster::start_with(1, None, false);
    let location = Location::parse(&lazy.url("DOCKET", "a")).unwrap();
    let refused = JetStreamLog::open(
        &location,
        Requirements { replicas: 1 },
        &Durability::checked(lazy.monitors()),
        true,
    )
    .err();
    let refused = format!("{:#}", refused.expect("refused"));
    assert!(refused.contains("sync_interval: always"), "{refused}");
    let accepted = JetStreamLog::open(
        &location,
        Requirements { replicas: 1 },
        &Durability {
            monitors: lazy.monitors(),
            required: false,
        },
        true,
    )
    .unwrap();
    let warning = accepted.durability_warning().expect("a warning");
    assert!(warning.contains("power cut"), "{warning}");
}

/// Commits while a server is killed and restarted, three times: every acknowledged commit is
/// in the log exactly once and in order; a commit whose acknowledgement failed is there at
/// most once, and the writer carries on after reading the log again, as `docket serve` does.
#[test]
fn servers_killed_while_committing_lose_no_acknowledged_commit() {
    let mut cluster = Cluster::start(3, None);
    let log = open(&cluster, "node-1", 3).unwrap();
    log.read().unwrap();
    let mut acknowledged: Vec<u32> = Vec::new();
    let mut unacknowledged: Vec<u32> = Vec::new();
    let mut tag = 0u32;
    for round in 0..3 {
        let victim = round % 3;
        for step in 0..60 {
            if step == 20 {
                cluster.kill(victim);
            }
            if step == 40 {
                cluster.restart(victim);
            }
            tag += 1;
            match log.append(&encode_segment(&commit(tag, 2, 200))) {
                Ok(()) => acknowledged.push(tag),
                Err(_) => {
                    unacknowledged.push(tag);
                    // As the writer does after a failed commit: read the log again (retrying
                    // while the cluster elects a leader) before the next write.
                    let start = std::time::Instant::now();
                    while let Err(e) = log.read() {
                        assert!(
                            start.elapsed() < std::time::Duration::from_secs(60),
                            "the log stayed unreadable: {e:#}"
                        );
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            }
        }
    }
    let fresh = open(&cluster, "node-1", 3).unwrap();
    let frames = fresh.read().unwrap().frames;
    let tags: Vec<u32> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Checkpoint(note) => note.trim().strip_prefix("checkpoint ")?.parse().ok(),
            Frame::Entry(_) => None,
        })
        .collect();
    let mut sorted = tags.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, tags, "each commit once, in order");
    for t in &acknowledged {
        assert!(tags.contains(t), "acknowledged commit {t} is missing");
    }
    for t in &tags {
        assert!(
            acknowledged.contains(t) || unacknowledged.contains(t),
            "commit {t} was never sent"
        );
    }
    assert!(
        acknowledged.len() > 150,
        "{} acknowledged",
        acknowledged.len()
    );
    println!(
        "{} commits acknowledged, {} failed (of which {} landed all the same)",
        acknowledged.len(),
        unacknowledged.len(),
        unacknowledged.iter().filter(|t| tags.contains(t)).count()
    );
}

/// The replica watch reads each server's replica from its monitoring endpoint: on a healthy
/// cluster, once followers catch up, three replicas at the writer's sequence, one leader, and
/// no alarm. (Its alarms are unit tests: a real divergence is not something a test can make
/// NATS produce on demand.)
#[test]
fn the_replica_watch_reads_every_replica_and_finds_a_healthy_cluster_healthy() {
    let cluster = Cluster::start(3, None);
    let log = open(&cluster, "watched", 3).unwrap();
    log.read().unwrap();
    for tag in 0..20 {
        log.append(&encode_segment(&commit(tag, 3, 100))).unwrap();
    }
    let acknowledged = log.acknowledged_sequence().expect("known after a commit");
    let start = std::time::Instant::now();
    let states = loop {
        let states: Vec<_> = docket_nats::replica_states(&cluster.monitors(), "DOCKET")
            .into_iter()
            .map(Result::unwrap)
            .collect();
        if states.len() == 3 && states.iter().all(|s| s.last_seq == acknowledged) {
            break states;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "replicas never caught up: {states:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(states.iter().filter(|s| s.leader).count(), 1, "{states:?}");
    let mut watch = docket_nats::ReplicaWatch::default();
    assert_eq!(
        watch.check(&states, Some(acknowledged)),
        Vec::<String>::new()
    );
    // Through each server alone, the log's last message is the same bytes at the same sequence.
    let tails: Vec<_> = log
        .replica_tails()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tails.len(), 3, "{tails:?}");
    assert!(
        tails.iter().all(|t| t.sequence == acknowledged),
        "{tails:?}"
    );
    assert!(watch.check_tails(&tails).is_empty(), "{tails:?}");
    // Held to a sequence beyond what the leader holds, the watch says so.
    let alarms = watch.check(&states, Some(acknowledged + 1));
    assert!(
        alarms
            .iter()
            .any(|a| a.contains("acknowledged commits are missing")),
        "{alarms:?}"
    );
}
