//! Output helpers: one JSON object on stdout, or aligned text tables.

use std::io::Write;

use serde::Serialize;
use symrss_engine::balancer::TableStats;

use crate::Failure;

/// Prints `value` as one pretty JSON object on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| Failure::Runtime(format!("writing JSON: {e}")))?;
    writeln!(out).map_err(|e| Failure::Runtime(format!("writing output: {e}")))
}

/// The flow table's state in `split`'s summary and `capture`'s stats: what
/// it holds, its bound, and its memory (now, at capacity, per flow).
#[derive(Serialize, Debug)]
pub struct FlowTableJson {
    /// Flows stored now (at the end of a run: those not yet idle or ended).
    pub flows: u64,
    pub peak_flows: u64,
    /// `--max-flows` (summed over steering workers); 0: accounting off.
    pub capacity: u64,
    /// Flows removed after idling out (`--flow-idle-s` of packet time).
    pub expired: u64,
    /// Ended TCP flows removed (RST, or FIN both ways).
    pub ended: u64,
    pub bytes: u64,
    pub bytes_at_capacity: u64,
    pub bytes_per_flow: Option<f64>,
}

impl From<&TableStats> for FlowTableJson {
    fn from(t: &TableStats) -> Self {
        Self {
            flows: t.flows,
            peak_flows: t.peak_flows,
            capacity: t.capacity,
            expired: t.expired,
            ended: t.ended,
            bytes: t.bytes,
            bytes_at_capacity: t.bytes_at_capacity,
            bytes_per_flow: t.bytes_per_flow(),
        }
    }
}

/// One of a queue's hottest flows (sampled estimates,
/// `symrss_engine::balancer::hot`) with its share of the queue's packets.
#[derive(Serialize, Debug)]
pub struct HotFlowJson {
    /// Both endpoints and the protocol.
    pub flow: String,
    pub packets: u64,
    pub bytes: u64,
    /// The estimate overstates by at most this many packets.
    pub error: u64,
    /// Of the queue's packets.
    pub share: f64,
}

/// A queue's hottest flows (at most 5) out of its `delivered` packets.
pub fn hot_flows_json(
    hot: &[symrss_engine::balancer::HotFlow],
    delivered: u64,
) -> Vec<HotFlowJson> {
    hot.iter()
        .take(5)
        .map(|h| HotFlowJson {
            flow: h.flow.clone(),
            packets: h.packets,
            bytes: h.bytes,
            error: h.error,
            share: if delivered > 0 {
                (h.packets as f64 / delivered as f64).min(1.0)
            } else {
                0.0
            },
        })
        .collect()
}

/// `0x` + 8 lower-case hex digits, the format of hashes in JSON and tables.
pub fn hex32(v: u32) -> String {
    format!("0x{v:08x}")
}

/// Lower-case hex of bytes.
pub fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The per-queue table's columns (capture's summary, `symrss stats`).
pub const QUEUE_COLUMNS: [&str; 8] = [
    "app",
    "queue",
    "delivered",
    "bytes",
    "flows",
    "queue_full",
    "no_reader",
    "sink_error",
];

/// A simple left-aligned text table.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub fn new<S: ToString>(header: &[S]) -> Self {
        Self {
            rows: vec![header.iter().map(ToString::to_string).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with two spaces between columns and a rule under the header.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, r) in self.rows.iter().enumerate() {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&rule.join("  "));
                out.push('\n');
            }
        }
        out
    }
}
