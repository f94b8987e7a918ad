//! The shared-memory rings under real threads and processes: every message arrives once, in
//! order and intact; a full ring pushes back instead of overwriting; mismatched files and dead
//! peers are reported.
//!
//! Tests that need a second process re-run this test binary with `FERROX_RING_CHILD` set to a
//! role and `--exact child_role`, so the child runs only [`child_role`], which does nothing when
//! the variable is unset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferrox_sequencer::ring::{
    Consumer, ConsumerStatus, Evicted, Full, PeerStatus, Producer, RingError, RingSpec, Start,
    WaitStrategy, LAYOUT_VERSION,
};

const SLOT_BYTES: usize = 64;
/// Waits in tests yield early: the tests share two cores with each other and with the build.
const WAIT: WaitStrategy = WaitStrategy::SpinThenYield { spins: 64 };
/// Long enough never to fire on a loaded CI machine, short enough to fail a hung test.
const STALL: Duration = Duration::from_secs(20);

fn spec(capacity: usize, consumers_max: usize) -> RingSpec {
    RingSpec::new(SLOT_BYTES, capacity, consumers_max).expect("valid spec")
}

/// A directory in memory (`/dev/shm`) where there is one, as in production.
fn ring_dir() -> tempfile::TempDir {
    let builder = tempfile::Builder::new().prefix("ferrox-ring-test").clone();
    builder
        .tempdir_in("/dev/shm")
        .or_else(|_| builder.tempdir())
        .expect("a temporary directory")
}

/// A message: the sequence, six words derived from it, and a checksum of the seven, so that a
/// torn, stale or overwritten slot cannot pass as another message.
fn message(seq: u64) -> [u8; SLOT_BYTES] {
    let mut words = [0u64; SLOT_BYTES / 8];
    words[0] = seq;
    for (i, word) in words.iter_mut().enumerate().take(7).skip(1) {
        *word = mix(seq.wrapping_mul(8).wrapping_add(i as u64));
    }
    words[7] = checksum(&words[..7]);
    let mut bytes = [0u8; SLOT_BYTES];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

/// Checks a received slot and returns its sequence.
fn verify(slot: &[u8]) -> u64 {
    assert_eq!(slot.len(), SLOT_BYTES);
    let mut words = [0u64; SLOT_BYTES / 8];
    for (word, chunk) in words.iter_mut().zip(slot.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    assert_eq!(
        words[7],
        checksum(&words[..7]),
        "corrupt slot for seq {}",
        words[0]
    );
    words[0]
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: every input bit affects every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn checksum(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |acc, &w| mix(acc ^ w))
}

fn publish_all(producer: &mut Producer, first: u64, count: u64) -> u64 {
    let mut fulls = 0;
    for seq in first..first + count {
        let msg = message(seq);
        while producer.try_publish(&msg) == Err(Full) {
            fulls += 1;
            if fulls % 64 == 0 {
                producer.heartbeat();
                thread::yield_now();
            }
        }
    }
    fulls
}

/// Consumes exactly up to `end`, checking order and content; returns the number of batches.
fn consume_until(consumer: &mut Consumer, end: u64) -> u64 {
    let mut batches = 0;
    while consumer.next_seq() < end {
        let mut expected = consumer.next_seq();
        let max_batch = (end - expected) as usize;
        let n = consumer
            .poll_wait(&WAIT, STALL, max_batch, |seq, slot| {
                assert_eq!(seq, expected, "sequence skipped or repeated");
                assert_eq!(verify(slot), seq, "slot holds another message");
                expected += 1;
            })
            .expect("not evicted");
        assert!(n > 0, "no message for {STALL:?} at {}", consumer.next_seq());
        batches += 1;
    }
    batches
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < STALL, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn threads_two_consumers_see_every_message_intact() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let spec = spec(1024, 2);
    let mut producer = Producer::create(&path, spec).expect("create");
    let consumers: Vec<Consumer> = (0..2)
        .map(|i| Consumer::attach(&path, spec, i, Start::Producer).expect("attach"))
        .collect();
    let count: u64 = 2_000_000;
    let start = Instant::now();
    let handles: Vec<_> = consumers
        .into_iter()
        .map(|mut consumer| thread::spawn(move || consume_until(&mut consumer, count)))
        .collect();
    let fulls = publish_all(&mut producer, 0, count);
    let batches: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join().expect("consumer thread"))
        .collect();
    eprintln!(
        "{count} messages to 2 consumers in {:?}: {fulls} full results, batches {batches:?}",
        start.elapsed()
    );
    assert_eq!(producer.published(), count);
}

#[test]
fn claims_publish_batches_atomically() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let spec = spec(8, 1);
    let mut producer = Producer::create(&path, spec).expect("create");
    let mut consumer = Consumer::attach(&path, spec, 0, Start::Producer).expect("attach");
    let mut claim = producer.try_claim(5).expect("5 of 8 slots are free");
    assert_eq!((claim.first_seq(), claim.len()), (0, 5));
    for seq in 0..5 {
        claim.push(&message(seq));
        assert_eq!(consumer.available(), 0, "nothing is visible before publish");
    }
    claim.publish();
    assert_eq!(consumer.available(), 5);
    assert_eq!(
        producer.try_claim(4).err(),
        Some(Full),
        "only 3 slots are free"
    );
    // An abandoned claim publishes nothing and gives its slots back.
    let mut claim = producer.try_claim(3).expect("3 free");
    claim.push(&message(5));
    drop(claim);
    assert_eq!((producer.published(), consumer.available()), (5, 5));
    let mut seen = Vec::new();
    let n = consumer
        .poll(2, |seq, slot| seen.push((seq, verify(slot))))
        .expect("attached");
    assert_eq!((n, seen), (2, vec![(0, 0), (1, 1)]));
    assert_eq!(producer.free_slots(), 5);
}

