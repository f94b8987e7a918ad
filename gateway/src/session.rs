//! The FIX 4.4 session layer as a pure state machine: no sockets, no threads, no clock.
//!
//! Like `quinn-proto`, the protocol core takes every input as an argument (a parsed message,
//! the current time) and answers with bytes to write and a verdict, so it can be driven by
//! the gateway's event loop, by tests and by a simulation in exactly the same way. The caller
//! owns the socket; this module owns sequence numbers, heartbeats, test requests, resends,
//! sequence resets, logout and session-level rejects.
//!
//! The rules follow the FIX 4.4 session specification, and where it leaves room, what QuickFIX
//! does, because the QuickFIX acceptance tests (`../shared/conformance`) are how counterparties
//! judge a FIX engine:
//!
//! - A message whose MsgSeqNum is too high triggers one ResendRequest (`EndSeqNo = 0`) and is
//!   dropped; the counterparty resends it. We do not queue it: dropping keeps memory bounded
//!   and is what the specification allows. Further too-high messages while the resend is
//!   outstanding do not trigger another request.
//! - Too low without PossDupFlag: Logout with the expected number, then disconnect. Too low
//!   with PossDupFlag: ignored (it is a duplicate), after checking OrigSendingTime.
//! - Logout, ResendRequest and SequenceReset-Reset are processed whatever their MsgSeqNum,
//!   as QuickFIX does, so that a session with a gap can still be closed or repaired.
//! - Admin messages are never resent: a run of them becomes one SequenceReset-GapFill.
//! - Market data (W, X) is numbered but not stored ([`Session::send_unstored`]), so a resend
//!   gap-fills it like an admin message: replayed book updates would describe a book that no
//!   longer exists. A client that lost some re-subscribes for a fresh snapshot.
//! - Heartbeats go out after `HeartBtInt` seconds without sending; a TestRequest goes out after
//!   1.2 × `HeartBtInt` without receiving, and the connection is dropped after 2.4 ×.
//!   While a TestRequest is outstanding no heartbeat is sent, so a silent peer is dropped
//!   cleanly.

use crate::fix::dict::{self, RejectReason, SessionReject};
use crate::fix::{tags, Encoder, Message, Parser};
use crate::store::{SessionStore, StoreError};
use std::io::Write as _;

const NS_PER_S: u64 = 1_000_000_000;

/// Static settings of one session, from the gateway configuration.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// Our CompID (the exchange's), their TargetCompID (56).
    pub our_comp_id: String,
    /// Their CompID, their SenderCompID (49).
    pub their_comp_id: String,
    /// Compared in constant time with Logon tag 554; `None` accepts a Logon without one.
    pub password: Option<String>,
    /// Reset both sequence numbers at every logon (QuickFIX's `ResetOnLogon`); off for a
    /// production session, which keeps its numbers across logons.
    pub reset_on_logon: bool,
    /// A message whose SendingTime is further than this from our clock is rejected.
    pub sending_time_tolerance_s: u64,
    /// Accepted range of the client's HeartBtInt.
    pub heartbeat_s_min: u64,
    pub heartbeat_s_max: u64,
    /// How long we wait for the counterparty's Logout after sending ours.
    pub logout_timeout_s: u64,
}

impl SessionSettings {
    pub fn new(our_comp_id: &str, their_comp_id: &str) -> SessionSettings {
        SessionSettings {
            our_comp_id: our_comp_id.to_string(),
            their_comp_id: their_comp_id.to_string(),
            password: None,
            reset_on_logon: false,
            sending_time_tolerance_s: 120,
            heartbeat_s_min: 1,
            heartbeat_s_max: 3600,
            logout_timeout_s: 2,
        }
    }
}

/// The two clocks the session needs, read once per event-loop turn by the caller: wall time
/// for SendingTime and its accuracy check, monotonic time for the timers (a wall-clock step
/// must not fire heartbeat timeouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub unix_ns: u64,
    pub mono_ns: u64,
}

/// Bytes to write to the connection, bounded. The session never writes past `cap`; if a
/// message does not fit, `overflowed` is set and the caller disconnects the slow reader.
/// Nothing is lost: every application message is in the store and comes back on resend.
#[derive(Debug)]
pub struct Outbox {
    pub bytes: Vec<u8>,
    cap: usize,
    pub overflowed: bool,
}

impl Outbox {
    pub fn new(cap: usize) -> Outbox {
        Outbox {
            bytes: Vec::with_capacity(cap),
            cap,
            overflowed: false,
        }
    }

