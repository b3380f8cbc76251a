//! GFLOP/s bar charts as SVG (`wgconv bench --plot`), drawn with plotters.
//!
//! One bar per layer (or per network), and a peer's bar beside it when the
//! caller has one. The y axis is logarithmic: ours and the peers span
//! 0.3–260 GFLOP/s on the same machine, and on a linear axis everything
//! below a tenth of the tallest bar would be a sliver. Each bar carries its
//! value as text, so nobody has to read a log axis closely.
//!
//! The SVG backend writes `<text>` elements (no font files are read), and the
//! file is written atomically: rendered in memory, written to a temporary
//! file in the same directory, then renamed over the target.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One group of bars: our GFLOP/s and optionally the peer's, for one layer
/// or network.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Layer (or network) name, written under the bars.
    pub name: String,
    /// Our GFLOP/s.
    pub ours: f64,
    /// The peer's GFLOP/s, if the peer has this layer.
    pub peer: Option<f64>,
}

const OURS_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const PEER_COLOR: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
/// Gap in pixels between the bar groups.
const GAP: u32 = 6;

/// Checks a chart path before any slow work: it must end in `.svg`, its
/// directory must exist, and it must not be a directory.
///
/// `flag` names the flag in the error (e.g. `--plot`).
pub fn check_path(flag: &str, path: &Path) -> anyhow::Result<()> {
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !svg {
        return Err(anyhow!("{flag} {}: must end in .svg", path.display()));
    }
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !d.is_dir() {
            return Err(anyhow!(
                "{flag} {}: directory does not exist",
                path.display()
            ));
        }
    }
    if path.is_dir() {
        return Err(anyhow!("{flag} {}: is a directory", path.display()));
    }
    Ok(())
}

/// Draws `bars` as a grouped bar chart of GFLOP/s and writes it to `path`
/// as SVG.
///
/// - `title`: the caption (put the adapter name in it).
/// - `ours_label`: legend entry for our bars.
/// - `peer_label`: legend entry for the peer's bars (default `peer`); the
///   peer series is drawn only when some bar has a `peer` value.
///
/// Values that are not positive and finite get no bar (a log axis cannot
/// show them). Errors: no bars, no positive value, rendering, or writing the
/// file; the target is never left half-written. Errors do not name `path`:
/// the caller adds it with its flag.
pub fn bar_chart(
    path: &Path,
    title: &str,
    ours_label: &str,
    peer_label: Option<&str>,
    bars: &[Bar],
) -> anyhow::Result<()> {
    let svg = render(title, ours_label, peer_label, bars)?;
    crate::bench::write_atomic(path, svg.as_bytes()).context("cannot write")
}

fn plottable(v: f64) -> Option<f64> {
    (v.is_finite() && v > 0.0).then_some(v)
}

/// A number for a label: about three significant digits, no trailing zeros.
fn short(v: f64) -> String {
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Axis tick label: up to three decimals, trailing zeros dropped.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Y ticks for a log axis over `lo..hi`: bold at 1, 2, 5 × 10^k (only
/// 1 × 10^k when the range spans more than two decades), light at every
/// 1..9 × 10^k.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let steps: &[f64] = if e1 - e0 > 3 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    for e in e0..=e1 {
        let decade = 10f64.powi(e);
        for k in 1..=9 {
            let v = f64::from(k) * decade;
            if (lo..=hi).contains(&v) {
                light.push(v);
                if steps.contains(&f64::from(k)) {
                    bold.push(v);
                }
            }
        }
    }
    (bold, light)
}

