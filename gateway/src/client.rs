//! A small FIX 4.4 initiator for tools, tests and load generators: not the gateway's hot path.
//!
//! [`FixClient`] is a blocking (or polled non-blocking) session over one `std::net::TcpStream`
//! with `TCP_NODELAY`: it logs on, numbers outgoing messages, answers TestRequests and
//! ResendRequests (with a gap fill: it keeps no outgoing store), sends Heartbeats when idle, and
//! hands every other message to the caller as an [`OwnedMessage`].
//!
//! Its parts are public so that a load generator can drive many sessions from a few threads:
//! [`FrameReader`] (receive buffer, framing, parsing), [`FixWriter`] (header, sequence numbers,
//! queueing on a non-blocking socket) and [`ReadSet`] (one epoll over the read sides of many
//! connections). [`FixClient::into_parts`] takes a logged-on session apart into them.
//!
//! What it does not do: persist sequence numbers, resend application messages, or request
//! resends of what it missed (a gap is counted in [`ClientStats::gaps`] and accepted).

use crate::fix::{self, tags, Encoder, Field, Framing, Garble, Message, ParseError, Parser};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest message a client accepts from the exchange.
pub const MSG_BYTES_MAX: usize = 64 * 1024;
/// Most fields in one received message.
const FIELDS_MAX: usize = 1024;
/// How long [`FixClient::connect`] waits for the Logon reply.
pub const LOGON_TIMEOUT: Duration = Duration::from_secs(10);

/// Wall-clock time in nanoseconds since the Unix epoch (for SendingTime and TransactTime).
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Why bytes received could not be turned into a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    Garbled(Garble),
    Parse(ParseError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Garbled(g) => write!(f, "garbled input: {g}"),
            FrameError::Parse(p) => write!(f, "unparsable message: {p}"),
        }
    }
}

impl std::error::Error for FrameError {}

// ---- receiving ---------------------------------------------------------------------------

/// A receive buffer that frames and parses the messages in it, one at a time.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    parser: Parser,
    msg_bytes_max: usize,
    garbled: u64,
}

impl FrameReader {
    /// A reader for messages of at most `msg_bytes_max` bytes; the buffer starts small and
    /// grows to hold the largest message seen.
    pub fn new(msg_bytes_max: usize) -> FrameReader {
        FrameReader {
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            parser: Parser::new(FIELDS_MAX),
            msg_bytes_max,
            garbled: 0,
        }
    }

    /// Bytes received and not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Framing and parse errors seen so far.
    pub fn errors(&self) -> u64 {
        self.garbled
    }

    /// Makes at least `want` bytes of room after `end`: moves the unread bytes to the front,
    /// and grows the buffer only if that is not enough.
    fn make_room(&mut self, want: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end >= want {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buf.len() - self.end < want {
            let len = (self.end + want).next_power_of_two();
            self.buf.resize(len, 0);
        }
    }

    /// One `read` into the buffer; `Ok(0)` is end of stream. Errors (WouldBlock, TimedOut
    /// included) are the reader's.
    pub fn read_from<R: Read>(&mut self, r: &mut R) -> io::Result<usize> {
        self.make_room(16 * 1024);
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Appends bytes received elsewhere (see [`ReadSet`]).
    pub fn extend(&mut self, data: &[u8]) {
        self.make_room(data.len());
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    /// The next complete message in the buffer, or `None` if more bytes are needed. A framing
    /// or parse error drops the offending bytes and is returned once; call again to go on.
    pub fn next_message(&mut self) -> Option<Result<Message<'_>, FrameError>> {
        if self.start == self.end {
            return None;
        }
        match fix::frame(&self.buf[self.start..self.end], self.msg_bytes_max) {
            Framing::Incomplete => None,
            Framing::Garbled { skip, reason } => {
                self.start += skip.min(self.end - self.start);
                self.garbled += 1;
                Some(Err(FrameError::Garbled(reason)))
            }
            Framing::Message { len } => {
                let at = self.start;
                self.start += len;
                match self.parser.parse(&self.buf[at..at + len]) {
                    Ok(m) => Some(Ok(m)),
                    Err(e) => {
                        self.garbled += 1;
                        Some(Err(FrameError::Parse(e)))
                    }
                }
            }
        }
    }
}

/// An owned copy of a received message: its bytes and its parsed fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    raw: Vec<u8>,
    fields: Vec<Field>,
}

impl OwnedMessage {
    pub fn from_message(m: &Message<'_>) -> OwnedMessage {
        OwnedMessage {
            raw: m.raw().to_vec(),
            fields: m.fields().to_vec(),
        }
    }

