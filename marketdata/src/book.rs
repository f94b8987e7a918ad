//! `Books`: the market-data side's mirror of every instrument's order book.
//!
//! The publisher and every subscriber rebuild the exchange's books from public feed messages
//! only (`A` add, `D` delete, `X` reduce, `U` modify, `E` execute; see `marketdata/FEED.md`),
//! never from the engine's state. Fed the same messages, the mirror holds the engine's book order
//! for order and in time priority, so [`Books::hash`] equals the engine's `book_hash` (both are
//! [`BookHasher`] over the same sequence).
//!
//! # Layout
//!
//! - **Orders** of all instruments live in one slab, `Vec<Node>`, with a free list threaded
//!   through the unused nodes. The orders of a price level form an intrusive doubly linked list
//!   over slab indices (`u32`, with `NIL` = `u32::MAX` for "none"): the head is the oldest
//!   order, so walking from the head is time priority, and appending at the tail and unlinking
//!   anywhere are O(1).
//! - **The id index** maps an order id to its slab index: a `std` `HashMap` with a small, fixed,
//!   multiply-based hasher (`IdHasher`). It has no random seed, which is harmless because the
//!   map is never iterated (nothing observable depends on its layout), and it hashes one `u64`
//!   in a multiply and a shift instead of running SipHash.
//! - **Levels** of each side of each instrument live in a `Vec<Level>` sorted so that the best
//!   level is at the *end*: bids ascending by price, asks descending. A level is found by binary
//!   search (with a shortcut for the best level, where most traffic is). Levels are created and
//!   removed mostly near the top of the book, which is the end of the vector, so the elements
//!   `Vec::insert` and `Vec::remove` have to move are few.
//!
//! # Cost per operation
//!
//! With `L` the number of levels on the order's side and `k` the number of levels better than
//! the one touched:
//!
//! - `add`, `delete`, `reduce`, `execute`, `modify`: one hash lookup (expected O(1)), one binary
//!   search (O(log L)), O(1) list surgery, and, only when a level appears or disappears, a move
//!   of the `k` better levels (a `memmove` of `k` 32-byte entries; `k` is 0 at the top of book).
//! - `best`, `order`, `order_count`, `level_count`: O(1). `level`: O(log L). `depth`: O(levels
//!   written). `for_each_order` and `hash`: O(orders of the instrument). `clear`: O(orders of the
//!   instrument).
//!
//! # No allocation in steady state
//!
//! [`Books::new`] reserves everything up front: `orders_capacity` slab nodes, `levels_capacity`
//! levels per side per instrument, and an id index with room for `2 × orders_capacity` ids.
//! After that:
//!
//! - nodes are recycled through the free list, so the slab only grows (by `Vec::push`) when more
//!   than `orders_capacity` orders are live at once;
//! - a level vector only grows when a side holds more than `levels_capacity` levels; removing a
//!   level never releases memory, so the capacity stays for the next one;
//! - the id index is a SwissTable, whose removals can leave tombstones that use up the room left
//!   for insertions. When that room runs out, the table rehashes *in place* (no allocation; one
//!   pass over the table every so often, amortised O(1) per insertion) if at most half its
//!   capacity is live, and otherwise allocates a larger table. Reserving twice
//!   `orders_capacity` keeps every in-range workload on the in-place path, so the index never
//!   allocates while at most `orders_capacity` orders are live. (Reserving only
//!   `orders_capacity` is not enough: a churn of adds and deletes that keeps 1,000 orders live
//!   doubles a table reserved for 1,000 once its tombstones run out.)
//! - `depth` writes into the caller's slice and `for_each_order` / `hash` walk the lists in
//!   place; no query allocates.
//!
//! Exceeding a capacity makes the structure grow; nothing ever fails or panics for lack of room
//! (short of the `u32` slab index running out at 2^32 - 1 live orders, which is an error).
//!
//! # Errors
//!
//! Every method checks all of its input before it changes anything, so an `Err` always leaves
//! the books exactly as they were. The checks run in a fixed order (documented on each method),
//! so the same bad message always gives the same error.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ferrox_protocol::{BookHasher, InstrumentId, OrderId, PriceTicks, QtyLots, Side};

/// "No node" in the intrusive links and the free list.
const NIL: u32 = u32::MAX;

/// The most nodes the slab can hold: every `u32` except [`NIL`].
const MAX_NODES: usize = NIL as usize;

