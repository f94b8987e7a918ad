//! Draws the three benchmark charts from synthetic data, to look at them:
//!
//! ```text
//! cargo run -p ferrox-benches --example plot_demo -- /tmp/plots
//! ```
//!
//! writes `spectrum.svg`, `throughput-latency.svg` and `comparison.svg` into the directory.

use std::path::PathBuf;

use ferrox_benches::plot::{
    comparison_svg, percentile_spectrum_svg, throughput_latency_svg, CurvePoint, SpectrumSeries,
};
use ferrox_benches::report::{new_histogram, record_ns, Latency};
use ferrox_benches::Rng;
use hdrhistogram::Histogram;

/// A log-normal body around `median_ns` with a rare slow tail (`tail_share` of the samples
/// take about `tail_ns`).
fn synthetic(
    samples: u64,
    median_ns: f64,
    sigma: f64,
    tail_share: f64,
    tail_ns: f64,
    seed: u64,
) -> Histogram<u64> {
    let mut rng = Rng::new(seed);
    let mut h = new_histogram();
    for _ in 0..samples {
        // Box-Muller: one standard normal from two uniforms.
        let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let mut v = median_ns * (sigma * z).exp();
        if rng.unit() < tail_share {
            v = tail_ns * (1.0 + 4.0 * rng.unit());
        }
        record_ns(&mut h, v as u64);
    }
    h
}

fn curve(capacity_per_s: f64, base_ns: f64) -> Vec<CurvePoint> {
    [10e3, 30e3, 100e3, 300e3, 1e6, 2e6, 4e6]
        .into_iter()
        .map(|offered: f64| {
            let load = offered / capacity_per_s;
            let achieved = offered.min(capacity_per_s * 0.97);
            // Queueing: latency grows as 1/(1-load), and without bound past capacity.
            let q = if load < 0.97 {
                1.0 / (1.0 - load)
            } else {
                40.0 * load
            };
            let ns = |k: f64| (base_ns * k * q) as u64;
            CurvePoint {
                offered_per_s: offered,
                achieved_per_s: achieved,
                p50_ns: ns(1.0),
                p99_ns: ns(3.5),
                p99_9_ns: ns(9.0),
                max_ns: ns(40.0),
            }
        })
        .collect()
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: plot_demo DIR");
        std::process::exit(2);
    }));
    std::fs::create_dir_all(&dir)?;

    let engine = synthetic(1_000_000, 180.0, 0.35, 2e-4, 25_000.0, 1);
    let pipeline = synthetic(200_000, 4_500.0, 0.5, 1e-3, 900_000.0, 2);
    let spectrum = dir.join("spectrum.svg");
    percentile_spectrum_svg(
        &spectrum,
        "Ferrox latency spectrum (synthetic)",
        &[
            SpectrumSeries {
                label: "engine (in-process)".into(),
                hist: &engine,
            },
            SpectrumSeries {
                label: "pipeline, sync journal".into(),
                hist: &pipeline,
            },
        ],
    )?;

    let tl = dir.join("throughput-latency.svg");
    throughput_latency_svg(
        &tl,
        "Pipeline: latency against throughput (synthetic)",
        &[
            ("sync".to_string(), curve(1.2e6, 3_000.0)),
            ("async".to_string(), curve(3.0e6, 900.0)),
        ],
    )?;

    let cmp = dir.join("comparison.svg");
    let peer = synthetic(100_000, 1_400.0, 0.6, 1e-3, 300_000.0, 3);
    let other = synthetic(100_000, 650.0, 0.45, 5e-4, 40_000.0, 4);
    comparison_svg(
        &cmp,
        "Order book latency by subject (synthetic)",
        &["p50", "p99", "p99.9"],
        &[
            ("Ferrox".to_string(), Latency::of(&engine)),
            ("lobster".to_string(), Latency::of(&other)),
            ("orderbook-rs".to_string(), Latency::of(&peer)),
        ],
    )?;

    for p in [spectrum, tl, cmp] {
        println!("{}", p.display());
    }
    Ok(())
}