#[test]
fn slow_consumer_pushes_back_and_loses_nothing() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let spec = spec(8, 2);
    let mut producer = Producer::create(&path, spec).expect("create");
    let mut fast = Consumer::attach(&path, spec, 0, Start::Producer).expect("attach");
    let mut slow = Consumer::attach(&path, spec, 1, Start::Producer).expect("attach");

    // Deterministic part: a full ring refuses, writes nothing, and the slowest consumer gates.
    for seq in 0..8 {
        producer.try_publish(&message(seq)).expect("free slot");
    }
    assert_eq!(producer.try_publish(&message(99)), Err(Full));
    assert_eq!(consume_until(&mut fast, 8), 1, "one batch of all 8");
    assert_eq!(
        producer.try_publish(&message(8)),
        Err(Full),
        "the slow consumer still gates"
    );
    let mut first = None;
    slow.poll(1, |seq, slot| first = Some((seq, verify(slot))))
        .expect("attached");
    assert_eq!(first, Some((0, 0)), "the refused message overwrote nothing");
    producer.try_publish(&message(8)).expect("one slot freed");

    // Streaming part: the slow consumer naps; the producer sees back-pressure throughout.
    let count: u64 = 20_000;
    let fast_thread = thread::spawn(move || consume_until(&mut fast, count));
    let slow_thread = thread::spawn(move || {
        let mut expected = slow.next_seq();
        while expected < count {
            let before = expected;
            slow.poll(8, |seq, slot| {
                assert_eq!((seq, verify(slot)), (expected, expected));
                expected += 1;
            })
            .expect("attached");
            if expected / 512 != before / 512 {
                thread::sleep(Duration::from_millis(1));
            }
            thread::yield_now();
        }
    });
    let fulls = publish_all(&mut producer, 9, count - 9);
    fast_thread.join().expect("fast consumer");
    slow_thread.join().expect("slow consumer");
    eprintln!("slow consumer: {fulls} full results for {count} messages");
    assert!(
        fulls > 100,
        "the producer should have been held back, saw {fulls} fulls"
    );
}

