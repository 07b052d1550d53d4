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

/// Renders panels side by side, each scaled to its busiest queue, with the
/// mean as a dashed line, so imbalance reads as bar height over the line.
pub fn bar_chart(title: &str, panels: &[Panel<'_>]) -> String {
    let (pw, ph, top, left) = (220.0, 180.0, 60.0, 20.0);
    let width = left + pw * panels.len().max(1) as f64 + 20.0;
    let height = top + ph + 70.0;
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
