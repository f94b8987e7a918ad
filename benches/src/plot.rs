//! Charts drawn by the benchmark tools themselves, as SVG files.
//!
//! Three pictures, all from the recorded distributions of [`crate::report`]:
//!
//! - [`percentile_spectrum_svg`]: the HdrHistogram percentile distribution of one or more
//!   latency histograms (latency against percentile, the percentile on the usual log scale of
//!   `1/(1-p)`, so 90%, 99%, 99.9%, ... are equally spaced);
//! - [`throughput_latency_svg`]: p50, p99 and p99.9 latency against achieved throughput for
//!   open-loop runs at increasing offered rates, with saturated runs marked;
//! - [`comparison_svg`]: horizontal bars comparing subjects at chosen percentiles.
//!
//! Both axes of latency and rate are logarithmic; every value is clamped to at least 1 (ns or
//! operations per second) before its logarithm is taken, so zeros draw at the bottom of the
//! scale instead of failing.
//!
//! Only plotters' SVG backend is used, with no font library: plotters then estimates text
//! extents itself and writes every text as an SVG `<text>` element that the viewer lays out
//! with its own sans-serif font. Nothing here needs fontconfig or freetype.
//!
//! Layout: the title spans the top, the chart takes the left part and the legend sits in a
//! panel of its own to the right, so it never hides data. Colours are the Okabe-Ito palette
//! (safe for the common colour-vision deficiencies), assigned in input order.

use std::error::Error;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Latency;

/// One latency distribution to draw, with its legend label.
pub struct SpectrumSeries<'a> {
    pub label: String,
    pub hist: &'a Histogram<u64>,
}

/// One point of a throughput/latency curve (a run of an open-loop benchmark at one offered
/// rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    pub offered_per_s: f64,
    pub achieved_per_s: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p99_9_ns: u64,
    pub max_ns: u64,
}

// ----- style ----------------------------------------------------------------------------------

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;
/// Plotters writes `font-size` as the given size / 1.24; these give about 21, 15 and 13 px.
const TITLE_SIZE: f64 = 26.0;
const AXIS_DESC_SIZE: f64 = 19.0;
const LABEL_SIZE: f64 = 16.0;
const FONT: &str = "sans-serif";
const STROKE: u32 = 2;
/// Labelled ticks on a vertical axis (about 40 px apart).
const Y_LABELS_MAX: usize = 11;

/// Labelled ticks on a horizontal axis (about 75 px apart) when the legend takes
/// `legend_width` pixels.
fn x_labels_max(legend_width: u32) -> usize {
    (WIDTH.saturating_sub(legend_width + 120) / 75) as usize
}
/// A point of an open-loop run is saturated when it achieved less than this share of the
/// offered rate.
const SATURATION: f64 = 0.95;

/// Okabe-Ito, ordered so that the first colours are the most distinct on white (yellow last).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
    RGBColor(0xF0, 0xE4, 0x42), // yellow
];

const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);
const GRID_LIGHT: RGBColor = RGBColor(236, 236, 236);
const AXIS: RGBColor = RGBColor(90, 90, 90);
const TEXT: RGBColor = RGBColor(40, 40, 40);
const LEGEND_BG: RGBColor = RGBColor(248, 248, 248);
const LEGEND_BORDER: RGBColor = RGBColor(190, 190, 190);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Line patterns. Plotters' SVG backend has no dash attribute, so a dashed line is drawn with
/// an opacity that is otherwise never used (0.999 or 0.998, no visible difference) and
/// [`apply_dashes`] rewrites that opacity of each `<polyline>` into a `stroke-dasharray`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dash {
    Solid,
    Dashed,
    Dotted,
}

impl Dash {
    fn alpha(self) -> f64 {
        match self {
            Dash::Solid => 1.0,
            Dash::Dashed => 0.999,
            Dash::Dotted => 0.998,
        }
    }

    fn svg(self) -> &'static str {
        match self {
            Dash::Solid => "",
            Dash::Dashed => "stroke-dasharray=\"9,5\" ",
            Dash::Dotted => "stroke-dasharray=\"1,5\" stroke-linecap=\"round\" ",
        }
    }

    fn line_style(self, c: RGBColor) -> ShapeStyle {
        ShapeStyle {
            color: c.mix(self.alpha()),
            filled: false,
            stroke_width: STROKE,
        }
    }
}

fn apply_dashes(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len() + 1024);
    for line in svg.split_inclusive('\n') {
        if line.starts_with("<polyline") {
            let mut l = line.to_string();
            for dash in [Dash::Dashed, Dash::Dotted] {
                let tag = format!("opacity=\"{}\" ", dash.alpha());
                l = l.replace(&tag, &format!("opacity=\"1\" {}", dash.svg()));
            }
            out.push_str(&l);
        } else {
            out.push_str(line);
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    Circle,
    Square,
    Triangle,
}

// ----- errors and the SVG frame ---------------------------------------------------------------

type DrawResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Draws into an SVG string with `draw`, fixes the dashes and writes the file.
fn write_svg(
    path: &Path,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult<()>,
) -> io::Result<()> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root).map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))?;
        root.present()
            .map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))?;
    }
    fs::write(path, apply_dashes(&buf))
}

/// Fills the background and writes the title; returns the chart's area and the legend's.
fn frame<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    title: &str,
    legend_width: u32,
) -> DrawResult<(
    DrawingArea<SVGBackend<'a>, Shift>,
    DrawingArea<SVGBackend<'a>, Shift>,
)> {
    root.fill(&WHITE)?;
    let body = root.titled(
        title,
        (FONT, TITLE_SIZE, FontStyle::Bold).into_font().color(&TEXT),
    )?;
    let (chart, legend) = body.split_horizontally(WIDTH - legend_width);
    Ok((chart, legend))
}