#[test]
fn broadcast_gates_on_the_slowest_and_detached_consumers_release_it() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let spec = spec(4, 2);
    let mut producer = Producer::create(&path, spec).expect("create");
    let mut a = Consumer::attach(&path, spec, 0, Start::Producer).expect("attach");
    let b = Consumer::attach(&path, spec, 1, Start::Producer).expect("attach");
    assert_eq!(producer.attached_consumers(), 2);
    publish_all(&mut producer, 0, 4);
    consume_until(&mut a, 4);
    assert_eq!(producer.try_publish(&message(4)), Err(Full));
    // Dropping a consumer frees its slot: it no longer gates the producer.
    drop(b);
    assert_eq!(producer.attached_consumers(), 1);
    publish_all(&mut producer, 4, 4);
    // The producer can also detach a consumer; the consumer learns at its next poll.
    assert!(producer.detach_consumer(0).expect("index 0 exists"));
    assert_eq!(a.poll(usize::MAX, |_, _| {}), Err(Evicted { index: 0 }));
    assert!(!producer.detach_consumer(0).expect("index 0 exists"));
    // With no consumer, nothing gates the producer.
    publish_all(&mut producer, 8, 100);
    // A new consumer starts at the producer's position.
    let mut c = Consumer::attach(&path, spec, 0, Start::Producer).expect("re-attach");
    assert_eq!(c.next_seq(), 108);
    publish_all(&mut producer, 108, 3);
    consume_until(&mut c, 111);
    // A consumer slot held by a live process is refused, and indices are checked.
    assert!(matches!(
        Consumer::attach(&path, spec, 0, Start::Producer),
        Err(RingError::ConsumerSlotBusy { index: 0, .. })
    ));
    assert!(matches!(
        Consumer::attach(&path, spec, 1, Start::Resume),
        Err(RingError::CannotResume { index: 1 })
    ));
    assert!(matches!(
        Consumer::attach(&path, spec, 2, Start::Producer),
        Err(RingError::NoSuchConsumer {
            index: 2,
            consumers_max: 2
        })
    ));
}

#[test]
fn mismatched_rings_are_refused_precisely() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let good = spec(16, 2);
    let producer = Producer::create(&path, good).expect("create");
    let open = |spec: RingSpec| Consumer::attach(&path, spec, 0, Start::Producer).map(drop);

    let err = open(RingSpec::new(128, 16, 2).expect("spec")).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::SlotBytesMismatch {
                expected: 128,
                found: 64,
                ..
            }
        ),
        "{err}"
    );
    let err = open(spec(32, 2)).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::CapacityMismatch {
                expected: 32,
                found: 16,
                ..
            }
        ),
        "{err}"
    );
    let err = open(spec(16, 3)).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::ConsumersMaxMismatch {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    eprintln!("example message: {err}");
    open(good).expect("the right spec opens");

    // Another layout version: patch the version word (bytes 8..16) in the file.
    let bytes = std::fs::read(&path).expect("read ring");
    let mut patched = bytes.clone();
    patched[8..16].copy_from_slice(&(LAYOUT_VERSION + 1).to_ne_bytes());
    let other = dir.path().join("other-version");
    std::fs::write(&other, &patched).expect("write");
    let err = Consumer::attach(&other, good, 0, Start::Producer)
        .map(drop)
        .unwrap_err();
    assert!(
        matches!(err, RingError::VersionMismatch { expected, found, .. }
            if expected == LAYOUT_VERSION && found == LAYOUT_VERSION + 1),
        "{err}"
    );
    // Not a ring at all, and a ring cut short.
    let zeros = dir.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; bytes.len()]).expect("write");
    let err = Consumer::attach(&zeros, good, 0, Start::Producer)
        .map(drop)
        .unwrap_err();
    assert!(matches!(err, RingError::BadMagic { found: 0, .. }), "{err}");
    let short = dir.path().join("short");
    std::fs::write(&short, &bytes[..bytes.len() - 64]).expect("write");
    let err = Consumer::attach(&short, good, 0, Start::Producer)
        .map(drop)
        .unwrap_err();
    assert!(matches!(err, RingError::Truncated { .. }), "{err}");
    let err = Consumer::attach(dir.path().join("missing"), good, 0, Start::Producer)
        .map(drop)
        .unwrap_err();
    assert!(matches!(err, RingError::Io { .. }), "{err}");
    assert!(RingSpec::new(60, 16, 1).is_err(), "slot_bytes % 8 != 0");
    assert!(
        RingSpec::new(64, 12, 1).is_err(),
        "capacity not a power of 2"
    );
    drop(producer);
}

