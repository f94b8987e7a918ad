//! The application layer: FIX order-entry messages in, typed requests to the order manager,
//! typed reports back out as ExecutionReport (8), OrderCancelReject (9),
//! OrderMassCancelReport (r) and BusinessMessageReject (j). MarketDataRequest (V) goes to the
//! market data module ([`crate::md`]), whose messages reach the sessions through [`SlotSink`].
//!
//! Prices and quantities arrive as decimal text and are converted here, at the edge, into the
//! engine's integer units with `rust_decimal`; a value finer than the instrument's precision,
//! off its tick or off its lot is rejected with a Text that says so, before anything reaches
//! the exchange. Every message we send uses only values defined by the FIX 4.4 dictionary.
//!
//! Self-trade prevention has no FIX 4.4 tag, so it travels in the user-defined tag
//! [`SELF_TRADE_PREVENTION`] (8000), with the values of [`stp_from_fix`]; without it the
//! engine's default (cancel the resting order) applies.

use crate::fix::{tags, Encoder, Message};
use crate::md::{MarketData, MdSink};
use crate::orders::GatewayReject;
use crate::orders::{
    CancelReject, CancelRequest, ClOrdId, ExecId, ExecReport, ExecType, MassCancelReport,
    MassCancelRequest, NewOrderRequest, OrdStatus, OrderManager, Reject, ReplaceRequest, Report,
};
use crate::server::{mark_dirty, SessionSlot};
use crate::session::Now;
use crate::throttle::ThrottleVerdict;
use crate::venue::Venue;
use ferrox_engine::config::decimal_to_units;
use ferrox_engine::{
    AccountId, InstrumentId, InstrumentSpec, OrderId, OrderType, PriceTicks, QtyLots, Side,
    StpMode, TimeInForce,
};
use rust_decimal::Decimal;
use std::str::FromStr;

/// User-defined tag carrying the self-trade prevention instruction of an order.
pub const SELF_TRADE_PREVENTION: u32 = 8000;

/// What the application layer works on; borrowed from the gateway agent for one call.
pub struct AppContext<'a> {
    pub(crate) sessions: &'a mut Vec<SessionSlot>,
    pub manager: &'a mut OrderManager,
    pub venue: &'a mut dyn Venue,
    pub instruments: &'a [InstrumentSpec],
    pub(crate) dirty: &'a mut Vec<usize>,
    pub md: &'a mut MarketData,
}

/// The gateway's sessions as the market data module's [`MdSink`]: W and X are numbered and
/// sent without being stored, Y is stored like other application messages.
pub(crate) struct SlotSink<'a> {
    pub sessions: &'a mut [SessionSlot],
    pub dirty: &'a mut Vec<usize>,
    pub t: Now,
}

impl MdSink for SlotSink<'_> {
    fn queued_bytes(&self, session: usize) -> usize {
        self.sessions
            .get(session)
            .map_or(usize::MAX, |s| s.outbox.bytes.len())
    }

    fn begin(&mut self, session: usize, msg_type: &[u8]) -> &mut Encoder {
        self.sessions[session].session.app_encoder(msg_type, self.t)
    }

    fn send(&mut self, session: usize, store: bool) -> bool {
        let Some(slot) = self.sessions.get_mut(session) else {
            return false;
        };
        let sent = if store {
            // A full store cannot keep the reject for resend, but the client still gets it.
            slot.session.send_app(self.t, &mut slot.outbox).is_ok()
                || slot.session.send_unstored(self.t, &mut slot.outbox)
        } else {
            slot.session.send_unstored(self.t, &mut slot.outbox)
        };
        mark_dirty(self.sessions, self.dirty, session);
        sent
    }
}

/// Maps the STP tag's value: `O` cancel the resting (oldest) order, `N` cancel the incoming
/// (newest), `B` both, `D` decrement and cancel, `0` off.
pub fn stp_from_fix(v: &[u8]) -> Option<StpMode> {
    match v {
        b"O" => Some(StpMode::CancelResting),
        b"N" => Some(StpMode::CancelAggressor),
        b"B" => Some(StpMode::CancelBoth),
        b"D" => Some(StpMode::DecrementCancel),
        b"0" => Some(StpMode::Off),
        _ => None,
    }
}

/// A request that could not be turned into engine units, with a readable reason.
struct BadField {
    reject: Reject,
    text: &'static str,
}

fn bad(reject: GatewayReject, text: &'static str) -> BadField {
    BadField {
        reject: Reject::Gateway(reject),
        text,
    }
}

fn instrument_of<'a>(
    instruments: &'a [InstrumentSpec],
    msg: &Message,
) -> Result<(InstrumentId, &'a InstrumentSpec), BadField> {
    let symbol = msg.get(tags::SYMBOL as i64).unwrap_or(b"");
    instruments
        .iter()
        .enumerate()
        .find(|(_, s)| s.symbol.as_bytes() == symbol)
        .map(|(i, s)| (InstrumentId(i as u32), s))
        .ok_or_else(|| bad(GatewayReject::InstrumentUnknown, "unknown symbol"))
}

