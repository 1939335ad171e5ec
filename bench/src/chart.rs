//! One PNG: the distributions behind the table, ours vs the reference vs the floor.

use crate::phases::{ByKind, Measured};
use crate::meta::Meta;
use crate::report::Results;
use crate::style::{color, register_font, FONT};
use crate::target::Kind;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;

const SIZE: (u32, u32) = (1400, 1000);

/// Empirical cumulative distribution: (value, share of samples ≤ value).
fn cdf(samples: &[f64], floor: f64) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = samples.iter().map(|s| s.max(floor)).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, (i + 1) as f64 / n))
        .collect()
}

fn bounds(by: &ByKind<Measured>) -> (f64, f64) {
    let all = Kind::ALL
        .iter()
        .filter_map(|&k| by.get(k))
        .flat_map(|m| m.samples.iter().copied());
    all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws the cumulative distributions of `by`, one line per implementation.
fn cdf_panel(
    area: &Area,
    title: &str,
    x_desc: &str,
    by: &ByKind<Measured>,
    log: bool,
) -> Result<(), Box<dyn Error>> {
    let (lo, hi) = bounds(by);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60);
    let series = |kind: Kind, floor: f64| {
        by.get(kind)
            .map(|m| (kind, cdf(&m.samples, floor)))
            .filter(|(_, p)| !p.is_empty())
    };
    let floor = if log {
        10f64.powf(lo.max(0.01).log10().floor())
    } else {
        f64::NEG_INFINITY
    };
    let lines: Vec<(Kind, Vec<(f64, f64)>)> =
        Kind::ALL.iter().filter_map(|&k| series(k, floor)).collect();
    if log {
        // Whole decades, so the axis has labels however narrow the data.
        let hi = 10f64.powf(hi.max(floor * 2.0).log10().ceil());
        draw_cdfs(
            builder.build_cartesian_2d((floor..hi).log_scale(), 0f64..1.0)?,
            x_desc,
            lines,
        )
    } else {
        let pad = ((hi - lo) * 0.05).max(0.5);
        draw_cdfs(
            builder.build_cartesian_2d((lo - pad)..(hi + pad), 0f64..1.0)?,
            x_desc,
            lines,
        )
    }
}

/// The mesh, one line per implementation, and the legend, on either x axis.
fn draw_cdfs<'a, X>(
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, RangedCoordf64>>,
    x_desc: &str,
    lines: Vec<(Kind, Vec<(f64, f64)>)>,
) -> Result<(), Box<dyn Error>>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("share of calls")
        .label_style((FONT, 15))
        .draw()?;
    for (kind, points) in lines {
        let c = color(kind);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(3)))?
            .label(kind.label())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

/// p50 dialplan time and delivery spread against the number of applications.
fn fan_panel(area: &Area, r: &Results) -> Result<(), Box<dyn Error>> {
    let p50 = |m: Option<&Measured>| m.and_then(|m| m.summary.as_ref()).map(|s| s.p50);
    // (label, colour, solid: dialplan time / faint: delivery spread, points)
    type Line = (String, RGBColor, bool, Vec<(f64, f64)>);
    let mut lines: Vec<Line> = Vec::new();
    for kind in Kind::ALL {
        let start: Vec<(f64, f64)> = r
            .fan_out
            .iter()
            .filter_map(|p| Some((p.apps as f64, p50(p.start.get(kind))?)))
            .collect();
        let spread: Vec<(f64, f64)> = r
            .fan_out
            .iter()
            .filter(|p| p.apps > 1)
            .filter_map(|p| Some((p.apps as f64, p50(p.spread.get(kind))?)))
            .collect();
        let what = if kind.broadcasts() {
            "StasisBroadcast(0)"
        } else {
            "NoOp()"
        };
        lines.push((
            format!("{} dialplan time in {what}", kind.label()),
            color(kind),
            true,
            start,
        ));
        if kind.broadcasts() {
            lines.push((
                format!("{} first→last CallBroadcast", kind.label()),
                color(kind),
                false,
                spread,
            ));
        }
    }
    let max_apps = r.fan_out.iter().map(|p| p.apps).max().unwrap_or(1) as f64;
    let max_y = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|p| p.1))
        .fold(0.1f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "2. Fan-out: p50 against registered applications",
            (FONT, 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_apps * 1.05, 0f64..max_y * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("registered ARI applications")
        .y_desc("ms")
        .label_style((FONT, 15))
        .draw()?;
    for (label, c, solid, points) in lines {
        let style = if solid {
            c.stroke_width(3)
        } else {
            c.mix(0.55).stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
        if solid {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        } else {
            chart.draw_series(
                points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 5, c.mix(0.55).filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

/// Renders the chart to `path` (PNG).
pub fn render(path: &Path, meta: &Meta, r: &Results) -> Result<(), Box<dyn Error>> {
    register_font()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "StasisBroadcast: ours vs the C reference vs plain Stasis() — {} ({} mode)",
        meta.date, meta.mode
    );
    let root = root.titled(&title, (FONT, 26))?;
    let panels = root.split_evenly((2, 2));
    cdf_panel(
        &panels[0],
        "1. Claim latency (CallBroadcast → StasisStart)",
        "ms (log scale)",
        &r.claim_latency,
        true,
    )?;
    fan_panel(&panels[1], r)?;
    cdf_panel(
        &panels[2],
        "3. Hang-up release (hang-up → ChannelDestroyed)",
        "ms",
        &r.hangup_release,
        false,
    )?;
    cdf_panel(
        &panels[3],
        "4. Timeout error (actual − requested 100 ms)",
        "ms",
        &r.timeout_error,
        false,
    )?;
    root.present()?;
    Ok(())
}
