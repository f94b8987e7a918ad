//! Read-only copies of book state for tools, tests and replay. They allocate, so they are for
//! inspection, never for the hot path.

use crate::{Engine, Order, NIL};
use ferrox_protocol::{
    AccountId, ClientOrderId, InstrumentId, InstrumentStatus, OrderId, PriceTicks, QtyLots, Side,
    StpGroup, StpMode, TimeInForce,
};

/// One live order as the engine holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub account: AccountId,
    pub client_order_id: ClientOrderId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_open: QtyLots,
    pub qty_filled: QtyLots,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub stp_mode: StpMode,
    pub stp_group: StpGroup,
}

/// A price level with its orders in time priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelSnapshot {
    pub price: PriceTicks,
    pub qty_total: QtyLots,
    pub orders: Vec<OrderView>,
}

/// The full (L3) book of one instrument; both sides list the best level first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookSnapshot {
    pub instrument: InstrumentId,
    pub status: InstrumentStatus,
    /// `None` before the instrument's first trade.
    pub last_trade_price: Option<PriceTicks>,
    pub bids: Vec<LevelSnapshot>,
    pub asks: Vec<LevelSnapshot>,
}

impl Engine {
    pub(crate) fn order_view(&self, slot: u32) -> OrderView {
        let o: &Order = &self.orders[slot as usize];
        OrderView {
            order_id: OrderId(o.id),
            instrument: InstrumentId(self.levels[o.level as usize].instrument),
            account: AccountId(o.account),
            client_order_id: ClientOrderId(o.client_order_id),
            side: o.side,
            price: PriceTicks(o.price),
            qty_open: QtyLots(o.qty_open),
            qty_filled: QtyLots(o.qty_filled),
            tif: o.tif,
            post_only: o.post_only(),
            stp_mode: o.stp_mode(),
            stp_group: StpGroup(o.stp_group),
        }
    }

    /// A live order by id.
    pub fn order(&self, order_id: OrderId) -> Option<OrderView> {
        let slot = self.index.get(&self.orders, order_id.0)?;
        Some(self.order_view(slot))
    }

    /// Levels of one side, best first, each with its orders in time priority.
    pub fn levels_of(&self, instrument: InstrumentId, side: Side) -> Vec<LevelSnapshot> {
        let Some(book) = self.books.get(instrument.0 as usize) else {
            return Vec::new();
        };
        book.side(side)
            .iter()
            .map(|(_, lvl)| {
                let level = &self.levels[lvl as usize];
                let mut orders = Vec::with_capacity(level.count as usize);
                let mut cur = level.head;
                while cur != NIL {
                    orders.push(self.order_view(cur));
                    cur = self.orders[cur as usize].next;
                }
                LevelSnapshot {
                    price: PriceTicks(level.price),
                    qty_total: QtyLots(level.qty_total),
                    orders,
                }
            })
            .collect()
    }

    /// The full book of `instrument`, or `None` if it does not exist.
    pub fn book(&self, instrument: InstrumentId) -> Option<BookSnapshot> {
        let book = self.books.get(instrument.0 as usize)?;
        Some(BookSnapshot {
            instrument,
            status: book.status,
            last_trade_price: (book.last_trade > 0).then_some(PriceTicks(book.last_trade)),
            bids: self.levels_of(instrument, Side::Buy),
            asks: self.levels_of(instrument, Side::Sell),
        })
    }

    /// Live GTD orders as `(expire_ts_ns, order_id)`, sorted.
    pub fn gtd_orders(&self) -> Vec<(u64, OrderId)> {
        let mut live: Vec<(u64, OrderId)> = self
            .gtd
            .iter()
            .map(|r| r.0)
            .filter(|(_, id)| self.index.get(&self.orders, *id).is_some())
            .map(|(ts, id)| (ts, OrderId(id)))
            .collect();
        live.sort_unstable();
        live
    }
}