fn decimal_field(msg: &Message, tag: u32) -> Result<Option<Decimal>, ()> {
    match msg.get(tag as i64) {
        None => Ok(None),
        Some(v) => {
            let text = std::str::from_utf8(v).map_err(|_| ())?;
            // FIX decimals have no exponent and no sign for prices and quantities we accept.
            if text.is_empty()
                || !text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return Err(());
            }
            Decimal::from_str(text).map(Some).map_err(|_| ())
        }
    }
}

fn price_units(spec: &InstrumentSpec, msg: &Message) -> Result<Option<PriceTicks>, BadField> {
    let Ok(value) = decimal_field(msg, tags::PRICE) else {
        return Err(bad(
            GatewayReject::InvalidPrice,
            "Price is not a decimal number",
        ));
    };
    let Some(value) = value else {
        return Ok(None);
    };
    if value <= Decimal::ZERO {
        return Err(bad(GatewayReject::InvalidPrice, "Price must be positive"));
    }
    let Some(units) = decimal_to_units(value, spec.price_decimals) else {
        return Err(bad(
            GatewayReject::InvalidPrice,
            "Price has more decimal places than the instrument allows",
        ));
    };
    let Ok(units) = i64::try_from(units) else {
        return Err(bad(GatewayReject::InvalidPrice, "Price is too large"));
    };
    if spec.tick_size.0 > 0 && units % spec.tick_size.0 != 0 {
        return Err(bad(
            GatewayReject::PriceOffTick,
            "Price is not a multiple of the instrument's tick size",
        ));
    }
    Ok(Some(PriceTicks(units)))
}

fn qty_units(spec: &InstrumentSpec, msg: &Message) -> Result<QtyLots, BadField> {
    let Ok(Some(value)) = decimal_field(msg, tags::ORDER_QTY) else {
        return Err(bad(
            GatewayReject::InvalidQty,
            "OrderQty is missing or not a decimal number",
        ));
    };
    if value <= Decimal::ZERO {
        return Err(bad(GatewayReject::InvalidQty, "OrderQty must be positive"));
    }
    let Some(units) = decimal_to_units(value, spec.qty_decimals) else {
        return Err(bad(
            GatewayReject::InvalidQty,
            "OrderQty has more decimal places than the instrument allows",
        ));
    };
    let Ok(units) = u64::try_from(units) else {
        return Err(bad(GatewayReject::InvalidQty, "OrderQty is too large"));
    };
    if spec.lot_size.0 > 0 && units % spec.lot_size.0 != 0 {
        return Err(bad(
            GatewayReject::QtyOffLot,
            "OrderQty is not a multiple of the instrument's lot size",
        ));
    }
    Ok(QtyLots(units))
}

fn side_of(msg: &Message) -> Result<Side, BadField> {
    match msg.get(tags::SIDE as i64) {
        Some(b"1") => Ok(Side::Buy),
        Some(b"2") => Ok(Side::Sell),
        _ => Err(bad(
            GatewayReject::Unsupported,
            "Side must be 1 (buy) or 2 (sell)",
        )),
    }
}

fn account_of(slot: &SessionSlot, msg: &Message) -> Result<AccountId, BadField> {
    let own = AccountId(slot.file.account);
    match msg.get_u64(tags::ACCOUNT as i64) {
        Ok(None) => Ok(own),
        Ok(Some(n)) if n == u64::from(own.0) => Ok(own),
        _ => Err(bad(
            GatewayReject::AccountNotPermitted,
            "Account is not permitted for this session",
        )),
    }
}

fn cl_ord_id(msg: &Message, tag: u32) -> Result<ClOrdId, BadField> {
    msg.get(tag as i64).and_then(ClOrdId::new).ok_or_else(|| {
        bad(
            GatewayReject::InvalidClOrdId,
            "ClOrdID must be 1 to 64 bytes",
        )
    })
}

fn order_id_of(msg: &Message) -> Option<OrderId> {
    msg.get_u64(tags::ORDER_ID as i64)
        .ok()
        .flatten()
        .map(OrderId)
}