    /// The whole message as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn value(&self, f: &Field) -> &[u8] {
        self.raw
            .get(f.start as usize..f.end as usize)
            .unwrap_or(&[])
    }

    /// Every field in wire order, header and trailer included.
    pub fn fields(&self) -> impl Iterator<Item = (i64, &[u8])> + '_ {
        self.fields.iter().map(move |f| (f.tag, self.value(f)))
    }

    pub fn msg_type(&self) -> &[u8] {
        self.get(tags::MSG_TYPE).unwrap_or(&[])
    }

    /// The value of the first occurrence of `tag`.
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        let tag = i64::from(tag);
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| self.value(f))
    }

    /// The value as text; `None` if absent or not UTF-8.
    pub fn get_str(&self, tag: u32) -> Option<&str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value as an unsigned integer; `None` if absent or not one.
    pub fn get_u64(&self, tag: u32) -> Option<u64> {
        self.get(tag).and_then(fix::parse::parse_u64)
    }

    /// The message with SOH shown as `|`, for logs.
    pub fn to_pipe_string(&self) -> String {
        pipe_string(&self.raw)
    }
}

/// `bytes` with SOH shown as `|` (and other control bytes as `?`).
pub fn pipe_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            fix::SOH => '|',
            0x20..=0x7e => char::from(b),
            _ => '?',
        })
        .collect()
}

/// The read sides of many connections behind one epoll (edge-triggered, via mio).
pub struct ReadSet {
    poll: mio::Poll,
    events: mio::Events,
    conns: Vec<Option<mio::net::TcpStream>>,
    scratch: Vec<u8>,
    open: usize,
}

/// What [`ReadSet::wait`] reports for a connection.
#[derive(Debug)]
pub enum ReadEvent<'a> {
    /// Bytes received, in order.
    Data(&'a [u8]),
    /// End of stream (`None`) or a read error; the connection is no longer polled.
    Closed(Option<io::Error>),
}

impl ReadSet {
    pub fn new() -> io::Result<ReadSet> {
        Ok(ReadSet {
            poll: mio::Poll::new()?,
            events: mio::Events::with_capacity(1024),
            conns: Vec::new(),
            scratch: vec![0; 256 * 1024],
            open: 0,
        })
    }

    /// Polls the read side of `stream` (a clone of it, so writes can stay with the caller).
    /// The socket is switched to non-blocking mode, which also applies to `stream` itself.
    /// Returns the index that [`ReadSet::wait`] reports it under.
    pub fn add(&mut self, stream: &TcpStream) -> io::Result<usize> {
        let clone = stream.try_clone()?;
        clone.set_nonblocking(true)?;
        let mut conn = mio::net::TcpStream::from_std(clone);
        let index = self.conns.len();
        self.poll
            .registry()
            .register(&mut conn, mio::Token(index), mio::Interest::READABLE)?;
        self.conns.push(Some(conn));
        self.open += 1;
        Ok(index)
    }

    /// Connections not closed yet.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Waits up to `timeout` (`None`: forever) for readable connections, reads each until it
    /// would block and reports what was read. Returns the number of ready connections.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut on_read: impl FnMut(usize, ReadEvent<'_>),
    ) -> io::Result<usize> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut ready = 0;
        for event in self.events.iter() {
            let index = event.token().0;
            let Some(slot) = self.conns.get_mut(index) else {
                continue;
            };
            ready += 1;
            // The peer's FIN (or an error) may have come with the data: then read to the end,
            // since no further edge will announce it.
            let until_end = event.is_read_closed() || event.is_error();
            while let Some(conn) = slot.as_mut() {
                let closed = match conn.read(&mut self.scratch) {
                    Ok(0) => Some(None),
                    Ok(n) => {
                        on_read(index, ReadEvent::Data(&self.scratch[..n]));
                        if n < self.scratch.len() && !until_end {
                            // A short read emptied the socket: bytes (or a FIN) arriving later
                            // raise a new edge, so the read that would only say WouldBlock is
                            // saved.
                            break;
                        }
                        None
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                    Err(e) => Some(Some(e)),
                };
                if let Some(error) = closed {
                    if let Some(mut conn) = slot.take() {
                        let _ = self.poll.registry().deregister(&mut conn);
                    }
                    self.open -= 1;
                    on_read(index, ReadEvent::Closed(error));
                    break;
                }
            }
        }
        Ok(ready)
    }
}

