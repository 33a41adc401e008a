//! Figures, each drawn once per backend: PNG (bitmap) and SVG, both written atomically.

use crate::ReportError;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Registers the embedded DejaVu Sans as the figures' font (once per process).
fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// A categorical colour, distinct for the first ten.
pub fn palette(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// Viridis at `t` in [0, 1].
pub fn viridis(t: f64) -> RGBColor {
    ViridisRGB::get_color(t.clamp(0.0, 1.0) as f32)
}

/// One line of a line chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
}

/// A panel of lines.
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// A log x axis (values must be positive).
    pub x_log: bool,
    /// A horizontal reference line (e.g. chance accuracy).
    pub reference: Option<f64>,
    /// x values are whole numbers (layers): label them so.
    pub x_integer: bool,
}

/// A labelled trajectory: points (x, y, colour value in [0, 1]) joined in order.
pub type Trajectory = (String, Vec<(f64, f64, f64)>);

/// Points coloured by a value in [0, 1], joined in order per trajectory.
pub struct TrajectoryPanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// (label, points (x, y, colour value in [0, 1])).
    pub trajectories: Vec<Trajectory>,
    /// What the colour encodes, and its range as printed.
    pub color_label: String,
}

/// A grid of values (rows × columns), `None` drawn blank.
pub struct Heatmap {
    pub title: String,
    pub row_label: String,
    pub col_label: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
    pub range: (f64, f64),
}

type Res = Result<(), String>;

fn e<T: std::fmt::Debug>(x: T) -> String {
    format!("{x:?}")
}

fn range(vals: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let d = lo.abs().max(1.0) * 0.05;
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * pad;
    (lo - d, hi + d)
}

/// A compact axis label: 1500 → "1500", 143000 → "143k", 2.5e6 → "2.5M".
fn short(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn draw_lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &LinePanel) -> Res {
    let (x0, x1) = range(
        p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)),
        0.02,
    );
    let (mut y0, mut y1) = range(
        p.series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.1))
            .chain(p.reference),
        0.05,
    );
    // Accuracies (every value and the reference in [0, 1]) keep an axis within [0, 1.02].
    let unit = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.1))
        .chain(p.reference)
        .filter(|v| v.is_finite())
        .all(|v| (0.0..=1.0).contains(&v));
    if p.reference.is_some() && unit {
        y0 = y0.max(0.0);
        y1 = y1.min(1.02).max(y0 + 0.05);
    }
    let mut b = ChartBuilder::on(area);
    b.caption(&p.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60);
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(p.x_label.as_str())
                .y_desc(p.y_label.as_str())
                .x_label_formatter(&|x| {
                    if p.x_integer {
                        format!("{:.0}", x)
                    } else {
                        short(*x)
                    }
                })
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(e)?;
            if let Some(r) = p.reference {
                let (a, z) = (x0.max(if p.x_log { 1e-300 } else { f64::MIN }), x1);
                chart
                    .draw_series(LineSeries::new(vec![(a, r), (z, r)], BLACK.mix(0.3)))
                    .map_err(e)?;
            }
            for s in &p.series {
                let c = s.color;
                let drawn = chart
                    .draw_series(LineSeries::new(s.points.clone(), c.stroke_width(2)))
                    .map_err(e)?;
                if !s.label.is_empty() {
                    drawn.label(s.label.as_str()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
                }
                chart
                    .draw_series(s.points.iter().map(|&q| Circle::new(q, 2, c.filled())))
                    .map_err(e)?;
            }
            if p.series.iter().any(|s| !s.label.is_empty()) {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK.mix(0.3))
                    .label_font(("sans-serif", 11))
                    .position(SeriesLabelPosition::LowerRight)
                    .draw()
                    .map_err(e)?;
            }
        }};
    }
    if p.x_log {
        let xs = || p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
        let lo = xs().filter(|&x| x > 0.0).fold(f64::INFINITY, f64::min);
        let hi = xs().fold(0f64, f64::max);
        let (lo, hi) = if lo.is_finite() {
            (lo / 1.5, hi * 1.5)
        } else {
            (1.0, 10.0)
        };
        body!(b
            .build_cartesian_2d((lo..hi).log_scale(), y0..y1)
            .map_err(e)?);
    } else {
        body!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(e)?);
    }
    Ok(())
}