fn new_order_request(
    ctx: &AppContext,
    s: usize,
    msg: &Message,
) -> Result<NewOrderRequest, BadField> {
    let slot = &ctx.sessions[s];
    let (instrument, spec) = instrument_of(ctx.instruments, msg)?;
    let side = side_of(msg)?;
    let account = account_of(slot, msg)?;
    let order_type = match msg.get(tags::ORD_TYPE as i64) {
        Some(b"1") => OrderType::Market,
        Some(b"2") => OrderType::Limit,
        _ => {
            return Err(bad(
                GatewayReject::Unsupported,
                "OrdType must be 1 (market) or 2 (limit)",
            ))
        }
    };
    let price = price_units(spec, msg)?;
    if order_type == OrderType::Limit && price.is_none() {
        return Err(bad(
            GatewayReject::InvalidPrice,
            "a limit order needs a Price",
        ));
    }
    let qty = qty_units(spec, msg)?;
    let mut expire_ts_ns = 0;
    let tif = match msg.get(tags::TIME_IN_FORCE as i64) {
        None | Some(b"0") => TimeInForce::Day,
        Some(b"1") => TimeInForce::Gtc,
        Some(b"3") => TimeInForce::Ioc,
        Some(b"4") => TimeInForce::Fok,
        Some(b"6") => {
            match msg.get_timestamp_ns(tags::EXPIRE_TIME as i64) {
                Ok(Some(ts)) => expire_ts_ns = ts,
                _ => {
                    return Err(bad(
                        GatewayReject::InvalidExpiry,
                        "TimeInForce 6 (GTD) needs ExpireTime (126) as a UTCTimestamp",
                    ))
                }
            }
            TimeInForce::Gtd
        }
        _ => {
            return Err(bad(
                GatewayReject::Unsupported,
                "TimeInForce must be 0, 1, 3, 4 or 6",
            ))
        }
    };
    // A market order never rests, so a day or GTC market order is an IOC one.
    let tif = if order_type == OrderType::Market && !matches!(tif, TimeInForce::Fok) {
        TimeInForce::Ioc
    } else {
        tif
    };
    let post_only = msg
        .get(tags::EXEC_INST as i64)
        .is_some_and(|v| v.split(|&b| b == b' ').any(|c| c == b"6"));
    let stp_mode = match msg.get(SELF_TRADE_PREVENTION as i64) {
        None => StpMode::CancelResting,
        Some(v) => stp_from_fix(v).ok_or_else(|| {
            bad(
                GatewayReject::Unsupported,
                "self-trade prevention (8000) must be O, N, B, D or 0",
            )
        })?,
    };
    Ok(NewOrderRequest {
        session: slot.id,
        cl_ord_id: cl_ord_id(msg, tags::CL_ORD_ID)?,
        account,
        instrument,
        side,
        order_type,
        price: if order_type == OrderType::Market {
            None
        } else {
            price
        },
        qty,
        tif,
        expire_ts_ns,
        post_only,
        stp_mode,
    })
}

/// An application message delivered in sequence by session `s`.
pub fn on_message(ctx: &mut AppContext, s: usize, msg: &Message, t: Now) {
    let msg_type = msg.msg_type();
    match ctx.sessions[s].throttle.check(t.mono_ns) {
        ThrottleVerdict::Pass => {}
        ThrottleVerdict::Reject => {
            return reject_request(
                ctx,
                s,
                msg,
                Reject::Gateway(GatewayReject::ThrottleExceeded),
                "message rate above the session's throttle",
                t,
            );
        }
        ThrottleVerdict::Logout => {
            let slot = &mut ctx.sessions[s];
            slot.session.initiate_logout(
                b"message rate far above the throttle",
                t,
                &mut slot.outbox,
            );
            mark_dirty(ctx.sessions, ctx.dirty, s);
            return;
        }
    }
    match msg_type {
        b"D" => new_order(ctx, s, msg, t),
        b"F" => cancel(ctx, s, msg, t),
        b"G" => replace(ctx, s, msg, t),
        b"H" => status(ctx, s, msg, t),
        b"q" => mass_cancel(ctx, s, msg, t),
        b"V" => {
            let mut sink = SlotSink {
                sessions: ctx.sessions,
                dirty: ctx.dirty,
                t,
            };
            ctx.md.on_request(s, msg, &mut sink);
        }
        _ => {}
    }
}

/// Records the ClOrdID for the day; false (and a reject sent) if it was used before.
fn claim_cl_ord_id(ctx: &mut AppContext, s: usize, msg: &Message, t: Now) -> bool {
    let id = msg.get(tags::CL_ORD_ID as i64).unwrap_or(b"");
    let slot = &mut ctx.sessions[s];
    match slot.session.store_mut().insert_cl_ord_id(id) {
        Ok(true) => true,
        Ok(false) => {
            reject_request(
                ctx,
                s,
                msg,
                Reject::Gateway(GatewayReject::DuplicateClOrdId),
                "ClOrdID already used today by this session",
                t,
            );
            false
        }
        Err(_) => {
            reject_request(
                ctx,
                s,
                msg,
                Reject::Gateway(GatewayReject::ClOrdIdTableFull),
                "the session's ClOrdID table for today is full",
                t,
            );
            false
        }
    }
}

fn new_order(ctx: &mut AppContext, s: usize, msg: &Message, t: Now) {
    if cl_ord_id(msg, tags::CL_ORD_ID).is_err() {
        return reject_request(
            ctx,
            s,
            msg,
            Reject::Gateway(GatewayReject::InvalidClOrdId),
            "ClOrdID must be 1 to 64 bytes",
            t,
        );
    }
    if !claim_cl_ord_id(ctx, s, msg, t) {
        return;
    }
    let req = match new_order_request(ctx, s, msg) {
        Ok(r) => r,
        Err(b) => return reject_request(ctx, s, msg, b.reject, b.text, t),
    };
    let producer_ref = ctx.venue.next_ref();
    let result = ctx.manager.new_order(&req, producer_ref, t.unix_ns);
    submit(ctx, s, msg, t, producer_ref, result);
}

