//! The gateway's link to the exchange: one input ring it produces into, and its consumer slot
//! on the broadcast output ring.
//!
//! The gateway is producer `k` like any other: it creates input ring `k` and reads the output
//! ring as consumer `k`. The output ring carries every producer's events; the order manager
//! picks out the ones for orders this gateway owns (a resting order of ours can be filled by
//! someone else's command).

use ferrox_protocol::Command;
use ferrox_sequencer::agents::{
    input_ring_path, input_ring_spec, output_ring_path, output_ring_spec,
};
use ferrox_sequencer::frame::{self, Origin, OutputFrame, INPUT_SLOT_BYTES};
use ferrox_sequencer::ring::{Consumer, PeerStatus, Producer, Start};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the gateway needs from the exchange. Implemented by the shared-memory rings, and by
/// an in-memory engine in tests.
pub trait Venue {
    /// This gateway's producer number: output frames with this origin answer our requests.
    fn producer(&self) -> u32;
    /// The `producer_ref` the next successful `try_send` will carry.
    fn next_ref(&self) -> u64;
    /// Publishes `command`; false under back-pressure (the ring is full or the exchange is
    /// not attached), in which case nothing was sent.
    fn try_send(&mut self, command: &Command) -> bool;
    /// Hands up to `max` output frames to `f`; returns how many.
    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&OutputFrame)) -> usize;
    /// Whether the exchange is attached and alive.
    fn connected(&mut self) -> bool;
}

/// The rings of a running exchange.
pub struct RingVenue {
    producer: u32,
    input: Producer,
    output: Option<Consumer>,
    output_path: PathBuf,
    output_slots: usize,
    output_consumers: usize,
    next_ref: u64,
    /// Whether the sequencer reads our input ring and we read the output ring, as of the
    /// last `connected()` check. Before both hold, a command would be dropped unsequenced (the
    /// sequencer attaches at the ring's current position) or its events missed.
    attached: bool,
}

impl RingVenue {
    /// Creates input ring `producer` in `ring_dir` for the exchange called `name`; the output
    /// ring is attached lazily, when the exchange has created it.
    pub fn create(
        ring_dir: &Path,
        name: &str,
        producer: u32,
        input_slots: usize,
        output_slots: usize,
        output_consumers: usize,
    ) -> Result<RingVenue, String> {
        let path = input_ring_path(ring_dir, name, producer);
        let spec = input_ring_spec(input_slots).map_err(|e| e.to_string())?;
        let input = Producer::create(&path, spec)
            .map_err(|e| format!("cannot create input ring {}: {e}", path.display()))?;
        Ok(RingVenue {
            producer,
            input,
            output: None,
            output_path: output_ring_path(ring_dir, name),
            output_slots,
            output_consumers,
            next_ref: 1,
            attached: false,
        })
    }
}

impl Venue for RingVenue {
    fn producer(&self) -> u32 {
        self.producer
    }

    fn next_ref(&self) -> u64 {
        self.next_ref
    }

    fn try_send(&mut self, command: &Command) -> bool {
        if !self.attached {
            return false;
        }
        let mut slot = [0u8; INPUT_SLOT_BYTES];
        frame::encode_input(
            Origin {
                producer: self.producer,
                producer_ref: self.next_ref,
            },
            command,
            &mut slot,
        );
        if self.input.try_publish(&slot).is_err() {
            return false;
        }
        self.next_ref += 1;
        true
    }

    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&OutputFrame)) -> usize {
        let Some(output) = self.output.as_mut() else {
            return 0;
        };
        let polled = output.poll(max, |_, slot| {
            // The engine wrote the slot; a frame that does not decode would be a bug in the
            // exchange, not client input, and skipping it is safer than stopping the gateway.
            if let Ok(frame) = frame::decode_output(slot) {
                f(&frame);
            }
        });
        match polled {
            Ok(n) => n,
            Err(_) => {
                self.output = None;
                0
            }
        }
    }

    fn connected(&mut self) -> bool {
        let alive =
            |c: &Consumer| matches!(c.producer_status(Duration::from_secs(5)), PeerStatus::Alive);
        if self.output.as_ref().is_some_and(|c| !alive(c)) {
            self.output = None;
        }
        if self.output.is_none() {
            if let Ok(spec) = output_ring_spec(self.output_slots, self.output_consumers) {
                self.output = Consumer::attach(
                    &self.output_path,
                    spec,
                    self.producer as usize,
                    Start::Producer,
                )
                .ok()
                .filter(alive);
            }
        }
        self.input.heartbeat();
        if let Some(o) = self.output.as_mut() {
            o.heartbeat();
        }
        self.attached = self.output.is_some() && self.input.attached_consumers() > 0;
        self.attached
    }
}
