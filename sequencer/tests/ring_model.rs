//! An exhaustive model check of the ring's cursor protocol (`ferrox_sequencer::ring`).
//!
//! The model runs one producer and one or more consumers as sequences of steps, one shared
//! memory operation per step, and explores every interleaving of those steps (a depth-first
//! search over states; a state already seen is not explored again, which loses nothing for
//! safety properties because what can happen next depends only on the state).
//!
//! Memory is weak, not sequentially consistent: every shared variable keeps the history of its
//! stores, and each thread has a *view*, the oldest store of each variable it may still read.
//! A load may return any store from the thread's view onward, so a thread can read a stale
//! cursor. A `Release` store records the storing thread's view; an `Acquire` load that reads it
//! joins that view into the reader's (the happens-before edge). A `SeqCst` fence joins the
//! thread's view with a global one in both directions. Slots are plain (non-atomic) memory: a
//! consumer's read of a slot must have the latest write of that slot in its view (otherwise the
//! read races with a write it is not ordered after), and the producer's write of a slot must
//! have in its view each consumer's read of the message the slot held before (the model tracks
//! reads as ghost stores to a per-consumer, per-slot "read mark" variable).
//!
//! Checked: no message is read before it was written, overwritten before every consumer read
//! it, lost or duplicated; every consumer sees exactly the messages from its start to the end,
//! in order; and no reachable state is stuck. Mutated protocols (off-by-one gate, cursor
//! published before the slot is written or read, a relaxed consumer cursor, no fences around
//! attach) must each be caught, which shows the checker is not vacuous.
//!
//! How the steps correspond to `ring.rs`:
//!
//! | model step                     | real code                                                  |
//! |--------------------------------|------------------------------------------------------------|
//! | producer: local full check     | `Producer::ensure_free` against `cached_gate`              |
//! | `PPc::Fence`                   | `fence(SeqCst)` at the top of `Producer::gate`             |
//! | `PPc::LoadState(c)`            | `consumer(c, CONSUMER_STATE).load(Acquire)` in `gate`      |
//! | `PPc::LoadCursor(c)`           | `consumer(c, CONSUMER_CURSOR).load(Acquire)` in `gate`     |
//! | `PPc::Write(k)`                | `Shared::write_slot` (`try_publish`, or `Claim::push`)     |
//! | `PPc::Publish`                 | `producer_cursor().store(next, Release)`                   |
//! | consumer: local cached check   | `cached_published == next` test in `Consumer::poll`        |
//! | `CPc::Poll`                    | `producer_cursor().load(Acquire)` in `poll`                |
//! | `CPc::Read(s)`                 | `Shared::read_slot`, then the handler                      |
//! | `CPc::Commit`                  | `consumer(index, CONSUMER_CURSOR).store(end, Release)`     |
//! | `CPc::AttachCas`               | `compare_exchange(free, attaching, SeqCst)` in `attach`    |
//! | `CPc::AttachFence`             | `fence(SeqCst)` after it                                   |
//! | `CPc::AttachLoad`              | `producer_cursor().load(Acquire)` in `attach`              |
//! | `CPc::AttachStoreCursor`       | `cursor.store(published, Release)`                         |
//! | `CPc::AttachStoreState`        | `compare_exchange(attaching, attached, Release)` (nothing  |
//! |                                | detaches in the model, so it always succeeds)              |
//!
//! The eviction check (`check_attached`), pids and heartbeats are not modelled: none of them
//! moves a cursor.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

const FREE: u8 = 0;
const ATTACHING: u8 = 1;
const ATTACHED: u8 = 2;
/// The value of a slot or read mark that was never written.
const NEVER: u8 = u8::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mutation {
    None,
    /// The producer believes it may fill `capacity + 1` slots.
    GateOffByOne,
    /// A consumer publishes its cursor before reading the batch.
    CommitBeforeRead,
    /// The producer publishes its cursor before writing the slots.
    PublishBeforeWrite,
    /// A consumer publishes its cursor with a Relaxed store.
    RelaxedConsumerCursor,
    /// The SeqCst fences in `gate` and `attach` are left out.
    NoFences,
    /// The gate scan skips slots that are still attaching.
    GateIgnoresAttaching,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    capacity: u8,
    messages: u8,
    producer_batch: u8,
    consumer_max_batch: u8,
    /// Consumers attached before the first message.
    early_consumers: u8,
    /// Consumers that attach while the producer runs, with the real attach protocol.
    late_consumers: u8,
    mutation: Mutation,
}

