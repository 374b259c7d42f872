//! Evidence pictures as SVG, written on the server: deterministic (the same input gives the same
//! bytes), escaped like every other value (labels are text nodes), styled by classes so light and
//! dark themes both read (no inline style: the CSP forbids it).

use maud::{html, Markup};

fn f(v: f64) -> String {
    // one decimal: stable text, small files
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Vertical bars with a label under each; `highlight` marks one bar.
pub fn bars(title: &str, labels: &[String], values: &[f64], highlight: Option<usize>) -> Markup {
    let n = values.len().max(1);
    let (w, h, pad_b, pad_t) = (480.0, 160.0, 28.0, 16.0);
    let max = values.iter().cloned().fold(0.0_f64, f64::max).max(1e-9);
    let bw = w / n as f64;
    let every = (n / 12).max(1);
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(title) preserveAspectRatio="xMidYMid meet" {
            title { (title) }
            line.axis x1="0" y1=(f(h - pad_b)) x2=(f(w)) y2=(f(h - pad_b)) {}
            @for (i, v) in values.iter().enumerate() {
                @let bh = (v / max) * (h - pad_b - pad_t);
                @let x = i as f64 * bw;
                rect class=(if highlight == Some(i) { "bar hl" } else { "bar" })
                    x=(f(x + bw * 0.1)) y=(f(h - pad_b - bh)) width=(f(bw * 0.8)) height=(f(bh.max(0.0))) {
                    title { (labels.get(i).map(String::as_str).unwrap_or("")) ": " (f(*v)) }
                }
                @if *v > 0.0 && n <= 24 {
                    text.val x=(f(x + bw / 2.0)) y=(f(h - pad_b - bh - 3.0)) text-anchor="middle" { (f(*v)) }
                }
                @if i % every == 0 {
                    text.lbl x=(f(x + bw / 2.0)) y=(f(h - 10.0)) text-anchor="middle" {
                        (labels.get(i).map(String::as_str).unwrap_or(""))
                    }
                }
            }
        }
    }
}

/// Horizontal bars: one row per item, its label, its value.
pub fn hbars(title: &str, items: &[(String, f64)], highlight: Option<usize>) -> Markup {
    let row = 22.0;
    let (w, lw) = (480.0, 190.0);
    let h = (items.len().max(1) as f64) * row + 4.0;
    let max = items.iter().map(|i| i.1).fold(0.0_f64, f64::max).max(1e-9);
    html! {
        svg.chart viewBox=(format!("0 0 {w} {}", f(h))) role="img" aria-label=(title) {
            title { (title) }
            @for (i, (label, v)) in items.iter().enumerate() {
                @let y = i as f64 * row + 2.0;
                @let bw = (v / max) * (w - lw - 60.0);
                text.lbl x=(f(lw - 6.0)) y=(f(y + 15.0)) text-anchor="end" { (clip(label, 28)) }
                rect class=(if highlight == Some(i) { "bar hl" } else { "bar" })
                    x=(f(lw)) y=(f(y + 3.0)) width=(f(bw.max(1.0))) height="14" {
                    title { (label) ": " (f(*v)) }
                }
                text.val x=(f(lw + bw + 4.0)) y=(f(y + 15.0)) { (f(*v)) }
            }
        }
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n - 1).collect();
    t.push('…');
    t
}

/// A week as 7 rows (Monday first) of 24 hours, shaded by value (quantized into 6 classes);
/// `mark` outlines one hour of the week (0 = Monday 00:00).
pub fn heatmap(title: &str, values: &[f32], mark: Option<usize>) -> Markup {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let (cw, ch, lw, top) = (18.0, 16.0, 34.0, 14.0);
    let w = lw + 24.0 * cw;
    let h = top + 7.0 * ch + 2.0;
    let max = values.iter().cloned().fold(0.0_f32, f32::max);
    let class = |v: f32| -> &'static str {
        if max <= 0.0 || v <= 0.0 {
            return "q0";
        }
        match ((v / max) * 5.0).ceil() as u32 {
            0 | 1 => "q1",
            2 => "q2",
            3 => "q3",
            4 => "q4",
            _ => "q5",
        }
    };
    html! {
        svg.chart.heat viewBox=(format!("0 0 {} {}", f(w), f(h))) role="img" aria-label=(title) {
            title { (title) }
            @for hr in (0..24).step_by(3) {
                text.lbl x=(f(lw + hr as f64 * cw + cw / 2.0)) y="10" text-anchor="middle" { (hr) }
            }
            @for (d, day) in DAYS.iter().enumerate() {
                text.lbl x=(f(lw - 4.0)) y=(f(top + d as f64 * ch + 12.0)) text-anchor="end" { (day) }
                @for hr in 0..24 {
                    @let i = d * 24 + hr;
                    @let v = values.get(i).copied().unwrap_or(0.0);
                    rect class=(if mark == Some(i) { format!("{} mark", class(v)) } else { class(v).to_string() })
                        x=(f(lw + hr as f64 * cw + 1.0)) y=(f(top + d as f64 * ch + 1.0))
                        width=(f(cw - 2.0)) height=(f(ch - 2.0)) {
                        title { (day) " " (format!("{hr:02}:00")) ": " (f(f64::from(v))) " queries/h" }
                    }
                }
            }
        }
    }
}

