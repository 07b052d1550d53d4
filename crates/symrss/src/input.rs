//! Reading capture files for the offline commands: every file opened
//! first ([`open_inputs`], so a command can refuse before it creates any
//! output), then read in order or merged by time, packets handed to a
//! callback, damage reported per file without losing the packets before
//! it, and a progress bar on stderr for large inputs. Reading stops early
//! when a stop signal arrived ([`symrss_sys::signals`]): what was read is
//! kept.

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
    /// Its link type (of its first interface), once known.
    #[serde(skip)]
    pub linktype: Option<u32>,
}

/// One input: its result so far and its reader (none if it did not open).
pub struct Input {
    result: FileResult,
    reader: Option<CaptureReader>,
}

impl Input {
    /// Why it did not open, if it did not.
    pub fn open_error(&self) -> Option<&str> {
        self.result.error.as_deref()
    }
}

/// Opens every file (`-` is stdin); one that does not open carries its
/// error and is skipped when reading.
pub fn open_inputs(files: &[PathBuf]) -> Vec<Input> {
    files
        .iter()
        .map(|path| {
            let mut result = FileResult {
                file: path.display().to_string(),
                packets: 0,
                error: None,
                linktype: None,
            };
            let reader = match CaptureReader::open(Path::new(path)) {
                Ok(r) => Some(r),
                Err(e) => {
                    result.error = Some(e.to_string());
                    None
                }
            };
            Input { result, reader }
        })
        .collect()
}

fn stop() -> bool {
    symrss_sys::signals::stop_requested()
}

/// Show a progress bar only for inputs at least this large, on a terminal.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

fn progress<'a>(files: impl Iterator<Item = &'a String>) -> Option<ProgressBar> {
    let total: u64 = files
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

/// Reads every input in order, calling `on_packet` for each packet.
pub fn for_each_packet(
    inputs: Vec<Input>,
    mut on_packet: impl FnMut(&Packet<'_>),
) -> Vec<FileResult> {
    let bar = progress(inputs.iter().map(|i| &i.result.file));
    let mut done_bytes = 0u64;
    let mut results = Vec::with_capacity(inputs.len());
    for Input { mut result, reader } in inputs {
        if let Some(mut reader) = reader {
            while !stop() {
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
                    Ok(None) => break,
                    Err(e) => {
                        result.error = Some(e.to_string());
                        break;
                    }
                }
            }
            done_bytes += reader.offset();
            result.linktype = reader.linktype();
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
    inputs: Vec<Input>,
    mut on_packet: impl FnMut(&Packet<'_>),
) -> Vec<FileResult> {
    let (mut results, mut readers): (Vec<FileResult>, Vec<Option<CaptureReader>>) =
        inputs.into_iter().map(|i| (i.result, i.reader)).unzip();
    for r in &results {
        if let Some(e) = &r.error {
            eprintln!("symrss: {e}");
        }
    }
    let mut heads: Vec<Head> = readers.iter().map(|_| Head { packet: None }).collect();
    for i in 0..readers.len() {
        if let Some(r) = &mut readers[i] {
            advance(r, &mut heads[i], &mut results[i]);
        }
    }
    while !stop() {
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
    for (r, reader) in results.iter_mut().zip(&readers) {
        r.linktype = reader.as_ref().and_then(CaptureReader::linktype);
    }
    results
}