fn axis_desc_style() -> TextStyle<'static> {
    (FONT, AXIS_DESC_SIZE).into_font().color(&TEXT)
}

fn label_style() -> TextStyle<'static> {
    (FONT, LABEL_SIZE).into_font().color(&TEXT)
}

// ----- number formats and log axes ------------------------------------------------------------

/// `x` rounded to three significant digits.
fn round_sig(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(2 - x.log10().floor() as i32);
    (x * scale).round() / scale
}

/// Up to three significant digits, no trailing zeros: 1.5, 12.3, 250.
fn fmt_sig(x: f64) -> String {
    let s = if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A latency in nanoseconds with the unit that suits it: "850 ns", "1.5 µs", "20 ms", "2 s".
fn fmt_ns(ns: f64) -> String {
    let v = round_sig(ns);
    if v < 1e3 {
        format!("{} ns", fmt_sig(v))
    } else if v < 1e6 {
        format!("{} µs", fmt_sig(v / 1e3))
    } else if v < 1e9 {
        format!("{} ms", fmt_sig(v / 1e6))
    } else {
        format!("{} s", fmt_sig(v / 1e9))
    }
}

/// A rate in operations per second: "500/s", "10k/s", "2.5M/s".
fn fmt_rate(r: f64) -> String {
    let v = round_sig(r);
    if v < 1e3 {
        format!("{}/s", fmt_sig(v))
    } else if v < 1e6 {
        format!("{}k/s", fmt_sig(v / 1e3))
    } else if v < 1e9 {
        format!("{}M/s", fmt_sig(v / 1e6))
    } else {
        format!("{}G/s", fmt_sig(v / 1e9))
    }
}

/// A count: "950", "12.3k", "1M".
fn fmt_count(n: u64) -> String {
    let v = round_sig(n as f64);
    if v < 1e3 {
        fmt_sig(v)
    } else if v < 1e6 {
        format!("{}k", fmt_sig(v / 1e3))
    } else if v < 1e9 {
        format!("{}M", fmt_sig(v / 1e6))
    } else {
        format!("{}G", fmt_sig(v / 1e9))
    }
}

/// The label of the percentile axis at `x = log10(1/(1-p))`: 0%, 90%, 99%, 99.9%, ...
fn fmt_percentile_tick(x: f64) -> String {
    let nines = x.round().max(0.0) as usize;
    if nines == 0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 10f64.powi(-(nines as i32)));
    format!("{:.*}%", nines.saturating_sub(2), p)
}

/// A value as a log10 coordinate, clamped to at least 1.
fn log(v: f64) -> f64 {
    v.max(1.0).log10()
}

/// A log10 range around `[lo, hi]` with some air, at least one decade wide.
fn padded_log_range(lo: f64, hi: f64) -> Range<f64> {
    let span = hi - lo;
    let pad = (span * 0.06).max(0.08);
    let (mut a, mut b) = (lo - pad, hi + pad);
    if b - a < 1.0 {
        let grow = (1.0 - (b - a)) / 2.0;
        a -= grow;
        b += grow;
    }
    a.max(0.0)..b.max(a + 1.0)
}

/// Tick positions (log10 units) for a log axis over `r`: labelled ones as dense as `max_labels`
/// allows (1-2-3-5, 1-2-5 or 1-3 per decade, every decade, or every 2nd, 3rd, ... decade), and
/// unlabelled grid lines in between.
fn log_ticks(r: &Range<f64>, max_labels: usize) -> (Vec<f64>, Vec<f64>) {
    const SCHEMES: [&[f64]; 5] = [
        &[1.0, 2.0, 3.0, 5.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 3.0],
        &[1.0],
        &[],
    ];
    let all: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let first = r.start.floor() as i32 - 1;
    let last = r.end.ceil() as i32 + 1;
    let points = |mantissas: &[f64], decade_step: i32| -> Vec<f64> {
        (first..=last)
            .filter(|e| e.rem_euclid(decade_step) == 0)
            .flat_map(|e| mantissas.iter().map(move |m| f64::from(e) + m.log10()))
            .filter(|x| r.contains(x))
            .collect()
    };
    let mut bold = Vec::new();
    'pick: for mantissas in SCHEMES {
        if mantissas.is_empty() {
            // Every n-th decade.
            for step in 2..=(last - first).max(2) {
                bold = points(&[1.0], step);
                if bold.len() <= max_labels.max(2) {
                    break 'pick;
                }
            }
        } else {
            bold = points(mantissas, 1);
            if bold.len() <= max_labels.max(2) {
                break;
            }
        }
    }
    // Grid lines: every 1..9 while there are few decades, fewer for more, else every decade.
    let span = r.end - r.start;
    let light_mantissas: &[f64] = if span <= 4.0 {
        all
    } else if span <= 8.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let light = points(light_mantissas, 1)
        .into_iter()
        .filter(|x| !bold.iter().any(|b| (b - x).abs() < 1e-9))
        .collect();
    (bold, light)
}

/// A linear axis over log10 values whose ticks are given: labelled ones (`bold`, with a grid
/// line each) and grid-only ones (`light`).
struct Axis {
    range: Range<f64>,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    fn new(range: Range<f64>, bold: Vec<f64>, light: Vec<f64>) -> Axis {
        Axis { range, bold, light }
    }