/// One point on a timeline.
pub struct Mark {
    pub at: i64,
    pub label: String,
    /// CSS class: `m1`..`m4`.
    pub class: &'static str,
}

/// A time axis from `from` to `to` (Unix seconds) with marks (labelled ones with a line, an
/// unlabelled one as a dot: a lookup), an optional shaded span and optional regular ticks
/// (e.g. a beacon's check-ins at its median interval).
pub fn timeline(
    title: &str,
    from: i64,
    to: i64,
    marks: &[Mark],
    span: Option<(i64, i64)>,
    ticks_every: Option<f64>,
) -> Markup {
    let (w, h, x0, x1) = (480.0, 90.0, 10.0, 470.0);
    let to = to.max(from + 1);
    let x = |t: i64| x0 + (t - from) as f64 / (to - from) as f64 * (x1 - x0);
    let ticks: Vec<f64> = match ticks_every {
        Some(p) if p > 0.0 => {
            let n = (((to - from) as f64) / p).floor() as usize;
            if n <= 400 {
                (0..=n).map(|i| x(from + (i as f64 * p) as i64)).collect()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(title) {
            title { (title) }
            @if let Some((a, b)) = span {
                rect.span x=(f(x(a))) y="30" width=(f((x(b) - x(a)).max(2.0))) height="20" {}
            }
            line.axis x1=(f(x0)) y1="50" x2=(f(x1)) y2="50" {}
            @for t in &ticks {
                line.tick x1=(f(*t)) y1="42" x2=(f(*t)) y2="50" {}
            }
            @for (i, m) in marks.iter().enumerate() {
                @let mx = x(m.at);
                @let ly = if i % 2 == 0 { 20.0 } else { 72.0 };
                @if m.label.is_empty() {
                    // an unlabelled mark: one dot on the axis (a lookup)
                    circle class=(format!("mk {}", m.class)) cx=(f(mx)) cy="50" r="2.5" {
                        title { (crate::fmt::secs(m.at)) }
                    }
                } @else {
                    line class=(format!("mk {}", m.class)) x1=(f(mx)) y1="26" x2=(f(mx)) y2="58" {}
                    circle class=(format!("mk {}", m.class)) cx=(f(mx)) cy="50" r="4" {}
                    text.lbl x=(f(mx.clamp(40.0, 440.0))) y=(f(ly)) text-anchor="middle" { (m.label) }
                }
            }
            text.lbl x=(f(x0)) y="88" { (crate::fmt::secs(from)) }
            text.lbl x=(f(x1)) y="88" text-anchor="end" { (crate::fmt::secs(to)) }
        }
    }
}

/// A bar from 0 to `max` with the value filled and the threshold marked.
pub fn gauge(title: &str, value: f64, threshold: f64, max: f64) -> Markup {
    let (w, x0, x1) = (480.0, 10.0, 470.0);
    let max = max.max(1e-9);
    let x = |v: f64| x0 + (v / max).clamp(0.0, 1.0) * (x1 - x0);
    html! {
        svg.chart viewBox=(format!("0 0 {w} 44")) role="img" aria-label=(title) {
            title { (title) }
            rect.track x=(f(x0)) y="8" width=(f(x1 - x0)) height="14" {}
            rect class=(if value >= threshold { "bar hl" } else { "bar" }) x=(f(x0)) y="8" width=(f(x(value) - x0)) height="14" {}
            line.thr x1=(f(x(threshold))) y1="4" x2=(f(x(threshold))) y2="26" {}
            text.lbl x=(f(x(threshold))) y="40" text-anchor="middle" { "threshold " (f(threshold)) }
            text.val x=(f(x(value).min(x1 - 30.0))) y="20" { (format!("{value:.3}")) }
        }
    }
}

/// One row of a [`series`] chart.
pub struct Row<'a> {
    pub label: &'a str,
    pub values: &'a [f64],
    /// CSS class of its area: `s1`..`s4`.
    pub class: &'static str,
}

/// Time series as small multiples sharing one time axis: one row per series, each scaled to
/// its own maximum (written at its left, so a series of blocks a hundred times smaller than
/// the queries still shows its shape). Bucket `i` covers `from + i·step` (Unix seconds);
/// the axis is labelled at UTC midnights.
pub fn series(title: &str, from: i64, step: i64, rows: &[Row<'_>]) -> Markup {
    let (w, x0, x1, rh, gap, top) = (480.0, 64.0, 476.0, 38.0, 8.0, 4.0);
    let n = rows
        .iter()
        .map(|r| r.values.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let h = top + rows.len() as f64 * (rh + gap) + 14.0;
    let bw = (x1 - x0) / n as f64;
    let step = step.max(1);
    // midnight ticks, thinned to at most ~8 labels
    let days: Vec<(usize, i64)> = (0..n)
        .filter_map(|i| {
            let t = from + i as i64 * step;
            (t.rem_euclid(86_400) < step).then_some((i, t))
        })
        .collect();
    let every = days.len().div_ceil(8).max(1);
    html! {
        svg.chart.series viewBox=(format!("0 0 {w} {}", f(h))) role="img" aria-label=(title) {
            title { (title) }
            @for (k, r) in rows.iter().enumerate() {
                @let y0 = top + k as f64 * (rh + gap);
                @let base = y0 + rh;
                @let max = r.values.iter().cloned().fold(0.0_f64, f64::max);
                @let total: f64 = r.values.iter().sum();
                @let scale = if max > 0.0 { (rh - 2.0) / max } else { 0.0 };
                text.lbl x="0" y=(f(y0 + 11.0)) { (r.label) }
                text.val x="0" y=(f(y0 + 25.0)) { "max " (f(max)) }
                line.axis x1=(f(x0)) y1=(f(base)) x2=(f(x1)) y2=(f(base)) {}
                @if max > 0.0 {
                    @let pts: Vec<String> = r.values.iter().enumerate()
                        .flat_map(|(i, v)| {
                            let (a, b, y) = (x0 + i as f64 * bw, x0 + (i + 1) as f64 * bw, base - v * scale);
                            [format!("{},{}", f(a), f(y)), format!("{},{}", f(b), f(y))]
                        })
                        .collect();
                    polygon class=(format!("area {}", r.class))
                        points=(format!("{},{} {} {},{}", f(x0), f(base), pts.join(" "), f(x0 + r.values.len() as f64 * bw), f(base))) {
                        title { (r.label) ": " (f(total)) " in all, at most " (f(max)) " per bucket" }
                    }
                }
            }
            @for (j, (i, t)) in days.iter().enumerate() {
                @let x = x0 + *i as f64 * bw;
                line.tick x1=(f(x)) y1=(f(top)) x2=(f(x)) y2=(f(h - 12.0)) {}
                @if j % every == 0 {
                    text.lbl x=(f(x)) y=(f(h - 2.0)) text-anchor="middle" { (crate::fmt::secs(*t)[5..10].to_string()) }
                }
            }
        }
    }
}

/// A small line of values (activity over time).
pub fn sparkline(title: &str, values: &[f64]) -> Markup {
    let (w, h) = (120.0, 24.0);
    let max = values.iter().cloned().fold(0.0_f64, f64::max).max(1e-9);
    let n = values.len().max(2) - 1;
    let pts: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{},{}",
                f(i as f64 / n as f64 * w),
                f(h - 2.0 - v / max * (h - 4.0))
            )
        })
        .collect();
    html! {
        svg.spark viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(title) {
            title { (title) }
            polyline points=(pts.join(" ")) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_escaped() {
        let labels = vec!["<10s".to_string(), "<script>".to_string()];
        let a = bars("t", &labels, &[3.0, 1.0], Some(0)).into_string();
        let b = bars("t", &labels, &[3.0, 1.0], Some(0)).into_string();
        assert_eq!(a, b);
        assert!(
            a.contains("&lt;script&gt;") && !a.contains("<script>"),
            "{a}"
        );
        let h = heatmap("week", &[1.0; 168], Some(5)).into_string();
        assert_eq!(h.matches("<rect").count(), 168);
        assert!(h.contains("q5 mark"));
        let t = timeline(
            "x",
            0,
            3600,
            &[Mark {
                at: 60,
                label: "a\"><img>".into(),
                class: "m1",
            }],
            Some((0, 600)),
            Some(300.0),
        )
        .into_string();
        assert!(!t.contains("<img>"), "{t}");
        assert_eq!(t.matches("class=\"tick\"").count(), 13);
    }

    #[test]
    fn unlabelled_marks_are_dots() {
        let marks: Vec<Mark> = (0..5)
            .map(|i| Mark {
                at: i * 300,
                label: String::new(),
                class: "m4",
            })
            .collect();
        let t = timeline("arrivals", 0, 1200, &marks, None, None).into_string();
        assert_eq!(t.matches("<circle").count(), 5, "{t}");
        assert_eq!(t.matches("r=\"2.5\"").count(), 5, "{t}");
        assert!(!t.contains("<line class=\"mk"), "{t}");
    }

    #[test]
    fn series_rows_share_the_axis() {
        let q: Vec<f64> = (0..48).map(|i| f64::from(i % 24)).collect();
        let b = vec![0.0; 48];
        let rows = [
            Row {
                label: "queries",
                values: &q,
                class: "s1",
            },
            Row {
                label: "<b>",
                values: &b,
                class: "s2",
            },
        ];
        // two days from a midnight, hourly
        let a = series("t", 86_400 * 20_000, 3600, &rows).into_string();
        assert_eq!(a, series("t", 86_400 * 20_000, 3600, &rows).into_string());
        // one area (the all-zero row draws none), two midnights
        assert_eq!(a.matches("<polygon").count(), 1, "{a}");
        assert_eq!(a.matches("class=\"tick\"").count(), 2, "{a}");
        assert!(a.contains("max 23") && a.contains("&lt;b&gt;"), "{a}");
        assert!(a.contains("queries: 552 in all"), "{a}");
    }
}
