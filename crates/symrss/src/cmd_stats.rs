//! `symrss stats` and `symrss control`: a running capture, seen and
//! steered through its control socket ([`crate::control`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::Failure;
use crate::control;
use crate::output::{Table, print_json};

/// Arguments of `symrss stats`.
#[derive(Debug, Args)]
#[command(
    after_help = "The socket is the capture's --control PATH; without --socket, the only \
    capture serving one in /run/symrss.\n\n\
    Examples:\n  symrss stats\n  symrss stats --socket /run/symrss/sensor.sock --json | jq .apps"
)]
pub struct StatsArgs {
    /// The capture's control socket.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the stats document as JSON (what `--stats-json` writes).
    #[arg(long)]
    json: bool,
}

/// What `symrss control` asks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ControlCommand {
    /// Rotate the pcap files now (SIGHUP).
    Rotate,
    /// End the capture cleanly (SIGTERM): rings drained, files closed.
    Stop,
}

/// Arguments of `symrss control`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// What to ask.
    command: ControlCommand,
    /// The capture's control socket.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

pub fn run(a: &StatsArgs) -> Result<ExitCode, Failure> {
    let path = control::find(a.socket.as_deref()).map_err(Failure::Runtime)?;
    let doc = control::request(&path, "stats").map_err(Failure::Runtime)?;
    if a.json {
        print_json(&doc)?;
    } else {
        print!("{}", render(&doc));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn control(a: &ControlArgs) -> Result<ExitCode, Failure> {
    let path = control::find(a.socket.as_deref()).map_err(Failure::Runtime)?;
    let command = match a.command {
        ControlCommand::Rotate => "rotate",
        ControlCommand::Stop => "stop",
    };
    control::request(&path, command).map_err(Failure::Runtime)?;
    eprintln!("symrss: {} asked to {command}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn n(v: &Value) -> String {
    match v {
        Value::Number(x) => x.to_string(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A hot flow as a stats document lists it, with its app and queue.
pub(crate) struct Hot<'a> {
    pub(crate) app: &'a str,
    pub(crate) queue: usize,
    pub(crate) flow: &'a str,
    pub(crate) packets: u64,
    pub(crate) share: f64,
}

/// The hot flows of every queue of `apps` (stats-document apps), largest
/// first.
pub(crate) fn hottest(apps: &[Value]) -> Vec<Hot<'_>> {
    let mut hot = Vec::new();
    for a in apps {
        let app = a["name"].as_str().unwrap_or("?");
        for (queue, s) in a["queues"].as_array().into_iter().flatten().enumerate() {
            for h in s["hot_flows"].as_array().into_iter().flatten() {
                hot.push(Hot {
                    app,
                    queue,
                    flow: h["flow"].as_str().unwrap_or("?"),
                    packets: h["packets"].as_u64().unwrap_or(0),
                    share: h["share"].as_f64().unwrap_or(0.0),
                });
            }
        }
    }
    hot.sort_by_key(|h| std::cmp::Reverse(h.packets));
    hot
}

/// The stats document as tables: interfaces, workers, queues, apps.
fn render(doc: &Value) -> String {
    let list = |k: &str| doc[k].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "running {:.0} s, {} packets captured\n\n",
        doc["elapsed_s"].as_f64().unwrap_or(0.0),
        n(&doc["captured"])
    );
    let mut t = Table::new(&[
        "interface",
        "captured",
        "received_by_filter",
        "kernel_drops",
    ]);
    for i in list("interfaces") {
        t.row(vec![
            i["name"].as_str().unwrap_or("?").to_string(),
            n(&i["captured"]),
            n(&i["received_by_filter"]),
            n(&i["kernel_drops"]),
        ]);
    }
    out += &t.render();
    let mut t = Table::new(&["worker", "received", "kernel_drops", "busy"]);
    for w in list("workers") {
        t.row(vec![
            n(&w["worker"]),
            n(&w["received"]),
            n(&w["kernel_drops"]),
            format!("{:.0}%", w["busy"].as_f64().unwrap_or(0.0) * 100.0),
        ]);
    }
    out += "\n";
    out += &t.render();
    let mut t = Table::new(&crate::output::QUEUE_COLUMNS);
    let apps = list("apps");
    for a in &apps {
        let name = a["name"].as_str().unwrap_or("?");
        for (q, s) in a["queues"].as_array().into_iter().flatten().enumerate() {
            t.row(vec![
                name.to_string(),
                q.to_string(),
                n(&s["delivered"]),
                n(&s["bytes"]),
                n(&s["flows"]),
                n(&s["dropped"]["queue_full"]),
                n(&s["dropped"]["no_reader"]),
                n(&s["dropped"]["sink_error"]),
            ]);
        }
    }
    out += "\n";
    out += &t.render();
    let hot = hottest(&apps);
    if !hot.is_empty() {
        let mut t = Table::new(&[
            "app",
            "queue",
            "share",
            "packets~",
            "hottest flows (sampled)",
        ]);
        for f in hot.into_iter().take(5) {
            t.row(vec![
                f.app.to_string(),
                f.queue.to_string(),
                format!("{:.0}%", f.share * 100.0),
                f.packets.to_string(),
                f.flow.to_string(),
            ]);
        }
        out += "\n";
        out += &t.render();
    }
    for a in &apps {
        out += &format!(
            "{}: received {} = delivered {} + dropped {}; flows seen on a second queue: {}\n",
            a["name"].as_str().unwrap_or("?"),
            n(&a["received"]),
            n(&a["delivered"]),
            n(&a["dropped"]),
            n(&a["affinity_violations"]),
        );
        let r = &a["rebalance"];
        if r.is_object() {
            let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
            out += &format!(
                "{}: rebalanced with {} bucket moves, {} live flows kept on their queue; \
                 imbalance {:.3} (static table {:.3}, lower bound {:.3}) over {} windows\n",
                a["name"].as_str().unwrap_or("?"),
                n(&r["moves"]),
                n(&r["pinned_flows"]),
                f("imbalance"),
                f("static_imbalance"),
                f("lower_bound"),
                n(&r["windows"]),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_document_renders_as_tables() {
        let doc = serde_json::json!({
            "elapsed_s": 12.4,
            "captured": 100,
            "interfaces": [{"name": "eth0", "captured": 100, "received_by_filter": 101, "kernel_drops": 1}],
            "workers": [{"worker": 0, "received": 100, "kernel_drops": 1, "busy": 0.25}],
            "apps": [{"name": "ids", "received": 100, "delivered": 98, "dropped": 2,
                      "affinity_violations": 0,
                      "rebalance": {"moves": 12, "pinned_flows": 3, "imbalance": 1.05,
                                    "static_imbalance": 1.4, "lower_bound": 1.01, "windows": 9},
                      "queues": [{"delivered": 60, "bytes": 6000, "flows": 3,
                                  "dropped": {"queue_full": 2, "no_reader": 0, "sink_error": 0}},
                                 {"delivered": 38, "bytes": 3800, "flows": 2,
                                  "dropped": {"queue_full": 0, "no_reader": 0, "sink_error": 0}}]}],
        });
        let text = render(&doc);
        assert!(
            text.starts_with("running 12 s, 100 packets captured"),
            "{text}"
        );
        assert!(text.contains("eth0"), "{text}");
        assert!(text.contains("25%"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["ids", "0", "60", "6000", "3", "2", "0", "0"]),
            "{text}"
        );
        assert!(
            text.contains("ids: received 100 = delivered 98 + dropped 2"),
            "{text}"
        );
        assert!(
            text.contains("ids: rebalanced with 12 bucket moves, 3 live flows kept on their queue; imbalance 1.050 (static table 1.400, lower bound 1.010)"),
            "{text}"
        );
    }
}