    /// An axis over `range` with [`log_ticks`].
    fn log(range: Range<f64>, max_labels: usize) -> Axis {
        let (bold, light) = log_ticks(&range, max_labels);
        Axis { range, bold, light }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let t = if span > 0.0 {
            (v - self.range.start) / span
        } else {
            0.5
        };
        // `as` saturates (and maps NaN to 0), so no value can panic here.
        limit.0 + (f64::from(limit.1 - limit.0) * t).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

// ----- the legend panel -------------------------------------------------------------------------

enum Glyph {
    Line {
        colour: RGBColor,
        dash: Dash,
        marker: Option<Marker>,
    },
    Swatch(RGBColor),
    HollowMarker,
}

struct LegendEntry {
    glyph: Glyph,
    /// May hold '\n' for more lines.
    text: String,
}

const LEGEND_ROW: i32 = 21;
const LEGEND_LINE: i32 = 16;
const LEGEND_PAD: i32 = 10;
const LEGEND_GLYPH_W: i32 = 30;

/// The legend panel's width for these texts: wide enough for the longest line (by plotters'
/// own text estimate), within limits.
fn legend_width(texts: &[&str]) -> u32 {
    let font = (FONT, LABEL_SIZE).into_font();
    let widest = texts
        .iter()
        .flat_map(|t| t.lines())
        .map(|l| font.box_size(l).map_or(l.len() as u32 * 8, |(w, _)| w))
        .max()
        .unwrap_or(0);
    (widest + (LEGEND_GLYPH_W + 3 * LEGEND_PAD + 14) as u32).clamp(150, 360)
}

/// Draws the legend box at the top of `area`, aligned with the plot's top edge `top`.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    top: i32,
    entries: &[LegendEntry],
) -> DrawResult<()> {
    let (w, _) = area.dim_in_pixel();
    let height: i32 = entries
        .iter()
        .map(|e| LEGEND_ROW + LEGEND_LINE * (e.text.lines().count().max(1) as i32 - 1))
        .sum::<i32>()
        + LEGEND_PAD;
    let (x0, x1) = (4, w as i32 - 12);
    area.draw(&Rectangle::new(
        [(x0, top), (x1, top + height)],
        LEGEND_BG.filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x0, top), (x1, top + height)],
        ShapeStyle::from(&LEGEND_BORDER).stroke_width(1),
    ))?;
    let text_style = label_style().pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = top + LEGEND_PAD / 2 + LEGEND_ROW / 2;
    for e in entries {
        let gx = x0 + LEGEND_PAD + LEGEND_GLYPH_W / 2;
        match e.glyph {
            Glyph::Line {
                colour,
                dash,
                marker,
            } => {
                area.draw(&PathElement::new(
                    vec![(gx - LEGEND_GLYPH_W / 2, y), (gx + LEGEND_GLYPH_W / 2, y)],
                    dash.line_style(colour),
                ))?;
                if let Some(m) = marker {
                    draw_marker(area, (gx, y), m, colour, false)?;
                }
            }
            Glyph::Swatch(colour) => {
                area.draw(&Rectangle::new(
                    [(gx - 9, y - 6), (gx + 9, y + 6)],
                    colour.filled(),
                ))?;
            }
            Glyph::HollowMarker => draw_marker(area, (gx, y), Marker::Circle, AXIS, true)?,
        }
        let tx = x0 + 2 * LEGEND_PAD + LEGEND_GLYPH_W;
        for (i, line) in e.text.lines().enumerate() {
            area.draw(&Text::new(
                line.to_string(),
                (tx, y + i as i32 * LEGEND_LINE),
                text_style.clone(),
            ))?;
        }
        y += LEGEND_ROW + LEGEND_LINE * (e.text.lines().count().max(1) as i32 - 1);
    }
    Ok(())
}

/// A marker centred on `at` (pixels of `area`); hollow markers have a white centre.
fn draw_marker(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    at: (i32, i32),
    marker: Marker,
    c: RGBColor,
    hollow: bool,
) -> DrawResult<()> {
    let (x, y) = at;
    match marker {
        Marker::Circle => {
            area.draw(&Circle::new(at, 5, c.filled()))?;
            if hollow {
                area.draw(&Circle::new(at, 3, WHITE.filled()))?;
            }
        }
        Marker::Square => {
            area.draw(&Rectangle::new(
                [(x - 5, y - 5), (x + 5, y + 5)],
                c.filled(),
            ))?;
            if hollow {
                area.draw(&Rectangle::new(
                    [(x - 3, y - 3), (x + 3, y + 3)],
                    WHITE.filled(),
                ))?;
            }
        }
        Marker::Triangle => {
            area.draw(&Polygon::new(
                vec![(x, y - 7), (x + 6, y + 4), (x - 6, y + 4)],
                c.filled(),
            ))?;
            if hollow {
                area.draw(&Polygon::new(
                    vec![(x, y - 3), (x + 3, y + 2), (x - 3, y + 2)],
                    WHITE.filled(),
                ))?;
            }
        }
    }
    Ok(())
}

// ----- percentile spectrum ----------------------------------------------------------------------

/// What the spectrum draws, in log10 coordinates.
struct SpectrumLayout {
    /// The percentile axis runs from 0 (0%) to this many nines.
    nines: u32,
    y: Range<f64>,
    /// One line per series: (log10(1/(1-p)), log10(latency ns)).
    lines: Vec<Vec<(f64, f64)>>,
}

/// Percentile steps per decade of `1/(1-p)`.
const SPECTRUM_STEPS_PER_DECADE: f64 = 40.0;