fn cancel(ctx: &mut AppContext, s: usize, msg: &Message, t: Now) {
    let slot = &ctx.sessions[s];
    let parsed = (|| {
        let account = account_of(slot, msg)?;
        Ok::<_, BadField>(CancelRequest {
            session: slot.id,
            cl_ord_id: cl_ord_id(msg, tags::CL_ORD_ID)?,
            orig_cl_ord_id: cl_ord_id(msg, tags::ORIG_CL_ORD_ID)?,
            order_id: order_id_of(msg),
            account,
        })
    })();
    let req = match parsed {
        Ok(r) => r,
        Err(b) => return reject_request(ctx, s, msg, b.reject, b.text, t),
    };
    if !claim_cl_ord_id(ctx, s, msg, t) {
        return;
    }
    let producer_ref = ctx.venue.next_ref();
    let result = ctx.manager.cancel(&req, producer_ref, t.unix_ns);
    submit(ctx, s, msg, t, producer_ref, result);
}

fn replace(ctx: &mut AppContext, s: usize, msg: &Message, t: Now) {
    let slot = &ctx.sessions[s];
    let parsed = (|| {
        let (_, spec) = instrument_of(ctx.instruments, msg)?;
        let account = account_of(slot, msg)?;
        Ok::<_, BadField>(ReplaceRequest {
            session: slot.id,
            cl_ord_id: cl_ord_id(msg, tags::CL_ORD_ID)?,
            orig_cl_ord_id: cl_ord_id(msg, tags::ORIG_CL_ORD_ID)?,
            order_id: order_id_of(msg),
            account,
            price: price_units(spec, msg)?,
            qty: qty_units(spec, msg)?,
        })
    })();
    let req = match parsed {
        Ok(r) => r,
        Err(b) => return reject_request(ctx, s, msg, b.reject, b.text, t),
    };
    if !claim_cl_ord_id(ctx, s, msg, t) {
        return;
    }
    let producer_ref = ctx.venue.next_ref();
    let result = ctx.manager.replace(&req, producer_ref, t.unix_ns);
    submit(ctx, s, msg, t, producer_ref, result);
}

fn status(ctx: &mut AppContext, s: usize, msg: &Message, t: Now) {
    let id = ctx.sessions[s].id;
    let cl = msg.get(tags::CL_ORD_ID as i64).and_then(ClOrdId::new);
    let report = ctx.manager.status(id, cl.as_ref(), order_id_of(msg));
    match report {
        Some(mut er) => {
            er.transact_ts_ns = t.unix_ns;
            send_report(
                ctx.sessions,
                ctx.dirty,
                ctx.instruments,
                &Report::Exec(er),
                t,
            );
        }
        None => reject_request(
            ctx,
            s,
            msg,
            Reject::Gateway(GatewayReject::UnknownOrder),
            "unknown order",
            t,
        ),
    }
}

fn mass_cancel(ctx: &mut AppContext, s: usize, msg: &Message, t: Now) {
    let slot = &ctx.sessions[s];
    let request_type = msg
        .get(tags::MASS_CANCEL_REQUEST_TYPE as i64)
        .unwrap_or(b"");
    let parsed = (|| {
        let instrument = match request_type {
            b"1" => Some(instrument_of(ctx.instruments, msg)?.0),
            b"7" => None,
            _ => {
                return Err(bad(
                    GatewayReject::Unsupported,
                    "MassCancelRequestType must be 1 (by symbol) or 7 (all orders)",
                ))
            }
        };
        Ok::<_, BadField>(MassCancelRequest {
            session: slot.id,
            cl_ord_id: cl_ord_id(msg, tags::CL_ORD_ID)?,
            account: account_of(slot, msg)?,
            instrument,
            request_type: request_type.first().copied().unwrap_or(b'0'),
        })
    })();
    let req = match parsed {
        Ok(r) => r,
        Err(b) => return reject_request(ctx, s, msg, b.reject, b.text, t),
    };
    let producer_ref = ctx.venue.next_ref();
    let result = ctx.manager.mass_cancel(&req, producer_ref, t.unix_ns);
    submit(ctx, s, msg, t, producer_ref, result);
}

/// Publishes the command the order manager accepted under `producer_ref`, or answers the
/// request with the manager's refusal; a full ring is a reject the client can retry.
fn submit(
    ctx: &mut AppContext,
    s: usize,
    msg: &Message,
    t: Now,
    producer_ref: u64,
    result: Result<ferrox_engine::Command, Reject>,
) {
    match result {
        Ok(command) => {
            if !ctx.venue.try_send(&command) {
                ctx.manager.abort(producer_ref);
                reject_request(
                    ctx,
                    s,
                    msg,
                    Reject::Gateway(GatewayReject::ExchangeUnavailable),
                    "the exchange is not accepting requests (busy or down); retry",
                    t,
                );
            }
        }
        Err(reject) => {
            // The manager's text names the values involved ("order quantity 500 above the
            // account maximum 100"); copied to the stack, as the reject borrows the context.
            let text = crate::risk::Text::from_str_truncated(ctx.manager.reject_text());
            reject_request(ctx, s, msg, reject, text.as_str(), t);
        }
    }
}

