//! `symrss top`: a live terminal view of a running capture, from its
//! control socket ([`crate::control`]), refreshed every second: per
//! interface and worker what was received, the rate and the kernel's
//! drops; per queue of the selected app what was delivered, the rate,
//! drops by reason, flows and a bar of its load against the app's mean.
//! Keys: `←`/`→` (or Tab) switch app, `s` changes the sort, `q` quits.
//! Fits 80×24 (over SSH); when stdout is not a terminal it prints the
//! same content as plain text, once per interval (`--iterations N`).
//!
//! The screen is a pure function of two successive stats documents
//! ([`View`]), so tests draw it on ratatui's `TestBackend`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use serde_json::Value;

use crate::Failure;
use crate::control;

/// Arguments of `symrss top`.
#[derive(Debug, Args)]
#[command(
    after_help = "Keys: ←/→ or Tab switch app, s changes the sort, q quits.\n\n\
    Examples:\n  symrss top\n  symrss top --socket /run/symrss/sensor.sock\n  \
    symrss top --iterations 3 > snapshot.txt   # plain text when not a terminal"
)]
pub struct TopArgs {
    /// The capture's control socket (default: the only one in /run/symrss).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Refresh period in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    interval_ms: u64,
    /// Stop after this many refreshes (default: until `q`, or forever when
    /// not a terminal).
    #[arg(long)]
    iterations: Option<u64>,
}

/// How the queue rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// By queue number.
    #[default]
    Queue,
    /// Busiest first (packets per second).
    Rate,
    /// Most drops first.
    Drops,
}

impl Sort {
    fn next(self) -> Self {
        match self {
            Sort::Queue => Sort::Rate,
            Sort::Rate => Sort::Drops,
            Sort::Drops => Sort::Queue,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sort::Queue => "queue",
            Sort::Rate => "rate",
            Sort::Drops => "drops",
        }
    }
}

/// What is on the screen: the latest document, the one before (for
/// rates) and the seconds between them, the app shown and the sort.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub now: Value,
    pub before: Option<Value>,
    pub seconds: f64,
    pub app: usize,
    pub sort: Sort,
    pub socket: String,
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// One queue's row.
#[derive(Debug, Clone, PartialEq)]
struct QueueRow {
    queue: usize,
    delivered: u64,
    rate: f64,
    queue_full: u64,
    no_reader: u64,
    sink_error: u64,
    flows: u64,
}

impl QueueRow {
    fn drops(&self) -> u64 {
        self.queue_full + self.no_reader + self.sink_error
    }
}

/// A load bar: `share` of the mean as up to 10 cells (the mean at 5).
fn bar(share: f64) -> String {
    let eighths = (share * 40.0).round().clamp(0.0, 80.0) as usize;
    let mut s = "█".repeat(eighths / 8);
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    s.push_str(PARTS[eighths % 8]);
    s
}