fn spectrum_layout(series: &[SpectrumSeries<'_>]) -> io::Result<SpectrumLayout> {
    if series.is_empty() {
        return Err(invalid(
            "percentile spectrum: no series to draw (the series list is empty)".into(),
        ));
    }
    for (i, s) in series.iter().enumerate() {
        if s.hist.is_empty() {
            return Err(invalid(format!(
                "percentile spectrum: series {i} ({:?}) has an empty histogram",
                s.label
            )));
        }
    }
    let count_max = series.iter().map(|s| s.hist.len()).max().unwrap_or(1);
    // As far as the largest count supports: with n samples the top 1/n is the max.
    let nines = ((count_max as f64).log10() - 1e-9).ceil().max(1.0) as u32;
    let mut lines = Vec::with_capacity(series.len());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        let h = s.hist;
        let end = (h.len() as f64).log10();
        let mut line = vec![(0.0, log(h.min() as f64))];
        let mut i = 1u32;
        loop {
            let x = f64::from(i) / SPECTRUM_STEPS_PER_DECADE;
            if x >= end {
                break;
            }
            let q = 1.0 - 10f64.powf(-x);
            line.push((x, log(h.value_at_quantile(q) as f64)));
            i += 1;
        }
        let top = log(h.max() as f64);
        line.push((end, top));
        // Beyond 1 - 1/n every percentile is the max; draw at least to 90% so that a
        // distribution of a few samples is a visible line.
        if end < 1.0 {
            line.push((1.0, top));
        }
        lo = lo.min(log(h.min() as f64));
        hi = hi.max(top);
        lines.push(line);
    }
    Ok(SpectrumLayout {
        nines,
        y: padded_log_range(lo, hi),
        lines,
    })
}

