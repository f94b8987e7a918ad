//! Engine configuration: limits that size every pool at start-up, and instrument definitions.
//!
//! Two forms exist. [`EngineConfig`] is the engine's own, in integer ticks and lots.
//! [`ConfigFile`] is the human form read from TOML, with decimal prices and quantities; it is
//! converted once, at start-up, with `rust_decimal` (decimals never reach the matching code).

use ferrox_protocol::{InstrumentStatus, PriceTicks, QtyLots};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;

/// Sizes of every preallocated structure. Exhausting one gives a named reject, never growth.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Order slots: the most orders that can be live at once. A new order of any type needs a
    /// free slot to be accepted, even one that will not rest.
    pub orders_max: u32,
    /// Price-level slots shared by all books.
    pub levels_max: u32,
    /// Live GTD orders at most.
    pub gtd_orders_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            orders_max: 1 << 20,
            levels_max: 1 << 18,
            gtd_orders_max: 1 << 16,
        }
    }
}

/// How far from the reference price a limit order may be, and how far a market order may
/// trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceBand {
    /// In basis points of the reference price (1000 = 10%).
    Bps(u32),
    /// A fixed number of ticks either side.
    Ticks(i64),
}

/// One instrument, in engine units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentSpec {
    pub symbol: String,
    /// Display only: one tick is 10^-price_decimals of the quote currency.
    pub price_decimals: u32,
    /// Display only: one lot is 10^-qty_decimals of the base unit.
    pub qty_decimals: u32,
    /// Prices must be multiples of this (at least 1).
    pub tick_size: PriceTicks,
    /// Quantities must be multiples of this (at least 1).
    pub lot_size: QtyLots,
    pub reference_price: PriceTicks,
    pub price_band: PriceBand,
    pub qty_max: QtyLots,
    /// Maximum price times quantity, in ticks times lots.
    pub notional_max: u128,
    pub levels_per_side_max: u32,
    /// Ticks covered by each side's direct-mapped price window (rounded up to a power of two,
    /// 64 to 65,536): levels inside it are found, added and removed in O(1); levels outside
    /// it take a sorted overflow. 4 bytes per tick per side.
    pub ladder_window_ticks: u32,
    pub status: InstrumentStatus,
}

impl InstrumentSpec {
    /// A permissive instrument in raw units, for tests, benchmarks and tools.
    pub fn simple(symbol: &str, reference_price: i64) -> Self {
        InstrumentSpec {
            symbol: symbol.to_string(),
            price_decimals: 2,
            qty_decimals: 0,
            tick_size: PriceTicks(1),
            lot_size: QtyLots(1),
            reference_price: PriceTicks(reference_price),
            price_band: PriceBand::Bps(5_000),
            qty_max: QtyLots(1_000_000_000),
            notional_max: u128::MAX,
            levels_per_side_max: 4096,
            ladder_window_ticks: DEFAULT_LADDER_WINDOW_TICKS,
            status: InstrumentStatus::Open,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    pub limits: Limits,
    pub instruments: Vec<InstrumentSpec>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config is not valid TOML or does not match the schema: {0}")]
    Parse(String),
    #[error("limits.{field} must be between 1 and {max}, got {value}")]
    Limit {
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("no instruments configured")]
    NoInstruments,
    #[error("instrument {index} ({symbol}): {reason}")]
    Instrument {
        index: usize,
        symbol: String,
        reason: String,
    },
    #[error("instrument symbol {0:?} is configured twice")]
    DuplicateSymbol(String),
}

/// The default span of a side's direct-mapped price window, in ticks.
pub const DEFAULT_LADDER_WINDOW_TICKS: u32 = 2048;

/// Order slot indices are `u32` with one value reserved as "none"; levels likewise.
const SLOTS_MAX: u64 = (u32::MAX as u64) / 2;

impl EngineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limit = |field: &'static str, value: u32| {
            if value == 0 || u64::from(value) > SLOTS_MAX {
                Err(ConfigError::Limit {
                    field,
                    value: value.into(),
                    max: SLOTS_MAX,
                })
            } else {
                Ok(())
            }
        };
        limit("orders_max", self.limits.orders_max)?;
        limit("levels_max", self.limits.levels_max)?;
        limit("gtd_orders_max", self.limits.gtd_orders_max)?;
        if self.instruments.is_empty() {
            return Err(ConfigError::NoInstruments);
        }
        if self.instruments.len() as u64 > SLOTS_MAX {
            return Err(ConfigError::Limit {
                field: "instruments",
                value: self.instruments.len() as u64,
                max: SLOTS_MAX,
            });
        }
        let mut symbols: Vec<&str> = self.instruments.iter().map(|i| i.symbol.as_str()).collect();
        symbols.sort_unstable();
        if let Some(w) = symbols.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateSymbol(w[0].to_string()));
        }
        for (index, spec) in self.instruments.iter().enumerate() {
            let bad = |reason: String| ConfigError::Instrument {
                index,
                symbol: spec.symbol.clone(),
                reason,
            };
            if spec.symbol.is_empty() {
                return Err(bad("symbol is empty".into()));
            }
            if spec.tick_size.0 < 1 {
                return Err(bad("tick_size must be at least one tick".into()));
            }
            if spec.lot_size.0 < 1 {
                return Err(bad("lot_size must be at least one lot".into()));
            }
            if spec.reference_price.0 < 1 || spec.reference_price.0 % spec.tick_size.0 != 0 {
                return Err(bad("reference_price must be positive and on tick".into()));
            }
            match spec.price_band {
                PriceBand::Bps(b) if b == 0 || b > 1_000_000 => {
                    return Err(bad("price band in bps must be in 1..=1000000".into()))
                }
                PriceBand::Ticks(t) if t < 0 => {
                    return Err(bad("price band in ticks must not be negative".into()))
                }
                _ => {}
            }
            if spec.qty_max.0 < spec.lot_size.0 {
                return Err(bad("qty_max is below one lot_size".into()));
            }
            // Level totals sum open quantities; bounding qty_max by the pool size means no
            // combination of client orders can overflow them.
            let qty_max_allowed = u64::MAX / u64::from(self.limits.orders_max);
            if spec.qty_max.0 > qty_max_allowed {
                return Err(bad(format!(
                    "qty_max {} lots is above {qty_max_allowed} (u64::MAX / orders_max)",
                    spec.qty_max
                )));
            }
            if spec.levels_per_side_max == 0 || u64::from(spec.levels_per_side_max) > SLOTS_MAX {
                return Err(bad("levels_per_side_max must be positive".into()));
            }
            if !(64..=65_536).contains(&spec.ladder_window_ticks) {
                return Err(bad(
                    "ladder_window_ticks must be between 64 and 65536".into()
                ));
            }
        }
        Ok(())
    }

    /// Parses the human TOML form and converts it to engine units.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        file.engine_config()
    }
}

