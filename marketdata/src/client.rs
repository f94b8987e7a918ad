//! The subscriber's I/O: joins the UDP feed, and talks to the recovery service over TCP when
//! the [`Subscriber`] asks for it.
//!
//! Recovery is done in line, with blocking reads and a timeout: while it runs, live packets
//! wait in the socket's receive buffer (made large for that reason) and are taken afterwards,
//! so nothing is lost that recovery would not fetch again anyway.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::feed::{encode_request, FrameSplitter};
use crate::subscriber::{ReplyOutcome, Subscriber, SubscriberConfig};

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The feed's address: a multicast group and port, or a unicast address to bind.
    pub feed: SocketAddr,
    /// The interface to join a multicast group on.
    pub interface: Ipv4Addr,
    pub recovery: SocketAddr,
    pub subscriber: SubscriberConfig,
    /// How long one recovery request may take before the connection is dropped and retried.
    pub recovery_timeout: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Datagrams that did not parse as packets.
    pub bad_packets: u64,
    pub recovery_connects: u64,
    pub recovery_failures: u64,
}

pub struct FeedClient {
    socket: UdpSocket,
    config: ClientConfig,
    conn: Option<TcpStream>,
    sub: Subscriber,
    buf: Vec<u8>,
    counters: ClientCounters,
    last_problem: Option<String>,
}

impl FeedClient {
    /// Binds the feed port (shared with other subscribers on this machine) and joins the group.
    pub fn join(config: ClientConfig) -> io::Result<FeedClient> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_reuse_address(true)?;
        // Room for a few seconds of feed while a recovery request is answered.
        let _ = socket.set_recv_buffer_size(16 << 20);
        let multicast = match config.feed.ip() {
            IpAddr::V4(ip) if ip.is_multicast() => Some(ip),
            _ => None,
        };
        let bind = match multicast {
            Some(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.feed.port()),
            None => config.feed,
        };
        socket.bind(&bind.into())?;
        if let Some(group) = multicast {
            socket.join_multicast_v4(&group, &config.interface)?;
        }
        let socket: UdpSocket = socket.into();
        Ok(FeedClient {
            socket,
            sub: Subscriber::new(config.subscriber),
            config,
            conn: None,
            buf: vec![0u8; 65_536],
            counters: ClientCounters::default(),
            last_problem: None,
        })
    }

    pub fn subscriber(&self) -> &Subscriber {
        &self.sub
    }

    pub fn counters(&self) -> ClientCounters {
        self.counters
    }

    /// The last recovery failure (connection refused, timeout), if any.
    pub fn last_problem(&self) -> Option<&str> {
        self.last_problem.as_deref()
    }

    /// Takes packets for up to `timeout`, then recovers whatever the subscriber is missing.
    /// Returns the number of packets taken.
    pub fn poll(&mut self, timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut taken = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_micros(100))))?;
            match self.socket.recv(&mut self.buf) {
                Ok(n) => {
                    taken += 1;
                    if self.sub.on_packet(&self.buf[..n]).is_err() {
                        self.counters.bad_packets += 1;
                    }
                    // Recover as soon as a gap shows, rather than after the timeout.
                    self.recover();
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.recover();
        Ok(taken)
    }

    /// Sends the subscriber's recovery requests until it needs none.
    pub fn recover(&mut self) {
        let mut rounds = 0;
        while let Some(request) = self.sub.poll_request() {
            rounds += 1;
            if let Err(e) = self.request(&request) {
                self.counters.recovery_failures += 1;
                self.last_problem = Some(format!("recovery from {}: {e}", self.config.recovery));
                self.sub.abandon_request();
                self.conn = None;
                return;
            }
            if rounds >= 64 {
                // Far behind: let live packets in before asking again.
                return;
            }
        }
    }

    fn request(&mut self, request: &crate::feed::Request) -> io::Result<()> {
        if self.conn.is_none() {
            let stream =
                TcpStream::connect_timeout(&self.config.recovery, self.config.recovery_timeout)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(self.config.recovery_timeout))?;
            self.counters.recovery_connects += 1;
            self.conn = Some(stream);
        }
        let Some(stream) = self.conn.as_mut() else {
            return Err(io::Error::other("no recovery connection"));
        };
        let mut bytes = Vec::with_capacity(32);
        encode_request(request, &mut bytes);
        stream.write_all(&bytes)?;
        let mut frames = FrameSplitter::new();
        let mut buf = [0u8; 65_536];
        loop {
            while let Some(frame) = frames.next_frame() {
                match self.sub.on_reply(frame) {
                    Ok(ReplyOutcome::Continue) => {}
                    Ok(ReplyOutcome::Done) | Ok(ReplyOutcome::Refused(_)) => return Ok(()),
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                }
            }
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the recovery service closed the connection",
                ));
            }
            frames.push(&buf[..n]);
        }
    }
}