#[test]
fn producer_status_follows_heartbeat_and_close() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let spec = spec(16, 1);
    let mut producer = Producer::create(&path, spec).expect("create");
    let consumer = Consumer::attach(&path, spec, 0, Start::Producer).expect("attach");
    assert!(consumer.producer_alive(Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(20));
    assert!(matches!(
        consumer.producer_status(Duration::from_millis(5)),
        PeerStatus::Stale { heartbeat_age_ns, .. } if heartbeat_age_ns >= 5_000_000
    ));
    producer.heartbeat();
    assert!(consumer.producer_alive(Duration::from_secs(10)));
    assert_eq!(
        producer
            .consumer_status(0, Duration::from_secs(10))
            .expect("index 0"),
        ConsumerStatus::Held(PeerStatus::Alive)
    );
    drop(producer);
    assert_eq!(
        consumer.producer_status(Duration::from_secs(10)),
        PeerStatus::Closed
    );
}

// ---- Two processes ------------------------------------------------------------------------

const CHILD_ENV: &str = "FERROX_RING_CHILD";
const PATH_ENV: &str = "FERROX_RING_PATH";
const COUNT_ENV: &str = "FERROX_RING_COUNT";
const PROCESS_MESSAGES: u64 = 300_000;

fn spawn_child(role: &str, path: &Path, count: u64) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .env(PATH_ENV, path)
        .env(COUNT_ENV, count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child")
}

fn wait_success(mut child: Child) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait child") {
            assert!(status.success(), "child failed: {status}");
            return;
        }
        if start.elapsed() > STALL {
            let _ = child.kill();
            panic!("child did not finish within {STALL:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn attach_when_created(path: &Path, spec: RingSpec, index: usize) -> Consumer {
    wait_until("the child to create the ring", || path.exists());
    Consumer::attach(path, spec, index, Start::Producer).expect("attach to the child's ring")
}

/// The child side of the two-process tests; a no-op unless `FERROX_RING_CHILD` is set.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(std::env::var(PATH_ENV).expect("path"));
    let count: u64 = std::env::var(COUNT_ENV)
        .expect("count")
        .parse()
        .expect("number");
    let spec = spec(256, 1);
    match role.as_str() {
        "produce" => {
            let mut producer = Producer::create(&path, spec).expect("child create");
            // Without a consumer nothing gates the producer, so wait for the parent to attach.
            wait_until("the parent to attach", || {
                producer.attached_consumers() == 1
            });
            publish_all(&mut producer, 0, count);
        }
        "consume" => {
            let mut consumer = attach_when_created(&path, spec, 0);
            consume_until(&mut consumer, count);
        }
        "produce-then-hang" => {
            let mut producer = Producer::create(&path, spec).expect("child create");
            wait_until("the parent to attach", || {
                producer.attached_consumers() == 1
            });
            publish_all(&mut producer, 0, count);
            hang_until_killed(|| producer.heartbeat());
        }
        "consume-then-hang" => {
            let mut consumer = attach_when_created(&path, spec, 0);
            consume_until(&mut consumer, count);
            hang_until_killed(|| consumer.heartbeat());
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Heartbeats until the parent kills this child; gives up if the parent died first (the child
/// is re-parented) or after [`STALL`], so that a failed test leaves no process behind.
fn hang_until_killed(mut heartbeat: impl FnMut()) {
    let parent = std::os::unix::process::parent_id();
    let start = Instant::now();
    while std::os::unix::process::parent_id() == parent && start.elapsed() < STALL {
        heartbeat();
        thread::sleep(Duration::from_millis(1));
    }
    panic!("the parent did not kill this child");
}

#[test]
fn processes_child_produces_parent_consumes() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let child = spawn_child("produce", &path, PROCESS_MESSAGES);
    let mut consumer = attach_when_created(&path, spec(256, 1), 0);
    assert_eq!(consumer.next_seq(), 0, "the child waits for us");
    let start = Instant::now();
    consume_until(&mut consumer, PROCESS_MESSAGES);
    eprintln!(
        "{PROCESS_MESSAGES} messages child -> parent in {:?}",
        start.elapsed()
    );
    wait_success(child);
    assert!(matches!(
        consumer.producer_status(STALL),
        PeerStatus::Closed | PeerStatus::Exited { .. }
    ));
}

#[test]
fn processes_parent_produces_child_consumes() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let spec = spec(256, 1);
    let mut producer = Producer::create(&path, spec).expect("create");
    let child = spawn_child("consume", &path, PROCESS_MESSAGES);
    wait_until("the child to attach", || producer.attached_consumers() == 1);
    publish_all(&mut producer, 0, PROCESS_MESSAGES);
    wait_success(child);
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, signal).expect("signal the child");
}

#[test]
fn processes_dead_or_stopped_producer_is_detected() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let mut child = spawn_child("produce-then-hang", &path, 10);
    let mut consumer = attach_when_created(&path, spec(256, 1), 0);
    consume_until(&mut consumer, 10);
    let stale_after = Duration::from_millis(200);
    wait_until("a fresh heartbeat", || consumer.producer_alive(stale_after));

    // A stopped producer keeps its pid but its heartbeat ages.
    signal(&child, rustix::process::Signal::STOP);
    wait_until("the heartbeat to go stale", || {
        matches!(
            consumer.producer_status(stale_after),
            PeerStatus::Stale { .. }
        )
    });
    signal(&child, rustix::process::Signal::CONT);
    wait_until("the heartbeat to resume", || {
        consumer.producer_alive(stale_after)
    });

    // SIGKILL: the pid disappears once the child is reaped (a zombie still answers kill(0)).
    let pid = u64::from(child.id());
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_eq!(
        consumer.producer_status(stale_after),
        PeerStatus::Exited { pid }
    );
    assert!(!consumer.producer_alive(Duration::MAX));
    assert_eq!(consumer.poll(usize::MAX, |_, _| {}), Ok(0));
}

