//! The publisher's sockets and the subscriber's sockets on loopback: a real engine's events go
//! out as UDP packets, a `FeedClient` follows them and recovers over TCP, and the recovery
//! service refuses what it must (bad requests, slow consumers) with the documented reasons.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use ferrox_engine::{Engine, EngineConfig, InstrumentSpec, Limits};
use ferrox_marketdata::client::{ClientConfig, FeedClient};
use ferrox_marketdata::feed::{
    decode_reply, encode_request, FrameSplitter, RejectReason, Reply, Request, SessionId,
};
use ferrox_marketdata::publisher::{InstrumentInfo, Publisher, PublisherConfig};
use ferrox_marketdata::server::{MdServer, ServerConfig};
use ferrox_marketdata::subscriber::SubscriberConfig;
use ferrox_protocol::{
    AccountId, Checkpoint, ClientOrderId, Command, InstrumentId, InstrumentStatus, NewOrder,
    PriceTicks, QtyLots, SequencedCommand, Side, VecSink,
};

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        limits: Limits {
            orders_max: 65_536,
            levels_max: 4_096,
            gtd_orders_max: 16,
        },
        instruments: vec![
            InstrumentSpec::simple("AAA", 1_000),
            InstrumentSpec::simple("BBB", 5_000),
        ],
    })
    .unwrap()
}

fn infos(engine: &Engine) -> Vec<InstrumentInfo> {
    engine
        .instruments()
        .iter()
        .map(|s| InstrumentInfo {
            symbol: s.symbol.clone(),
            price_decimals: 2,
            qty_decimals: 0,
            tick_size: s.tick_size,
            lot_size: s.lot_size,
            status: InstrumentStatus::Open,
        })
        .collect()
}

fn server(engine: &Engine, feed: SocketAddr, queue_bytes: usize) -> MdServer {
    MdServer::bind(
        ServerConfig {
            session: SessionId::new("SRVTEST1").unwrap(),
            destinations: vec![feed],
            multicast_interface: Ipv4Addr::LOCALHOST,
            multicast_ttl: 0,
            recovery_listen: "127.0.0.1:0".parse().unwrap(),
            packet_bytes_max: 1_400,
            heartbeat_interval: Duration::from_millis(50),
            retransmit_messages: 1 << 16,
            recovery_queue_bytes: queue_bytes,
            recovery_connections_max: 4,
        },
        Publisher::new(&infos(engine), PublisherConfig::default()),
    )
    .expect("binds")
}

/// Applies `n` crossing limit orders and a checkpoint per instrument, feeding the events to
/// the server the way the exchange's market-data thread does.
fn trade(engine: &mut Engine, srv: &mut MdServer, seq: &mut u64, n: u64) {
    let mut sink = VecSink::default();
    for k in 0..n {
        *seq += 1;
        let i = (k % 2) as u32;
        let base = if i == 0 { 1_000 } else { 5_000 };
        let side = if k % 3 == 0 { Side::Sell } else { Side::Buy };
        let price = match side {
            Side::Buy => base - (k % 7) as i64,
            Side::Sell => base - 3 + (k % 5) as i64,
        };
        let command = if k % 50 == 49 {
            Command::Checkpoint(Checkpoint {
                instrument: InstrumentId(i),
            })
        } else {
            Command::NewOrder(NewOrder::limit(
                InstrumentId(i),
                AccountId((k % 4) as u32),
                ClientOrderId(*seq),
                side,
                PriceTicks(price),
                QtyLots(1 + k % 9),
            ))
        };
        let ts_ns = 1_000 * *seq;
        engine.apply(
            &SequencedCommand {
                seq: *seq,
                ts_ns,
                command,
            },
            &mut sink,
        );
        for e in sink.take() {
            srv.on_event(ts_ns, *seq, &e);
        }
        srv.on_end(ts_ns);
        srv.flush(Instant::now());
    }
}

fn client(feed: SocketAddr, recovery: SocketAddr) -> FeedClient {
    FeedClient::join(ClientConfig {
        feed,
        interface: Ipv4Addr::LOCALHOST,
        recovery,
        subscriber: SubscriberConfig {
            instruments_max: 2,
            ..SubscriberConfig::default()
        },
        recovery_timeout: Duration::from_secs(5),
    })
    .expect("joins")
}

