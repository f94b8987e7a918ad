//! The publisher's I/O: UDP packets out, the TCP recovery service in and out.
//!
//! One thread runs it (the exchange's `ferrox-marketdata` thread): it takes output-ring frames,
//! hands them to the [`Publisher`], sends each packet as soon as it is full or the ring has
//! nothing more to read, and only when the ring is idle and a command is complete does it look
//! at the recovery connections. So recovery never delays the live feed, and every snapshot is
//! taken at a command boundary.
//!
//! Nothing here blocks. A UDP send that the kernel refuses (its buffer is full) is counted and
//! the packet is left to recovery: the feed is sequenced, so a subscriber sees the gap. A
//! recovery connection whose bounded queue fills is told why and closed.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::feed::{
    decode_request, encode_end_of_session, encode_heartbeat, encode_reply_reject, FrameSplitter,
    Message, PacketBuilder, RejectReason, SessionId, PACKET_HEADER_BYTES,
};
use crate::publisher::{MessageSink, Publisher};
use crate::recovery::{answer, RetransmitStore};
use ferrox_protocol::Event;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub session: SessionId,
    /// Where packets go: one multicast group, or unicast addresses (each gets every packet).
    pub destinations: Vec<SocketAddr>,
    /// The interface multicast leaves from (127.0.0.1 keeps it on this machine).
    pub multicast_interface: Ipv4Addr,
    pub multicast_ttl: u32,
    pub recovery_listen: SocketAddr,
    pub packet_bytes_max: usize,
    pub heartbeat_interval: Duration,
    pub retransmit_messages: usize,
    pub recovery_queue_bytes: usize,
    pub recovery_connections_max: usize,
}

/// Counters shared with whoever watches the publisher (the console, the benchmarks).
#[derive(Debug, Default)]
pub struct ServerStats {
    pub packets: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets the kernel refused to send (they are recoverable).
    pub send_errors: AtomicU64,
    pub heartbeats: AtomicU64,
    pub recovery_connections: AtomicU64,
    pub recovery_requests: AtomicU64,
    pub recovery_rejects: AtomicU64,
    /// Recovery connections closed because they did not read their replies.
    pub slow_consumers: AtomicU64,
    /// The publisher's self-checks: mirror errors, delta and checkpoint mismatches.
    pub check_failures: AtomicU64,
    pub checkpoints: AtomicU64,
    /// The last message's sequence number.
    pub last_seq: AtomicU64,
}

/// Sends packets and keeps the retransmission buffer.
struct Out {
    socket: UdpSocket,
    destinations: Vec<SocketAddr>,
    packet: PacketBuilder,
    store: RetransmitStore,
    stats: Arc<ServerStats>,
    /// Messages since the shared counters were last updated: they are published once per
    /// packet, not with an atomic read-modify-write per message.
    unpublished_messages: u64,
    last_seq: u64,
}