impl Config {
    fn consumers(&self) -> usize {
        (self.early_consumers + self.late_consumers) as usize
    }
    fn var_pcursor(&self) -> usize {
        0
    }
    fn var_ccursor(&self, c: usize) -> usize {
        1 + c
    }
    fn var_cstate(&self, c: usize) -> usize {
        1 + self.consumers() + c
    }
    fn var_slot(&self, j: usize) -> usize {
        1 + 2 * self.consumers() + j
    }
    fn var_readmark(&self, c: usize, j: usize) -> usize {
        1 + 2 * self.consumers() + self.capacity as usize + c * self.capacity as usize + j
    }
    fn vars(&self) -> usize {
        let n = 1 + 2 * self.consumers() + self.capacity as usize * (1 + self.consumers());
        assert!(n <= VARS_MAX, "the model is too large: {n} variables");
        n
    }
    fn full(&self, next_after: u8, gate: u8) -> bool {
        let limit = self.capacity + u8::from(self.mutation == Mutation::GateOffByOne);
        next_after - gate > limit
    }
}

/// History indices, one per variable; an array rather than a `Vec` so that cloning a state
/// allocates less.
type View = [u8; VARS_MAX];
const VARS_MAX: usize = 16;

#[derive(Clone, Hash, PartialEq, Eq, Debug)]
struct Store {
    value: u8,
    /// The storing thread's view, for Release stores.
    view: Option<View>,
}

#[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
enum PPc {
    Fence,
    LoadState(u8),
    LoadCursor(u8),
    Write(u8),
    Publish,
    Done,
}

#[derive(Clone, Hash, PartialEq, Eq, Debug)]
struct ProducerT {
    pc: PPc,
    next: u8,
    batch: u8,
    cached_gate: u8,
    gate_acc: u8,
    published: bool,
    written: u8,
    view: View,
}

#[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
enum CPc {
    AttachCas,
    AttachFence,
    AttachLoad,
    AttachStoreCursor,
    AttachStoreState,
    Poll,
    Read(u8),
    Commit,
    Done,
}

#[derive(Clone, Hash, PartialEq, Eq, Debug)]
struct ConsumerT {
    pc: CPc,
    /// `None` until a late consumer has read its start position.
    start: Option<u8>,
    next: u8,
    cached_published: u8,
    end: u8,
    committed: bool,
    read_done: bool,
    /// The last sequence handed to the handler.
    last: Option<u8>,
    view: View,
}

#[derive(Clone, Hash, PartialEq, Eq, Debug)]
struct State {
    vars: Vec<Vec<Store>>,
    sc_view: View,
    producer: ProducerT,
    consumers: Vec<ConsumerT>,
}

fn join(into: &mut View, other: &View) {
    for (a, b) in into.iter_mut().zip(other) {
        *a = (*a).max(*b);
    }
}

impl State {
    fn initial(cfg: &Config) -> State {
        let n = cfg.vars();
        let mut vars = vec![
            vec![Store {
                value: 0,
                view: None
            }];
            n
        ];
        for c in 0..cfg.consumers() {
            let state = if c < cfg.early_consumers as usize {
                ATTACHED
            } else {
                FREE
            };
            vars[cfg.var_cstate(c)][0].value = state;
        }
        for j in 0..cfg.capacity as usize {
            vars[cfg.var_slot(j)][0].value = NEVER;
            for c in 0..cfg.consumers() {
                vars[cfg.var_readmark(c, j)][0].value = NEVER;
            }
        }
        let mut producer = ProducerT {
            pc: PPc::Done,
            next: 0,
            batch: 0,
            cached_gate: 0,
            gate_acc: 0,
            published: false,
            written: 0,
            view: [0; VARS_MAX],
        };
        producer_claim(cfg, &mut producer);
        let consumers = (0..cfg.consumers())
            .map(|c| {
                let early = c < cfg.early_consumers as usize;
                let mut t = ConsumerT {
                    pc: if early { CPc::Poll } else { CPc::AttachCas },
                    start: early.then_some(0),
                    next: 0,
                    cached_published: 0,
                    end: 0,
                    committed: false,
                    read_done: false,
                    last: None,
                    view: [0; VARS_MAX],
                };
                if early {
                    consumer_advance(cfg, &mut t);
                }
                t
            })
            .collect();
        State {
            vars,
            sc_view: [0; VARS_MAX],
            producer,
            consumers,
        }
    }