/// Answers a request refused before it reached the exchange, in the message type FIX expects
/// for that request.
fn reject_request(
    ctx: &mut AppContext,
    s: usize,
    msg: &Message,
    reject: Reject,
    text: &str,
    t: Now,
) {
    let slot = &mut ctx.sessions[s];
    let seq = slot.session.next_out_seq();
    let day = slot.session.store().trading_day();
    let cl = msg.get(tags::CL_ORD_ID as i64).unwrap_or(b"NONE");
    let orig = msg.get(tags::ORIG_CL_ORD_ID as i64).unwrap_or(b"NONE");
    let order_id = msg.get(tags::ORDER_ID as i64).unwrap_or(b"NONE");
    let e = match msg.msg_type() {
        b"D" | b"H" => {
            let e = slot.session.app_encoder(b"8", t);
            e.str(
                tags::ORDER_ID,
                if msg.msg_type() == b"H" {
                    order_id
                } else {
                    b"NONE"
                },
            )
            .str(tags::CL_ORD_ID, cl);
            exec_id_gateway(e, day, s, seq);
            e.char(
                tags::EXEC_TYPE,
                if msg.msg_type() == b"H" { b'I' } else { b'8' },
            )
            .char(tags::ORD_STATUS, b'8');
            if let Some(a) = msg.get(tags::ACCOUNT as i64) {
                e.str(tags::ACCOUNT, a);
            }
            e.str(
                tags::SYMBOL,
                msg.get(tags::SYMBOL as i64).unwrap_or(b"NONE"),
            )
            .char(
                tags::SIDE,
                msg.get_char(tags::SIDE as i64)
                    .ok()
                    .flatten()
                    .filter(|c| matches!(c, b'1'..=b'9' | b'A'..=b'G'))
                    .unwrap_or(b'1'),
            );
            if let Some(q) = msg.get(tags::ORDER_QTY as i64).filter(|v| is_decimal(v)) {
                e.str(tags::ORDER_QTY, q);
            }
            e.u64(tags::LEAVES_QTY, 0)
                .u64(tags::CUM_QTY, 0)
                .u64(tags::AVG_PX, 0)
                .timestamp(tags::TRANSACT_TIME, t.unix_ns);
            if msg.msg_type() == b"D" {
                e.u64(tags::ORD_REJ_REASON, u64::from(reject.fix_ord_rej_reason()));
            }
            e.str(tags::TEXT, text.as_bytes());
            e
        }
        b"F" | b"G" => {
            let e = slot.session.app_encoder(b"9", t);
            e.str(tags::ORDER_ID, order_id)
                .str(tags::CL_ORD_ID, cl)
                .str(tags::ORIG_CL_ORD_ID, orig)
                .char(tags::ORD_STATUS, b'8')
                .char(
                    tags::CXL_REJ_RESPONSE_TO,
                    if msg.msg_type() == b"F" { b'1' } else { b'2' },
                )
                .u64(tags::CXL_REJ_REASON, u64::from(reject.fix_cxl_rej_reason()))
                .timestamp(tags::TRANSACT_TIME, t.unix_ns)
                .str(tags::TEXT, text.as_bytes());
            e
        }
        b"q" => {
            let e = slot.session.app_encoder(b"r", t);
            e.str(tags::CL_ORD_ID, cl).str(tags::ORDER_ID, b"NONE");
            let rt = msg
                .get_char(tags::MASS_CANCEL_REQUEST_TYPE as i64)
                .ok()
                .flatten()
                .filter(|c| matches!(c, b'1'..=b'7'))
                .unwrap_or(b'7');
            e.char(tags::MASS_CANCEL_REQUEST_TYPE, rt)
                .char(tags::MASS_CANCEL_RESPONSE, b'0')
                .u64(tags::MASS_CANCEL_REJECT_REASON, 99)
                .timestamp(tags::TRANSACT_TIME, t.unix_ns)
                .str(tags::TEXT, text.as_bytes());
            e
        }
        b"V" => {
            // A throttled MarketDataRequest: MDReqRejReason 2 (insufficient bandwidth) is the
            // FIX 4.4 value closest to "too many requests".
            let e = slot.session.app_encoder(b"Y", t);
            e.str(
                tags::MD_REQ_ID,
                msg.get(tags::MD_REQ_ID as i64).unwrap_or(b"NONE"),
            )
            .char(tags::MD_REQ_REJ_REASON, b'2')
            .str(tags::TEXT, text.as_bytes());
            e
        }
        _ => return,
    };
    let _ = e;
    let _ = slot.session.send_app(t, &mut slot.outbox);
    mark_dirty(ctx.sessions, ctx.dirty, s);
}