// ---- sending -----------------------------------------------------------------------------

/// The sending side of a session: standard header, sequence numbers, and a queue for what a
/// non-blocking socket would not take.
#[derive(Debug)]
pub struct FixWriter {
    enc: Encoder,
    sender: Vec<u8>,
    target: Vec<u8>,
    next_seq: u64,
    pending: Vec<u8>,
    pending_at: usize,
}

impl FixWriter {
    pub fn new(sender: &str, target: &str, next_seq: u64) -> FixWriter {
        FixWriter {
            enc: Encoder::new(4096),
            sender: sender.as_bytes().to_vec(),
            target: target.as_bytes().to_vec(),
            next_seq,
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// The MsgSeqNum the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Our CompID (SenderCompID 49 of what we send).
    pub fn sender(&self) -> &[u8] {
        &self.sender
    }

    /// Bytes queued because the socket would have blocked.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len() - self.pending_at
    }

    /// Encodes the next message: header (34, 49, 52, 56), then the fields `body` writes.
    /// Takes the sequence number; the caller must send the bytes.
    pub fn encode(
        &mut self,
        msg_type: &[u8],
        sending_ns: u64,
        body: impl FnOnce(&mut Encoder),
    ) -> &[u8] {
        let seq = self.next_seq;
        self.next_seq += 1;
        encode_message(
            &mut self.enc,
            &self.sender,
            &self.target,
            seq,
            msg_type,
            sending_ns,
            body,
        )
    }

    /// Encodes and writes the next message; returns its MsgSeqNum. On a non-blocking socket
    /// what does not fit is queued (see [`FixWriter::flush`]).
    pub fn send<W: Write>(
        &mut self,
        w: &mut W,
        msg_type: &[u8],
        body: impl FnOnce(&mut Encoder),
    ) -> io::Result<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = encode_message(
            &mut self.enc,
            &self.sender,
            &self.target,
            seq,
            msg_type,
            unix_ns(),
            body,
        );
        write_or_queue(w, bytes, &mut self.pending, &mut self.pending_at)?;
        Ok(seq)
    }

    /// Writes bytes encoded by the caller (with [`FixWriter::encode`] or otherwise), after
    /// anything queued.
    pub fn send_raw<W: Write>(&mut self, w: &mut W, bytes: &[u8]) -> io::Result<()> {
        write_or_queue(w, bytes, &mut self.pending, &mut self.pending_at)
    }

    /// A SequenceReset-GapFill answering a ResendRequest from `begin`: we keep no store, so
    /// everything up to our next number is declared skipped.
    pub fn send_gap_fill<W: Write>(&mut self, w: &mut W, begin: u64) -> io::Result<()> {
        let now = unix_ns();
        let begin = begin.clamp(1, self.next_seq);
        self.enc.begin(b"4");
        self.enc
            .u64(tags::MSG_SEQ_NUM, begin)
            .bool(tags::POSS_DUP_FLAG, true)
            .str(tags::SENDER_COMP_ID, &self.sender)
            .timestamp(tags::SENDING_TIME, now)
            .str(tags::TARGET_COMP_ID, &self.target)
            .timestamp(tags::ORIG_SENDING_TIME, now)
            .bool(tags::GAP_FILL_FLAG, true)
            .u64(tags::NEW_SEQ_NO, self.next_seq);
        let bytes = self.enc.finish();
        write_or_queue(w, bytes, &mut self.pending, &mut self.pending_at)
    }

    /// The message encoded last (the encoder's output is rebuilt from its body, which is
    /// unchanged until the next message begins).
    pub fn last_message(&mut self) -> &[u8] {
        self.enc.finish()
    }

