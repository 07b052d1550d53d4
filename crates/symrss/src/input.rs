//! Reading capture files for the offline commands: every file in order,
//! packets handed to a callback, damage reported per file without losing
//! the packets before it, and a progress bar on stderr for large inputs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use symrss_pcap::{CaptureReader, Packet};

/// What happened to one input file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// Path as given.
    pub file: String,
    /// Packets read from it.
    pub packets: u64,
    /// Error that stopped reading it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Show a progress bar only for inputs at least this large, on a terminal.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

fn progress(files: &[PathBuf]) -> Option<ProgressBar> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    if total < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("static template"),
    );
    Some(bar)
}

/// Reads every file in order, calling `on_packet` for each packet.
pub fn for_each_packet(
    files: &[PathBuf],
    mut on_packet: impl FnMut(&Packet<'_>),
) -> Vec<FileResult> {
    let bar = progress(files);
    let mut done_bytes = 0u64;
    let mut results = Vec::with_capacity(files.len());
    for path in files {
        let mut result = FileResult {
            file: path.display().to_string(),
            packets: 0,
            error: None,
        };
        match CaptureReader::open(Path::new(path)) {
            Err(e) => result.error = Some(e.to_string()),
            Ok(mut reader) => loop {
                match reader.next_packet() {
                    Ok(Some(p)) => {
                        on_packet(&p);
                        result.packets += 1;
                        if let Some(b) = &bar
                            && result.packets.is_multiple_of(4096)
                        {
                            b.set_position(done_bytes + reader.offset());
                        }
                    }
                    Ok(None) => {
                        done_bytes += reader.offset();
                        break;
                    }
                    Err(e) => {
                        done_bytes += reader.offset();
                        result.error = Some(e.to_string());
                        break;
                    }
                }
            },
        }
        if let Some(e) = &result.error {
            eprintln!("symrss: {e}");
        }
        results.push(result);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    results
}
