//! The session layer driven as a pure state machine: messages and time are arguments, so the
//! timers and the resend logic are tested without sockets and without sleeping.

use ferrox_gateway::fix::{frame, tags, Encoder, Framing, Parser};
use ferrox_gateway::session::{LogonRefused, Now, Outbox, Session, SessionSettings, Verdict};
use ferrox_gateway::store::SessionStore;
use std::path::PathBuf;

const S: u64 = 1_000_000_000;
/// 2026-11-22 12:00:00 UTC.
const T0_UNIX: u64 = 1_795_348_800 * S;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn session(name: &str, password: Option<&str>) -> (Session, Dir) {
    let dir = std::env::temp_dir().join(format!("ferrox-session-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SessionStore::open(&dir, "FERROX-C1", 1 << 20).expect("store opens");
    let mut settings = SessionSettings::new("FERROX", "C1");
    settings.password = password.map(str::to_string);
    (Session::new(settings, store), Dir(dir))
}

fn at(s: u64) -> Now {
    Now {
        unix_ns: T0_UNIX + s * S,
        mono_ns: s * S,
    }
}

/// A message from the client, encoded and framed as the gateway would receive it.
fn client_msg(msg_type: &[u8], seq: u64, now: Now, body: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::new(1024);
    e.begin(msg_type);
    e.u64(tags::MSG_SEQ_NUM, seq)
        .str(tags::SENDER_COMP_ID, b"C1")
        .timestamp(tags::SENDING_TIME, now.unix_ns)
        .str(tags::TARGET_COMP_ID, b"FERROX");
    body(&mut e);
    e.finish().to_vec()
}

/// One sent message: (MsgType, MsgSeqNum, PossDup, NewSeqNo, TestReqID).
type Sent = (String, u64, bool, Option<u64>, Option<String>);

/// The messages in an outbox.
fn sent(out: &mut Outbox) -> Vec<Sent> {
    let mut parser = Parser::new(256);
    let mut buf = &out.bytes[..];
    let mut msgs = Vec::new();
    while let Framing::Message { len } = frame(buf, 1 << 16) {
        let m = parser
            .parse(&buf[..len])
            .expect("the gateway's output parses");
        msgs.push((
            String::from_utf8_lossy(m.msg_type()).to_string(),
            m.get_u64(tags::MSG_SEQ_NUM as i64)
                .ok()
                .flatten()
                .unwrap_or(0),
            m.get(tags::POSS_DUP_FLAG as i64) == Some(b"Y"),
            m.get_u64(tags::NEW_SEQ_NO as i64).ok().flatten(),
            m.get(tags::TEST_REQ_ID as i64)
                .map(|v| String::from_utf8_lossy(v).to_string()),
        ));
        buf = &buf[len..];
    }
    assert!(buf.is_empty(), "the outbox holds whole messages only");
    out.clear();
    msgs
}

fn logon(s: &mut Session, out: &mut Outbox, heartbeat_s: u64, now: Now) {
    let raw = client_msg(b"A", 1, now, |e| {
        e.u64(tags::ENCRYPT_METHOD, 0)
            .u64(tags::HEART_BT_INT, heartbeat_s);
    });
    let mut parser = Parser::new(64);
    let msg = parser.parse(&raw).expect("parses");
    s.on_logon(&msg, now, out).expect("logon accepted");
}

fn deliver(s: &mut Session, out: &mut Outbox, raw: &[u8], now: Now) -> Verdict {
    let mut parser = Parser::new(64);
    let msg = parser.parse(raw).expect("parses");
    s.on_message(&msg, now, out)
}

#[test]
fn heartbeat_test_request_and_timeout_follow_the_heartbeat_interval() {
    let (mut s, _dir) = session("timers", None);
    let mut out = Outbox::new(1 << 16);
    logon(&mut s, &mut out, 10, at(0));
    assert_eq!(sent(&mut out)[0].0, "A");

    assert_eq!(s.on_timer(at(9), &mut out), Verdict::Done);
    assert!(sent(&mut out).is_empty(), "nothing before the interval");
    s.on_timer(at(10), &mut out);
    let msgs = sent(&mut out);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (msgs[0].0.as_str(), msgs[0].1),
        ("0", 2),
        "heartbeat after 10 s"
    );

    // Nothing received for 1.2 × 10 s: a TestRequest, and no heartbeat while it is open.
    s.on_timer(at(12), &mut out);
    let msgs = sent(&mut out);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, "1");
    assert_eq!(msgs[0].4.as_deref(), Some("TEST"));
    s.on_timer(at(23), &mut out);
    assert!(
        sent(&mut out).is_empty(),
        "no heartbeat while a test request is open"
    );

    // Silence for 2.4 × 10 s ends the connection, involuntarily.
    assert_eq!(
        s.on_timer(at(24), &mut out),
        Verdict::Disconnect { involuntary: true }
    );
}

#[test]
fn an_answer_to_the_test_request_keeps_the_session_alive() {
    let (mut s, _dir) = session("alive", None);
    let mut out = Outbox::new(1 << 16);
    logon(&mut s, &mut out, 10, at(0));
    sent(&mut out);
    s.on_timer(at(12), &mut out);
    assert_eq!(
        sent(&mut out).last().map(|m| m.0.clone()).as_deref(),
        Some("1")
    );
    let hb = client_msg(b"0", 2, at(13), |e| {
        e.str(tags::TEST_REQ_ID, b"TEST");
    });
    assert_eq!(deliver(&mut s, &mut out, &hb, at(13)), Verdict::Done);
    assert_eq!(s.on_timer(at(24), &mut out), Verdict::Done, "alive");
    assert_eq!(s.next_in_seq(), 3);
}

