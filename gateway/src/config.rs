//! The `[gateway]` section of the exchange configuration.
//!
//! Sessions are configured by CompID pair. Load tests and venues with many similar sessions
//! use `[[gateway.session_ranges]]`, which expands `prefix` + a zero-padded number into one
//! session per number, each with its own account.

use crate::risk::AccountLimitsFile;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Our CompID: the TargetCompID (56) clients send.
    #[serde(default = "default_comp_id")]
    pub comp_id: String,
    /// The input ring and output-ring consumer slot this gateway uses.
    #[serde(default = "default_producer")]
    pub producer: u32,
    /// Where session stores live; relative paths are inside the exchange's data directory.
    #[serde(default = "default_store_dir")]
    pub store_dir: PathBuf,
    #[serde(default = "default_connections_max")]
    pub connections_max: usize,
    /// Largest FIX message accepted; a longer one is garbled input and is dropped.
    #[serde(default = "default_msg_bytes_max")]
    pub msg_bytes_max: usize,
    /// Per-connection receive buffer; must hold at least one message of `msg_bytes_max`.
    #[serde(default = "default_recv_buffer_bytes")]
    pub recv_buffer_bytes: usize,
    /// Per-connection send buffer; a client that lets it fill is disconnected (it recovers
    /// everything through ResendRequest after logging on again).
    #[serde(default = "default_send_buffer_bytes")]
    pub send_buffer_bytes: usize,
    /// A connection that has not logged on within this time is closed.
    #[serde(default = "default_logon_timeout_ms")]
    pub logon_timeout_ms: u64,
    #[serde(default = "default_orders_max")]
    pub orders_max: usize,
    #[serde(default = "default_pending_max")]
    pub pending_max: usize,
    #[serde(default)]
    pub sessions: Vec<SessionFile>,
    #[serde(default)]
    pub session_ranges: Vec<SessionRangeFile>,
    /// Per-account risk limits; accounts not listed get `default_limits`.
    #[serde(default)]
    pub accounts: Vec<AccountLimitsFile>,
    #[serde(default)]
    pub default_limits: Option<AccountLimitsFile>,
    /// Market data over FIX: the deepest book a MarketDataRequest may ask for (MarketDepth 0,
    /// the full book, means this many levels), 1 to 100.
    #[serde(default = "default_md_depth_max")]
    pub md_depth_max: usize,
    /// Market data subscriptions (MDReqID × symbol) per session, 1 to 10,000.
    #[serde(default = "default_md_subscriptions_max")]
    pub md_subscriptions_max: usize,
    /// A session with more queued outbound bytes than this gets no market data until it
    /// reads; its subscriptions then get one conflated update each. At most half of
    /// `send_buffer_bytes`, so that execution reports always find room behind market data.
    #[serde(default = "default_md_conflate_bytes")]
    pub md_conflate_bytes: usize,
}

/// Settings shared by a single session and a range of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// The client's CompID (their SenderCompID, 49).
    pub sender: String,
    #[serde(default)]
    pub password: Option<String>,
    /// The account orders of this session belong to; tag 1 may name it or be absent.
    pub account: u32,
    #[serde(default)]
    pub reset_on_logon: bool,
    #[serde(default = "default_true")]
    pub cancel_on_disconnect: bool,
    #[serde(default = "default_throttle_per_s")]
    pub throttle_per_s: u32,
    #[serde(default = "default_throttle_burst")]
    pub throttle_burst: u32,
    /// Rejected messages per second, as a multiple of the rate, that log the session out.
    #[serde(default = "default_throttle_logout_factor")]
    pub throttle_logout_factor: u32,
    #[serde(default = "default_cl_ord_ids_max")]
    pub cl_ord_ids_max: usize,
    #[serde(default = "default_store_bytes_max")]
    pub store_bytes_max: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRangeFile {
    pub prefix: String,
    pub count: u32,
    #[serde(default = "default_digits")]
    pub digits: usize,
    pub account_first: u32,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub reset_on_logon: bool,
    #[serde(default = "default_true")]
    pub cancel_on_disconnect: bool,
    #[serde(default = "default_throttle_per_s")]
    pub throttle_per_s: u32,
    #[serde(default = "default_throttle_burst")]
    pub throttle_burst: u32,
    #[serde(default = "default_throttle_logout_factor")]
    pub throttle_logout_factor: u32,
    #[serde(default = "default_range_cl_ord_ids_max")]
    pub cl_ord_ids_max: usize,
    #[serde(default = "default_range_store_bytes_max")]
    pub store_bytes_max: u64,
}