fn send_to_all(socket: &UdpSocket, destinations: &[SocketAddr], stats: &ServerStats, bytes: &[u8]) {
    for dest in destinations {
        if socket.send_to(bytes, dest).is_err() {
            stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    stats.packets.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
}

impl Out {
    fn send(&self, bytes: &[u8]) {
        send_to_all(&self.socket, &self.destinations, &self.stats, bytes);
    }

    fn flush(&mut self) {
        if self.packet.is_empty() {
            return;
        }
        send_to_all(
            &self.socket,
            &self.destinations,
            &self.stats,
            self.packet.bytes(),
        );
        let next = self.packet.next_seq();
        self.packet.start(next);
        self.stats.messages.fetch_add(
            std::mem::take(&mut self.unpublished_messages),
            Ordering::Relaxed,
        );
        self.stats.last_seq.store(self.last_seq, Ordering::Relaxed);
    }
}

impl MessageSink for Out {
    fn message(&mut self, seq: u64, msg: &Message) {
        self.store.push(seq, msg);
        if self.packet.is_empty() {
            self.packet.start(seq);
        }
        if !self.packet.push(msg) {
            self.flush();
            self.packet.start(seq);
            let pushed = self.packet.push(msg);
            debug_assert!(pushed, "an empty packet holds any one message");
        }
        self.unpublished_messages += 1;
        self.last_seq = seq;
    }
}

struct Conn {
    stream: TcpStream,
    input: FrameSplitter,
    output: Vec<u8>,
    written: usize,
    /// Close once the output is written (after a slow-consumer reject).
    closing: bool,
    /// When our side was shut down after the last reply: the peer's unread requests are
    /// drained and dropped until it closes (or a second passes), because closing a socket
    /// with unread input sends a reset that can destroy the reject frame still in flight.
    shut_at: Option<Instant>,
}

const LISTENER: Token = Token(usize::MAX);
const RECOVERY_POLL_INTERVAL: Duration = Duration::from_micros(250);
/// A partial request frame can hold at most this many bytes (a frame's payload length is a
/// `u16`); more buffered without a complete frame means the peer does not speak the protocol.
const REQUEST_BYTES_MAX: usize = 2 + 65_535;

pub struct MdServer {
    publisher: Publisher,
    out: Out,
    config: ServerConfig,
    poll: Poll,
    events: Events,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    /// Frames of a command have been seen but not its END: not a place for a snapshot.
    in_command: bool,
    last_sent: Instant,
    last_recovery_poll: Instant,
    stats: Arc<ServerStats>,
}

impl MdServer {
    /// Binds the UDP socket and the recovery listener (so that a port in use fails the start
    /// with a clear error) and takes the publisher, which may be seeded already.
    pub fn bind(config: ServerConfig, publisher: Publisher) -> io::Result<MdServer> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_multicast_if_v4(&config.multicast_interface)?;
        socket.set_multicast_ttl_v4(config.multicast_ttl)?;
        socket.set_multicast_loop_v4(true)?;
        // A large send buffer absorbs bursts; beyond it a send fails and the gap is recovered.
        let _ = socket.set_send_buffer_size(4 << 20);
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(config.multicast_interface, 0)).into())?;
        socket.set_nonblocking(true)?;
        let socket: UdpSocket = socket.into();
        let mut listener = TcpListener::bind(config.recovery_listen)?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let stats = Arc::new(ServerStats::default());
        Ok(MdServer {
            out: Out {
                socket,
                destinations: config.destinations.clone(),
                packet: PacketBuilder::new(config.session, config.packet_bytes_max),
                store: RetransmitStore::new(config.retransmit_messages),
                stats: Arc::clone(&stats),
                unpublished_messages: 0,
                last_seq: 0,
            },
            publisher,
            poll,
            events: Events::with_capacity(256),
            listener,
            conns: Vec::new(),
            in_command: false,
            last_sent: Instant::now(),
            last_recovery_poll: Instant::now(),
            stats,
            config,
        })
    }

    pub fn recovery_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    pub fn session(&self) -> SessionId {
        self.config.session
    }

    /// Opens the session (directory, status, seeded books) and sends it.
    pub fn start(&mut self, ts_ns: u64) {
        self.publisher.start(ts_ns, &mut self.out);
        self.out.flush();
        self.last_sent = Instant::now();
    }

    /// One event of a command.
    #[inline]
    pub fn on_event(&mut self, ts_ns: u64, seq: u64, event: &Event) {
        self.in_command = true;
        self.publisher.on_event(ts_ns, seq, event, &mut self.out);
    }

    /// The end of a command.
    #[inline]
    pub fn on_end(&mut self, ts_ns: u64) {
        self.in_command = false;
        self.publisher.on_end(ts_ns, &mut self.out);
        let c = self.publisher.counters();
        self.stats.check_failures.store(
            c.mirror_errors + c.delta_mismatches + c.checkpoint_mismatches,
            Ordering::Relaxed,
        );
        self.stats
            .checkpoints
            .store(c.checkpoints, Ordering::Relaxed);
    }

    /// Sends the packet being built, if any, unless a command is half read: call when the ring
    /// has nothing more to read. Flushing only at command boundaries keeps a command's messages
    /// in one packet when they fit (one send instead of two), and the rest of a command is
    /// never more than a ring poll away.
    pub fn flush(&mut self, now: Instant) {
        if !self.in_command && !self.out.packet.is_empty() {
            self.out.flush();
            self.last_sent = now;
        }
    }

    /// The idle path: a heartbeat if the feed has been quiet, and the recovery service.
    pub fn idle(&mut self, now: Instant) {
        self.flush(now);
        // A heartbeat names the next sequence number, so none goes out while a command's messages
        // are still waiting in the packet (they would look lost).
        if self.out.packet.is_empty()
            && now.duration_since(self.last_sent) >= self.config.heartbeat_interval
        {
            let mut hb = [0u8; PACKET_HEADER_BYTES];
            encode_heartbeat(self.config.session, self.publisher.next_seq(), &mut hb);
            self.out.send(&hb);
            self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            self.last_sent = now;
        }
        // Polling the recovery sockets is a system call; a few thousand times a second is
        // prompt enough for recovery and leaves the idle loop free to notice the next event.
        if !self.in_command && now.duration_since(self.last_recovery_poll) >= RECOVERY_POLL_INTERVAL
        {
            self.last_recovery_poll = now;
            self.serve_recovery();
        }
    }

    /// Tells subscribers the session is over (a clean stop).
    pub fn end_session(&mut self) {
        self.out.flush();
        let mut end = [0u8; PACKET_HEADER_BYTES];
        encode_end_of_session(self.config.session, self.publisher.next_seq(), &mut end);
        self.out.send(&end);
    }

    fn serve_recovery(&mut self) {
        if self
            .poll
            .poll(&mut self.events, Some(Duration::ZERO))
            .is_err()
        {
            return;
        }
        let mut readable = Vec::new();
        let mut accept = false;
        for event in self.events.iter() {
            if event.token() == LISTENER {
                accept = true;
            } else {
                readable.push(event.token().0);
            }
        }
        if accept {
            self.accept();
        }
        for k in readable {
            self.read_requests(k);
        }
        // Writing is retried on every idle pass rather than waiting for WRITABLE events, so a
        // connection that drains its queue slowly still makes progress.
        for k in 0..self.conns.len() {
            self.write_replies(k);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let live = self.conns.iter().filter(|c| c.is_some()).count();
                    if live >= self.config.recovery_connections_max {
                        let mut frame = Vec::new();
                        encode_reply_reject(
                            RejectReason::TooManyRequests,
                            "too many recovery connections",
                            &mut frame,
                        );
                        let _ = stream.write(&frame);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let k = match self.conns.iter().position(Option::is_none) {
                        Some(k) => k,
                        None => {
                            self.conns.push(None);
                            self.conns.len() - 1
                        }
                    };
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(k), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.stats
                        .recovery_connections
                        .fetch_add(1, Ordering::Relaxed);
                    self.conns[k] = Some(Conn {
                        stream,
                        input: FrameSplitter::new(),
                        output: Vec::new(),
                        written: 0,
                        closing: false,
                        shut_at: None,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }

    fn close(&mut self, k: usize) {
        if let Some(mut c) = self.conns.get_mut(k).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn read_requests(&mut self, k: usize) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(conn) = self.conns.get_mut(k).and_then(Option::as_mut) else {
                return;
            };
            if conn.closing {
                if conn.shut_at.is_some() {
                    // Drain and drop what the peer still sends, until it closes.
                    match conn.stream.read(&mut buf) {
                        Ok(0) => self.close(k),
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => self.close(k),
                    }
                }
                return;
            }
            // A chunk at a time, answering each complete request before reading more, so that
            // the input buffer only ever holds one partial frame.
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.close(k);
                    return;
                }
                Ok(n) => conn.input.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(k);
                    return;
                }
            }
            self.answer_requests(k);
        }
    }

    fn answer_requests(&mut self, k: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(k).and_then(Option::as_mut) else {
                return;
            };
            if conn.closing {
                return;
            }
            let Some(frame) = conn.input.next_frame() else {
                if conn.input.buffered() > REQUEST_BYTES_MAX {
                    // More than any one frame can be: not a subscriber speaking this protocol.
                    self.close(k);
                }
                return;
            };
            self.stats.recovery_requests.fetch_add(1, Ordering::Relaxed);
            let before = conn.output.len();
            let result = match decode_request(frame) {
                Ok(request) => answer(
                    &request,
                    self.config.session,
                    &self.out.store,
                    &self.publisher,
                    self.config.packet_bytes_max,
                    &mut conn.output,
                ),
                Err(e) => {
                    encode_reply_reject(
                        RejectReason::Malformed,
                        &format!("request does not decode: {e}"),
                        &mut conn.output,
                    );
                    Err(RejectReason::Malformed)
                }
            };
            if result.is_err() {
                self.stats.recovery_rejects.fetch_add(1, Ordering::Relaxed);
            }
            if conn.output.len() - conn.written > self.config.recovery_queue_bytes {
                // The reply would take the connection past its bound: the client is not
                // reading. It is told why and cut off; it can reconnect and recover.
                conn.output.truncate(before);
                encode_reply_reject(
                    RejectReason::SlowConsumer,
                    &format!(
                        "more than {} bytes of replies queued; reconnect and recover",
                        self.config.recovery_queue_bytes
                    ),
                    &mut conn.output,
                );
                conn.closing = true;
                self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn write_replies(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k).and_then(Option::as_mut) else {
            return;
        };
        while conn.written < conn.output.len() {
            match conn.stream.write(&conn.output[conn.written..]) {
                Ok(0) => break,
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(k);
                    return;
                }
            }
        }
        if conn.written == conn.output.len() {
            conn.output.clear();
            conn.written = 0;
            if conn.closing {
                match conn.shut_at {
                    None => {
                        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                        conn.shut_at = Some(Instant::now());
                    }
                    Some(t) if t.elapsed() > Duration::from_secs(1) => self.close(k),
                    Some(_) => {}
                }
            }
        }
    }
}