fn is_decimal(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|b| b.is_ascii_digit() || *b == b'.')
}

/// ExecIDs of gateway-generated reports: the trading day, the session and the message's own
/// MsgSeqNum, which together are unique and never collide with the engine's `seq-index` ids.
fn exec_id_gateway(e: &mut Encoder, day: u32, session: usize, seq: u64) {
    let mut buf = [0u8; 64];
    let n = {
        use std::io::Write as _;
        let mut w = &mut buf[..];
        let _ = write!(w, "G{day}-{session}-{seq}");
        64 - w.len()
    };
    e.str(tags::EXEC_ID, &buf[..n]);
}

fn exec_id_text(id: ExecId, buf: &mut [u8; 64]) -> usize {
    use std::io::Write as _;
    let mut w = &mut buf[..];
    let _ = match id {
        ExecId::Engine { seq, index } => write!(w, "{seq}-{index}"),
        ExecId::Gateway { counter } => write!(w, "G-{counter}"),
    };
    64 - w.len()
}

fn exec_type_char(t: ExecType) -> u8 {
    match t {
        ExecType::New => b'0',
        ExecType::Trade => b'F',
        ExecType::Canceled => b'4',
        ExecType::Replaced => b'5',
        ExecType::Rejected => b'8',
        ExecType::Expired => b'C',
        ExecType::Restated => b'D',
        ExecType::OrderStatus => b'I',
    }
}

fn ord_status_char(s: OrdStatus) -> u8 {
    match s {
        OrdStatus::New => b'0',
        OrdStatus::PartiallyFilled => b'1',
        OrdStatus::Filled => b'2',
        OrdStatus::Canceled => b'4',
        OrdStatus::Rejected => b'8',
        OrdStatus::Expired => b'C',
    }
}

fn side_char(s: Side) -> u8 {
    match s {
        Side::Buy => b'1',
        Side::Sell => b'2',
    }
}

fn tif_char(t: TimeInForce) -> u8 {
    match t {
        TimeInForce::Day => b'0',
        TimeInForce::Gtc => b'1',
        TimeInForce::Ioc => b'3',
        TimeInForce::Fok => b'4',
        TimeInForce::Gtd => b'6',
    }
}

fn order_id_field(e: &mut Encoder, id: Option<OrderId>) {
    match id {
        Some(id) => e.u64(tags::ORDER_ID, id.0),
        None => e.str(tags::ORDER_ID, b"NONE"),
    };
}

/// Encodes a report from the order manager and sends it on its session (stored for resend
/// when the session is not connected).
pub(crate) fn send_report(
    sessions: &mut [SessionSlot],
    dirty: &mut Vec<usize>,
    instruments: &[InstrumentSpec],
    report: &Report,
    t: Now,
) {
    let s = match report {
        Report::Exec(r) => r.session.0,
        Report::CancelReject(r) => r.session.0,
        Report::MassCancel(r) => r.session.0,
    } as usize;
    let Some(slot) = sessions.get_mut(s) else {
        return;
    };
    match report {
        Report::Exec(r) => encode_exec(slot, instruments, r, t),
        Report::CancelReject(r) => encode_cancel_reject(slot, r, t),
        Report::MassCancel(r) => encode_mass_cancel(slot, r, t),
    }
    let _ = slot.session.send_app(t, &mut slot.outbox);
    mark_dirty(sessions, dirty, s);
}