#[test]
fn resend_gap_fills_admin_runs_and_resends_application_messages_as_duplicates() {
    let (mut s, _dir) = session("resend", None);
    let mut out = Outbox::new(1 << 16);
    logon(&mut s, &mut out, 30, at(0)); // seq 1: Logon (admin)
    for (i, t) in [(0, 1), (1, 2)] {
        // seq 2 and 3: application messages
        let e = s.app_encoder(b"j", at(t));
        e.u64(tags::REF_SEQ_NUM, i)
            .str(tags::TEXT, b"x")
            .u64(tags::BUSINESS_REJECT_REASON, 0);
        s.send_app(at(t), &mut out).expect("stored");
    }
    s.on_timer(at(40), &mut out); // seq 4: Heartbeat (admin)
    let e = s.app_encoder(b"j", at(41)); // seq 5: application
    e.u64(tags::REF_SEQ_NUM, 9)
        .str(tags::TEXT, b"y")
        .u64(tags::BUSINESS_REJECT_REASON, 0);
    s.send_app(at(41), &mut out).expect("stored");
    assert_eq!(s.next_out_seq(), 6);
    sent(&mut out);

    let rr = client_msg(b"2", 2, at(42), |e| {
        e.u64(tags::BEGIN_SEQ_NO, 1).u64(tags::END_SEQ_NO, 0);
    });
    assert_eq!(deliver(&mut s, &mut out, &rr, at(42)), Verdict::Done);
    let msgs: Vec<_> = sent(&mut out)
        .into_iter()
        .map(|(t, seq, dup, new_seq, _)| (t, seq, dup, new_seq))
        .collect();
    assert_eq!(
        msgs,
        vec![
            ("4".to_string(), 1, true, Some(2)),
            ("j".to_string(), 2, true, None),
            ("j".to_string(), 3, true, None),
            ("4".to_string(), 4, true, Some(5)),
            ("j".to_string(), 5, true, None),
        ]
    );
    assert_eq!(s.next_out_seq(), 6, "a resend uses the old numbers");
}

#[test]
fn a_gap_triggers_one_resend_request_until_it_is_filled() {
    let (mut s, _dir) = session("gap", None);
    let mut out = Outbox::new(1 << 16);
    logon(&mut s, &mut out, 30, at(0));
    sent(&mut out);
    // The client skips 2..4.
    let hb5 = client_msg(b"0", 5, at(1), |_| {});
    deliver(&mut s, &mut out, &hb5, at(1));
    let msgs = sent(&mut out);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, "2");
    let hb6 = client_msg(b"0", 6, at(1), |_| {});
    deliver(&mut s, &mut out, &hb6, at(1));
    assert!(sent(&mut out).is_empty(), "no second ResendRequest");
    // The client gap-fills 2..6 and continues.
    let gf = client_msg(b"4", 2, at(2), |e| {
        e.bool(tags::POSS_DUP_FLAG, true)
            .timestamp(tags::ORIG_SENDING_TIME, at(1).unix_ns)
            .u64(tags::NEW_SEQ_NO, 7)
            .bool(tags::GAP_FILL_FLAG, true);
    });
    deliver(&mut s, &mut out, &gf, at(2));
    assert_eq!(s.next_in_seq(), 7);
    let hb7 = client_msg(b"0", 7, at(3), |_| {});
    deliver(&mut s, &mut out, &hb7, at(3));
    assert!(sent(&mut out).is_empty());
    assert_eq!(s.next_in_seq(), 8);
}

#[test]
fn refused_logons_change_nothing() {
    let (mut s, _dir) = session("refused", Some("secret"));
    let mut out = Outbox::new(1 << 16);
    let mut parser = Parser::new(64);
    let wrong = client_msg(b"A", 1, at(0), |e| {
        e.u64(tags::ENCRYPT_METHOD, 0)
            .u64(tags::HEART_BT_INT, 30)
            .str(tags::PASSWORD, b"secreT");
    });
    let msg = parser.parse(&wrong).expect("parses");
    assert_eq!(
        s.on_logon(&msg, at(0), &mut out),
        Err(LogonRefused::Password)
    );
    let stale = client_msg(b"A", 1, at(0), |e| {
        e.u64(tags::ENCRYPT_METHOD, 0)
            .u64(tags::HEART_BT_INT, 30)
            .str(tags::PASSWORD, b"secret");
    });
    let msg = parser.parse(&stale).expect("parses");
    assert_eq!(
        s.on_logon(&msg, at(500), &mut out),
        Err(LogonRefused::SendingTime)
    );
    assert!(out.is_empty(), "no reply to a refused logon");
    assert!(!s.is_logged_on());
    assert_eq!((s.next_in_seq(), s.next_out_seq()), (1, 1));
    let right = client_msg(b"A", 1, at(1), |e| {
        e.u64(tags::ENCRYPT_METHOD, 0)
            .u64(tags::HEART_BT_INT, 30)
            .str(tags::PASSWORD, b"secret");
    });
    let msg = parser.parse(&right).expect("parses");
    assert_eq!(s.on_logon(&msg, at(1), &mut out), Ok(()));
    assert_eq!((s.next_in_seq(), s.next_out_seq()), (2, 2));
}