/// Latency percentile spectrum ("HdrHistogram percentile distribution" plot): x axis is the
/// percentile on the usual log scale of 1/(1-p) with ticks labelled 0%, 90%, 99%, 99.9%,
/// 99.99%, 99.999% (as far as the largest count supports), y axis latency on a log scale with
/// readable unit labels (ns, µs, ms, s chosen per tick); one line per series with a legend;
/// title given.
pub fn percentile_spectrum_svg(
    path: &Path,
    title: &str,
    series: &[SpectrumSeries<'_>],
) -> io::Result<()> {
    let layout = spectrum_layout(series)?;
    let entries: Vec<LegendEntry> = series
        .iter()
        .enumerate()
        .map(|(i, s)| LegendEntry {
            glyph: Glyph::Line {
                colour: colour(i),
                dash: Dash::Solid,
                marker: None,
            },
            text: format!("{}\nn = {}, max {}", s.label, fmt_count(s.hist.len()), {
                fmt_ns(s.hist.max() as f64)
            }),
        })
        .collect();
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    let legend_w = legend_width(&texts);
    write_svg(path, |root| {
        let (area, legend) = frame(root, title, legend_w)?;
        let nines = f64::from(layout.nines);
        let x_bold: Vec<f64> = (0..=layout.nines).map(f64::from).collect();
        // Grid lines at 50% and 80% of every decade of 1/(1-p) (50%, 80%, 95%, 98%, ...).
        let x_light: Vec<f64> = (0..layout.nines)
            .flat_map(|d| [f64::from(d) + 2f64.log10(), f64::from(d) + 5f64.log10()])
            .collect();
        let mut chart = ChartBuilder::on(&area)
            .margin_top(8)
            .margin_left(12)
            .margin_right(16)
            .margin_bottom(8)
            .x_label_area_size(50)
            .y_label_area_size(84)
            .build_cartesian_2d(
                Axis::new(0.0..nines, x_bold, x_light),
                Axis::log(layout.y.clone(), Y_LABELS_MAX),
            )?;
        chart
            .configure_mesh()
            .x_desc("Percentile (log scale of 1/(1−p))")
            .y_desc("Latency (log scale)")
            .x_label_formatter(&|x| fmt_percentile_tick(*x))
            .y_label_formatter(&|y| fmt_ns(10f64.powf(*y)))
            .axis_desc_style(axis_desc_style())
            .label_style(label_style())
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .axis_style(AXIS)
            .draw()?;
        for (i, line) in layout.lines.iter().enumerate() {
            chart.draw_series(std::iter::once(PathElement::new(
                line.clone(),
                Dash::Solid.line_style(colour(i)),
            )))?;
        }
        let top = chart.plotting_area().get_base_pixel().1 - legend.get_base_pixel().1;
        draw_legend(&legend, top, &entries)
    })
}

// ----- throughput / latency ----------------------------------------------------------------------

const CURVE_PERCENTILES: [(&str, Dash, Marker); 3] = [
    ("p50", Dash::Solid, Marker::Circle),
    ("p99", Dash::Dashed, Marker::Square),
    ("p99.9", Dash::Dotted, Marker::Triangle),
];

fn curve_value(p: &CurvePoint, percentile: usize) -> u64 {
    match percentile {
        0 => p.p50_ns,
        1 => p.p99_ns,
        _ => p.p99_9_ns,
    }
}

fn is_saturated(p: &CurvePoint) -> bool {
    p.achieved_per_s < SATURATION * p.offered_per_s
}

fn check_curves(curves: &[(String, Vec<CurvePoint>)]) -> io::Result<()> {
    if curves.is_empty() {
        return Err(invalid(
            "throughput/latency chart: no curves to draw (the curve list is empty)".into(),
        ));
    }
    for (name, points) in curves {
        if points.is_empty() {
            return Err(invalid(format!(
                "throughput/latency chart: curve {name:?} has no points"
            )));
        }
        for p in points {
            for (what, v) in [
                ("offered_per_s", p.offered_per_s),
                ("achieved_per_s", p.achieved_per_s),
            ] {
                if !v.is_finite() || v < 0.0 {
                    return Err(invalid(format!(
                        "throughput/latency chart: curve {name:?} has a point with {what} = {v} \
                         (rates must be finite and not negative)"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Throughput/latency curve: x axis achieved rate (log scale, labels like 10k/s, 1M/s), y axis
/// latency (log scale, unit labels); for every curve, lines for p50, p99 and p99.9 (same colour
/// per curve, a different dash and marker per percentile, legend "sync p99"). Points where
/// achieved < 0.95 × offered are marked as saturated with a hollow marker, which the legend
/// explains. Each curve's points are joined in order of offered rate.
pub fn throughput_latency_svg(
    path: &Path,
    title: &str,
    curves: &[(String, Vec<CurvePoint>)],
) -> io::Result<()> {
    check_curves(curves)?;
    let sorted: Vec<Vec<CurvePoint>> = curves
        .iter()
        .map(|(_, points)| {
            let mut v = points.clone();
            v.sort_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
            v
        })
        .collect();
    let all = || sorted.iter().flatten();
    let x_lo = all()
        .map(|p| log(p.achieved_per_s))
        .fold(f64::INFINITY, f64::min);
    let x_hi = all()
        .map(|p| log(p.achieved_per_s))
        .fold(f64::NEG_INFINITY, f64::max);
    let values = || all().flat_map(|p| [p.p50_ns, p.p99_ns, p.p99_9_ns]);
    let y_lo = values()
        .map(|v| log(v as f64))
        .fold(f64::INFINITY, f64::min);
    let y_hi = values()
        .map(|v| log(v as f64))
        .fold(f64::NEG_INFINITY, f64::max);
    let x_range = padded_log_range(x_lo, x_hi);
    let y_range = padded_log_range(y_lo, y_hi);
    let any_saturated = all().any(is_saturated);

    let mut entries = Vec::new();
    for (c, (name, _)) in curves.iter().enumerate() {
        for (label, dash, marker) in CURVE_PERCENTILES {
            entries.push(LegendEntry {
                glyph: Glyph::Line {
                    colour: colour(c),
                    dash,
                    marker: Some(marker),
                },
                text: format!("{name} {label}"),
            });
        }
    }
    if any_saturated {
        entries.push(LegendEntry {
            glyph: Glyph::HollowMarker,
            text: "hollow marker: saturated\n(achieved < 95% of offered)".into(),
        });
    }
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    let legend_w = legend_width(&texts);

    write_svg(path, |root| {
        let (area, legend) = frame(root, title, legend_w)?;
        let mut chart = ChartBuilder::on(&area)
            .margin_top(8)
            .margin_left(12)
            .margin_right(24)
            .margin_bottom(8)
            .x_label_area_size(50)
            .y_label_area_size(84)
            .build_cartesian_2d(
                Axis::log(x_range.clone(), x_labels_max(legend_w)),
                Axis::log(y_range.clone(), Y_LABELS_MAX),
            )?;
        chart
            .configure_mesh()
            .x_desc("Achieved throughput (operations/s, log scale)")
            .y_desc("Latency (log scale)")
            .x_label_formatter(&|x| fmt_rate(10f64.powf(*x)))
            .y_label_formatter(&|y| fmt_ns(10f64.powf(*y)))
            .axis_desc_style(axis_desc_style())
            .label_style(label_style())
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .axis_style(AXIS)
            .draw()?;
        for (c, points) in sorted.iter().enumerate() {
            for (k, (_, dash, marker)) in CURVE_PERCENTILES.into_iter().enumerate() {
                let coords: Vec<(f64, f64)> = points
                    .iter()
                    .map(|p| (log(p.achieved_per_s), log(curve_value(p, k) as f64)))
                    .collect();
                chart.draw_series(std::iter::once(PathElement::new(
                    coords.clone(),
                    dash.line_style(colour(c)),
                )))?;
                for (p, xy) in points.iter().zip(&coords) {
                    let at = chart.backend_coord(xy);
                    draw_marker(root, at, marker, colour(c), is_saturated(p))?;
                }
            }
        }
        let top = chart.plotting_area().get_base_pixel().1 - legend.get_base_pixel().1;
        draw_legend(&legend, top, &entries)
    })
}

// ----- comparison bars -----------------------------------------------------------------------------

/// Horizontal bar chart comparing subjects at chosen percentiles, e.g. Ferrox vs lobster vs
/// orderbook-rs: groups = percentiles ("p50", "p99", "p99.9"; any name [`Latency::get`] knows,
/// "max" too), one bar per subject in each group, log-scale latency axis, value labels on
/// bars.
pub fn comparison_svg(
    path: &Path,
    title: &str,
    percentiles: &[&str],
    subjects: &[(String, Latency)],
) -> io::Result<()> {
    if percentiles.is_empty() {
        return Err(invalid(
            "comparison chart: no percentiles to compare (the percentile list is empty)".into(),
        ));
    }
    if subjects.is_empty() {
        return Err(invalid(
            "comparison chart: no subjects to compare (the subject list is empty)".into(),
        ));
    }
    // values[g][s]: percentile g of subject s.
    let mut values = Vec::with_capacity(percentiles.len());
    for &p in percentiles {
        let mut row = Vec::with_capacity(subjects.len());
        for (name, latency) in subjects {
            if latency.count == 0 {
                return Err(invalid(format!(
                    "comparison chart: subject {name:?} has no samples (latency count is 0)"
                )));
            }
            row.push(latency.get(p).ok_or_else(|| {
                invalid(format!(
                    "comparison chart: unknown percentile {p:?} (expected one of p50, p90, \
                     p99, p99.9, p99.99, max)"
                ))
            })?);
        }
        values.push(row);
    }
    let lo = values
        .iter()
        .flatten()
        .map(|&v| log(v as f64))
        .fold(f64::INFINITY, f64::min);
    let hi = values
        .iter()
        .flatten()
        .map(|&v| log(v as f64))
        .fold(f64::NEG_INFINITY, f64::max);

    let entries: Vec<LegendEntry> = subjects
        .iter()
        .enumerate()
        .map(|(i, (name, _))| LegendEntry {
            glyph: Glyph::Swatch(colour(i)),
            text: name.clone(),
        })
        .collect();
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    let legend_w = legend_width(&texts);

    // Bars start at a round value (1, 2 or 5 × 10^k) a little below the smallest value; the
    // right end leaves room for the value labels (about 70 px of a plot about 600 px wide).
    let x_start = {
        let below = (lo - 0.25).max(0.0);
        let decade = below.floor();
        [5f64, 2.0, 1.0]
            .iter()
            .map(|m| decade + m.log10())
            .find(|&x| x <= below)
            .unwrap_or(decade)
    };
    let data_span = (hi - x_start).max(1.0);
    let x_end = x_start + data_span / (1.0 - 70.0 / 600.0);
    let x_range = x_start..x_end;
    let groups = percentiles.len();
    let n = subjects.len();

    write_svg(path, |root| {
        let (area, legend) = frame(root, title, legend_w)?;
        let centres: Vec<f64> = (0..groups).map(|g| g as f64 + 0.5).collect();
        let names: Vec<String> = percentiles.iter().rev().map(|p| p.to_string()).collect();
        let y_fmt = move |y: &f64| {
            let g = y.floor().max(0.0) as usize;
            names.get(g).cloned().unwrap_or_default()
        };
        let mut chart = ChartBuilder::on(&area)
            .margin_top(8)
            .margin_left(12)
            .margin_right(16)
            .margin_bottom(8)
            .x_label_area_size(50)
            .y_label_area_size(64)
            .build_cartesian_2d(
                Axis::log(x_range.clone(), x_labels_max(legend_w)),
                Axis::new(0.0..groups as f64, centres, Vec::new()),
            )?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("Latency (log scale)")
            .y_desc("Percentile")
            .x_label_formatter(&|x| fmt_ns(10f64.powf(*x)))
            .y_label_formatter(&y_fmt)
            .axis_desc_style(axis_desc_style())
            .label_style((FONT, AXIS_DESC_SIZE).into_font().color(&TEXT))
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .axis_style(AXIS)
            .draw()?;
        // Separators between the groups.
        for g in 1..groups {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x_range.start, g as f64), (x_range.end, g as f64)],
                ShapeStyle::from(&GRID_BOLD).stroke_width(1),
            )))?;
        }
        // Each subject's slot in a group: the bars fill 72% of the group, but none is thicker
        // than about a tenth of the plot's height (a single bar would be a block otherwise).
        let band = (0.72 / n as f64).min(0.1 * groups as f64);
        let value_style = (FONT, LABEL_SIZE)
            .into_font()
            .color(&TEXT)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (g, row) in values.iter().enumerate() {
            // Group 0 (the first percentile) at the top.
            let top = (groups - g) as f64 - 0.5 + band * n as f64 / 2.0;
            for (s, &v) in row.iter().enumerate() {
                let y1 = top - s as f64 * band;
                let y0 = y1 - band * 0.86;
                let x = log(v as f64);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x_range.start, y0), (x, y1)],
                    colour(s).filled(),
                )))?;
                let (px, py) = chart.backend_coord(&(x, (y0 + y1) / 2.0));
                root.draw(&Text::new(
                    fmt_ns(v.max(1) as f64),
                    (px + 5, py),
                    value_style.clone(),
                ))?;
            }
        }
        let top = chart.plotting_area().get_base_pixel().1 - legend.get_base_pixel().1;
        draw_legend(&legend, top, &entries)
    })
}