/// One price level's aggregate, as the feed's L2 view shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelView {
    pub price: PriceTicks,
    pub qty_total: QtyLots,
    pub order_count: u32,
}

/// One resting order, as the feed's L3 view shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderEntry {
    pub order_id: OrderId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: PriceTicks,
    pub qty_open: QtyLots,
}

/// Why a feed message could not be applied. The books are unchanged after any error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("unknown instrument {0}")]
    UnknownInstrument(InstrumentId),
    #[error("order {0} is already in the book")]
    DuplicateOrder(OrderId),
    #[error("order {0} is not in the book")]
    UnknownOrder(OrderId),
    /// `expected` is the instrument the caller (the message) named; `found` is the one the
    /// order rests in.
    #[error("order {order_id} rests in instrument {found}, but the message is for instrument {expected}")]
    WrongInstrument {
        order_id: OrderId,
        expected: InstrumentId,
        found: InstrumentId,
    },
    #[error("order {0}: a quantity of 0 lots")]
    ZeroQuantity(OrderId),
    #[error("order {order_id}: cannot take {reduce} lots off {open} open lots")]
    QtyUnderflow {
        order_id: OrderId,
        open: QtyLots,
        reduce: QtyLots,
    },
    #[error("order {order_id} rests at price {book}, but the message says {message}")]
    PriceMismatch {
        order_id: OrderId,
        book: PriceTicks,
        message: PriceTicks,
    },
    /// Adding `qty` lots to a level already holding `level_total` lots (not counting the order
    /// itself) would overflow the `u64` total.
    #[error("order {order_id}: {qty} lots would overflow its level's total of {level_total} lots")]
    QtyOverflow {
        order_id: OrderId,
        level_total: QtyLots,
        qty: QtyLots,
    },
    /// The slab is indexed by `u32`; 2^32 - 1 orders are live already.
    #[error("order {0}: the books already hold the most orders a u32 index can address")]
    TooManyOrders(OrderId),
}

/// One order: a slab node. In a free node only `next` means something (the next free node).
#[derive(Clone, Copy, Debug)]
struct Node {
    order_id: u64,
    price: i64,
    qty_open: u64,
    /// Towards the head of the level (older orders), or NIL.
    prev: u32,
    /// Towards the tail of the level (newer orders), or NIL; in a free node, the next free node.
    next: u32,
    instrument: u32,
    side: Side,
}

/// One price level: totals and the ends of its FIFO.
#[derive(Clone, Copy, Debug)]
struct Level {
    price: i64,
    qty_total: u64,
    count: u32,
    /// Oldest order.
    head: u32,
    /// Newest order.
    tail: u32,
}

impl Level {
    #[inline]
    fn view(&self) -> LevelView {
        LevelView {
            price: PriceTicks(self.price),
            qty_total: QtyLots(self.qty_total),
            order_count: self.count,
        }
    }
}

/// Both sides of one instrument.
struct Book {
    /// `[bids, asks]`, each sorted with the best level last.
    sides: [Vec<Level>; 2],
    orders: u32,
}

/// The index of a side in the per-side arrays of the book, the publisher and the subscriber.
#[inline(always)]
pub(crate) fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// Finds `price` in a side's levels (best last): `Ok(position)` if the level exists, else
/// `Err(position where it would be inserted)`.
#[inline]
fn search(levels: &[Level], side: Side, price: i64) -> Result<usize, usize> {
    // Most messages touch the best level; check it before searching.
    if let Some(best) = levels.last() {
        if best.price == price {
            return Ok(levels.len() - 1);
        }
    }
    match side {
        // Ascending: the highest bid is last.
        Side::Buy => levels.binary_search_by(|l| l.price.cmp(&price)),
        // Descending: the lowest ask is last.
        Side::Sell => levels.binary_search_by(|l| price.cmp(&l.price)),
    }
}

/// The id index's hasher: one multiply by an odd constant (Fibonacci hashing), whose high bits
/// are well mixed, then the high half folded into the low half so that the bucket index (taken
/// from the low bits) is well mixed too, even for ids that share their low bits. Fixed, so the
/// index behaves the same in every run; the index is never iterated, so that cannot leak out.
#[derive(Clone, Copy, Debug, Default)]
struct IdHasher(u64);

