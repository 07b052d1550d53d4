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

/// One input's next packet, copied out of its reader.
struct Head {
    packet: Option<(i128, u32, u32, u32, u64, Vec<u8>)>,
}

fn advance(reader: &mut CaptureReader, head: &mut Head, result: &mut FileResult) {
    let old = head.packet.take();
    if result.error.is_some() {
        return;
    }
    match reader.next_packet() {
        Ok(Some(p)) => {
            let mut data = old.map(|h| h.5).unwrap_or_default();
            data.clear();
            data.extend_from_slice(p.data);
            head.packet = Some((p.ts_ns, p.orig_len, p.linktype, p.interface, p.index, data));
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("symrss: {e}");
            result.error = Some(e.to_string());
        }
    }
}

/// Reads all files at once and hands packets over in timestamp order (ties
/// in file order): the two directions of a TAP, captured to two files,
/// become one stream again. Each head packet is copied once out of its
/// reader.
pub fn for_each_packet_merged(
    files: &[PathBuf],
    mut on_packet: impl FnMut(&Packet<'_>),
) -> Vec<FileResult> {
    let mut readers = Vec::new();
    let mut results: Vec<FileResult> = files
        .iter()
        .map(|f| FileResult {
            file: f.display().to_string(),
            packets: 0,
            error: None,
        })
        .collect();
    for (path, result) in files.iter().zip(results.iter_mut()) {
        match CaptureReader::open(Path::new(path)) {
            Ok(r) => readers.push(Some(r)),
            Err(e) => {
                eprintln!("symrss: {e}");
                result.error = Some(e.to_string());
                readers.push(None);
            }
        }
    }
    let mut heads: Vec<Head> = readers.iter().map(|_| Head { packet: None }).collect();
    for i in 0..readers.len() {
        if let Some(r) = &mut readers[i] {
            advance(r, &mut heads[i], &mut results[i]);
        }
    }
    loop {
        let next = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.packet.as_ref().map(|p| (p.0, i)))
            .min();
        let Some((_, i)) = next else { break };
        {
            let (ts_ns, orig_len, linktype, interface, index, data) =
                heads[i].packet.as_ref().expect("chosen head");
            on_packet(&Packet {
                index: *index,
                ts_ns: *ts_ns,
                orig_len: *orig_len,
                linktype: *linktype,
                interface: *interface,
                data,
            });
        }
        results[i].packets += 1;
        if let Some(r) = &mut readers[i] {
            advance(r, &mut heads[i], &mut results[i]);
        }
    }
    results
}