/// Counts of `<polyline>` elements in an SVG with the given stroke colour and at least
/// `min_points` points; shared by the tests.
#[cfg(test)]
fn count_polylines(svg: &str, stroke: RGBColor, min_points: usize) -> usize {
    let needle = format!(
        "stroke=\"#{:02X}{:02X}{:02X}\"",
        stroke.0, stroke.1, stroke.2
    );
    svg.lines()
        .filter(|l| l.starts_with("<polyline") && l.contains(&needle))
        .filter(|l| {
            l.split("points=\"")
                .nth(1)
                .map_or(0, |p| p.split_whitespace().filter(|s| *s != "\"/>").count())
                >= min_points
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{new_histogram, record_ns};

    fn read(path: &Path) -> String {
        let svg = fs::read_to_string(path).unwrap();
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "not an SVG: {}",
            &svg[..svg.len().min(200)]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "SVG not closed");
        svg
    }

    /// The text of every `<text>` element.
    fn texts(svg: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find("<text") {
            rest = &rest[i..];
            let start = rest.find('>').unwrap() + 1;
            let end = rest.find("</text>").unwrap();
            out.push(rest[start..end].trim().to_string());
            rest = &rest[end..];
        }
        out
    }

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            record_ns(&mut h, v);
        }
        h
    }

    fn fast() -> Histogram<u64> {
        hist(
            (1..=20_000u64)
                .map(|i| 300 + (i * 7919) % 900 + if i % 1000 == 0 { 40_000 } else { 0 }),
        )
    }

    fn slow() -> Histogram<u64> {
        hist((1..=5_000u64).map(|i| 2_000 + (i * 104_729) % 30_000))
    }

    #[test]
    fn spectrum_has_title_legend_axes_and_one_line_per_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spectrum.svg");
        let (a, b) = (fast(), slow());
        let series = [
            SpectrumSeries {
                label: "ferrox sync".into(),
                hist: &a,
            },
            SpectrumSeries {
                label: "ferrox async".into(),
                hist: &b,
            },
        ];
        percentile_spectrum_svg(&path, "Order latency spectrum", &series).unwrap();
        let svg = read(&path);
        let t = texts(&svg);
        assert!(t.iter().any(|s| s == "Order latency spectrum"), "{t:?}");
        assert!(t.iter().any(|s| s == "ferrox sync"), "{t:?}");
        assert!(t.iter().any(|s| s == "ferrox async"), "{t:?}");
        // 20,000 samples: the percentile axis reaches 99.999%.
        for tick in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"] {
            assert!(t.iter().any(|s| s == tick), "missing tick {tick}: {t:?}");
        }
        assert!(!t.iter().any(|s| s == "99.9999%"), "{t:?}");
        assert!(t.iter().any(|s| s.ends_with(" µs")), "{t:?}");
        assert!(t.iter().any(|s| s.ends_with(" ns")), "{t:?}");
        assert!(t.iter().any(|s| s.starts_with("Latency")), "{t:?}");
        assert!(t.iter().any(|s| s.starts_with("Percentile")), "{t:?}");
        // One data line per series (many points) and one legend sample (two points).
        for c in [colour(0), colour(1)] {
            assert_eq!(count_polylines(&svg, c, 20), 1, "data line of {c:?}");
            assert_eq!(
                count_polylines(&svg, c, 2),
                2,
                "data line and legend of {c:?}"
            );
        }
        assert_eq!(count_polylines(&svg, colour(2), 2), 0);
        assert!(svg.contains("stroke-width=\"2\""));
    }

    #[test]
    fn spectrum_range_covers_min_and_max() {
        let (a, b) = (fast(), slow());
        let series = [
            SpectrumSeries {
                label: "a".into(),
                hist: &a,
            },
            SpectrumSeries {
                label: "b".into(),
                hist: &b,
            },
        ];
        let layout = spectrum_layout(&series).unwrap();
        assert_eq!(layout.nines, 5);
        let lo = (a.min().min(b.min()) as f64).log10();
        let hi = (a.max().max(b.max()) as f64).log10();
        assert!(
            layout.y.start < lo && layout.y.end > hi,
            "{:?} vs {lo}..{hi}",
            layout.y
        );
        for (line, h) in layout.lines.iter().zip([&a, &b]) {
            assert_eq!(line[0], (0.0, (h.min() as f64).log10()));
            let last = line.last().unwrap();
            assert_eq!(last.1, (h.max() as f64).log10());
            assert!((last.0 - (h.len() as f64).log10()).abs() < 1e-9);
            assert!(line
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
            assert!(line.iter().all(|p| layout.y.contains(&p.1)));
        }
    }

    #[test]
    fn spectrum_of_one_sample_and_of_zero_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.svg");
        let one = hist([1_500]);
        let mut zero = Histogram::<u64>::new(3).unwrap();
        zero.record(0).unwrap();
        let series = [
            SpectrumSeries {
                label: "single".into(),
                hist: &one,
            },
            SpectrumSeries {
                label: "zero".into(),
                hist: &zero,
            },
        ];
        percentile_spectrum_svg(&path, "One sample", &series).unwrap();
        let svg = read(&path);
        let t = texts(&svg);
        assert!(t.iter().any(|s| s == "single") && t.iter().any(|s| s == "zero"));
        assert!(
            t.iter().any(|s| s == "90%") && !t.iter().any(|s| s == "99%"),
            "{t:?}"
        );
        assert_eq!(count_polylines(&svg, colour(0), 2), 2);
        assert_eq!(count_polylines(&svg, colour(1), 2), 2);
        let layout = spectrum_layout(&series).unwrap();
        assert!(layout.y.contains(&1500f64.log10()) && layout.y.contains(&0.0));
    }

    #[test]
    fn spectrum_rejects_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.svg");
        let e = percentile_spectrum_svg(&path, "t", &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("no series"), "{e}");
        let empty = new_histogram();
        let a = fast();
        let series = [
            SpectrumSeries {
                label: "ok".into(),
                hist: &a,
            },
            SpectrumSeries {
                label: "nothing".into(),
                hist: &empty,
            },
        ];
        let e = percentile_spectrum_svg(&path, "t", &series).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains("series 1 (\"nothing\") has an empty histogram"),
            "{e}"
        );
        assert!(!path.exists());
    }

    fn curve(scale: f64, base_ns: u64) -> Vec<CurvePoint> {
        [10_000.0, 100_000.0, 1_000_000.0, 3_000_000.0]
            .iter()
            .enumerate()
            .map(|(i, &offered)| {
                let offered = offered * scale;
                let saturated = i == 3;
                let achieved = if saturated {
                    offered * 0.6
                } else {
                    offered * 0.999
                };
                let m = if saturated { 200 } else { 1 << i };
                CurvePoint {
                    offered_per_s: offered,
                    achieved_per_s: achieved,
                    p50_ns: base_ns * m,
                    p99_ns: base_ns * 4 * m,
                    p99_9_ns: base_ns * 12 * m,
                    max_ns: base_ns * 100 * m,
                }
            })
            .collect()
    }

    #[test]
    fn throughput_latency_has_three_lines_per_curve_and_marks_saturation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tl.svg");
        let curves = vec![
            ("sync".to_string(), curve(1.0, 800)),
            ("async".to_string(), curve(0.5, 2_000)),
        ];
        throughput_latency_svg(&path, "Pipeline throughput vs latency", &curves).unwrap();
        let svg = read(&path);
        let t = texts(&svg);
        assert!(
            t.iter().any(|s| s == "Pipeline throughput vs latency"),
            "{t:?}"
        );
        for name in ["sync", "async"] {
            for p in ["p50", "p99", "p99.9"] {
                let label = format!("{name} {p}");
                assert!(t.contains(&label), "missing legend {label}: {t:?}");
            }
        }
        assert!(t.iter().any(|s| s.contains("saturated")), "{t:?}");
        assert!(t.iter().any(|s| s.ends_with("k/s")), "{t:?}");
        assert!(t.iter().any(|s| s.ends_with("M/s")), "{t:?}");
        for c in [colour(0), colour(1)] {
            assert_eq!(count_polylines(&svg, c, 4), 3, "data lines of {c:?}");
            assert_eq!(
                count_polylines(&svg, c, 2),
                6,
                "data and legend lines of {c:?}"
            );
        }
        // p99 dashed, p99.9 dotted: 2 curves × (data + legend) each.
        assert_eq!(svg.matches("stroke-dasharray=\"9,5\"").count(), 4);
        assert_eq!(svg.matches("stroke-dasharray=\"1,5\"").count(), 4);
        assert!(!svg.contains("opacity=\"0.999\""));
        // Hollow markers: a white centre on each saturated point (2 curves × 3 percentiles)
        // and on the legend's sample.
        let white_centres = svg.matches("fill=\"#FFFFFF\"").count();
        assert!(white_centres >= 7, "{white_centres}");
    }

    #[test]
    fn throughput_latency_rejects_bad_input_and_clamps_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tl.svg");
        let e = throughput_latency_svg(&path, "t", &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("no curves"), "{e}");
        let e = throughput_latency_svg(&path, "t", &[("x".into(), vec![])]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("curve \"x\" has no points"), "{e}");
        let mut bad = curve(1.0, 100);
        bad[1].achieved_per_s = f64::NAN;
        let e = throughput_latency_svg(&path, "t", &[("x".into(), bad)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let zero = CurvePoint {
            offered_per_s: 0.0,
            achieved_per_s: 0.0,
            p50_ns: 0,
            p99_ns: 0,
            p99_9_ns: 0,
            max_ns: 0,
        };
        throughput_latency_svg(&path, "zeros", &[("z".into(), vec![zero])]).unwrap();
        let svg = read(&path);
        assert!(texts(&svg).iter().any(|s| s == "z p99.9"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    fn latency(p50: u64, p99: u64, p999: u64) -> Latency {
        Latency {
            count: 1_000,
            min_ns: p50 / 2,
            p50_ns: p50,
            p90_ns: (p50 + p99) / 2,
            p99_ns: p99,
            p99_9_ns: p999,
            p99_99_ns: p999 * 2,
            max_ns: p999 * 3,
            mean_ns: p50 as f64,
        }
    }

    #[test]
    fn comparison_has_a_bar_and_a_value_per_subject_and_percentile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmp.svg");
        let subjects = vec![
            ("Ferrox".to_string(), latency(250, 900, 4_000)),
            ("lobster".to_string(), latency(600, 3_000, 25_000)),
            ("orderbook-rs".to_string(), latency(1_200, 9_000, 1_500_000)),
        ];
        comparison_svg(
            &path,
            "Engine latency by subject",
            &["p50", "p99", "p99.9"],
            &subjects,
        )
        .unwrap();
        let svg = read(&path);
        let t = texts(&svg);
        assert!(t.iter().any(|s| s == "Engine latency by subject"), "{t:?}");
        for (name, _) in &subjects {
            assert!(t.contains(name), "missing {name}: {t:?}");
        }
        for p in ["p50", "p99", "p99.9"] {
            assert!(t.iter().any(|s| s == p), "missing group {p}: {t:?}");
        }
        for v in ["250 ns", "900 ns", "4 µs", "25 µs", "1.5 ms", "9 µs"] {
            assert!(t.iter().any(|s| s == v), "missing value label {v}: {t:?}");
        }
        // Three bars per subject plus its legend swatch.
        for s in 0..3 {
            let c = colour(s);
            let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
            let rects = svg
                .lines()
                .filter(|l| l.starts_with("<rect") && l.contains(&fill));
            assert_eq!(rects.count(), 4, "bars of subject {s}");
        }
    }

    #[test]
    fn comparison_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmp.svg");
        let one = [("a".to_string(), latency(1, 2, 3))];
        for (p, s, msg) in [
            (&[][..], &one[..], "no percentiles"),
            (&["p50"][..], &[][..], "no subjects"),
            (&["p42"][..], &one[..], "unknown percentile \"p42\""),
            (
                &["p50"][..],
                &[("e".to_string(), Latency::default())][..],
                "\"e\" has no samples",
            ),
        ] {
            let e = comparison_svg(&path, "t", p, s).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(msg), "{e} lacks {msg}");
        }
        // Zero values clamp to 1 ns.
        comparison_svg(
            &path,
            "zeros",
            &["p50", "max"],
            &[("z".into(), latency(0, 0, 0))],
        )
        .unwrap();
        assert!(texts(&read(&path)).iter().any(|s| s == "1 ns"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ns(850.0), "850 ns");
        assert_eq!(fmt_ns(1_500.0), "1.5 µs");
        assert_eq!(fmt_ns(999.9), "1 µs");
        assert_eq!(fmt_ns(20e6), "20 ms");
        assert_eq!(fmt_ns(2e9), "2 s");
        assert_eq!(fmt_rate(10_000.0), "10k/s");
        assert_eq!(fmt_rate(1e6), "1M/s");
        assert_eq!(fmt_rate(2.5e6), "2.5M/s");
        assert_eq!(fmt_rate(500.0), "500/s");
        assert_eq!(fmt_percentile_tick(0.0), "0%");
        assert_eq!(fmt_percentile_tick(1.0), "90%");
        assert_eq!(fmt_percentile_tick(2.0), "99%");
        assert_eq!(fmt_percentile_tick(3.0), "99.9%");
        assert_eq!(fmt_percentile_tick(5.0), "99.999%");
        let (bold, light) = log_ticks(&(2.0..4.5), 10);
        assert_eq!(bold.len(), 8, "1-2-5 from 200 to 20k: {bold:?}");
        assert!(bold.iter().any(|&b| (b - 3.0).abs() < 1e-12));
        assert!(light.iter().all(|l| !bold.contains(l)));
        let (bold, _) = log_ticks(&(2.0..4.5), 6);
        assert_eq!(bold.len(), 6, "1-3 from 100 to 30k: {bold:?}");
        let (bold, _) = log_ticks(&(2.0..4.5), 5);
        assert_eq!(bold, [2.0, 3.0, 4.0], "decades");
        let (bold, _) = log_ticks(&(0.0..10.5), 5);
        assert_eq!(bold.len(), 4, "every 3rd decade: {bold:?}");
    }
}