fn draw_trajectories<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &TrajectoryPanel,
) -> Res {
    let pts = || p.trajectories.iter().flat_map(|t| t.1.iter());
    let (x0, x1) = range(pts().map(|q| q.0), 0.05);
    let (y0, y1) = range(pts().map(|q| q.1), 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(e)?;
    for (i, (label, t)) in p.trajectories.iter().enumerate() {
        let c = palette(i);
        chart
            .draw_series(LineSeries::new(
                t.iter().map(|q| (q.0, q.1)),
                c.mix(0.6).stroke_width(1),
            ))
            .map_err(e)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(
                t.iter()
                    .map(|q| Circle::new((q.0, q.1), 4, viridis(q.2).filled())),
            )
            .map_err(e)?;
    }
    if p.trajectories.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
    }
    // Colour key: early (dark) to late (yellow).
    let (w, h) = area.dim_in_pixel();
    let key = area.margin(h as i32 - 34, 8, w as i32 - 290, 12);
    for k in 0..50 {
        let x = 110 + k * 3;
        key.draw(&Rectangle::new(
            [(x, 2), (x + 3, 14)],
            viridis(k as f64 / 49.0).filled(),
        ))
        .map_err(e)?;
    }
    key.draw(&Text::new(
        p.color_label.as_str(),
        (0, 3),
        ("sans-serif", 11),
    ))
    .map_err(e)?;
    Ok(())
}

fn draw_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Heatmap) -> Res {
    let (nr, nc) = (p.rows.len(), p.cols.len());
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(
            (0..nc.max(1) - 1).into_segmented(),
            (0..nr.max(1) - 1).into_segmented(),
        )
        .map_err(e)?;
    let name = |v: &SegmentValue<usize>, names: &[String]| match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    // At most about 16 column and 24 row labels.
    let (col_every, row_every) = (nc.div_ceil(16).max(1), nr.div_ceil(24).max(1));
    let cols: Vec<String> = p
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i % col_every == 0 {
                c.clone()
            } else {
                String::new()
            }
        })
        .collect();
    let rows: Vec<String> = p
        .rows
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i % row_every == 0 {
                c.clone()
            } else {
                String::new()
            }
        })
        .collect();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(p.col_label.as_str())
        .y_desc(p.row_label.as_str())
        .x_labels(nc + 1)
        .y_labels(nr + 1)
        .x_label_formatter(&|v| name(v, &cols))
        .y_label_formatter(&|v| name(v, &rows))
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(e)?;
    let (lo, hi) = p.range;
    chart
        .draw_series(p.values.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().filter_map(move |(c, v)| {
                v.map(|v| {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(c), SegmentValue::Exact(r)),
                            (SegmentValue::Exact(c + 1), SegmentValue::Exact(r + 1)),
                        ],
                        viridis(t).filled(),
                    )
                })
            })
        }))
        .map_err(e)?;
    let (w, h) = area.dim_in_pixel();
    let key = area.margin(h as i32 - 30, 4, w as i32 - 330, 10);
    for k in 0..60 {
        let x = 90 + k * 3;
        key.draw(&Rectangle::new(
            [(x, 2), (x + 3, 14)],
            viridis(k as f64 / 59.0).filled(),
        ))
        .map_err(e)?;
    }
    key.draw(&Text::new(format!("{lo:.2}"), (55, 3), ("sans-serif", 11)))
        .map_err(e)?;
    key.draw(&Text::new(format!("{hi:.2}"), (275, 3), ("sans-serif", 11)))
        .map_err(e)?;
    Ok(())
}

/// What a figure holds: one or more panels side by side.
pub enum Figure {
    Lines(Vec<LinePanel>),
    Trajectories(TrajectoryPanel),
    Heatmap(Heatmap),
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, f: &Figure) -> Res {
    root.fill(&WHITE).map_err(e)?;
    match f {
        Figure::Lines(panels) => {
            let areas = root.split_evenly((1, panels.len().max(1)));
            for (a, p) in areas.iter().zip(panels) {
                draw_lines(a, p)?;
            }
        }
        Figure::Trajectories(p) => draw_trajectories(&root, p)?,
        Figure::Heatmap(p) => draw_heatmap(&root, p)?,
    }
    root.present().map_err(e)
}

/// Writes `base.png` and `base.svg`; returns both paths.
pub fn render(base: &Path, size: (u32, u32), f: &Figure) -> Result<[PathBuf; 2], ReportError> {
    fonts();
    let err = |what: &str, m: String| {
        ReportError::Invalid(format!("{}: cannot draw the {what} ({m})", base.display()))
    };
    let png = base.with_extension("png");
    // The encoder picks the format from the extension: the temporary name ends in .png too.
    let tmp = base.with_extension(format!("tmp-{}.png", std::process::id()));
    draw(BitMapBackend::new(&tmp, size).into_drawing_area(), f).map_err(|m| err("PNG", m))?;
    std::fs::rename(&tmp, &png).map_err(|x| err("PNG", x.to_string()))?;
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        f,
    )
    .map_err(|m| err("SVG", m))?;
    let svg_path = base.with_extension("svg");
    pretrace_store::write_atomic(&svg_path, svg.as_bytes())
        .map_err(|x| err("SVG", x.to_string()))?;
    Ok([png, svg_path])
}