    fn fingerprint(&self) -> (u64, u64) {
        let mut a = DefaultHasher::new();
        0u8.hash(&mut a);
        self.hash(&mut a);
        let mut b = DefaultHasher::new();
        1u8.hash(&mut b);
        self.hash(&mut b);
        (a.finish(), b.finish())
    }

    fn done(&self) -> bool {
        self.producer.pc == PPc::Done && self.consumers.iter().all(|c| c.pc == CPc::Done)
    }
}

/// The load choices of `var` for a thread with `view`: every store from the view on.
fn load_choices(state: &State, view: &View, var: usize) -> std::ops::Range<usize> {
    view[var] as usize..state.vars[var].len()
}

fn load(state: &State, view: &mut View, var: usize, index: usize, acquire: bool) -> u8 {
    view[var] = index as u8;
    let store = &state.vars[var][index];
    if acquire {
        if let Some(w) = &store.view {
            join(view, w);
        }
    }
    store.value
}

fn store(state: &mut State, view: &mut View, var: usize, value: u8, release: bool) {
    let index = state.vars[var].len();
    view[var] = index as u8;
    let view_copy = release.then_some(*view);
    state.vars[var].push(Store {
        value,
        view: view_copy,
    });
}

fn sc_fence(state: &mut State, view: &mut View) {
    join(view, &state.sc_view);
    state.sc_view = *view;
}

/// The producer's local work between shared steps: `try_publish`/`try_claim` up to the first
/// shared access. Full means the caller calls again, so the next step is the gate scan.
fn producer_claim(cfg: &Config, p: &mut ProducerT) {
    if p.next == cfg.messages {
        p.pc = PPc::Done;
        return;
    }
    p.batch = cfg.producer_batch.min(cfg.messages - p.next);
    p.published = false;
    p.written = 0;
    p.pc = if cfg.full(p.next + p.batch, p.cached_gate) {
        PPc::Fence
    } else {
        producer_first_write(cfg)
    };
}

fn producer_first_write(cfg: &Config) -> PPc {
    if cfg.mutation == Mutation::PublishBeforeWrite {
        PPc::Publish
    } else {
        PPc::Write(0)
    }
}

/// The next consumer slot the gate scan loads, or the decision once all are scanned.
fn producer_scan_from(cfg: &Config, p: &mut ProducerT, c: u8) {
    if (c as usize) < cfg.consumers() {
        p.pc = PPc::LoadState(c);
    } else {
        p.cached_gate = p.gate_acc;
        p.pc = if cfg.full(p.next + p.batch, p.cached_gate) {
            // `Full`: the caller retries, and the cached gate still says full.
            PPc::Fence
        } else {
            producer_first_write(cfg)
        };
    }
}

/// After a batch's writes and publish, in whichever order the protocol (or mutation) does them.
fn producer_after_write_or_publish(cfg: &Config, p: &mut ProducerT) {
    if p.written < p.batch {
        p.pc = PPc::Write(p.written);
    } else if !p.published {
        p.pc = PPc::Publish;
    } else {
        p.next += p.batch;
        producer_claim(cfg, p);
    }
}

/// The consumer's local work in `poll` between shared steps.
fn consumer_advance(cfg: &Config, t: &mut ConsumerT) {
    if t.next == cfg.messages {
        t.pc = CPc::Done;
    } else if t.cached_published > t.next {
        t.end = t
            .cached_published
            .min(t.next.saturating_add(cfg.consumer_max_batch));
        t.committed = false;
        t.read_done = false;
        t.pc = if cfg.mutation == Mutation::CommitBeforeRead {
            CPc::Commit
        } else {
            CPc::Read(t.next)
        };
    } else {
        t.pc = CPc::Poll;
    }
}