/// Runs the server's idle path on another thread while `f` runs, as the exchange's thread
/// would between commands.
fn with_server_idle<T>(srv: &mut MdServer, f: impl FnOnce() -> T + Send) -> T
where
    T: Send,
{
    std::thread::scope(|s| {
        let h = s.spawn(f);
        while !h.is_finished() {
            srv.idle(Instant::now());
            std::thread::sleep(Duration::from_micros(200));
        }
        h.join().unwrap()
    })
}

#[test]
fn a_subscriber_follows_live_then_a_late_one_recovers_by_snapshot() {
    let mut engine = engine();
    let feed: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let late_feed: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut srv = MdServer::bind(
        ServerConfig {
            session: SessionId::new("SRVTEST1").unwrap(),
            destinations: vec![feed, late_feed],
            multicast_interface: Ipv4Addr::LOCALHOST,
            multicast_ttl: 0,
            recovery_listen: "127.0.0.1:0".parse().unwrap(),
            packet_bytes_max: 1_400,
            heartbeat_interval: Duration::from_millis(50),
            retransmit_messages: 1 << 16,
            recovery_queue_bytes: 1 << 24,
            recovery_connections_max: 4,
        },
        Publisher::new(&infos(&engine), PublisherConfig::default()),
    )
    .unwrap();
    let recovery = srv.recovery_addr().unwrap();
    let mut live = client(feed, recovery);
    srv.start(0);
    let mut seq = 0;
    trade(&mut engine, &mut srv, &mut seq, 2_000);
    // The late subscriber's socket exists only now: everything before went nowhere for it.
    let mut late = client(late_feed, recovery);
    trade(&mut engine, &mut srv, &mut seq, 500);
    let next = srv.publisher().next_seq();
    with_server_idle(&mut srv, || {
        let deadline = Instant::now() + Duration::from_secs(20);
        for c in [&mut live, &mut late] {
            while !(c.subscriber().is_caught_up() && c.subscriber().next_seq() == next) {
                assert!(
                    Instant::now() < deadline,
                    "not caught up: {:?} {:?}",
                    c.subscriber().counters(),
                    c.last_problem()
                );
                c.poll(Duration::from_millis(20)).unwrap();
            }
        }
    });
    for c in [&live, &late] {
        let sub = c.subscriber();
        let counters = sub.counters();
        assert_eq!(
            counters.apply_errors,
            0,
            "{counters:?} {:?}",
            sub.first_problem()
        );
        assert_eq!(counters.checkpoints_bad, 0, "{counters:?}");
        for i in 0..2 {
            let instrument = InstrumentId(i);
            let (hash, orders, _, _) = engine.book_hash(instrument).unwrap();
            assert_eq!(sub.books().hash(instrument), hash);
            assert_eq!(sub.books().order_count(instrument), orders);
        }
    }
    assert!(live.subscriber().counters().checkpoints_ok > 0);
    assert_eq!(
        live.subscriber().counters().snapshots,
        0,
        "the live one started at message 1"
    );
    assert!(
        late.subscriber().counters().snapshots >= 1,
        "the late one joined by snapshot"
    );
    assert_eq!(
        late.subscriber().find_symbol("BBB"),
        Some(InstrumentId(1)),
        "the snapshot carries the directory"
    );
}

fn request(stream: &mut TcpStream, req: &Request) {
    let mut bytes = Vec::new();
    encode_request(req, &mut bytes);
    stream.write_all(&bytes).unwrap();
}

/// Reads frames until `stop` says so; returns them.
fn read_frames(stream: &mut TcpStream, mut stop: impl FnMut(&Reply) -> bool) -> Vec<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut frames = FrameSplitter::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 65_536];
    loop {
        while let Some(f) = frames.next_frame() {
            out.push(f.to_vec());
            if stop(&decode_reply(f).expect("replies decode")) {
                return out;
            }
        }
        let n = stream.read(&mut buf).expect("reads");
        if n == 0 {
            return out;
        }
        frames.push(&buf[..n]);
    }
}