const ID_HASH_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; this general path exists because the trait needs it.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(ID_HASH_MULTIPLIER);
        }
    }

    #[inline]
    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(ID_HASH_MULTIPLIER);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

type IdIndex = HashMap<u64, u32, BuildHasherDefault<IdHasher>>;

/// The books of all instruments `0..instruments`. Orders of all instruments share one pool and
/// one id index, so an order id is unique across instruments.
pub struct Books {
    nodes: Vec<Node>,
    /// Head of the free list of nodes, or NIL.
    free: u32,
    index: IdIndex,
    /// The most entries the id index has had room for. Its `capacity()` dips while removals
    /// leave tombstones and recovers when it rehashes in place, so [`Books::memory_bytes`]
    /// reports this high-water mark instead, which moves only when the index really grows.
    index_room: usize,
    books: Vec<Book>,
}

impl Books {
    /// Preallocates room for `orders_capacity` orders and `levels_capacity` price levels per
    /// side per instrument, so that no operation allocates until those are exceeded (then it
    /// grows; it never fails or panics for lack of room). See the module documentation.
    pub fn new(instruments: usize, orders_capacity: usize, levels_capacity: usize) -> Books {
        let books = (0..instruments)
            .map(|_| Book {
                sides: [
                    Vec::with_capacity(levels_capacity),
                    Vec::with_capacity(levels_capacity),
                ],
                orders: 0,
            })
            .collect();
        // Twice the orders: see "No allocation in steady state" above.
        let index = IdIndex::with_capacity_and_hasher(
            orders_capacity.saturating_mul(2),
            BuildHasherDefault::default(),
        );
        Books {
            nodes: Vec::with_capacity(orders_capacity),
            free: NIL,
            index_room: index.capacity(),
            index,
            books,
        }
    }

    /// The number of instruments; valid ids are `0..instruments()`.
    pub fn instruments(&self) -> usize {
        self.books.len()
    }

    #[inline]
    fn book_index(&self, instrument: InstrumentId) -> Result<usize, BookError> {
        let b = instrument.0 as usize;
        if b < self.books.len() {
            Ok(b)
        } else {
            Err(BookError::UnknownInstrument(instrument))
        }
    }

    /// The slab index of live order `order_id` of `instrument`. Checks, in this order: the
    /// instrument exists, the order exists, the order rests in that instrument.
    #[inline]
    fn locate(&self, instrument: InstrumentId, order_id: OrderId) -> Result<u32, BookError> {
        self.book_index(instrument)?;
        let slot = *self
            .index
            .get(&order_id.0)
            .ok_or(BookError::UnknownOrder(order_id))?;
        let found = self.nodes[slot as usize].instrument;
        if found != instrument.0 {
            return Err(BookError::WrongInstrument {
                order_id,
                expected: instrument,
                found: InstrumentId(found),
            });
        }
        Ok(slot)
    }

    /// The position of an existing order's level in its side's vector.
    #[inline]
    fn level_of(&self, node: &Node) -> usize {
        let levels = &self.books[node.instrument as usize].sides[side_index(node.side)];
        match search(levels, node.side, node.price) {
            Ok(pos) => pos,
            Err(_) => panic!(
                "Invariant: order {} rests at a level that exists",
                node.order_id
            ),
        }
    }

    #[inline]
    fn entry(node: &Node) -> OrderEntry {
        OrderEntry {
            order_id: OrderId(node.order_id),
            instrument: InstrumentId(node.instrument),
            side: node.side,
            price: PriceTicks(node.price),
            qty_open: QtyLots(node.qty_open),
        }
    }