impl GatewayFile {
    /// Every session, ranges expanded, in configuration order; CompIDs must be unique.
    pub fn expand_sessions(&self) -> Result<Vec<SessionFile>, String> {
        let mut out = self.sessions.clone();
        for r in &self.session_ranges {
            for i in 1..=r.count {
                out.push(SessionFile {
                    sender: format!("{}{:0width$}", r.prefix, i, width = r.digits),
                    password: r.password.clone(),
                    account: r.account_first.checked_add(i - 1).ok_or_else(|| {
                        format!("session range {}: account number overflows", r.prefix)
                    })?,
                    reset_on_logon: r.reset_on_logon,
                    cancel_on_disconnect: r.cancel_on_disconnect,
                    throttle_per_s: r.throttle_per_s,
                    throttle_burst: r.throttle_burst,
                    throttle_logout_factor: r.throttle_logout_factor,
                    cl_ord_ids_max: r.cl_ord_ids_max,
                    store_bytes_max: r.store_bytes_max,
                });
            }
        }
        let mut names: Vec<&str> = out.iter().map(|s| s.sender.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("gateway session {} is configured twice", w[0]));
        }
        if out.len() > usize::from(u16::MAX) {
            return Err(format!("{} gateway sessions; at most 65535", out.len()));
        }
        for s in &out {
            if s.sender.is_empty()
                || s.sender.len() > 64
                || !s.sender.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(format!(
                    "gateway session CompID {:?} must be 1-64 printable ASCII characters",
                    s.sender
                ));
            }
            if s.throttle_per_s == 0 || s.throttle_burst == 0 {
                return Err(format!(
                    "gateway session {}: throttle_per_s and throttle_burst must be positive",
                    s.sender
                ));
            }
        }
        if self.recv_buffer_bytes < self.msg_bytes_max {
            return Err("gateway.recv_buffer_bytes must be at least msg_bytes_max".to_string());
        }
        self.validate_md()?;
        Ok(out)
    }

    /// The market data settings are within their bounds.
    pub fn validate_md(&self) -> Result<(), String> {
        use crate::md::{DEPTH_MAX_LIMIT, SUBSCRIPTIONS_MAX_LIMIT};
        if !(1..=DEPTH_MAX_LIMIT).contains(&self.md_depth_max) {
            return Err(format!(
                "gateway.md_depth_max is {}; it must be 1 to {DEPTH_MAX_LIMIT}",
                self.md_depth_max
            ));
        }
        if !(1..=SUBSCRIPTIONS_MAX_LIMIT).contains(&self.md_subscriptions_max) {
            return Err(format!(
                "gateway.md_subscriptions_max is {}; it must be 1 to {SUBSCRIPTIONS_MAX_LIMIT}",
                self.md_subscriptions_max
            ));
        }
        if self.md_conflate_bytes == 0 || self.md_conflate_bytes > self.send_buffer_bytes / 2 {
            return Err(format!(
                "gateway.md_conflate_bytes is {}; it must be 1 to half of send_buffer_bytes ({})",
                self.md_conflate_bytes,
                self.send_buffer_bytes / 2
            ));
        }
        Ok(())
    }
}

fn default_enabled() -> bool {
    true
}
fn default_true() -> bool {
    true
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9878))
}
fn default_comp_id() -> String {
    "FERROX".to_string()
}
fn default_producer() -> u32 {
    1
}
fn default_store_dir() -> PathBuf {
    PathBuf::from("gateway")
}
fn default_connections_max() -> usize {
    4096
}
fn default_msg_bytes_max() -> usize {
    8 * 1024
}
fn default_recv_buffer_bytes() -> usize {
    16 * 1024
}
fn default_send_buffer_bytes() -> usize {
    1024 * 1024
}
fn default_logon_timeout_ms() -> u64 {
    5_000
}
fn default_orders_max() -> usize {
    1 << 17
}
fn default_pending_max() -> usize {
    1 << 14
}
fn default_throttle_per_s() -> u32 {
    10_000
}
fn default_throttle_burst() -> u32 {
    1_000
}
fn default_throttle_logout_factor() -> u32 {
    2
}
fn default_cl_ord_ids_max() -> usize {
    1 << 20
}
fn default_store_bytes_max() -> u64 {
    1 << 30
}
fn default_range_cl_ord_ids_max() -> usize {
    1 << 14
}
fn default_range_store_bytes_max() -> u64 {
    64 << 20
}
fn default_digits() -> usize {
    4
}
fn default_md_depth_max() -> usize {
    50
}
fn default_md_subscriptions_max() -> usize {
    100
}
fn default_md_conflate_bytes() -> usize {
    256 * 1024
}