/// The human form of the engine part of a configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub limits: Limits,
    pub instruments: Vec<InstrumentFile>,
}

/// One instrument as written in the TOML file. Prices and quantities are decimal strings (or
/// numbers) in currency and base units.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentFile {
    pub symbol: String,
    pub price_decimals: u32,
    #[serde(default)]
    pub qty_decimals: u32,
    pub tick_size: Decimal,
    #[serde(default = "one")]
    pub lot_size: Decimal,
    pub reference_price: Decimal,
    /// Percentage band, e.g. "10" for ±10%.
    #[serde(default)]
    pub price_band_percent: Option<Decimal>,
    /// Absolute band in currency, e.g. "5.00".
    #[serde(default)]
    pub price_band: Option<Decimal>,
    pub qty_max: Decimal,
    pub notional_max: Decimal,
    #[serde(default = "default_levels_per_side")]
    pub levels_per_side_max: u32,
    #[serde(default = "default_ladder_window_ticks")]
    pub ladder_window_ticks: u32,
    #[serde(default)]
    pub halted: bool,
}

fn one() -> Decimal {
    Decimal::ONE
}

fn default_levels_per_side() -> u32 {
    4096
}

fn default_ladder_window_ticks() -> u32 {
    DEFAULT_LADDER_WINDOW_TICKS
}

/// Converts `value` to an integer count of 10^-decimals units, refusing anything that is not
/// exactly representable.
pub fn decimal_to_units(value: Decimal, decimals: u32) -> Option<i128> {
    if decimals > 18 {
        return None;
    }
    let scaled = value.checked_mul(Decimal::from(10i64.checked_pow(decimals)?))?;
    if scaled.fract() != Decimal::ZERO {
        return None;
    }
    scaled.to_i128()
}