fn rate_text(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

impl View {
    fn apps(&self) -> Vec<Value> {
        self.now["apps"].as_array().cloned().unwrap_or_default()
    }

    /// Per second between the two documents of the counter at `path`.
    fn rate(&self, path: impl Fn(&Value) -> &Value) -> f64 {
        match &self.before {
            Some(b) if self.seconds > 0.0 => {
                u(path(&self.now)).saturating_sub(u(path(b))) as f64 / self.seconds
            }
            _ => 0.0,
        }
    }

    fn queue_rows(&self) -> Vec<QueueRow> {
        let app = self.app;
        let queues = self.now["apps"][app]["queues"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut rows: Vec<QueueRow> = queues
            .iter()
            .enumerate()
            .map(|(q, s)| QueueRow {
                queue: q,
                delivered: u(&s["delivered"]),
                rate: self.rate(|d| &d["apps"][app]["queues"][q]["delivered"]),
                queue_full: u(&s["dropped"]["queue_full"]),
                no_reader: u(&s["dropped"]["no_reader"]),
                sink_error: u(&s["dropped"]["sink_error"]),
                flows: u(&s["flows"]),
            })
            .collect();
        match self.sort {
            Sort::Queue => {}
            Sort::Rate => rows.sort_by(|a, b| b.rate.total_cmp(&a.rate)),
            Sort::Drops => rows.sort_by_key(|r| std::cmp::Reverse(r.drops())),
        }
        rows
    }

    /// The lines of the header: what, since when, how fast.
    fn header(&self) -> String {
        format!(
            "symrss top  {}  up {:.0} s  captured {} ({} pps)",
            self.socket,
            self.now["elapsed_s"].as_f64().unwrap_or(0.0),
            u(&self.now["captured"]),
            rate_text(self.rate(|d| &d["captured"])),
        )
    }

    fn interface_rows(&self) -> Vec<[String; 5]> {
        let mut rows = Vec::new();
        for (k, i) in self.now["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            rows.push([
                i["name"].as_str().unwrap_or("?").to_string(),
                u(&i["captured"]).to_string(),
                rate_text(self.rate(|d| &d["interfaces"][k]["captured"])),
                u(&i["kernel_drops"]).to_string(),
                String::new(),
            ]);
        }
        for w in self.now["workers"].as_array().into_iter().flatten() {
            rows.push([
                format!("worker {}", u(&w["worker"])),
                u(&w["received"]).to_string(),
                rate_text(self.rate(|d| &d["workers"][u(&w["worker"]) as usize]["received"])),
                u(&w["kernel_drops"]).to_string(),
                format!("{:.0}%", w["busy"].as_f64().unwrap_or(0.0) * 100.0),
            ]);
        }
        rows
    }

    fn queue_table(&self) -> (Vec<[String; 8]>, String) {
        let rows = self.queue_rows();
        let mean = if rows.is_empty() {
            0.0
        } else {
            rows.iter().map(|r| r.delivered as f64).sum::<f64>() / rows.len() as f64
        };
        let lines = rows
            .iter()
            .map(|r| {
                [
                    format!("q{}", r.queue),
                    r.delivered.to_string(),
                    rate_text(r.rate),
                    r.queue_full.to_string(),
                    r.no_reader.to_string(),
                    r.sink_error.to_string(),
                    r.flows.to_string(),
                    bar(if mean > 0.0 {
                        r.delivered as f64 / mean
                    } else {
                        0.0
                    }),
                ]
            })
            .collect();
        let a = &self.now["apps"][self.app];
        let footer = format!(
            "{}: received {} = delivered {} + dropped {}; flows on a second queue: {}",
            a["name"].as_str().unwrap_or("?"),
            u(&a["received"]),
            u(&a["delivered"]),
            u(&a["dropped"]),
            u(&a["affinity_violations"]),
        );
        (lines, footer)
    }

    /// The selected app's hottest flows over all its queues, largest
    /// first: ` 62% of q3   a:p <-> b:q tcp  ~1200 pkts`.
    fn hot_rows(&self, n: usize) -> Vec<String> {
        let selected = self.now["apps"]
            .as_array()
            .and_then(|apps| apps.get(self.app..=self.app))
            .unwrap_or(&[]);
        crate::cmd_stats::hottest(selected)
            .into_iter()
            .take(n)
            .map(|h| {
                format!(
                    "{:>3.0}% of q{:<3} {}  ~{} pkts",
                    h.share * 100.0,
                    h.queue,
                    h.flow,
                    h.packets
                )
            })
            .collect()
    }

    fn app_tabs(&self) -> String {
        self.apps()
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let name = a["name"].as_str().unwrap_or("?");
                if k == self.app {
                    format!("[{name}]")
                } else {
                    format!(" {name} ")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Draws the screen.
    pub fn draw(&self, f: &mut Frame<'_>) {
        let ifs = self.interface_rows();
        let [head, top, apps, hot, keys] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(ifs.len().min(6) as u16 + 3),
            Constraint::Min(5),
            Constraint::Length(4),
            Constraint::Length(1),
        ])
        .areas(f.area());
        f.render_widget(
            Paragraph::new(self.header()).style(Style::new().add_modifier(Modifier::BOLD)),
            head,
        );
        let widths = [
            Constraint::Length(14),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(6),
        ];
        f.render_widget(
            Table::new(ifs.into_iter().map(Row::new), widths)
                .header(
                    Row::new(["input", "received", "rate/s", "kernel drops", "busy"])
                        .style(Style::new().add_modifier(Modifier::UNDERLINED)),
                )
                .block(Block::new().borders(Borders::TOP).title(" inputs ")),
            top,
        );
        let (rows, footer) = self.queue_table();
        let widths = [
            Constraint::Length(5),
            Constraint::Length(11),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Min(10),
        ];
        let [table_area, footer_area] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(apps);
        f.render_widget(
            Table::new(rows.into_iter().map(Row::new), widths)
                .header(
                    Row::new([
                        "queue",
                        "delivered",
                        "rate/s",
                        "q_full",
                        "no_rdr",
                        "sink_er",
                        "flows",
                        "load vs mean",
                    ])
                    .style(Style::new().add_modifier(Modifier::UNDERLINED)),
                )
                .block(Block::new().borders(Borders::TOP).title(format!(
                    " apps {}  sort: {} ",
                    self.app_tabs(),
                    self.sort.name()
                ))),
            table_area,
        );
        f.render_widget(Paragraph::new(footer), footer_area);
        let hot_lines: Vec<Line<'_>> = self.hot_rows(3).into_iter().map(Line::from).collect();
        f.render_widget(
            Paragraph::new(hot_lines).block(
                Block::new()
                    .borders(Borders::TOP)
                    .title(" hottest flows (share of their queue, sampled) "),
            ),
            hot,
        );
        f.render_widget(
            Paragraph::new(Line::from("q quit  ←/→ app  s sort"))
                .style(Style::new().add_modifier(Modifier::DIM)),
            keys,
        );
    }

    /// The same content as plain text (stdout not a terminal).
    pub fn plain(&self) -> String {
        let mut out = format!("{}\n", self.header());
        out += "input           received  rate/s  kernel_drops  busy\n";
        for r in self.interface_rows() {
            out += &format!(
                "{:<14} {:>9} {:>7} {:>13}  {}\n",
                r[0], r[1], r[2], r[3], r[4]
            );
        }
        for app in 0..self.apps().len() {
            let view = View {
                app,
                ..self.clone()
            };
            let (rows, footer) = view.queue_table();
            out += "queue   delivered  rate/s  queue_full  no_reader  sink_error  flows  load\n";
            for r in rows {
                out += &format!(
                    "{:<5} {:>11} {:>7} {:>11} {:>10} {:>11} {:>6}  {}\n",
                    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]
                );
            }
            out += &format!("{footer}\n");
            for line in view.hot_rows(3) {
                out += &format!("  hot: {line}\n");
            }
        }
        out
    }
}