#[test]
fn processes_dead_consumer_can_be_resumed_or_detached() {
    let dir = ring_dir();
    let path = dir.path().join("ring");
    let spec = spec(256, 1);
    let mut producer = Producer::create(&path, spec).expect("create");
    let mut child = spawn_child("consume-then-hang", &path, 100);
    wait_until("the child to attach", || producer.attached_consumers() == 1);
    publish_all(&mut producer, 0, 100 + 256);
    // The child consumed 100; the ring is full of the 256 after them.
    wait_until("the child to consume 100", || producer.free_slots() == 0);
    assert_eq!(producer.try_publish(&message(356)), Err(Full));
    let pid = u64::from(child.id());
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_eq!(
        producer.consumer_status(0, STALL).expect("index 0"),
        ConsumerStatus::Held(PeerStatus::Exited { pid })
    );
    // The dead consumer still gates: its unread messages are kept for a successor.
    assert_eq!(producer.try_publish(&message(356)), Err(Full));
    let mut successor = Consumer::attach(&path, spec, 0, Start::Resume).expect("take over");
    assert_eq!(
        successor.next_seq(),
        100,
        "resumes after the last committed batch"
    );
    consume_until(&mut successor, 356);
    publish_all(&mut producer, 356, 10);
    consume_until(&mut successor, 366);

    // The other way out: the producer detaches a dead consumer and goes on without it.
    drop(successor);
    let mut child = spawn_child("consume-then-hang", &path, 366 + 5);
    wait_until("the child to attach", || producer.attached_consumers() == 1);
    publish_all(&mut producer, 366, 5 + 256);
    wait_until("the child to consume", || producer.free_slots() == 0);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_eq!(producer.detach_exited_consumers(), 1);
    assert_eq!(producer.attached_consumers(), 0);
    publish_all(&mut producer, 366 + 5 + 256, 1000);
}