fn encode_exec(slot: &mut SessionSlot, instruments: &[InstrumentSpec], r: &ExecReport, t: Now) {
    let spec = instruments.get(r.instrument.0 as usize);
    let (pd, qd) = spec.map_or((0, 0), |s| (s.price_decimals, s.qty_decimals));
    let symbol = spec.map_or("NONE", |s| s.symbol.as_str());
    let e = slot.session.app_encoder(b"8", t);
    order_id_field(e, r.order_id);
    e.str(tags::CL_ORD_ID, r.cl_ord_id.as_bytes());
    if let Some(orig) = &r.orig_cl_ord_id {
        e.str(tags::ORIG_CL_ORD_ID, orig.as_bytes());
    }
    let mut buf = [0u8; 64];
    let n = exec_id_text(r.exec_id, &mut buf);
    e.str(tags::EXEC_ID, &buf[..n])
        .char(tags::EXEC_TYPE, exec_type_char(r.exec_type))
        .char(tags::ORD_STATUS, ord_status_char(r.ord_status))
        .u64(tags::ACCOUNT, u64::from(r.account.0))
        .str(tags::SYMBOL, symbol.as_bytes())
        .char(tags::SIDE, side_char(r.side))
        .decimal(tags::ORDER_QTY, i128::from(r.order_qty.0), qd)
        .char(
            tags::ORD_TYPE,
            if r.order_type == OrderType::Market {
                b'1'
            } else {
                b'2'
            },
        );
    if let Some(p) = r.price {
        if r.order_type == OrderType::Limit {
            e.decimal(tags::PRICE, i128::from(p.0), pd);
        }
    }
    e.char(tags::TIME_IN_FORCE, tif_char(r.tif));
    if r.tif == TimeInForce::Gtd && r.expire_ts_ns > 0 {
        e.timestamp(tags::EXPIRE_TIME, r.expire_ts_ns);
    }
    if let (Some(px), Some(qty)) = (r.last_px, r.last_qty) {
        e.decimal(tags::LAST_PX, i128::from(px.0), pd).decimal(
            tags::LAST_QTY,
            i128::from(qty.0),
            qd,
        );
    }
    e.decimal(tags::LEAVES_QTY, i128::from(r.leaves_qty.0), qd)
        .decimal(tags::CUM_QTY, i128::from(r.cum_qty.0), qd);
    // AvgPx to four more places than the price: the sum of price × quantity over the fills,
    // divided by the quantity filled, rounded toward zero.
    let avg = if r.cum_qty.0 == 0 {
        0
    } else {
        r.avg_px_num.saturating_mul(10_000) / i128::from(r.cum_qty.0)
    };
    e.decimal(tags::AVG_PX, avg, pd + 4)
        .timestamp(tags::TRANSACT_TIME, r.transact_ts_ns.max(1));
    if let Some(reject) = &r.reject {
        if r.exec_type == ExecType::Rejected {
            e.u64(tags::ORD_REJ_REASON, u64::from(reject.fix_ord_rej_reason()));
        }
        e.str(tags::TEXT, reject.text().as_bytes());
    } else if let Some(text) = r.text {
        e.str(tags::TEXT, text.as_bytes());
    }
    if let Some(reason) = r.restatement_reason {
        e.u64(tags::EXEC_RESTATEMENT_REASON, u64::from(reason));
    }
}

fn encode_cancel_reject(slot: &mut SessionSlot, r: &CancelReject, t: Now) {
    let e = slot.session.app_encoder(b"9", t);
    order_id_field(e, r.order_id);
    e.str(tags::CL_ORD_ID, r.cl_ord_id.as_bytes())
        .str(tags::ORIG_CL_ORD_ID, r.orig_cl_ord_id.as_bytes())
        .char(tags::ORD_STATUS, ord_status_char(r.ord_status))
        .u64(tags::CXL_REJ_RESPONSE_TO, r.response_to as u64)
        .u64(tags::CXL_REJ_REASON, u64::from(r.cxl_rej_reason))
        .timestamp(tags::TRANSACT_TIME, r.transact_ts_ns.max(1))
        .str(tags::TEXT, r.reject.text().as_bytes());
}

fn encode_mass_cancel(slot: &mut SessionSlot, r: &MassCancelReport, t: Now) {
    let e = slot.session.app_encoder(b"r", t);
    e.str(tags::CL_ORD_ID, r.cl_ord_id.as_bytes())
        .str(tags::ORDER_ID, b"NONE")
        .char(tags::MASS_CANCEL_REQUEST_TYPE, r.request_type)
        .char(tags::MASS_CANCEL_RESPONSE, r.response);
    if let Some(reason) = r.reject_reason {
        e.u64(tags::MASS_CANCEL_REJECT_REASON, u64::from(reason));
    }
    e.u64(tags::TOTAL_AFFECTED_ORDERS, u64::from(r.affected))
        .timestamp(tags::TRANSACT_TIME, r.transact_ts_ns.max(1));
}

/// Cancel-on-disconnect: cancels the session's live DAY orders after an involuntary
/// disconnect. The cancels go through the journal like any request; their reports wait in the
/// session's store for the next logon.
pub(crate) fn cancel_on_disconnect(ctx: &mut AppContext, s: usize, _t: Now) {
    let id = ctx.sessions[s].id;
    let mut targets: Vec<(OrderId, AccountId)> = Vec::new();
    ctx.manager
        .cancel_on_disconnect(id, |order, account| targets.push((order, account)));
    for (order_id, account) in targets {
        let command = ferrox_engine::Command::Cancel(ferrox_engine::Cancel {
            order_id,
            account,
            client_order_id: ferrox_engine::ClientOrderId(0),
        });
        let producer_ref = ctx.venue.next_ref();
        if ctx.manager.register_operator(producer_ref).is_err() {
            break;
        }
        // A full ring leaves the order live; the engine's own DAY expiry still removes it at
        // end of day.
        if !ctx.venue.try_send(&command) {
            ctx.manager.abort(producer_ref);
            break;
        }
    }
}

/// The operator kill switch for one account.
pub(crate) fn kill_switch(ctx: &mut AppContext, account: u32, on: bool, _t: Now) {
    if let Some(command) = ctx.manager.set_kill_switch(AccountId(account), on) {
        let producer_ref = ctx.venue.next_ref();
        let registered = ctx.manager.register_operator(producer_ref).is_ok();
        if !ctx.venue.try_send(&command) && registered {
            ctx.manager.abort(producer_ref);
        }
    }
}