    /// The order joins the back of its price level (time priority).
    ///
    /// Checks, in this order: `UnknownInstrument`, `ZeroQuantity`, `DuplicateOrder` (ids are
    /// unique across all instruments), `QtyOverflow`, `TooManyOrders`.
    pub fn add(
        &mut self,
        instrument: InstrumentId,
        order_id: OrderId,
        side: Side,
        price: PriceTicks,
        qty: QtyLots,
    ) -> Result<(), BookError> {
        let b = self.book_index(instrument)?;
        if qty.0 == 0 {
            return Err(BookError::ZeroQuantity(order_id));
        }
        if self.index.contains_key(&order_id.0) {
            return Err(BookError::DuplicateOrder(order_id));
        }
        let levels = &self.books[b].sides[side_index(side)];
        if let Ok(pos) = search(levels, side, price.0) {
            let total = levels[pos].qty_total;
            if total.checked_add(qty.0).is_none() {
                return Err(BookError::QtyOverflow {
                    order_id,
                    level_total: QtyLots(total),
                    qty,
                });
            }
        }
        if self.free == NIL && self.nodes.len() >= MAX_NODES {
            return Err(BookError::TooManyOrders(order_id));
        }
        // Every check passed; from here on nothing fails.
        let node = Node {
            order_id: order_id.0,
            price: price.0,
            qty_open: qty.0,
            prev: NIL,
            next: NIL,
            instrument: instrument.0,
            side,
        };
        let slot = if self.free != NIL {
            let slot = self.free;
            self.free = self.nodes[slot as usize].next;
            self.nodes[slot as usize] = node;
            slot
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.link_back(slot);
        self.index.insert(order_id.0, slot);
        // Only an insertion can grow the index; right after growing, its capacity() is the new
        // size (a fresh table has no tombstones). Never taken in steady state.
        if self.index.capacity() > self.index_room {
            self.index_room = self.index.capacity();
        }
        self.books[b].orders += 1;
        Ok(())
    }

    /// Appends node `slot` (linked to nothing; its price, side, instrument and quantity set) at
    /// the back of its level, creating the level if needed. The caller checked the total fits.
    fn link_back(&mut self, slot: u32) {
        let node = self.nodes[slot as usize];
        let levels = &mut self.books[node.instrument as usize].sides[side_index(node.side)];
        let pos = match search(levels, node.side, node.price) {
            Ok(pos) => pos,
            Err(pos) => {
                levels.insert(
                    pos,
                    Level {
                        price: node.price,
                        qty_total: 0,
                        count: 0,
                        head: NIL,
                        tail: NIL,
                    },
                );
                pos
            }
        };
        let level = &mut levels[pos];
        let tail = level.tail;
        level.tail = slot;
        if tail == NIL {
            level.head = slot;
        } else {
            self.nodes[tail as usize].next = slot;
        }
        level.qty_total += node.qty_open;
        level.count += 1;
        let n = &mut self.nodes[slot as usize];
        n.prev = tail;
        n.next = NIL;
    }

    /// Takes node `slot` out of its level's FIFO and totals, removing the level if it empties.
    /// The node keeps its fields (minus links) and stays out of the free list.
    fn unlink(&mut self, slot: u32) {
        let node = self.nodes[slot as usize];
        let pos = self.level_of(&node);
        let levels = &mut self.books[node.instrument as usize].sides[side_index(node.side)];
        let level = &mut levels[pos];
        level.qty_total -= node.qty_open;
        level.count -= 1;
        if node.prev == NIL {
            level.head = node.next;
        } else {
            self.nodes[node.prev as usize].next = node.next;
        }
        if node.next == NIL {
            level.tail = node.prev;
        } else {
            self.nodes[node.next as usize].prev = node.prev;
        }
        if level.count == 0 {
            levels.remove(pos);
        }
        let n = &mut self.nodes[slot as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    /// Removes order `slot` from the book and the index and frees its node.
    fn remove(&mut self, slot: u32) -> OrderEntry {
        self.unlink(slot);
        let node = self.nodes[slot as usize];
        self.index.remove(&node.order_id);
        self.books[node.instrument as usize].orders -= 1;
        self.nodes[slot as usize].next = self.free;
        self.free = slot;
        Self::entry(&node)
    }

    /// Removes the order; returns what it was.
    ///
    /// Checks: `UnknownInstrument`, `UnknownOrder`, `WrongInstrument`.
    pub fn delete(
        &mut self,
        instrument: InstrumentId,
        order_id: OrderId,
    ) -> Result<OrderEntry, BookError> {
        let slot = self.locate(instrument, order_id)?;
        Ok(self.remove(slot))
    }

    /// Takes `qty` off order `slot` in place, or removes it when nothing is left.
    fn take(&mut self, slot: u32, qty: QtyLots) -> Result<QtyLots, BookError> {
        let node = self.nodes[slot as usize];
        let order_id = OrderId(node.order_id);
        if qty.0 == 0 {
            return Err(BookError::ZeroQuantity(order_id));
        }
        if qty.0 > node.qty_open {
            return Err(BookError::QtyUnderflow {
                order_id,
                open: QtyLots(node.qty_open),
                reduce: qty,
            });
        }
        if qty.0 == node.qty_open {
            self.remove(slot);
            return Ok(QtyLots(0));
        }
        let pos = self.level_of(&node);
        self.books[node.instrument as usize].sides[side_index(node.side)][pos].qty_total -= qty.0;
        let open = node.qty_open - qty.0;
        self.nodes[slot as usize].qty_open = open;
        Ok(QtyLots(open))
    }

    /// Reduces the open quantity in place (keeps priority); reaching 0 removes the order.
    /// Returns the open quantity after.
    ///
    /// Checks: `UnknownInstrument`, `UnknownOrder`, `WrongInstrument`, `ZeroQuantity`,
    /// `QtyUnderflow`.
    pub fn reduce(
        &mut self,
        instrument: InstrumentId,
        order_id: OrderId,
        qty: QtyLots,
    ) -> Result<QtyLots, BookError> {
        let slot = self.locate(instrument, order_id)?;
        self.take(slot, qty)
    }

    /// An execution against a resting order: like [`Books::reduce`], and checks `price` equals
    /// the order's price. Returns the maker's open quantity after.
    ///
    /// Checks: `UnknownInstrument`, `UnknownOrder`, `WrongInstrument`, `PriceMismatch`,
    /// `ZeroQuantity`, `QtyUnderflow`.
    pub fn execute(
        &mut self,
        instrument: InstrumentId,
        order_id: OrderId,
        price: PriceTicks,
        qty: QtyLots,
    ) -> Result<QtyLots, BookError> {
        let slot = self.locate(instrument, order_id)?;
        let book_price = self.nodes[slot as usize].price;
        if book_price != price.0 {
            return Err(BookError::PriceMismatch {
                order_id,
                book: PriceTicks(book_price),
                message: price,
            });
        }
        self.take(slot, qty)
    }

    /// Sets price and open quantity. With `priority_kept` the price must equal the current one
    /// (else `PriceMismatch`) and the order keeps its place, whatever the new quantity; without,
    /// it moves to the back of the (possibly new) level, even at an unchanged price. A
    /// `qty_open` of 0 removes the order.
    ///
    /// Checks: `UnknownInstrument`, `UnknownOrder`, `WrongInstrument`, then with `priority_kept`
    /// `PriceMismatch`, then `QtyOverflow` (the new level total would not fit in a `u64`).
    pub fn modify(
        &mut self,
        instrument: InstrumentId,
        order_id: OrderId,
        price: PriceTicks,
        qty_open: QtyLots,
        priority_kept: bool,
    ) -> Result<(), BookError> {
        let slot = self.locate(instrument, order_id)?;
        let node = self.nodes[slot as usize];
        if priority_kept && node.price != price.0 {
            return Err(BookError::PriceMismatch {
                order_id,
                book: PriceTicks(node.price),
                message: price,
            });
        }
        if qty_open.0 == 0 {
            self.remove(slot);
            return Ok(());
        }
        // The total the order's (new) level holds without it, which must take qty_open.
        let levels = &self.books[node.instrument as usize].sides[side_index(node.side)];
        let others = if node.price == price.0 {
            levels[self.level_of(&node)].qty_total - node.qty_open
        } else {
            match search(levels, node.side, price.0) {
                Ok(pos) => levels[pos].qty_total,
                Err(_) => 0,
            }
        };
        if others.checked_add(qty_open.0).is_none() {
            return Err(BookError::QtyOverflow {
                order_id,
                level_total: QtyLots(others),
                qty: qty_open,
            });
        }
        if priority_kept {
            let pos = self.level_of(&node);
            let level = &mut self.books[node.instrument as usize].sides[side_index(node.side)][pos];
            level.qty_total = others + qty_open.0;
            self.nodes[slot as usize].qty_open = qty_open.0;
        } else {
            // Out of the old level (which goes if it empties), then at the back of the new one.
            // The net number of levels does not grow when the price is unchanged, so this
            // cannot allocate then.
            self.unlink(slot);
            let n = &mut self.nodes[slot as usize];
            n.price = price.0;
            n.qty_open = qty_open.0;
            self.link_back(slot);
        }
        Ok(())
    }

    /// The live order `order_id`, in whichever instrument it rests.
    pub fn order(&self, order_id: OrderId) -> Option<OrderEntry> {
        let slot = *self.index.get(&order_id.0)?;
        Some(Self::entry(&self.nodes[slot as usize]))
    }

    /// Removes every order of one instrument (to load a snapshot over it). An unknown
    /// instrument has nothing to clear. O(orders of the instrument); keeps every capacity.
    pub fn clear(&mut self, instrument: InstrumentId) {
        let Some(book) = self.books.get_mut(instrument.0 as usize) else {
            return;
        };
        for levels in &mut book.sides {
            for level in levels.iter() {
                let mut cur = level.head;
                while cur != NIL {
                    let node = &mut self.nodes[cur as usize];
                    let next = node.next;
                    self.index.remove(&node.order_id);
                    node.prev = NIL;
                    node.next = self.free;
                    self.free = cur;
                    cur = next;
                }
            }
            levels.clear();
        }
        book.orders = 0;
    }

    #[inline]
    fn levels(&self, instrument: InstrumentId, side: Side) -> &[Level] {
        match self.books.get(instrument.0 as usize) {
            Some(book) => &book.sides[side_index(side)],
            None => &[],
        }
    }

    /// The best level of one side, or `None` if the side is empty or the instrument unknown.
    pub fn best(&self, instrument: InstrumentId, side: Side) -> Option<LevelView> {
        self.levels(instrument, side).last().map(Level::view)
    }

    /// Writes up to `out.len()` levels, best first; returns how many. No allocation.
    pub fn depth(&self, instrument: InstrumentId, side: Side, out: &mut [LevelView]) -> usize {
        let levels = self.levels(instrument, side);
        let mut n = 0;
        for (slot, level) in out.iter_mut().zip(levels.iter().rev()) {
            *slot = level.view();
            n += 1;
        }
        n
    }

    /// The level at `price`, if one side of the instrument has orders there.
    pub fn level(
        &self,
        instrument: InstrumentId,
        side: Side,
        price: PriceTicks,
    ) -> Option<LevelView> {
        let levels = self.levels(instrument, side);
        search(levels, side, price.0)
            .ok()
            .map(|pos| levels[pos].view())
    }

    /// Live orders of the instrument (0 for an unknown one).
    pub fn order_count(&self, instrument: InstrumentId) -> u32 {
        self.books
            .get(instrument.0 as usize)
            .map_or(0, |book| book.orders)
    }

    /// Price levels on one side of the instrument (0 for an unknown one).
    pub fn level_count(&self, instrument: InstrumentId, side: Side) -> u32 {
        // A side never has more levels than there are nodes, which fit in a u32.
        self.levels(instrument, side).len() as u32
    }

    /// Calls `f` for every order of the instrument: bids best level first, each level in time
    /// priority, then asks the same way. Nothing for an unknown instrument.
    pub fn for_each_order(&self, instrument: InstrumentId, mut f: impl FnMut(&OrderEntry)) {
        for side in [Side::Buy, Side::Sell] {
            for level in self.levels(instrument, side).iter().rev() {
                let mut cur = level.head;
                while cur != NIL {
                    let node = &self.nodes[cur as usize];
                    f(&Self::entry(node));
                    cur = node.next;
                }
            }
        }
    }

    /// Bytes reserved by the books (capacity, not use): the slab, the level vectors, and an
    /// estimate for the id index (its entries plus one control byte each, at the most entries
    /// it has had room for). It stays the same
    /// as long as no capacity given to [`Books::new`] is exceeded, because nothing here ever
    /// shrinks or reallocates below those capacities; the tests use that to show that steady
    /// state does not allocate.
    pub fn memory_bytes(&self) -> usize {
        use core::mem::size_of;
        let levels: usize = self
            .books
            .iter()
            .map(|b| (b.sides[0].capacity() + b.sides[1].capacity()) * size_of::<Level>())
            .sum();
        self.nodes.capacity() * size_of::<Node>()
            + self.index_room * (size_of::<(u64, u32)>() + 1)
            + self.books.capacity() * size_of::<Book>()
            + levels
    }

    /// [`BookHasher`] over [`Books::for_each_order`]'s sequence: the number the engine's
    /// `book_hash` and the feed's checkpoints give for the same book. An unknown instrument
    /// hashes as an empty book.
    pub fn hash(&self, instrument: InstrumentId) -> u64 {
        let mut h = BookHasher::new(instrument);
        self.for_each_order(instrument, |o| {
            h.order(o.side, o.price, o.order_id, o.qty_open)
        });
        h.finish()
    }
}