#[test]
fn the_recovery_service_refuses_with_the_documented_reasons() {
    let mut engine = engine();
    let feed: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut srv = server(&engine, feed, 1 << 20);
    let recovery = srv.recovery_addr().unwrap();
    srv.start(0);
    let mut seq = 0;
    trade(&mut engine, &mut srv, &mut seq, 100);
    let next = srv.publisher().next_seq();
    let session = srv.session();
    let cases: Vec<(Vec<u8>, RejectReason)> = {
        let mut v = Vec::new();
        let mut b = Vec::new();
        encode_request(
            &Request::Retransmit {
                session: SessionId::new("OTHER").unwrap(),
                from_seq: 1,
                count: 1,
            },
            &mut b,
        );
        v.push((b, RejectReason::WrongSession));
        let mut b = Vec::new();
        encode_request(
            &Request::Retransmit {
                session,
                from_seq: next,
                count: 5,
            },
            &mut b,
        );
        v.push((b, RejectReason::RangeNotAvailable));
        let mut b = Vec::new();
        encode_request(
            &Request::Snapshot {
                session,
                instrument: Some(InstrumentId(7)),
            },
            &mut b,
        );
        v.push((b, RejectReason::UnknownInstrument));
        // A frame that is no request at all.
        v.push((vec![3, 0, b'x', 1, 2], RejectReason::Malformed));
        v
    };
    let results = with_server_idle(&mut srv, || {
        let mut stream = TcpStream::connect(recovery).unwrap();
        let mut got = Vec::new();
        for (bytes, _) in &cases {
            stream.write_all(bytes).unwrap();
            let frames = read_frames(&mut stream, |r| !matches!(r, Reply::Packet(_)));
            let last = frames.last().expect("a reply").clone();
            got.push(match decode_reply(&last).unwrap() {
                Reply::Reject { reason, .. } => Some(reason),
                _ => None,
            });
        }
        // And a good retransmit still works on the same connection.
        request(
            &mut stream,
            &Request::Retransmit {
                session,
                from_seq: 1,
                count: (next - 1) as u32,
            },
        );
        let frames = read_frames(&mut stream, |r| matches!(r, Reply::End));
        let messages: usize = frames
            .iter()
            .filter_map(|f| match decode_reply(f).unwrap() {
                Reply::Packet(p) => Some(p.messages().count()),
                _ => None,
            })
            .sum();
        (got, messages)
    });
    let expected: Vec<Option<RejectReason>> = cases.iter().map(|(_, r)| Some(*r)).collect();
    assert_eq!(results.0, expected);
    assert_eq!(results.1 as u64, next - 1, "every message retransmitted");
}

#[test]
fn a_recovery_client_that_does_not_read_is_cut_off_as_a_slow_consumer() {
    let mut engine = engine();
    let feed: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    // The smallest queue the exchange allows.
    let mut srv = server(&engine, feed, 1 << 16);
    let recovery = srv.recovery_addr().unwrap();
    srv.start(0);
    let mut seq = 0;
    trade(&mut engine, &mut srv, &mut seq, 3_000);
    let session = srv.session();
    let stats = srv.stats();
    let mut stream = TcpStream::connect(recovery).unwrap();
    with_server_idle(&mut srv, || {
        // Ask for snapshots of everything, again and again, without reading a byte: the
        // kernel's buffers fill, then the server's bounded queue, then it gives up on us.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut bytes = Vec::new();
        for _ in 0..200 {
            encode_request(
                &Request::Snapshot {
                    session,
                    instrument: None,
                },
                &mut bytes,
            );
        }
        stream
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while stats
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            assert!(Instant::now() < deadline, "never cut off");
            let _ = stream.write_all(&bytes);
        }
    });
    // Now read everything: the last frame says why the connection was closed.
    let frames = {
        let mut s = stream;
        let mut all = Vec::new();
        with_server_idle(&mut srv, || {
            all = read_frames(&mut s, |_| false);
        });
        all
    };
    let last = frames.last().expect("frames before the close");
    match decode_reply(last).unwrap() {
        Reply::Reject { reason, text } => {
            assert_eq!(reason, RejectReason::SlowConsumer);
            assert!(text.contains("reconnect"), "{text}");
        }
        other => panic!("last frame {other:?}"),
    }
}
