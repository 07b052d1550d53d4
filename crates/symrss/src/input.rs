//! Reading capture files for the offline commands, through the engine's
//! [`Source`]s and its [`drive`] loop: every file opened first
//! ([`open_inputs`], so a command can refuse before it creates any
//! output), then read one after another or merged by time, frames handed
//! to a callback, damage reported per file without losing the frames
//! before it, and a progress bar on stderr for large inputs. Reading stops
//! early when a stop signal arrived ([`symrss_sys::signals`]): what was
//! read is kept.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use symrss_engine::source::{Files, Frame, InputStats, Merged, Source, drive};
use symrss_pcap::CaptureReader;

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

impl From<&InputStats> for FileResult {
    fn from(s: &InputStats) -> Self {
        Self {
            file: s.name.clone(),
            packets: s.frames,
            error: s.error.clone(),
            linktype: s.linktype,
        }
    }
}

/// The opened inputs: each a name and its reader, or why it did not open.
pub struct Inputs(Vec<(String, Result<CaptureReader, String>)>);

impl Inputs {
    /// Why inputs did not open (empty when all did).
    pub fn open_errors(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|(_, r)| r.as_ref().err().map(String::as_str))
            .collect()
    }
}

/// Opens every file (`-` is stdin); one that does not open carries its
/// error and is skipped when reading.
pub fn open_inputs(files: &[PathBuf]) -> Inputs {
    Inputs(
        files
            .iter()
            .map(|path| {
                let name = path.display().to_string();
                let reader = CaptureReader::open(Path::new(path)).map_err(|e| e.to_string());
                (name, reader)
            })
            .collect(),
    )
}

/// Show a progress bar only for inputs at least this large, on a terminal.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

fn progress(inputs: &Inputs) -> Option<ProgressBar> {
    let total: u64 = inputs
        .0
        .iter()
        .filter_map(|(f, _)| std::fs::metadata(f).ok())
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

/// Reads every input — one after another, or merged by timestamp (ties
/// in input order: the two directions of a TAP) — calling `on_frame` for
/// each frame, until the end or a stop signal. Errors are printed as
/// `symrss: <error>`; the per-file results are returned.
pub fn read_inputs(
    inputs: Inputs,
    merge: bool,
    on_frame: impl FnMut(Frame<'_>),
) -> Vec<FileResult> {
    let bar = progress(&inputs);
    let stats = if merge {
        run(Merged::new(inputs.0), bar.as_ref(), on_frame)
    } else {
        run(Files::new(inputs.0), bar.as_ref(), on_frame)
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for s in &stats {
        if let Some(e) = &s.error {
            eprintln!("symrss: {e}");
        }
    }
    stats.iter().map(FileResult::from).collect()
}

fn run<S: Source>(
    mut source: S,
    bar: Option<&ProgressBar>,
    on_frame: impl FnMut(Frame<'_>),
) -> Vec<InputStats> {
    let mut polls = 0u64;
    drive(
        &mut source,
        symrss_sys::signals::stop_requested,
        on_frame,
        |s| {
            polls += 1;
            if let Some(b) = bar
                && polls.is_multiple_of(16)
            {
                b.set_position(s.inputs().iter().map(|i| i.bytes).sum());
            }
        },
    );
    source.inputs().to_vec()
}