    /// Writes queued bytes; `Ok(true)` when nothing is left.
    pub fn flush<W: Write>(&mut self, w: &mut W) -> io::Result<bool> {
        while self.pending_at < self.pending.len() {
            match w.write(&self.pending[self.pending_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pending_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.pending_at = 0;
        Ok(true)
    }
}

/// Writes `bytes` behind anything already queued; on WouldBlock queues the rest.
fn write_or_queue<W: Write>(
    w: &mut W,
    bytes: &[u8],
    pending: &mut Vec<u8>,
    pending_at: &mut usize,
) -> io::Result<()> {
    if *pending_at < pending.len() {
        pending.extend_from_slice(bytes);
        return Ok(());
    }
    pending.clear();
    *pending_at = 0;
    let mut at = 0;
    while at < bytes.len() {
        match w.write(&bytes[at..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pending.extend_from_slice(&bytes[at..]);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The standard header with `seq`, then `body`'s fields; returns the finished message.
fn encode_message<'e>(
    enc: &'e mut Encoder,
    sender: &[u8],
    target: &[u8],
    seq: u64,
    msg_type: &[u8],
    sending_ns: u64,
    body: impl FnOnce(&mut Encoder),
) -> &'e [u8] {
    enc.begin(msg_type);
    enc.u64(tags::MSG_SEQ_NUM, seq)
        .str(tags::SENDER_COMP_ID, sender)
        .timestamp(tags::SENDING_TIME, sending_ns)
        .str(tags::TARGET_COMP_ID, target);
    body(enc);
    enc.finish()
}

// ---- the session -------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    LogonSent,
    Active,
    LogoutSent,
    Closed,
}

/// Counters of session-level events a tool may want to report.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientStats {
    /// Inbound MsgSeqNum gaps (messages we never saw), accepted without a ResendRequest.
    pub gaps: u64,
    /// Inbound messages with a MsgSeqNum lower than expected and no PossDupFlag.
    pub seq_too_low: u64,
    /// Garbled or unparsable inbound messages (dropped).
    pub garbled: u64,
    pub heartbeats_sent: u64,
    pub test_requests_answered: u64,
    pub resend_requests_answered: u64,
}

/// What the session layer does with one received message.
enum Action {
    /// Handled entirely here (Heartbeat, duplicates, sequence resets).
    None,
    TestRequest(Vec<u8>),
    ResendRequest(u64),
    LogonAck(OwnedMessage),
    Logout(OwnedMessage),
    Deliver(OwnedMessage),
}

/// A blocking FIX 4.4 initiator session; see the module documentation.
pub struct FixClient {
    stream: TcpStream,
    reader: FrameReader,
    writer: FixWriter,
    state: State,
    heartbeat: Duration,
    last_sent: Instant,
    last_received: Instant,
    test_request_out: bool,
    next_in_seq: u64,
    nonblocking: bool,
    peer: String,
    logout_text: Option<String>,
    stats: ClientStats,
}

impl FixClient {
    /// Connects, logs on and waits (up to [`LOGON_TIMEOUT`]) for the Logon reply. A Logout or
    /// a disconnect instead is an error carrying the counterparty's text.
    ///
    /// With `reset`, the Logon carries ResetSeqNumFlag (141=Y) and MsgSeqNum 1; without it the
    /// session also starts at 1 (this client keeps no state across runs; see
    /// [`FixClient::start_at`]).
    pub fn connect(
        addr: impl ToSocketAddrs,
        sender: &str,
        target: &str,
        password: Option<&str>,
        heartbeat_s: u64,
        reset: bool,
    ) -> io::Result<FixClient> {
        let mut client = FixClient::start(addr, sender, target, password, heartbeat_s, reset)?;
        client.wait_logon(LOGON_TIMEOUT)?;
        Ok(client)
    }

    /// Connects and sends the Logon without waiting for the reply: with
    /// [`FixClient::set_nonblocking`] and [`FixClient::recv`] many sessions can log on at once.
    pub fn start(
        addr: impl ToSocketAddrs,
        sender: &str,
        target: &str,
        password: Option<&str>,
        heartbeat_s: u64,
        reset: bool,
    ) -> io::Result<FixClient> {
        FixClient::start_at(addr, sender, target, password, heartbeat_s, reset, 1)
    }

    /// [`FixClient::start`] with the first outgoing MsgSeqNum given (for a session that is not
    /// reset and whose counterparty expects a later number).
    pub fn start_at(
        addr: impl ToSocketAddrs,
        sender: &str,
        target: &str,
        password: Option<&str>,
        heartbeat_s: u64,
        reset: bool,
        first_seq: u64,
    ) -> io::Result<FixClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let peer = stream
            .peer_addr()
            .map_or_else(|_| target.to_string(), |a| format!("{target} at {a}"));
        let now = Instant::now();
        let mut client = FixClient {
            stream,
            reader: FrameReader::new(MSG_BYTES_MAX),
            writer: FixWriter::new(sender, target, if reset { 1 } else { first_seq.max(1) }),
            state: State::LogonSent,
            heartbeat: Duration::from_secs(heartbeat_s.max(1)),
            last_sent: now,
            last_received: now,
            test_request_out: false,
            next_in_seq: 1,
            nonblocking: false,
            peer,
            logout_text: None,
            stats: ClientStats::default(),
        };
        client.send(b"A", |e| {
            e.u64(tags::ENCRYPT_METHOD, 0)
                .u64(tags::HEART_BT_INT, heartbeat_s);
            if reset {
                e.bool(tags::RESET_SEQ_NUM_FLAG, true);
            }
            if let Some(p) = password {
                e.str(tags::PASSWORD, p.as_bytes());
            }
        })?;
        Ok(client)
    }

    /// Waits for the Logon reply to the Logon [`FixClient::start`] sent.
    pub fn wait_logon(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.state == State::LogonSent {
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no Logon reply from {} within {timeout:?}", self.peer),
                ));
            }
            match self.recv(deadline - now) {
                Ok(_) => {}
                Err(e) => {
                    let text = self.logout_text.clone();
                    return Err(match text {
                        Some(text) => io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!("logon refused by {}: {text}", self.peer),
                        ),
                        None => {
                            io::Error::new(e.kind(), format!("logon to {} failed: {e}", self.peer))
                        }
                    });
                }
            }
            if self.state == State::Closed || self.state == State::LogoutSent {
                let text = self.logout_text.clone().unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("logon refused by {}: {text}", self.peer),
                ));
            }
        }
        Ok(())
    }

    /// Logged on and not logging out.
    pub fn is_logged_on(&self) -> bool {
        self.state == State::Active
    }

    /// The connection is still usable (it may be logging on or out).
    pub fn is_open(&self) -> bool {
        self.state != State::Closed
    }

    /// The Text (58) of the Logout the counterparty sent, if it sent one.
    pub fn logout_text(&self) -> Option<&str> {
        self.logout_text.as_deref()
    }

    pub fn stats(&self) -> ClientStats {
        let mut s = self.stats;
        s.garbled = self.reader.errors();
        s
    }

    /// The MsgSeqNum our next message gets.
    pub fn next_out_seq(&self) -> u64 {
        self.writer.next_seq()
    }

    /// The MsgSeqNum we expect next from the counterparty.
    pub fn next_in_seq(&self) -> u64 {
        self.next_in_seq
    }

    /// Switches the socket to non-blocking: [`FixClient::recv`] then never waits and sends
    /// that would block are queued and written by [`FixClient::service`].
    pub fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.stream.set_nonblocking(nonblocking)?;
        self.nonblocking = nonblocking;
        Ok(())
    }

    /// The socket, e.g. to register it with a poller.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends a message: the header is ours, `body` writes the rest. Returns its MsgSeqNum.
    pub fn send(&mut self, msg_type: &[u8], body: impl FnOnce(&mut Encoder)) -> io::Result<u64> {
        if self.state == State::Closed {
            return Err(self.closed_error());
        }
        let seq = self.writer.send(&mut self.stream, msg_type, body)?;
        self.last_sent = Instant::now();
        Ok(seq)
    }

    /// The bytes of the message sent last (for tracing; call right after
    /// [`FixClient::send`], before anything else is sent).
    pub fn last_sent(&mut self) -> &[u8] {
        self.writer.last_message()
    }

    fn closed_error(&self) -> io::Error {
        let text = match &self.logout_text {
            Some(t) if !t.is_empty() => format!("session with {} closed: {t}", self.peer),
            _ => format!("session with {} closed", self.peer),
        };
        io::Error::new(io::ErrorKind::NotConnected, text)
    }

    /// Time-driven duties: a Heartbeat after HeartBtInt without sending, a TestRequest after
    /// 1.2 × HeartBtInt without receiving, and writing queued bytes.
    pub fn service(&mut self) -> io::Result<()> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.writer.flush(&mut self.stream)?;
        if self.state != State::Active {
            return Ok(());
        }
        let now = Instant::now();
        if !self.test_request_out && now - self.last_received > self.heartbeat * 6 / 5 {
            self.test_request_out = true;
            self.send(b"1", |e| {
                e.str(tags::TEST_REQ_ID, b"ferrox-client");
            })?;
        } else if now - self.last_sent >= self.heartbeat {
            self.send(b"0", |_| {})?;
            self.stats.heartbeats_sent += 1;
        }
        Ok(())
    }

    /// The next message for the caller, waiting up to `timeout` (not at all when
    /// non-blocking). Heartbeats, TestRequests, ResendRequests and SequenceResets are handled
    /// here and not returned; everything else is (a Logout too, after which the connection
    /// closes). Errors: the connection closed or failed.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Option<OwnedMessage>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.pump()? {
                return Ok(Some(m));
            }
            if self.state == State::Closed {
                return Err(self.closed_error());
            }
            self.service()?;
            if !self.nonblocking {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                let until_heartbeat =
                    (self.last_sent + self.heartbeat).saturating_duration_since(now);
                let wait = (deadline - now)
                    .min(until_heartbeat)
                    .max(Duration::from_millis(1));
                self.stream.set_read_timeout(Some(wait))?;
            }
            match self.reader.read_from(&mut self.stream) {
                Ok(0) => {
                    self.state = State::Closed;
                    // Deliver what was received before the end of stream first.
                    if let Some(m) = self.pump()? {
                        return Ok(Some(m));
                    }
                    return Err(match &self.logout_text {
                        Some(_) => self.closed_error(),
                        None => io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("connection closed by {}", self.peer),
                        ),
                    });
                }
                Ok(_) => self.last_received = Instant::now(),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    if self.nonblocking {
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.state = State::Closed;
                    return Err(e);
                }
            }
        }
    }

    /// Processes buffered messages until one is for the caller.
    fn pump(&mut self) -> io::Result<Option<OwnedMessage>> {
        loop {
            let action = match self.reader.next_message() {
                None => return Ok(None),
                Some(Err(_)) => continue,
                Some(Ok(m)) => classify(&m, &mut self.next_in_seq, &mut self.stats),
            };
            self.test_request_out = false;
            match action {
                Action::None => {}
                Action::TestRequest(id) => {
                    if self.state != State::Closed {
                        self.send(b"0", |e| {
                            e.str(tags::TEST_REQ_ID, &id);
                        })?;
                        self.stats.test_requests_answered += 1;
                    }
                }
                Action::ResendRequest(begin) => {
                    if self.state != State::Closed {
                        self.writer.send_gap_fill(&mut self.stream, begin)?;
                        self.last_sent = Instant::now();
                        self.stats.resend_requests_answered += 1;
                    }
                }
                Action::LogonAck(m) => {
                    if self.state == State::LogonSent {
                        self.state = State::Active;
                    }
                    if let Some(hb) = m.get_u64(tags::HEART_BT_INT) {
                        self.heartbeat = Duration::from_secs(hb.max(1));
                    }
                    return Ok(Some(m));
                }
                Action::Logout(m) => {
                    self.logout_text = Some(m.get_str(tags::TEXT).unwrap_or("").to_string());
                    if self.state == State::Active || self.state == State::LogonSent {
                        // Their Logout first: confirm it.
                        let _ = self.writer.send(&mut self.stream, b"5", |_| {});
                    }
                    self.state = State::Closed;
                    let _ = self.stream.shutdown(std::net::Shutdown::Write);
                    return Ok(Some(m));
                }
                Action::Deliver(m) => return Ok(Some(m)),
            }
        }
    }

    /// Sends a Logout without waiting for the reply: keep calling [`FixClient::recv`] until
    /// the session is closed (for many sessions at once).
    pub fn begin_logout(&mut self, text: Option<&str>) -> io::Result<()> {
        if self.state == State::Closed || self.state == State::LogoutSent {
            return Ok(());
        }
        self.send(b"5", |e| {
            if let Some(t) = text {
                e.str(tags::TEXT, t.as_bytes());
            }
        })?;
        self.state = State::LogoutSent;
        Ok(())
    }

    /// Sends a Logout and waits up to `timeout` for the counterparty's; returns its Text.
    pub fn logout(&mut self, text: Option<&str>, timeout: Duration) -> io::Result<Option<String>> {
        if self.state == State::Closed {
            return Ok(self.logout_text.clone());
        }
        self.begin_logout(text)?;
        let deadline = Instant::now() + timeout;
        if self.nonblocking {
            self.set_nonblocking(false)?;
        }
        while self.state != State::Closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.recv(deadline - now) {
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.state = State::Closed;
        Ok(self.logout_text.clone())
    }

    /// Takes a session apart for a load generator: the socket (writes), the receive buffer
    /// with anything already read, and the sending side with its sequence numbers.
    pub fn into_parts(self) -> ClientParts {
        ClientParts {
            stream: self.stream,
            reader: self.reader,
            writer: self.writer,
            next_in_seq: self.next_in_seq,
        }
    }
}