pub fn run(a: &TopArgs) -> Result<ExitCode, Failure> {
    let path = control::find(a.socket.as_deref()).map_err(Failure::Runtime)?;
    let interval = Duration::from_millis(a.interval_ms);
    let mut view = View {
        now: control::request(&path, "stats").map_err(Failure::Runtime)?,
        socket: path.display().to_string(),
        ..View::default()
    };
    let mut taken = Instant::now();
    let mut refresh = |view: &mut View| -> Result<(), Failure> {
        let next = control::request(&path, "stats").map_err(Failure::Runtime)?;
        view.seconds = taken.elapsed().as_secs_f64();
        taken = Instant::now();
        view.before = Some(std::mem::replace(&mut view.now, next));
        Ok(())
    };
    if !std::io::stdout().is_terminal() {
        let mut shown = 0u64;
        loop {
            std::thread::sleep(interval);
            refresh(&mut view)?;
            println!("{}", view.plain());
            shown += 1;
            if a.iterations.is_some_and(|n| shown >= n) {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    let mut terminal = ratatui::init();
    let result = (|| -> Result<(), Failure> {
        use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
        let mut shown = 0u64;
        let mut next = Instant::now();
        loop {
            terminal
                .draw(|f| view.draw(f))
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait).map_err(|e| Failure::Runtime(e.to_string()))? {
                if let Event::Key(k) = event::read().map_err(|e| Failure::Runtime(e.to_string()))?
                    && k.kind == KeyEventKind::Press
                {
                    let apps = view.apps().len().max(1);
                    match k.code {
                        KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                        KeyCode::Right | KeyCode::Tab => view.app = (view.app + 1) % apps,
                        KeyCode::Left | KeyCode::BackTab => view.app = (view.app + apps - 1) % apps,
                        KeyCode::Char('s') => view.sort = view.sort.next(),
                        _ => {}
                    }
                }
                continue;
            }
            next = Instant::now() + interval;
            refresh(&mut view)?;
            shown += 1;
            if a.iterations.is_some_and(|n| shown >= n) {
                return Ok(());
            }
        }
    })();
    ratatui::restore();
    result.map(|()| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    /// A stats document: 2 apps of 4 queues, `t` seconds in.
    fn doc(t: f64, delivered: [u64; 4], full: u64) -> Value {
        let queues: Vec<Value> = delivered
            .iter()
            .enumerate()
            .map(|(q, &d)| {
                serde_json::json!({"delivered": d, "bytes": d * 100, "flows": q as u64 + 1,
                    "hot_flows": if q == 1 { serde_json::json!([{"flow": "10.0.0.1:40001 <-> 10.0.1.1:443 tcp",
                        "packets": d / 2, "bytes": d * 50, "error": 0, "share": 0.5}]) } else { serde_json::json!([]) },
                    "dropped": {"queue_full": if q == 3 { full } else { 0 }, "no_reader": 0, "sink_error": 0}})
            })
            .collect();
        let total: u64 = delivered.iter().sum();
        serde_json::json!({
            "elapsed_s": t,
            "captured": total + full,
            "interfaces": [{"name": "eth1", "captured": total + full, "received_by_filter": total + full, "kernel_drops": 7}],
            "workers": [{"worker": 0, "received": total + full, "kernel_drops": 7, "busy": 0.42}],
            "apps": [
                {"name": "ids", "received": total + full, "delivered": total, "dropped": full,
                 "affinity_violations": 0, "queues": queues},
                {"name": "rec", "received": total + full, "delivered": total + full, "dropped": 0,
                 "affinity_violations": 0, "queues": [{"delivered": total + full, "bytes": 1, "flows": 10,
                    "dropped": {"queue_full": 0, "no_reader": 0, "sink_error": 0}}]},
            ],
        })
    }

    fn view() -> View {
        View {
            before: Some(doc(10.0, [1000, 2000, 3000, 2000], 0)),
            now: doc(12.0, [3000, 6000, 5000, 2000], 500),
            seconds: 2.0,
            socket: "/run/symrss/sensor.sock".into(),
            ..View::default()
        }
    }

    fn screen(v: &View) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| v.draw(f)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..24)
            .map(|y| (0..80).map(|x| buf[(x, y)].symbol().to_string()).collect())
            .collect()
    }

    #[test]
    fn the_screen_shows_inputs_queues_rates_drops_and_load_in_80_by_24() {
        let s = screen(&view());
        let text = s.join("\n");
        assert!(
            s[0].starts_with("symrss top  /run/symrss/sensor.sock  up 12 s  captured 16500"),
            "{text}"
        );
        // 16,500 - 8,000 packets in 2 s.
        assert!(s[0].contains("(4.2k pps)"), "{text}");
        let row = |name: &str| {
            s.iter()
                .find(|l| l.trim_start().starts_with(name))
                .cloned()
                .unwrap_or_default()
        };
        let eth = row("eth1");
        assert!(
            eth.split_whitespace().eq(["eth1", "16500", "4.2k", "7"]),
            "{eth}"
        );
        assert!(row("worker 0").contains("42%"), "{text}");
        // q1: 4,000 more in 2 s = 2.0k/s; load 6000 / mean 4000 = 1.5x.
        let q1 = row("q1");
        let cells: Vec<&str> = q1.split_whitespace().collect();
        assert_eq!(
            &cells[..7],
            ["q1", "6000", "2.0k", "0", "0", "0", "2"],
            "{q1}"
        );
        assert_eq!(cells[7], bar(1.5), "{q1}");
        assert!(row("q3").split_whitespace().nth(3) == Some("500"), "{text}");
        assert!(text.contains("[ids]") && text.contains(" rec "), "{text}");
        assert!(
            text.contains("ids: received 16500 = delivered 16000 + dropped 500"),
            "{text}"
        );
        assert!(s[23].contains("q quit"), "{text}");
        assert!(text.contains("hottest flows"), "{text}");
        assert!(
            text.contains(" 50% of q1   10.0.0.1:40001 <-> 10.0.1.1:443 tcp  ~3000 pkts"),
            "{text}"
        );
    }

    #[test]
    fn keys_switch_app_and_sort() {
        let mut v = view();
        v.sort = Sort::Rate;
        let s = screen(&v);
        let order: Vec<String> = s
            .iter()
            .filter_map(|l| {
                l.split_whitespace()
                    .next()
                    .filter(|w| w.starts_with('q') && w.len() == 2)
            })
            .map(str::to_string)
            .collect();
        // Rates: q0 1.0k, q1 2.0k, q2 1.0k, q3 0: busiest first.
        assert_eq!(order.first().map(String::as_str), Some("q1"), "{order:?}");
        assert_eq!(order.last().map(String::as_str), Some("q3"), "{order:?}");
        v.sort = Sort::Drops;
        let s = screen(&v).join("\n");
        assert!(s.contains("sort: drops"), "{s}");
        v.app = 1;
        let s = screen(&v).join("\n");
        assert!(s.contains("[rec]"), "{s}");
        assert!(
            s.contains("rec: received 16500 = delivered 16500 + dropped 0"),
            "{s}"
        );
    }

    #[test]
    fn plain_text_has_every_app_and_bars_grow_with_load() {
        let p = view().plain();
        assert!(p.contains("ids: received 16500"), "{p}");
        assert!(p.contains("rec: received 16500"), "{p}");
        assert!(bar(2.0).chars().count() > bar(1.0).chars().count());
        assert_eq!(bar(1.0), "█████");
        assert_eq!(bar(0.0), "");
        assert_eq!(rate_text(1_500_000.0), "1.50M");
    }
}