impl ConfigFile {
    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        let mut instruments = Vec::with_capacity(self.instruments.len());
        for (index, f) in self.instruments.iter().enumerate() {
            let bad = |reason: String| ConfigError::Instrument {
                index,
                symbol: f.symbol.clone(),
                reason,
            };
            let price = |name: &str, v: Decimal| -> Result<i64, ConfigError> {
                decimal_to_units(v, f.price_decimals)
                    .and_then(|u| i64::try_from(u).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "{name} {v} is not a whole number of 10^-{} units",
                            f.price_decimals
                        ))
                    })
            };
            let qty = |name: &str, v: Decimal| -> Result<u64, ConfigError> {
                decimal_to_units(v, f.qty_decimals)
                    .and_then(|u| u64::try_from(u).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "{name} {v} is not a whole, non-negative number of 10^-{} units",
                            f.qty_decimals
                        ))
                    })
            };
            let price_band = match (f.price_band_percent, f.price_band) {
                (Some(p), None) => {
                    let bps = decimal_to_units(p, 2)
                        .and_then(|b| u32::try_from(b).ok())
                        .ok_or_else(|| bad(format!("price_band_percent {p} is not valid")))?;
                    PriceBand::Bps(bps)
                }
                (None, Some(abs)) => PriceBand::Ticks(price("price_band", abs)?),
                _ => {
                    return Err(bad(
                        "give exactly one of price_band_percent, price_band".into()
                    ))
                }
            };
            let notional_decimals = f.price_decimals + f.qty_decimals;
            let notional_max = decimal_to_units(f.notional_max, notional_decimals)
                .and_then(|u| u128::try_from(u).ok())
                .ok_or_else(|| bad(format!("notional_max {} is not valid", f.notional_max)))?;
            instruments.push(InstrumentSpec {
                symbol: f.symbol.clone(),
                price_decimals: f.price_decimals,
                qty_decimals: f.qty_decimals,
                tick_size: PriceTicks(price("tick_size", f.tick_size)?),
                lot_size: QtyLots(qty("lot_size", f.lot_size)?),
                reference_price: PriceTicks(price("reference_price", f.reference_price)?),
                price_band,
                qty_max: QtyLots(qty("qty_max", f.qty_max)?),
                notional_max,
                levels_per_side_max: f.levels_per_side_max,
                ladder_window_ticks: f.ladder_window_ticks,
                status: if f.halted {
                    InstrumentStatus::Halted
                } else {
                    InstrumentStatus::Open
                },
            });
        }
        let config = EngineConfig {
            limits: self.limits.clone(),
            instruments,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[limits]
orders_max = 1000
levels_max = 100
gtd_orders_max = 10

[[instruments]]
symbol = "AAPL"
price_decimals = 2
tick_size = "0.01"
reference_price = "190.00"
price_band_percent = "10"
qty_max = "100000"
notional_max = "5000000"

[[instruments]]
symbol = "ESZ6"
price_decimals = 2
tick_size = "0.25"
lot_size = "1"
reference_price = "6000.00"
price_band = "50.00"
qty_max = "500"
notional_max = "1000000000"
halted = true
"#;

    #[test]
    fn toml_converts_decimals_to_ticks_and_lots() {
        let c = EngineConfig::from_toml_str(SAMPLE).unwrap();
        assert_eq!(c.limits.orders_max, 1000);
        let aapl = &c.instruments[0];
        assert_eq!(aapl.tick_size, PriceTicks(1));
        assert_eq!(aapl.reference_price, PriceTicks(19_000));
        assert_eq!(aapl.price_band, PriceBand::Bps(1_000));
        assert_eq!(aapl.notional_max, 500_000_000);
        let es = &c.instruments[1];
        assert_eq!(es.tick_size, PriceTicks(25));
        assert_eq!(es.price_band, PriceBand::Ticks(5_000));
        assert_eq!(es.status, InstrumentStatus::Halted);
    }

    #[test]
    fn inexact_and_invalid_values_are_refused_with_the_instrument_named() {
        let off = SAMPLE.replace("\"190.00\"", "\"190.001\"");
        let err = EngineConfig::from_toml_str(&off).unwrap_err();
        assert!(err.to_string().contains("AAPL"), "{err}");
        assert!(err.to_string().contains("reference_price"), "{err}");
        let off_tick = SAMPLE.replace("\"6000.00\"", "\"6000.10\"");
        assert!(EngineConfig::from_toml_str(&off_tick).is_err());
        let dup = SAMPLE.replace("ESZ6", "AAPL");
        assert_eq!(
            EngineConfig::from_toml_str(&dup).unwrap_err(),
            ConfigError::DuplicateSymbol("AAPL".into())
        );
        let unknown = SAMPLE.replace("halted = true", "hatled = true");
        assert!(matches!(
            EngineConfig::from_toml_str(&unknown),
            Err(ConfigError::Parse(_))
        ));
        let zero = SAMPLE.replace("orders_max = 1000", "orders_max = 0");
        assert!(matches!(
            EngineConfig::from_toml_str(&zero),
            Err(ConfigError::Limit { .. })
        ));
    }

    #[test]
    fn decimal_units() {
        assert_eq!(decimal_to_units("1.25".parse().unwrap(), 2), Some(125));
        assert_eq!(decimal_to_units("1.255".parse().unwrap(), 2), None);
        assert_eq!(decimal_to_units("-3".parse().unwrap(), 0), Some(-3));
    }
}