/// A logged-on session taken apart; see [`FixClient::into_parts`].
pub struct ClientParts {
    pub stream: TcpStream,
    pub reader: FrameReader,
    pub writer: FixWriter,
    pub next_in_seq: u64,
}

/// Sequence-number bookkeeping and the session layer's decision for one inbound message.
fn classify(m: &Message<'_>, next_in_seq: &mut u64, stats: &mut ClientStats) -> Action {
    let msg_type = m.msg_type();
    let seq = m.get_u64(i64::from(tags::MSG_SEQ_NUM)).ok().flatten();
    let poss_dup = matches!(m.get_bool(i64::from(tags::POSS_DUP_FLAG)), Ok(Some(true)));
    let flag = |tag: u32| matches!(m.get_bool(i64::from(tag)), Ok(Some(true)));
    match msg_type {
        b"4" => {
            // SequenceReset: Reset mode sets the number whatever MsgSeqNum says; GapFill
            // skips to NewSeqNo.
            if let Ok(Some(new)) = m.get_u64(i64::from(tags::NEW_SEQ_NO)) {
                if !flag(tags::GAP_FILL_FLAG) || new > *next_in_seq {
                    *next_in_seq = new;
                }
            }
            return Action::None;
        }
        b"A" if flag(tags::RESET_SEQ_NUM_FLAG) => {
            *next_in_seq = seq.unwrap_or(1) + 1;
            return Action::LogonAck(OwnedMessage::from_message(m));
        }
        _ => {}
    }
    if let Some(seq) = seq {
        if seq > *next_in_seq {
            stats.gaps += seq - *next_in_seq;
            *next_in_seq = seq + 1;
        } else if seq == *next_in_seq {
            *next_in_seq += 1;
        } else if poss_dup {
            // A resent application message is handed over (it carries PossDupFlag=Y, so
            // the caller knows it may have seen it); resent admin messages are not.
            if matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"A") {
                return Action::None;
            }
        } else {
            stats.seq_too_low += 1;
        }
    }
    match msg_type {
        b"0" => Action::None,
        b"1" => Action::TestRequest(m.get(i64::from(tags::TEST_REQ_ID)).unwrap_or(b"").to_vec()),
        b"2" => Action::ResendRequest(
            m.get_u64(i64::from(tags::BEGIN_SEQ_NO))
                .ok()
                .flatten()
                .unwrap_or(1),
        ),
        b"A" => Action::LogonAck(OwnedMessage::from_message(m)),
        b"5" => Action::Logout(OwnedMessage::from_message(m)),
        _ => Action::Deliver(OwnedMessage::from_message(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A scripted acceptor for one connection: answers Logon (or refuses it), then runs `f`.
    fn acceptor(
        f: impl FnOnce(&mut TcpStream, &mut FrameReader, &mut FixWriter) + Send + 'static,
        refuse: Option<&'static str>,
    ) -> (std::net::SocketAddr, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut reader = FrameReader::new(MSG_BYTES_MAX);
            let mut writer = FixWriter::new("FERROX", "CLIENT1", 1);
            let logon = next(&mut s, &mut reader);
            assert_eq!(logon.msg_type(), b"A");
            assert_eq!(logon.get(tags::PASSWORD), Some(&b"secret"[..]));
            assert_eq!(logon.get(tags::RESET_SEQ_NUM_FLAG), Some(&b"Y"[..]));
            assert_eq!(logon.get_u64(tags::MSG_SEQ_NUM), Some(1));
            match refuse {
                Some(text) => {
                    writer
                        .send(&mut s, b"5", |e| {
                            e.str(tags::TEXT, text.as_bytes());
                        })
                        .expect("send");
                }
                None => {
                    writer
                        .send(&mut s, b"A", |e| {
                            e.u64(tags::ENCRYPT_METHOD, 0)
                                .u64(tags::HEART_BT_INT, 1)
                                .bool(tags::RESET_SEQ_NUM_FLAG, true);
                        })
                        .expect("send");
                    f(&mut s, &mut reader, &mut writer);
                }
            }
        });
        (addr, handle)
    }

    fn next(s: &mut TcpStream, reader: &mut FrameReader) -> OwnedMessage {
        loop {
            if let Some(m) = reader.next_message() {
                return OwnedMessage::from_message(&m.expect("well-formed"));
            }
            assert!(reader.read_from(s).expect("read") > 0, "client closed");
        }
    }

    #[test]
    fn logon_test_request_order_and_logout() {
        let (addr, server) = acceptor(
            |s, reader, writer| {
                let order = next(s, reader);
                assert_eq!(order.msg_type(), b"D");
                assert_eq!(order.get(tags::CL_ORD_ID), Some(&b"C1"[..]));
                assert_eq!(order.get_u64(tags::MSG_SEQ_NUM), Some(2));
                // A TestRequest must be answered with a Heartbeat carrying its id.
                writer
                    .send(s, b"1", |e| {
                        e.str(tags::TEST_REQ_ID, b"T42");
                    })
                    .expect("send");
                let hb = next(s, reader);
                assert_eq!(hb.msg_type(), b"0");
                assert_eq!(hb.get(tags::TEST_REQ_ID), Some(&b"T42"[..]));
                assert_eq!(hb.get_u64(tags::MSG_SEQ_NUM), Some(3));
                // An execution report split over two writes.
                let bytes = writer
                    .encode(b"8", unix_ns(), |e| {
                        e.str(tags::CL_ORD_ID, b"C1").char(tags::EXEC_TYPE, b'0');
                    })
                    .to_vec();
                s.write_all(&bytes[..20]).expect("write");
                s.flush().expect("flush");
                thread::sleep(Duration::from_millis(20));
                s.write_all(&bytes[20..]).expect("write");
                let logout = next(s, reader);
                assert_eq!(logout.msg_type(), b"5");
                writer.send(s, b"5", |_| {}).expect("send");
            },
            None,
        );
        let mut c = FixClient::connect(addr, "CLIENT1", "FERROX", Some("secret"), 30, true)
            .expect("logged on");
        assert!(c.is_logged_on());
        c.send(b"D", |e| {
            e.str(tags::CL_ORD_ID, b"C1");
        })
        .expect("sent");
        let er = c
            .recv(Duration::from_secs(5))
            .expect("open")
            .expect("a message");
        assert_eq!(er.msg_type(), b"8");
        assert_eq!(er.get_str(tags::CL_ORD_ID), Some("C1"));
        assert!(er.to_pipe_string().starts_with("8=FIX.4.4|9="));
        assert_eq!(c.stats().test_requests_answered, 1);
        assert_eq!(
            c.logout(None, Duration::from_secs(5)).expect("logout"),
            Some(String::new())
        );
        assert!(!c.is_open());
        server.join().expect("acceptor");
    }

    #[test]
    fn refused_logon_reports_the_text() {
        let (addr, server) = acceptor(|_, _, _| {}, Some("invalid password"));
        let err = FixClient::connect(addr, "CLIENT1", "FERROX", Some("secret"), 30, true)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("invalid password"), "{err}");
        server.join().expect("acceptor");
    }

    #[test]
    fn disconnect_before_logon_reply_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            drop(s);
        });
        let err = FixClient::connect(addr, "CLIENT1", "FERROX", None, 30, true)
            .err()
            .expect("fails");
        assert!(err.to_string().contains("logon to FERROX"), "{err}");
        server.join().expect("acceptor");
    }

    #[test]
    fn frame_reader_resynchronises_after_garbage() {
        let mut w = FixWriter::new("A", "B", 7);
        let msg = w.encode(b"0", 0, |_| {}).to_vec();
        let mut r = FrameReader::new(1024);
        r.extend(b"junk\x01");
        r.extend(&msg[..5]);
        assert!(matches!(
            r.next_message(),
            Some(Err(FrameError::Garbled(_)))
        ));
        while let Some(Err(_)) = r.next_message() {}
        r.extend(&msg[5..]);
        let m = r.next_message().expect("complete").expect("valid");
        assert_eq!(m.get_u64(34), Ok(Some(7)));
        assert!(r.next_message().is_none());
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn read_set_reports_data_and_close() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let a = TcpStream::connect(addr).expect("connect");
        let (mut b, _) = listener.accept().expect("accept");
        let mut set = ReadSet::new().expect("poll");
        let i = set.add(&a).expect("add");
        b.write_all(b"hello").expect("write");
        drop(b);
        let mut got = Vec::new();
        let mut closed = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !closed && Instant::now() < deadline {
            set.wait(Some(Duration::from_millis(100)), |k, ev| {
                assert_eq!(k, i);
                match ev {
                    ReadEvent::Data(d) => got.extend_from_slice(d),
                    ReadEvent::Closed(e) => {
                        assert!(e.is_none());
                        closed = true;
                    }
                }
            })
            .expect("wait");
        }
        assert_eq!(got, b"hello");
        assert!(closed);
        assert_eq!(set.open(), 0);
    }
}
