//! The `--html` report: one self-contained page (inline CSS and SVG, no
//! scripts, nothing fetched at view time) with the summary and plots of
//! peers, throughput, loss and latency over time.

use std::fmt::Write;

use crate::report::Report;
use crate::table;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 34.0;

/// Escapes text for HTML and SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line of a chart.
pub struct Line<'a> {
    /// Legend label.
    pub label: &'a str,
    /// CSS colour.
    pub color: &'a str,
    /// Points (x, y); `None` leaves a gap.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A "nice" upper bound for a value axis.
fn nice_max(max: f64) -> f64 {
    nice_bound(
        max,
        &[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0],
    )
}

/// A "nice" upper bound for the time axis, whose quarters are round too.
fn nice_time_max(max: f64) -> f64 {
    nice_bound(max, &[1.2, 2.0, 4.0, 6.0, 8.0, 10.0])
}

fn nice_bound(max: f64, steps: &[f64]) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for &step in steps {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn label(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// An SVG line chart of `lines` against time in seconds, with the
/// full-load window `band` (start, end) shaded.
pub fn line_chart(title: &str, unit: &str, band: Option<(f64, f64)>, lines: &[Line<'_>]) -> String {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_max = nice_time_max(xs.fold(0.0, f64::max));
    let ys = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1));
    let y_max = nice_max(ys.fold(0.0, f64::max));
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + ph - y / y_max * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}"><text x="{LEFT}" y="18" class="title">{t} ({u})</text>"#,
        t = escape(title),
        u = escape(unit)
    );
    if let Some((from, to)) = band {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{TOP}" width="{w:.1}" height="{ph:.1}" class="band"><title>full load</title></rect>"#,
            x = sx(from),
            w = (sx(to) - sx(from)).max(0.0),
        );
    }
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = sy(v);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" class="axis" text-anchor="end">{l}</text>"#,
            x2 = WIDTH - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            l = label(v)
        );
        let xv = x_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{y}" class="axis" text-anchor="middle">{l} s</text>"#,
            x = sx(xv),
            y = HEIGHT - 12.0,
            l = label(xv)
        );
    }
    for (n, line) in lines.iter().enumerate() {
        let mut d = String::new();
        let mut pen_down = false;
        for &(x, y) in &line.points {
            match y {
                Some(y) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        sx(x),
                        sy(y)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.8"/><rect x="{lx}" y="8" width="10" height="10" fill="{c}"/><text x="{tx}" y="17" class="legend">{l}</text>"#,
            d = d.trim_end(),
            c = escape(line.color),
            lx = WIDTH - RIGHT - 150.0 * (lines.len() - n) as f64,
            tx = WIDTH - RIGHT - 150.0 * (lines.len() - n) as f64 + 14.0,
            l = escape(line.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let ts = &r.timeseries;
    let series = |f: &dyn Fn(&crate::stats::Sample) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        ts.iter().map(|s| (s.t, f(s))).collect()
    };
    let band = Some((r.steady_start_s, r.steady_start_s + r.steady_s));
    let charts = [
        line_chart(
            "Peers",
            "count",
            band,
            &[
                Line {
                    label: "connected",
                    color: "#2b6cb0",
                    points: series(&|s| Some(s.peers as f64)),
                },
                Line {
                    label: "failed",
                    color: "#c53030",
                    points: series(&|s| Some(s.failed as f64)),
                },
            ],
        ),
        line_chart(
            "Throughput",
            "packets/s",
            band,
            &[
                Line {
                    label: "sent",
                    color: "#718096",
                    points: series(&|s| Some(s.tx_pps)),
                },
                Line {
                    label: "received",
                    color: "#2b6cb0",
                    points: series(&|s| Some(s.rx_pps)),
                },
            ],
        ),
        line_chart(
            "Received bitrate",
            "Mbit/s",
            band,
            &[Line {
                label: "received",
                color: "#2f855a",
                points: series(&|s| Some(s.rx_bps / 1e6)),
            }],
        ),
        line_chart(
            "Loss",
            "% of expected packets, per second",
            band,
            &[Line {
                label: "loss",
                color: "#c53030",
                points: series(&|s| Some(s.loss_pct)),
            }],
        ),
        line_chart(
            "End-to-end latency",
            "ms, per second",
            band,
            &[
                Line {
                    label: "p50",
                    color: "#2b6cb0",
                    points: series(&|s| s.latency_p50_ms),
                },
                Line {
                    label: "p99",
                    color: "#dd6b20",
                    points: series(&|s| s.latency_p99_ms),
                },
            ],
        ),
    ];
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sfu-loadtest: {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 900px; color: #1a202c; padding: 0 12px; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
.verdict {{ display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 600; }}
.pass {{ background: #2f855a; }} .fail {{ background: #c53030; }} .partial {{ background: #b7791f; }}
pre {{ background: #f7fafc; border: 1px solid #e2e8f0; padding: 12px; overflow-x: auto; font-size: 12px; }}
svg {{ width: 100%; height: auto; background: #fff; border: 1px solid #e2e8f0; margin: 8px 0; }}
svg .grid {{ stroke: #edf2f7; }} svg .band {{ fill: #ebf8ff; }} svg .axis {{ font-size: 11px; fill: #4a5568; }}
svg .title {{ font-size: 13px; font-weight: 600; fill: #1a202c; }} svg .legend {{ font-size: 11px; fill: #1a202c; }}
</style></head><body>
<h1>sfu-loadtest: {title}</h1>
<p><span class="verdict {class}">{verdict}</span> <code>{command}</code></p>
"#,
        title = escape(&format!(
            "{} against {}",
            format!("{:?}", r.scenario).to_lowercase(),
            r.url
        )),
        class = if r.interrupted {
            "partial"
        } else if r.passed {
            "pass"
        } else {
            "fail"
        },
        verdict = if r.interrupted {
            "PARTIAL"
        } else if r.passed {
            "PASS"
        } else {
            "FAIL"
        },
        command = escape(&r.command),
    );
    html.push_str("<h2>Over time</h2>\n<p>Shaded: the full-load window the server's CPU and memory figures cover.</p>\n");
    for chart in &charts {
        html.push_str(chart);
        html.push('\n');
    }
    if let Some(soak) = &r.soak {
        html.push_str("<h2>Soak</h2>\n<p>The server before any peer joined, after every 500 finished join-and-leave cycles, and once everyone had left (the table is in the summary).</p>\n");
        for chart in crate::soak::charts(soak) {
            html.push_str(&chart);
            html.push('\n');
        }
    }
    let _ = write!(
        html,
        "<h2>Summary</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape(&table::render(r))
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_self_contained_svg() {
        let svg = line_chart(
            "Loss <test>",
            "%",
            Some((0.5, 2.5)),
            &[Line {
                label: "a&b",
                color: "#123456",
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, None),
                    (2.0, Some(3.0)),
                    (3.0, Some(2.0)),
                ],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Loss &lt;test&gt;") && svg.contains("a&amp;b"));
        // The gap splits the path into two pieces.
        assert_eq!(svg.matches('M').count(), 2, "{svg}");
        assert!(
            !svg.contains("http://") || svg.matches("http://").count() == 1,
            "only the xmlns"
        );
    }

    #[test]
    fn nice_axis_bounds() {
        for (max, nice) in [
            (0.0, 1.0),
            (3.2, 4.0),
            (12.0, 12.0),
            (0.07, 0.08),
            (180.0, 200.0),
            (1000.0, 1000.0),
        ] {
            assert!(
                (nice_max(max) - nice).abs() < 1e-9,
                "{max} -> {}",
                nice_max(max)
            );
        }
    }
}