/// Rebuilds the order manager's live orders from the execution reports in the session
/// stores, after a restart: the orders still resting in the engine keep their ClOrdIDs,
/// cumulative quantities and average prices, so their later fills are reported and they can
/// be cancelled or replaced by ClOrdID. Returns (orders restored, orders that did not fit).
///
/// The reports are the gateway's own record of what it told each client; an event the engine
/// applied after the last stored report (a crash in between) is not in it, and the engine's
/// answer to a later request about such an order corrects the picture (e.g. "unknown order"
/// for one that had filled).
pub(crate) fn restore_orders(
    sessions: &[SessionSlot],
    manager: &mut OrderManager,
    instruments: &[InstrumentSpec],
) -> (usize, usize) {
    use std::collections::BTreeMap;
    let mut live: BTreeMap<u64, crate::orders::RestoredOrder> = BTreeMap::new();
    let mut parser = crate::fix::Parser::new(512);
    for slot in sessions {
        let store = slot.session.store();
        let _ = store.for_each_outbound(1, u64::MAX, |_, _, is_admin, bytes| {
            if is_admin {
                return;
            }
            let Ok(m) = parser.parse(bytes) else { return };
            if m.msg_type() != b"8" {
                return;
            }
            let Ok(Some(order_id)) = m.get_u64(tags::ORDER_ID as i64) else {
                return;
            };
            let status = m.get(tags::ORD_STATUS as i64).unwrap_or(b"");
            if matches!(status, b"2" | b"4" | b"8" | b"C") {
                live.remove(&order_id);
                return;
            }
            let Ok((instrument, spec)) = instrument_of(instruments, &m) else {
                return;
            };
            let units = |tag: u32, decimals: u32| -> Option<i128> {
                decimal_field(&m, tag)
                    .ok()
                    .flatten()
                    .and_then(|d| decimal_to_units(d, decimals))
            };
            let (pd, qd) = (spec.price_decimals, spec.qty_decimals);
            let (Some(order_qty), Some(cum), Some(leaves)) = (
                units(tags::ORDER_QTY, qd),
                units(tags::CUM_QTY, qd),
                units(tags::LEAVES_QTY, qd),
            ) else {
                return;
            };
            let (Ok(order_qty), Ok(cum), Ok(leaves)) = (
                u64::try_from(order_qty),
                u64::try_from(cum),
                u64::try_from(leaves),
            ) else {
                return;
            };
            let Some(cl) = m.get(tags::CL_ORD_ID as i64).and_then(ClOrdId::new) else {
                return;
            };
            let fill = match (units(tags::LAST_PX, pd), units(tags::LAST_QTY, qd)) {
                (Some(px), Some(qty)) if m.get(tags::EXEC_TYPE as i64) == Some(b"F") => {
                    px.saturating_mul(qty)
                }
                _ => 0,
            };
            let previous = live.get(&order_id).map_or(0, |o| o.avg_px_num);
            let side = match m.get(tags::SIDE as i64) {
                Some(b"2") => Side::Sell,
                _ => Side::Buy,
            };
            let tif = match m.get(tags::TIME_IN_FORCE as i64) {
                Some(b"0") => TimeInForce::Day,
                Some(b"3") => TimeInForce::Ioc,
                Some(b"4") => TimeInForce::Fok,
                Some(b"6") => TimeInForce::Gtd,
                _ => TimeInForce::Gtc,
            };
            let price = units(tags::PRICE, pd)
                .and_then(|p| i64::try_from(p).ok())
                .unwrap_or(0);
            live.insert(
                order_id,
                crate::orders::RestoredOrder {
                    session: slot.id,
                    cl_ord_id: cl,
                    order_id: OrderId(order_id),
                    account: AccountId(
                        m.get_u64(tags::ACCOUNT as i64)
                            .ok()
                            .flatten()
                            .and_then(|a| u32::try_from(a).ok())
                            .unwrap_or(slot.file.account),
                    ),
                    instrument,
                    side,
                    order_type: if m.get(tags::ORD_TYPE as i64) == Some(b"1") {
                        OrderType::Market
                    } else {
                        OrderType::Limit
                    },
                    tif,
                    expire_ts_ns: m
                        .get_timestamp_ns(tags::EXPIRE_TIME as i64)
                        .ok()
                        .flatten()
                        .unwrap_or(0),
                    price: PriceTicks(price),
                    order_qty: QtyLots(order_qty),
                    cum_qty: QtyLots(cum),
                    leaves_qty: QtyLots(leaves),
                    avg_px_num: previous.saturating_add(fill),
                },
            );
        });
    }
    let (mut restored, mut skipped) = (0, 0);
    for order in live.values() {
        // Market, IOC and FOK orders never rest; a report that left one "open" was cut off.
        if order.order_type == OrderType::Market
            || matches!(order.tif, TimeInForce::Ioc | TimeInForce::Fok)
            || order.leaves_qty.0 == 0
        {
            continue;
        }
        match manager.restore_live_order(order) {
            Ok(()) => restored += 1,
            Err(_) => skipped += 1,
        }
    }
    (restored, skipped)
}
