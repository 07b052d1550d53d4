//! A small SVG bar chart of per-queue load per scheme (hand-written: a
//! plotting crate would pull a large dependency tree for one chart).

use std::fmt::Write;

/// One panel: a scheme and its per-queue values.
#[derive(Debug)]
pub struct Panel<'a> {
    /// Scheme name.
    pub title: &'a str,
    /// Subtitle (split flows, imbalance).
    pub note: String,
    /// Values per queue.
    pub values: Vec<u64>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG document's start: its size, a white background and the title
/// at `left`.
fn start(width: f64, height: f64, left: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{left}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    s
}

/// Renders panels side by side, each scaled to its busiest queue, with the
/// mean as a dashed line, so imbalance reads as bar height over the line.
pub fn bar_chart(title: &str, panels: &[Panel<'_>]) -> String {
    let (pw, ph, top, left) = (220.0, 180.0, 60.0, 20.0);
    let width = left + pw * panels.len().max(1) as f64 + 20.0;
    let height = top + ph + 70.0;
    let mut s = start(width, height, left, title);
    for (i, p) in panels.iter().enumerate() {
        let x0 = left + pw * i as f64;
        let n = p.values.len().max(1) as f64;
        let sum: u64 = p.values.iter().sum();
        let mean = sum as f64 / n;
        let max = p.values.iter().copied().max().unwrap_or(0) as f64;
        let scale = if max > 0.0 { (ph - 20.0) / max } else { 0.0 };
        let base = top + ph;
        let bw = (pw - 30.0) / n;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            x0 + 5.0,
            top - 12.0,
            esc(p.title)
        );
        let _ = write!(
            s,
            r#"<line x1="{x0}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#,
            x0 + pw - 20.0
        );
        for (q, v) in p.values.iter().enumerate() {
            let h = *v as f64 * scale;
            let x = x0 + 5.0 + bw * q as f64;
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#4878a8"><title>queue {q}: {v}</title></rect>"##,
                base - h,
                (bw - 2.0).max(1.0)
            );
        }
        if mean > 0.0 {
            let y = base - mean * scale;
            let _ = write!(
                s,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#c44" stroke-dasharray="4 3"/>"##,
                x0 + pw - 20.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}">queues 0..{}</text>"#,
            x0 + 5.0,
            base + 16.0,
            p.values.len().saturating_sub(1)
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            x0 + 5.0,
            base + 32.0,
            esc(&p.note)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One panel of a load-over-time chart: per window, each queue's packets.
#[derive(Debug)]
pub struct Series<'a> {
    /// Scheme name.
    pub title: &'a str,
    /// Subtitle (imbalance, moves).
    pub note: String,
    /// Per window, packets per queue.
    pub windows: Vec<Vec<u64>>,
}

/// Renders panels one above the other, all on the same scale: each queue
/// a line of its packets per window, so a static table's hot queue and a
/// rebalanced table's even load can be told apart at a glance.
pub fn load_over_time(title: &str, window_ms: u64, panels: &[Series<'_>]) -> String {
    const COLOURS: [&str; 8] = [
        "#4878a8", "#e08a3c", "#5aa05a", "#c44e52", "#8172b2", "#937860", "#da8bc3", "#8c8c8c",
    ];
    let (pw, ph, top, left, gap) = (760.0, 150.0, 50.0, 50.0, 60.0);
    let width = left + pw + 30.0;
    let height = top + (ph + gap) * panels.len().max(1) as f64;
    let max = panels
        .iter()
        .flat_map(|p| p.windows.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let windows = panels.iter().map(|p| p.windows.len()).max().unwrap_or(0);
    let dx = pw / windows.max(2).saturating_sub(1) as f64;
    let mut s = start(width, height, left, title);
    for (i, p) in panels.iter().enumerate() {
        let y0 = top + (ph + gap) * i as f64;
        let base = y0 + ph;
        let _ = write!(
            s,
            r#"<text x="{left}" y="{}" font-weight="bold">{} <tspan font-weight="normal">{}</tspan></text>"#,
            y0 - 8.0,
            esc(p.title),
            esc(&p.note)
        );
        let _ = write!(
            s,
            r#"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="black"/><line x1="{left}" y1="{y0}" x2="{left}" y2="{base}" stroke="black"/>"#,
            left + pw
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
            left - 4.0,
            y0 + 10.0,
            max as u64,
            left - 4.0,
            base
        );
        let queues = p.windows.iter().map(Vec::len).max().unwrap_or(0);
        for q in 0..queues {
            let points: Vec<String> = p
                .windows
                .iter()
                .enumerate()
                .map(|(w, v)| {
                    let y = base - v.get(q).copied().unwrap_or(0) as f64 / max * ph;
                    format!("{:.1},{y:.1}", left + dx * w as f64)
                })
                .collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.2" points="{}"><title>queue {q}</title></polyline>"#,
                COLOURS[q % COLOURS.len()],
                points.join(" ")
            );
        }
        let _ = write!(
            s,
            r#"<text x="{left}" y="{}">windows of {window_ms} ms ({} windows), packets per queue</text>"#,
            base + 16.0,
            p.windows.len()
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_chart_has_one_line_per_queue_and_panel() {
        let panels = [
            Series {
                title: "sym",
                note: "imbalance 1.50".into(),
                windows: vec![vec![3, 1], vec![4, 0], vec![2, 2]],
            },
            Series {
                title: "sym rebalanced <x>",
                note: String::new(),
                windows: vec![vec![2, 2], vec![2, 2], vec![2, 2]],
            },
        ];
        let svg = load_over_time("load", 1000, &panels);
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("sym rebalanced &lt;x&gt;"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // The busiest value (queue 0, second window) sits at the top of
        // the plot area, the first window on the left edge.
        assert!(
            svg.contains(r#"points="50.0,87.5 430.0,50.0 810.0,125.0""#),
            "{svg}"
        );
    }
}