fn consumer_after_read_or_commit(cfg: &Config, t: &mut ConsumerT) {
    if !t.read_done {
        t.pc = CPc::Read(t.next);
    } else if !t.committed {
        t.pc = CPc::Commit;
    } else {
        t.next = t.end;
        consumer_advance(cfg, t);
    }
}

/// Every successor of `state`, or the first violation found on the way.
fn successors(cfg: &Config, state: &State, out: &mut Vec<State>) -> Result<(), String> {
    // The producer's step.
    let p = &state.producer;
    match p.pc {
        PPc::Done => {}
        PPc::Fence => {
            let mut s = state.clone();
            if cfg.mutation != Mutation::NoFences {
                let mut view = s.producer.view;
                sc_fence(&mut s, &mut view);
                s.producer.view = view;
            }
            s.producer.gate_acc = s.producer.next;
            producer_scan_from(cfg, &mut s.producer, 0);
            out.push(s);
        }
        PPc::LoadState(c) => {
            let var = cfg.var_cstate(c as usize);
            for index in load_choices(state, &p.view, var) {
                let mut s = state.clone();
                let value = load(state, &mut s.producer.view, var, index, true);
                let skip = match cfg.mutation {
                    Mutation::GateIgnoresAttaching => value != ATTACHED,
                    _ => value == FREE,
                };
                if skip {
                    producer_scan_from(cfg, &mut s.producer, c + 1);
                } else {
                    s.producer.pc = PPc::LoadCursor(c);
                }
                out.push(s);
            }
        }
        PPc::LoadCursor(c) => {
            let var = cfg.var_ccursor(c as usize);
            for index in load_choices(state, &p.view, var) {
                let mut s = state.clone();
                let value = load(state, &mut s.producer.view, var, index, true);
                s.producer.gate_acc = s.producer.gate_acc.min(value);
                producer_scan_from(cfg, &mut s.producer, c + 1);
                out.push(s);
            }
        }
        PPc::Write(k) => {
            let seq = p.next + k;
            let slot = (seq % cfg.capacity) as usize;
            // The message this slot held must have been read by every consumer that needs it,
            // and the read must happen before this write.
            if seq >= cfg.capacity {
                let old = seq - cfg.capacity;
                for (c, t) in state.consumers.iter().enumerate() {
                    if t.start.is_some_and(|start| start <= old) {
                        let var = cfg.var_readmark(c, slot);
                        let read_at = state.vars[var].iter().position(|st| st.value == old);
                        match read_at {
                            None => {
                                return Err(format!(
                                    "producer overwrote message {old} (with {seq}) before \
                                     consumer {c} read it: {state:?}"
                                ))
                            }
                            Some(i) if (p.view[var] as usize) < i => {
                                return Err(format!(
                                    "producer's write of message {seq} is not ordered after \
                                     consumer {c}'s read of message {old}: {state:?}"
                                ))
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
            let mut s = state.clone();
            let mut view = s.producer.view;
            store(&mut s, &mut view, cfg.var_slot(slot), seq, false);
            s.producer.view = view;
            s.producer.written = k + 1;
            producer_after_write_or_publish(cfg, &mut s.producer);
            out.push(s);
        }
        PPc::Publish => {
            let mut s = state.clone();
            let mut view = s.producer.view;
            let value = s.producer.next + s.producer.batch;
            store(&mut s, &mut view, cfg.var_pcursor(), value, true);
            s.producer.view = view;
            s.producer.published = true;
            producer_after_write_or_publish(cfg, &mut s.producer);
            out.push(s);
        }
    }

    // Each consumer's step.
    for (c, t) in state.consumers.iter().enumerate() {
        match t.pc {
            CPc::Done => {}
            CPc::AttachCas => {
                // A compare-exchange reads the latest store; the slot starts free and only this
                // consumer claims it, so it succeeds.
                let var = cfg.var_cstate(c);
                let latest = state.vars[var].len() - 1;
                let mut s = state.clone();
                let mut view = s.consumers[c].view;
                let value = load(state, &mut view, var, latest, true);
                assert_eq!(value, FREE);
                store(&mut s, &mut view, var, ATTACHING, true);
                s.consumers[c].view = view;
                s.consumers[c].pc = CPc::AttachFence;
                out.push(s);
            }
            CPc::AttachFence => {
                let mut s = state.clone();
                if cfg.mutation != Mutation::NoFences {
                    let mut view = s.consumers[c].view;
                    sc_fence(&mut s, &mut view);
                    s.consumers[c].view = view;
                }
                s.consumers[c].pc = CPc::AttachLoad;
                out.push(s);
            }
            CPc::AttachLoad => {
                let var = cfg.var_pcursor();
                for index in load_choices(state, &t.view, var) {
                    let mut s = state.clone();
                    let value = load(state, &mut s.consumers[c].view, var, index, true);
                    let t = &mut s.consumers[c];
                    t.start = Some(value);
                    t.next = value;
                    t.cached_published = value;
                    t.pc = CPc::AttachStoreCursor;
                    out.push(s);
                }
            }
            CPc::AttachStoreCursor => {
                let mut s = state.clone();
                let mut view = s.consumers[c].view;
                store(&mut s, &mut view, cfg.var_ccursor(c), t.next, true);
                s.consumers[c].view = view;
                s.consumers[c].pc = CPc::AttachStoreState;
                out.push(s);
            }
            CPc::AttachStoreState => {
                let mut s = state.clone();
                let mut view = s.consumers[c].view;
                store(&mut s, &mut view, cfg.var_cstate(c), ATTACHED, true);
                s.consumers[c].view = view;
                consumer_advance(cfg, &mut s.consumers[c]);
                out.push(s);
            }
            CPc::Poll => {
                let var = cfg.var_pcursor();
                for index in load_choices(state, &t.view, var) {
                    let mut s = state.clone();
                    let value = load(state, &mut s.consumers[c].view, var, index, true);
                    s.consumers[c].cached_published = value;
                    consumer_advance(cfg, &mut s.consumers[c]);
                    out.push(s);
                }
            }
            CPc::Read(seq) => {
                let slot = (seq % cfg.capacity) as usize;
                let var = cfg.var_slot(slot);
                let history = &state.vars[var];
                let latest = history.len() - 1;
                if (t.view[var] as usize) < latest {
                    return Err(format!(
                        "consumer {c}'s read of message {seq} races with a write of its slot \
                         that it is not ordered after: {state:?}"
                    ));
                }
                let found = history[latest].value;
                if found != seq {
                    let what = if found == NEVER || found < seq {
                        "before it was written"
                    } else {
                        "after it was overwritten"
                    };
                    return Err(format!(
                        "consumer {c} read message {seq} {what} (slot holds {found}): {state:?}"
                    ));
                }
                let expected = match t.last {
                    Some(last) => last + 1,
                    None => t.start.expect("a reading consumer has a start"),
                };
                if seq != expected {
                    return Err(format!(
                        "consumer {c} got message {seq} after {:?}: lost or duplicated: \
                         {state:?}",
                        t.last
                    ));
                }
                let mut s = state.clone();
                let mut view = s.consumers[c].view;
                store(&mut s, &mut view, cfg.var_readmark(c, slot), seq, false);
                let t = &mut s.consumers[c];
                t.view = view;
                t.last = Some(seq);
                if seq + 1 < t.end {
                    t.pc = CPc::Read(seq + 1);
                } else {
                    t.read_done = true;
                    consumer_after_read_or_commit(cfg, t);
                }
                out.push(s);
            }
            CPc::Commit => {
                let mut s = state.clone();
                let mut view = s.consumers[c].view;
                let release = cfg.mutation != Mutation::RelaxedConsumerCursor;
                store(&mut s, &mut view, cfg.var_ccursor(c), t.end, release);
                let t = &mut s.consumers[c];
                t.view = view;
                t.committed = true;
                consumer_after_read_or_commit(cfg, t);
                out.push(s);
            }
        }
    }
    Ok(())
}

#[derive(Debug)]
struct Outcome {
    states: usize,
    terminal_states: usize,
}

fn check(cfg: Config) -> Result<Outcome, String> {
    let initial = State::initial(&cfg);
    // States are remembered by a 128-bit fingerprint rather than whole, to keep memory small;
    // the chance that two of a few million states collide is below 1e-25.
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    seen.insert(initial.fingerprint());
    let mut stack = vec![initial];
    let mut next_states = Vec::new();
    let mut terminal_states = 0;
    while let Some(state) = stack.pop() {
        if state.done() {
            terminal_states += 1;
            for (c, t) in state.consumers.iter().enumerate() {
                let start = t.start.expect("a finished consumer has a start");
                let expected_last = (start < cfg.messages).then(|| cfg.messages - 1);
                if t.last != expected_last {
                    return Err(format!(
                        "consumer {c} finished at {:?}, expected {expected_last:?}: {state:?}",
                        t.last
                    ));
                }
            }
            continue;
        }
        next_states.clear();
        successors(&cfg, &state, &mut next_states)?;
        if next_states.iter().all(|s| *s == state) {
            return Err(format!("stuck: no step changes the state: {state:?}"));
        }
        for s in next_states.drain(..) {
            if seen.insert(s.fingerprint()) {
                stack.push(s);
            }
        }
    }
    if terminal_states == 0 {
        return Err("no interleaving finishes".to_string());
    }
    Ok(Outcome {
        states: seen.len(),
        terminal_states,
    })
}

fn base() -> Config {
    Config {
        capacity: 2,
        messages: 4,
        producer_batch: 1,
        consumer_max_batch: 2,
        early_consumers: 2,
        late_consumers: 0,
        mutation: Mutation::None,
    }
}

/// The configurations checked for the real protocol: two broadcast consumers with single and
/// batched publishing and consumption, and a consumer attaching while the producer runs.
fn configs() -> Vec<(&'static str, Config)> {
    vec![
        ("two consumers, publish 1, consume up to 2", base()),
        (
            "two consumers, claim 2, consume 1",
            Config {
                producer_batch: 2,
                consumer_max_batch: 1,
                ..base()
            },
        ),
        (
            "one consumer, capacity 4, 6 messages, claim 2, consume up to 3",
            Config {
                capacity: 4,
                messages: 6,
                producer_batch: 2,
                consumer_max_batch: 3,
                early_consumers: 1,
                ..base()
            },
        ),
        (
            "one early consumer and one attaching during the run",
            Config {
                messages: 4,
                early_consumers: 1,
                late_consumers: 1,
                ..base()
            },
        ),
        (
            "only a consumer attaching during the run",
            Config {
                messages: 4,
                early_consumers: 0,
                late_consumers: 1,
                ..base()
            },
        ),
    ]
}

#[test]
fn cursor_protocol_holds_in_every_interleaving() {
    for (name, cfg) in configs() {
        match check(cfg) {
            Ok(outcome) => {
                eprintln!("{name}: {outcome:?}");
                assert!(outcome.terminal_states > 0 && outcome.states >= outcome.terminal_states);
            }
            Err(violation) => panic!("{name}: {violation}"),
        }
    }
}

/// Each broken variant of the protocol must be caught; otherwise the checker proves nothing.
#[test]
fn the_checker_catches_broken_protocols() {
    let cases = [
        // Either overwritten before the read, or before the read was published: both races.
        (Mutation::GateOffByOne, base(), "producer"),
        (Mutation::CommitBeforeRead, base(), "producer"),
        (
            Mutation::PublishBeforeWrite,
            base(),
            "before it was written",
        ),
        (Mutation::RelaxedConsumerCursor, base(), "not ordered after"),
        (
            Mutation::NoFences,
            Config {
                messages: 3,
                early_consumers: 1,
                late_consumers: 1,
                ..base()
            },
            "",
        ),
        (
            Mutation::GateIgnoresAttaching,
            Config {
                messages: 3,
                early_consumers: 1,
                late_consumers: 1,
                ..base()
            },
            "",
        ),
    ];
    for (mutation, cfg, expected) in cases {
        let cfg = Config { mutation, ..cfg };
        match check(cfg) {
            Ok(outcome) => panic!("{mutation:?} went unnoticed: {outcome:?}"),
            Err(violation) => {
                let head: String = violation.chars().take(160).collect();
                eprintln!("{mutation:?}: {head}");
                assert!(
                    violation.contains(expected),
                    "{mutation:?}: unexpected violation {violation}"
                );
            }
        }
    }
}