    /// Whether a message of `len` bytes fits without overflowing.
    pub fn fits(&self, len: usize) -> bool {
        self.bytes.len() + len <= self.cap
    }

    fn push(&mut self, msg: &[u8]) {
        if !self.fits(msg.len()) {
            self.overflowed = true;
        } else {
            self.bytes.extend_from_slice(msg);
        }
    }

    /// Drops the first `n` bytes once the socket has taken them.
    pub fn consume(&mut self, n: usize) {
        self.bytes.drain(..n.min(self.bytes.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.overflowed = false;
    }
}

/// What the caller does after a message or a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing more to do.
    Done,
    /// An application message in sequence: hand it to the application layer.
    Deliver,
    /// Close the connection once the outbox is written. `involuntary` is false when the
    /// counterparty logged out, true for protocol errors and timeouts (cancel-on-disconnect
    /// applies to involuntary disconnects only).
    Disconnect { involuntary: bool },
}

/// Why a Logon was refused; the connection is closed without a reply and no session state
/// changes, so a stranger learns nothing and cannot disturb the real session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogonRefused {
    #[error("first message is not a Logon")]
    NotLogon,
    #[error("BeginString is not FIX.4.4")]
    BeginString,
    #[error("unknown SenderCompID/TargetCompID pair")]
    UnknownSession,
    #[error("wrong or missing password")]
    Password,
    #[error("session is already logged on")]
    AlreadyLoggedOn,
    #[error("invalid Logon: {0:?}")]
    Invalid(SessionReject),
    #[error("SendingTime is not within the tolerance")]
    SendingTime,
    #[error("EncryptMethod must be 0")]
    Encryption,
    #[error("HeartBtInt outside the accepted range")]
    HeartBtInt,
    #[error("MsgSeqNum too low")]
    SeqTooLow,
    #[error("session store: {0}")]
    Store(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No connection.
    Disconnected,
    /// Logged on.
    Active,
    /// We sent Logout and wait for theirs until the deadline.
    LogoutSent { deadline_mono_ns: u64 },
}

/// One FIX session: the state of a CompID pair, alive across connections.
pub struct Session {
    pub settings: SessionSettings,
    store: SessionStore,
    state: State,
    heartbeat_ns: u64,
    last_rx_mono_ns: u64,
    last_tx_mono_ns: u64,
    test_requests_outstanding: u32,
    /// While a ResendRequest we sent is outstanding: the highest MsgSeqNum seen beyond the
    /// gap. Cleared when the expected number passes it.
    resend_until: Option<u64>,
    enc: Encoder,
    /// A second encoder for resends, which build a new message while reading a stored one.
    resend_enc: Encoder,
    resend_parser: Parser,
    text: Vec<u8>,
    /// Counters for the operator and the tests.
    pub stats: SessionStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub logons: u64,
    pub rejects_sent: u64,
    pub resend_requests_sent: u64,
    pub messages_resent: u64,
    pub gap_fills_sent: u64,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The loop runs over the longer input and folds the length difference in, so the time
    // taken depends on the lengths only, never on where the first differing byte is.
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// The application messages the gateway handles; other valid FIX 4.4 types get a
/// BusinessMessageReject with reason 3 (unsupported message type).
pub fn is_application_supported(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"D" | b"F" | b"G" | b"H" | b"q" | b"V")
}

fn is_admin_type(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

impl Session {
    pub fn new(settings: SessionSettings, store: SessionStore) -> Session {
        Session {
            settings,
            store,
            state: State::Disconnected,
            heartbeat_ns: 30 * NS_PER_S,
            last_rx_mono_ns: 0,
            last_tx_mono_ns: 0,
            test_requests_outstanding: 0,
            resend_until: None,
            enc: Encoder::new(64 * 1024),
            resend_enc: Encoder::new(64 * 1024),
            resend_parser: Parser::new(512),
            text: Vec::with_capacity(256),
            stats: SessionStats::default(),
        }
    }

    pub fn is_logged_on(&self) -> bool {
        !matches!(self.state, State::Disconnected)
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut SessionStore {
        &mut self.store
    }

    pub fn next_in_seq(&self) -> u64 {
        self.store.next_in_seq()
    }

    pub fn next_out_seq(&self) -> u64 {
        self.store.next_out_seq()
    }

    /// Whether `msg` names this session: their SenderCompID and our TargetCompID.
    pub fn matches(&self, msg: &Message) -> bool {
        msg.get(tags::SENDER_COMP_ID as i64) == Some(self.settings.their_comp_id.as_bytes())
            && msg.get(tags::TARGET_COMP_ID as i64) == Some(self.settings.our_comp_id.as_bytes())
    }

    /// A new connection's first message, already matched to this session by CompIDs. On
    /// success the Logon reply (and a ResendRequest if the client is ahead) is in `out`.
    pub fn on_logon(
        &mut self,
        msg: &Message,
        now: Now,
        out: &mut Outbox,
    ) -> Result<(), LogonRefused> {
        if msg.msg_type() != b"A" {
            return Err(LogonRefused::NotLogon);
        }
        if msg.begin_string() != crate::fix::BEGIN_STRING {
            return Err(LogonRefused::BeginString);
        }
        if !self.matches(msg) {
            return Err(LogonRefused::UnknownSession);
        }
        if self.is_logged_on() {
            return Err(LogonRefused::AlreadyLoggedOn);
        }
        dict::validate(msg).map_err(LogonRefused::Invalid)?;
        if !self.sending_time_ok(msg, now) {
            return Err(LogonRefused::SendingTime);
        }
        if let Some(expected) = &self.settings.password {
            let given = msg.get(tags::PASSWORD as i64).unwrap_or(b"");
            if !constant_time_eq(given, expected.as_bytes()) {
                return Err(LogonRefused::Password);
            }
        }
        if msg.get(tags::ENCRYPT_METHOD as i64) != Some(b"0") {
            return Err(LogonRefused::Encryption);
        }
        let heartbeat_s = match msg.get_u64(tags::HEART_BT_INT as i64) {
            Ok(Some(h))
                if (self.settings.heartbeat_s_min..=self.settings.heartbeat_s_max).contains(&h) =>
            {
                h
            }
            _ => return Err(LogonRefused::HeartBtInt),
        };
        let seq = match msg.get_u64(tags::MSG_SEQ_NUM as i64) {
            Ok(Some(s)) => s,
            _ => {
                return Err(LogonRefused::Invalid(SessionReject {
                    reason: RejectReason::RequiredTagMissing,
                    ref_tag: Some(tags::MSG_SEQ_NUM as i64),
                }))
            }
        };
        let reset_requested = matches!(
            msg.get_bool(tags::RESET_SEQ_NUM_FLAG as i64),
            Ok(Some(true))
        );
        if reset_requested || self.settings.reset_on_logon {
            self.store
                .reset()
                .map_err(|_| LogonRefused::Store("reset failed"))?;
        }
        let expected = self.store.next_in_seq();
        if seq < expected && !reset_requested {
            // A Logon below the expected number means the client lost messages it sent us;
            // FIX answers with a Logout naming the expected number. Since the session is not
            // logged on yet we refuse without replying, so no state changes.
            return Err(LogonRefused::SeqTooLow);
        }

        self.state = State::Active;
        self.heartbeat_ns = heartbeat_s * NS_PER_S;
        self.last_rx_mono_ns = now.mono_ns;
        self.last_tx_mono_ns = now.mono_ns;
        self.test_requests_outstanding = 0;
        self.resend_until = None;
        self.stats.logons += 1;

        self.begin_admin(b"A", now);
        self.enc.u64(tags::ENCRYPT_METHOD, 0);
        self.enc.u64(tags::HEART_BT_INT, heartbeat_s);
        if reset_requested {
            self.enc.bool(tags::RESET_SEQ_NUM_FLAG, true);
        }
        self.send_admin(now, out);

        if seq > expected {
            self.request_resend(expected, seq, now, out);
        } else {
            self.store.set_next_in_seq(seq + 1);
        }
        Ok(())
    }

    /// A message on a logged-on connection.
    pub fn on_message(&mut self, msg: &Message, now: Now, out: &mut Outbox) -> Verdict {
        self.last_rx_mono_ns = now.mono_ns;
        self.test_requests_outstanding = 0;

        if msg.begin_string() != crate::fix::BEGIN_STRING {
            return self.logout_and_close(b"Incorrect BeginString", now, out);
        }
        let msg_type = msg.msg_type();
        let seq = match msg.get_u64(tags::MSG_SEQ_NUM as i64) {
            Ok(Some(s)) => s,
            // Without a usable MsgSeqNum the message cannot be placed in the stream; FIX
            // treats that as a fatal error: Logout and disconnect.
            _ => return self.logout_and_close(b"MsgSeqNum missing or malformed", now, out),
        };

        if let Err(reject) = dict::validate(msg) {
            // A message type outside the dictionary has no field definitions to check, so
            // its tag errors are secondary to the type itself.
            if !dict::is_known_msg_type(msg_type) {
                return self.reject_msg_type(msg, seq, now, out);
            }
            self.reject(seq, msg_type, reject, now, out);
            return self.after_reject(seq);
        }
        if !self.matches(msg) {
            self.reject(
                seq,
                msg_type,
                SessionReject {
                    reason: RejectReason::CompIdProblem,
                    ref_tag: None,
                },
                now,
                out,
            );
            return self.logout_and_close(b"CompID problem", now, out);
        }
        if !self.sending_time_ok(msg, now) {
            self.reject(
                seq,
                msg_type,
                SessionReject {
                    reason: RejectReason::SendingTimeAccuracy,
                    ref_tag: None,
                },
                now,
                out,
            );
            return self.logout_and_close(b"SendingTime accuracy problem", now, out);
        }
        if !dict::is_known_msg_type(msg_type) {
            return self.reject_msg_type(msg, seq, now, out);
        }

        match msg_type {
            b"5" => return self.on_logout(seq, now, out),
            b"A" => return self.on_logon_in_session(msg, seq, now, out),
            b"2" => return self.on_resend_request(msg, seq, now, out),
            b"4" if !matches!(msg.get_bool(tags::GAP_FILL_FLAG as i64), Ok(Some(true))) => {
                return self.on_sequence_reset(msg, seq, now, out)
            }
            _ => {}
        }

        match self.check_seq(msg, seq, now, out) {
            SeqCheck::Ok => {}
            SeqCheck::Drop => return Verdict::Done,
            SeqCheck::Fatal => return Verdict::Disconnect { involuntary: true },
        }

        match msg_type {
            b"0" => {
                self.accept_seq(seq);
                Verdict::Done
            }
            b"1" => {
                self.accept_seq(seq);
                let id = msg.get(tags::TEST_REQ_ID as i64).unwrap_or(b"");
                self.begin_admin(b"0", now);
                self.enc.str(tags::TEST_REQ_ID, id);
                self.send_admin(now, out);
                Verdict::Done
            }
            b"3" => {
                self.accept_seq(seq);
                Verdict::Done
            }
            b"4" => self.on_gap_fill(msg, seq, now, out),
            _ if is_application_supported(msg_type) => {
                self.accept_seq(seq);
                // Once we have sent Logout (the operator, the throttle or a shutdown asked
                // for it), new business is not taken; the counterparty's Logout is awaited.
                if matches!(self.state, State::LogoutSent { .. }) {
                    Verdict::Done
                } else {
                    Verdict::Deliver
                }
            }
            _ => {
                self.accept_seq(seq);
                self.business_reject(seq, msg_type, 3, b"Unsupported Message Type", now, out);
                Verdict::Done
            }
        }
    }

    /// Timers: heartbeat, test request, heartbeat timeout, logout timeout.
    pub fn on_timer(&mut self, now: Now, out: &mut Outbox) -> Verdict {
        match self.state {
            State::Disconnected => Verdict::Done,
            State::LogoutSent { deadline_mono_ns } => {
                if now.mono_ns >= deadline_mono_ns {
                    Verdict::Disconnect { involuntary: true }
                } else {
                    Verdict::Done
                }
            }
            State::Active => {
                let rx_idle = now.mono_ns.saturating_sub(self.last_rx_mono_ns);
                let tx_idle = now.mono_ns.saturating_sub(self.last_tx_mono_ns);
                // Factors in tenths so that the arithmetic stays in integers.
                if rx_idle * 10 >= self.heartbeat_ns * 24 {
                    return Verdict::Disconnect { involuntary: true };
                }
                let test_after =
                    self.heartbeat_ns * 12 * (u64::from(self.test_requests_outstanding) + 1);
                if rx_idle * 10 >= test_after {
                    self.test_requests_outstanding += 1;
                    self.begin_admin(b"1", now);
                    self.enc.str(tags::TEST_REQ_ID, b"TEST");
                    self.send_admin(now, out);
                } else if self.test_requests_outstanding == 0 && tx_idle >= self.heartbeat_ns {
                    self.begin_admin(b"0", now);
                    self.send_admin(now, out);
                }
                Verdict::Done
            }
        }
    }

    /// The connection is gone (either side closed it).
    pub fn on_disconnect(&mut self) {
        self.state = State::Disconnected;
        self.resend_until = None;
        self.test_requests_outstanding = 0;
    }

    /// Starts an application message: the caller adds body fields with the returned encoder
    /// and then calls [`Session::send_app`].
    pub fn app_encoder(&mut self, msg_type: &[u8], now: Now) -> &mut Encoder {
        self.begin_header(msg_type, now);
        &mut self.enc
    }

    /// Numbers, stores and (when connected) writes the application message built with
    /// [`Session::app_encoder`]. When the session is disconnected the message waits in the
    /// store and reaches the client through its ResendRequest after the next logon.
    pub fn send_app(&mut self, now: Now, out: &mut Outbox) -> Result<u64, StoreError> {
        let seq = self.store.next_out_seq();
        let bytes = self.enc.finish();
        self.store.append_outbound(seq, now.unix_ns, false, bytes)?;
        if !matches!(self.state, State::Disconnected) {
            out.push(bytes);
            self.last_tx_mono_ns = now.mono_ns;
        }
        Ok(seq)
    }

    /// Numbers and writes the application message built with [`Session::app_encoder`]
    /// without storing it: market data (W, X), whose numbers a resend gap-fills (see the
    /// module documentation). Sends nothing and returns false when disconnected or when the
    /// message does not fit in `out`: a slow reader is not disconnected for market data, the
    /// caller conflates it instead.
    pub fn send_unstored(&mut self, now: Now, out: &mut Outbox) -> bool {
        if matches!(self.state, State::Disconnected) {
            return false;
        }
        let bytes = self.enc.finish();
        if !out.fits(bytes.len()) {
            return false;
        }
        out.push(bytes);
        let seq = self.store.next_out_seq();
        self.store.set_next_out_seq(seq + 1);
        self.last_tx_mono_ns = now.mono_ns;
        true
    }

    /// Sends Logout (with `text`) and waits for the counterparty's, as an operator or the
    /// throttle asks.
    pub fn initiate_logout(&mut self, text: &[u8], now: Now, out: &mut Outbox) {
        if self.state != State::Active {
            return;
        }
        self.begin_admin(b"5", now);
        if !text.is_empty() {
            self.enc.str(tags::TEXT, text);
        }
        self.send_admin(now, out);
        self.state = State::LogoutSent {
            deadline_mono_ns: now
                .mono_ns
                .saturating_add(self.settings.logout_timeout_s * NS_PER_S),
        };
    }

    // ---- message handlers -------------------------------------------------------------

    fn on_logout(&mut self, seq: u64, now: Now, out: &mut Outbox) -> Verdict {
        if seq == self.store.next_in_seq() {
            self.store.set_next_in_seq(seq + 1);
        }
        if matches!(self.state, State::LogoutSent { .. }) {
            // This confirms the Logout we sent; the exchange is complete.
            return Verdict::Disconnect { involuntary: false };
        }
        self.begin_admin(b"5", now);
        self.send_admin(now, out);
        Verdict::Disconnect { involuntary: false }
    }

    /// A Logon inside a live session is how a counterparty resets sequence numbers without
    /// disconnecting (ResetSeqNumFlag=Y, checked before the sequence number since it resets
    /// it); anything else is a protocol error.
    fn on_logon_in_session(
        &mut self,
        msg: &Message,
        seq: u64,
        now: Now,
        out: &mut Outbox,
    ) -> Verdict {
        if !matches!(
            msg.get_bool(tags::RESET_SEQ_NUM_FLAG as i64),
            Ok(Some(true))
        ) {
            return self.logout_and_close(b"Unexpected Logon in an active session", now, out);
        }
        if self.store.reset().is_err() {
            return self.logout_and_close(b"Session store failure", now, out);
        }
        let hb = self.heartbeat_ns / NS_PER_S;
        self.begin_admin(b"A", now);
        self.enc.u64(tags::ENCRYPT_METHOD, 0);
        self.enc.u64(tags::HEART_BT_INT, hb);
        self.enc.bool(tags::RESET_SEQ_NUM_FLAG, true);
        self.send_admin(now, out);
        self.store.set_next_in_seq(seq + 1);
        self.resend_until = None;
        Verdict::Done
    }

    fn on_resend_request(
        &mut self,
        msg: &Message,
        seq: u64,
        now: Now,
        out: &mut Outbox,
    ) -> Verdict {
        let begin = msg
            .get_u64(tags::BEGIN_SEQ_NO as i64)
            .ok()
            .flatten()
            .unwrap_or(1);
        let end = msg
            .get_u64(tags::END_SEQ_NO as i64)
            .ok()
            .flatten()
            .unwrap_or(0);
        self.resend(begin, end, now, out);
        // The request is answered whatever its own number, so that a counterparty with a gap
        // can still recover; then its number is checked like any other message.
        let expected = self.store.next_in_seq();
        if seq == expected {
            self.accept_seq(seq);
        } else if seq > expected {
            self.request_resend(expected, seq, now, out);
        }
        Verdict::Done
    }

    /// SequenceReset in Reset mode: MsgSeqNum is ignored; NewSeqNo may only move forward.
    fn on_sequence_reset(
        &mut self,
        msg: &Message,
        seq: u64,
        now: Now,
        out: &mut Outbox,
    ) -> Verdict {
        let Ok(Some(new_seq)) = msg.get_u64(tags::NEW_SEQ_NO as i64) else {
            self.reject(
                seq,
                b"4",
                SessionReject {
                    reason: RejectReason::RequiredTagMissing,
                    ref_tag: Some(tags::NEW_SEQ_NO as i64),
                },
                now,
                out,
            );
            return Verdict::Done;
        };
        let expected = self.store.next_in_seq();
        if new_seq < expected {
            self.reject(
                seq,
                b"4",
                SessionReject {
                    reason: RejectReason::ValueIncorrect,
                    ref_tag: None,
                },
                now,
                out,
            );
        } else if new_seq > expected {
            self.store.set_next_in_seq(new_seq);
            self.clear_resend_if_done();
        }
        Verdict::Done
    }

    /// SequenceReset-GapFill, already checked for sequence.
    fn on_gap_fill(&mut self, msg: &Message, seq: u64, now: Now, out: &mut Outbox) -> Verdict {
        match msg.get_u64(tags::NEW_SEQ_NO as i64) {
            Ok(Some(new_seq)) if new_seq > seq => {
                self.store.set_next_in_seq(new_seq);
                self.clear_resend_if_done();
            }
            _ => {
                self.reject(
                    seq,
                    b"4",
                    SessionReject {
                        reason: RejectReason::ValueIncorrect,
                        ref_tag: Some(tags::NEW_SEQ_NO as i64),
                    },
                    now,
                    out,
                );
                self.accept_seq(seq);
            }
        }
        Verdict::Done
    }

    fn reject_msg_type(&mut self, msg: &Message, seq: u64, now: Now, out: &mut Outbox) -> Verdict {
        let msg_type = msg.msg_type();
        self.reject(
            seq,
            msg_type,
            SessionReject {
                reason: RejectReason::InvalidMsgType,
                ref_tag: None,
            },
            now,
            out,
        );
        self.after_reject(seq)
    }

    fn after_reject(&mut self, seq: u64) -> Verdict {
        // A rejected message still occupies its number: the counterparty must not resend it.
        if seq == self.store.next_in_seq() {
            self.accept_seq(seq);
        }
        Verdict::Done
    }

    // ---- sequence numbers -------------------------------------------------------------

    fn check_seq(&mut self, msg: &Message, seq: u64, now: Now, out: &mut Outbox) -> SeqCheck {
        let expected = self.store.next_in_seq();
        if seq > expected {
            self.request_resend(expected, seq, now, out);
            return SeqCheck::Drop;
        }
        if seq < expected {
            let poss_dup = matches!(msg.get_bool(tags::POSS_DUP_FLAG as i64), Ok(Some(true)));
            if poss_dup {
                // A resent duplicate: it must say when it was first sent, and that cannot be
                // after this copy was sent.
                let sending = msg
                    .get_timestamp_ns(tags::SENDING_TIME as i64)
                    .ok()
                    .flatten();
                match msg.get_timestamp_ns(tags::ORIG_SENDING_TIME as i64) {
                    Ok(Some(orig)) if sending.is_none_or(|s| orig <= s) => {}
                    Ok(Some(_)) => {
                        self.reject(
                            seq,
                            msg.msg_type(),
                            SessionReject {
                                reason: RejectReason::SendingTimeAccuracy,
                                ref_tag: None,
                            },
                            now,
                            out,
                        );
                        self.logout_and_close(b"OrigSendingTime after SendingTime", now, out);
                        return SeqCheck::Fatal;
                    }
                    _ => {
                        self.reject(
                            seq,
                            msg.msg_type(),
                            SessionReject {
                                reason: RejectReason::RequiredTagMissing,
                                ref_tag: Some(tags::ORIG_SENDING_TIME as i64),
                            },
                            now,
                            out,
                        );
                    }
                }
                return SeqCheck::Drop;
            }
            self.text.clear();
            let _ = write!(
                self.text,
                "MsgSeqNum too low, expecting {expected} but received {seq}"
            );
            let text = std::mem::take(&mut self.text);
            self.logout_and_close(&text, now, out);
            self.text = text;
            return SeqCheck::Fatal;
        }
        SeqCheck::Ok
    }

    fn accept_seq(&mut self, seq: u64) {
        self.store.set_next_in_seq(seq + 1);
        self.clear_resend_if_done();
    }

    fn clear_resend_if_done(&mut self) {
        if let Some(until) = self.resend_until {
            if self.store.next_in_seq() > until {
                self.resend_until = None;
            }
        }
    }

    fn request_resend(&mut self, expected: u64, seen: u64, now: Now, out: &mut Outbox) {
        if let Some(until) = self.resend_until {
            // One request with EndSeqNo=0 already covers everything; remember how far the
            // counterparty has got so that we know when the gap is closed.
            self.resend_until = Some(until.max(seen));
            return;
        }
        self.resend_until = Some(seen);
        self.stats.resend_requests_sent += 1;
        self.begin_admin(b"2", now);
        self.enc.u64(tags::BEGIN_SEQ_NO, expected);
        self.enc.u64(tags::END_SEQ_NO, 0);
        self.send_admin(now, out);
    }

    /// Answers a ResendRequest for `begin..=end` (`end == 0`: up to the last sent).
    fn resend(&mut self, begin: u64, end: u64, now: Now, out: &mut Outbox) {
        let last = self.store.next_out_seq().saturating_sub(1);
        let end = if end == 0 || end > last { last } else { end };
        if begin == 0 || begin > end {
            return;
        }
        // Walk the stored messages; admin messages and numbers with no stored message form
        // gaps that become one GapFill each, application messages are resent as PossDup.
        let mut gap_start = begin;
        let mut resent = Vec::new();
        let our = self.settings.our_comp_id.clone();
        let their = self.settings.their_comp_id.clone();
        let result = self
            .store
            .for_each_outbound(begin, end, |seq, sent_ns, is_admin, bytes| {
                if !is_admin {
                    resent.push((seq, sent_ns, bytes.to_vec()));
                }
            });
        if result.is_err() {
            // The store cannot give the messages back: the honest answer is a gap fill over
            // the whole range, with the error logged by the caller through the stats.
            resent.clear();
        }
        for (seq, sent_ns, bytes) in resent {
            if seq > gap_start {
                self.gap_fill(gap_start, seq, now, out, &our, &their);
            }
            self.resend_one(&bytes, seq, sent_ns, now, out);
            gap_start = seq + 1;
        }
        if gap_start <= end {
            self.gap_fill(gap_start, end + 1, now, out, &our, &their);
        }
    }

    fn gap_fill(
        &mut self,
        seq: u64,
        new_seq: u64,
        now: Now,
        out: &mut Outbox,
        our: &str,
        their: &str,
    ) {
        let e = &mut self.resend_enc;
        e.begin(b"4");
        e.u64(tags::MSG_SEQ_NUM, seq)
            .bool(tags::POSS_DUP_FLAG, true)
            .str(tags::SENDER_COMP_ID, our.as_bytes())
            .timestamp(tags::SENDING_TIME, now.unix_ns)
            .str(tags::TARGET_COMP_ID, their.as_bytes())
            .timestamp(tags::ORIG_SENDING_TIME, now.unix_ns)
            .u64(tags::NEW_SEQ_NO, new_seq)
            .bool(tags::GAP_FILL_FLAG, true);
        out.push(e.finish());
        self.last_tx_mono_ns = now.mono_ns;
        self.stats.gap_fills_sent += 1;
    }

    /// Re-encodes a stored application message with PossDupFlag=Y, OrigSendingTime set to
    /// its first SendingTime, and a fresh SendingTime.
    fn resend_one(&mut self, stored: &[u8], seq: u64, sent_ns: u64, now: Now, out: &mut Outbox) {
        let Ok(msg) = self.resend_parser.parse(stored) else {
            return;
        };
        let e = &mut self.resend_enc;
        e.begin(msg.msg_type());
        e.u64(tags::MSG_SEQ_NUM, seq)
            .bool(tags::POSS_DUP_FLAG, true)
            .str(tags::SENDER_COMP_ID, self.settings.our_comp_id.as_bytes())
            .timestamp(tags::SENDING_TIME, now.unix_ns)
            .str(tags::TARGET_COMP_ID, self.settings.their_comp_id.as_bytes())
            .timestamp(tags::ORIG_SENDING_TIME, sent_ns);
        for f in msg.fields() {
            let skip = [8, 9, 10, 35, 34, 43, 49, 52, 56, 97, 122];
            if skip.contains(&f.tag) {
                continue;
            }
            if let Ok(tag) = u32::try_from(f.tag) {
                e.str(tag, msg.value(f));
            }
        }
        out.push(e.finish());
        self.last_tx_mono_ns = now.mono_ns;
        self.stats.messages_resent += 1;
    }

    // ---- outbound admin messages ------------------------------------------------------

    fn begin_header(&mut self, msg_type: &[u8], now: Now) {
        let seq = self.store.next_out_seq();
        self.enc.begin(msg_type);
        self.enc
            .u64(tags::MSG_SEQ_NUM, seq)
            .str(tags::SENDER_COMP_ID, self.settings.our_comp_id.as_bytes())
            .timestamp(tags::SENDING_TIME, now.unix_ns)
            .str(tags::TARGET_COMP_ID, self.settings.their_comp_id.as_bytes());
    }

    fn begin_admin(&mut self, msg_type: &[u8], now: Now) {
        debug_assert!(is_admin_type(msg_type));
        self.begin_header(msg_type, now);
    }

    /// Numbers and writes an admin message. Admin messages are not stored: on resend their
    /// numbers are gap-filled, which is what FIX asks for.
    fn send_admin(&mut self, now: Now, out: &mut Outbox) {
        let seq = self.store.next_out_seq();
        out.push(self.enc.finish());
        self.store.set_next_out_seq(seq + 1);
        self.last_tx_mono_ns = now.mono_ns;
    }

    fn reject(
        &mut self,
        ref_seq: u64,
        ref_msg_type: &[u8],
        reject: SessionReject,
        now: Now,
        out: &mut Outbox,
    ) {
        self.stats.rejects_sent += 1;
        self.begin_admin(b"3", now);
        self.enc.u64(tags::REF_SEQ_NUM, ref_seq);
        self.enc.str(tags::TEXT, reject.reason.text().as_bytes());
        if let Some(tag) = reject.ref_tag {
            self.enc.i64(tags::REF_TAG_ID, tag);
        }
        if !ref_msg_type.is_empty() {
            self.enc.str(tags::REF_MSG_TYPE, ref_msg_type);
        }
        self.enc
            .u64(tags::SESSION_REJECT_REASON, u64::from(reject.reason.code()));
        self.send_admin(now, out);
    }

    /// BusinessMessageReject (j) is an application message: it is stored and resent.
    fn business_reject(
        &mut self,
        ref_seq: u64,
        ref_msg_type: &[u8],
        reason: u64,
        text: &[u8],
        now: Now,
        out: &mut Outbox,
    ) {
        let e = self.app_encoder(b"j", now);
        e.u64(tags::REF_SEQ_NUM, ref_seq)
            .str(tags::TEXT, text)
            .str(tags::REF_MSG_TYPE, ref_msg_type)
            .u64(tags::BUSINESS_REJECT_REASON, reason);
        // A full store cannot keep the reject for resend, but the client still gets it now.
        if self.send_app(now, out).is_err() {
            let bytes = self.enc.finish().to_vec();
            out.push(&bytes);
        }
    }

    /// Sends Logout with `text` and closes without waiting: used for protocol errors, after
    /// which FIX expects the acceptor to disconnect.
    fn logout_and_close(&mut self, text: &[u8], now: Now, out: &mut Outbox) -> Verdict {
        self.begin_admin(b"5", now);
        self.enc.str(tags::TEXT, text);
        self.send_admin(now, out);
        Verdict::Disconnect { involuntary: true }
    }

    fn sending_time_ok(&self, msg: &Message, now: Now) -> bool {
        let Ok(Some(sent_ns)) = msg.get_timestamp_ns(tags::SENDING_TIME as i64) else {
            return false;
        };
        sent_ns.abs_diff(now.unix_ns) <= self.settings.sending_time_tolerance_s * NS_PER_S
    }
}

enum SeqCheck {
    Ok,
    Drop,
    Fatal,
}