fn render(
    title: &str,
    ours_label: &str,
    peer_label: Option<&str>,
    bars: &[Bar],
) -> anyhow::Result<String> {
    if bars.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let values = bars
        .iter()
        .flat_map(|b| [Some(b.ours), b.peer])
        .flatten()
        .filter_map(plottable);
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if hi <= 0.0 {
        return Err(anyhow!("nothing to plot: no positive GFLOP/s value"));
    }
    // Headroom on both ends (the value labels sit above the bars).
    let (y_lo, y_hi) = (lo / 2.0, hi * 4.0);
    let (bold, light) = log_ticks(y_lo, y_hi);
    let y_axis = (y_lo..y_hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light);
    let with_peer = bars.iter().any(|b| b.peer.and_then(plottable).is_some());
    let n = bars.len();
    let last = i32::try_from(n - 1).map_err(|_| anyhow!("too many bars: {n}"))?;
    let width = 160 + 80 * u32::try_from(n).unwrap_or(u32::MAX / 100).min(200);
    let (width, height) = (width.max(640), 480u32);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let e = |e| anyhow!("drawing the chart: {e}");
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d((0..last).into_segmented(), y_axis)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => usize::try_from(*i)
                    .ok()
                    .and_then(|i| bars.get(i))
                    .map_or(String::new(), |b| b.name.clone()),
                _ => String::new(),
            })
            .y_label_formatter(&|v| tick(*v))
            .y_desc("GFLOP/s (log scale)")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(e)?;

        let seg = chart.plotting_area().dim_in_pixel().0 as f64 / n as f64;
        let left = SegmentValue::Exact;
        let right = |i: i32| {
            if i < last {
                SegmentValue::Exact(i + 1)
            } else {
                SegmentValue::Last
            }
        };
        let value_style = TextStyle::from(("sans-serif", 13).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom))
            .color(&BLACK);
        // Pixel offsets of each bar's centre from the segment's centre.
        let half = GAP as f64 / 2.0;
        let (ours_dx, peer_dx) = if with_peer {
            ((half - seg / 4.0) as i32, (seg / 4.0 - half) as i32)
        } else {
            (0, 0)
        };
        let groups: Vec<(i32, &Bar)> = (0..=last).zip(bars).collect();

        let ours = groups
            .iter()
            .filter_map(|&(i, b)| plottable(b.ours).map(|v| (i, v)));
        chart
            .draw_series(ours.clone().map(|(i, v)| {
                let x1 = if with_peer {
                    SegmentValue::CenterOf(i)
                } else {
                    right(i)
                };
                let mut r = Rectangle::new([(left(i), y_lo), (x1, v)], OURS_COLOR.filled());
                r.set_margin(0, 0, GAP, if with_peer { 0 } else { GAP });
                r
            }))
            .map_err(e)?
            .label(ours_label)
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], OURS_COLOR.filled()));
        chart
            .draw_series(ours.map(|(i, v)| {
                EmptyElement::at((SegmentValue::CenterOf(i), v))
                    + Text::new(short(v), (ours_dx, -2), value_style.clone())
            }))
            .map_err(e)?;

        if with_peer {
            let peer = groups
                .iter()
                .filter_map(|&(i, b)| b.peer.and_then(plottable).map(|v| (i, v)));
            chart
                .draw_series(peer.clone().map(|(i, v)| {
                    let mut r = Rectangle::new(
                        [(SegmentValue::CenterOf(i), y_lo), (right(i), v)],
                        PEER_COLOR.filled(),
                    );
                    r.set_margin(0, 0, 0, GAP);
                    r
                }))
                .map_err(e)?
                .label(peer_label.unwrap_or("peer"))
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], PEER_COLOR.filled())
                });
            chart
                .draw_series(peer.map(|(i, v)| {
                    EmptyElement::at((SegmentValue::CenterOf(i), v))
                        + Text::new(short(v), (peer_dx, -2), value_style.clone())
                }))
                .map_err(e)?;
        }

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short() {
        assert_eq!(short(193.2), "193");
        assert_eq!(short(12.34), "12.3");
        assert_eq!(short(5.0), "5");
        assert_eq!(short(0.96), "0.96");
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(100.0), "100");
        let (bold, light) = log_ticks(0.33, 18.0);
        assert_eq!(bold, [0.5, 1.0, 2.0, 5.0, 10.0]);
        assert_eq!(light.len(), 6 + 9 + 1);
        let (bold, _) = log_ticks(0.3, 600.0);
        assert_eq!(bold, [1.0, 10.0, 100.0]);
    }

    #[test]
    fn svg_has_names_legend_and_values() {
        let bars = [
            Bar {
                name: "stem7".into(),
                ours: 5.43,
                peer: Some(1.38),
            },
            Bar {
                name: "dw3".into(),
                ours: 1.51,
                peer: None,
            },
        ];
        let svg = render("t on llvmpipe", "wgconv", Some("Burn"), &bars).expect("render");
        for s in ["stem7", "dw3", "wgconv", "Burn", "5.43", "1.38", "llvmpipe"] {
            assert!(svg.contains(s), "{s} missing");
        }
        assert!(render("t", "a", None, &[]).is_err());
        let zero = [Bar {
            name: "x".into(),
            ours: 0.0,
            peer: None,
        }];
        assert!(render("t", "a", None, &zero).is_err());
    }

    #[test]
    fn check_path_wants_svg_in_an_existing_directory() {
        assert!(check_path("--plot", Path::new("a.svg")).is_ok());
        assert!(check_path("--plot", Path::new("a.SVG")).is_ok());
        let e = check_path("--plot", Path::new("a.png")).expect_err("png");
        assert!(e.to_string().contains(".svg"), "{e}");
        assert!(check_path("--plot", Path::new("/no/such/dir/a.svg")).is_err());
    }
}
