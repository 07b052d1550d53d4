//! Sources: where frames come from, behind one small trait, so that
//! `split`, `analyze` and `capture` run the same driver loop ([`run`]) and
//! differ only in their source and their [`Stage`] (what they do with a
//! frame, and when they stop).
//!
//! Contract of a [`Source`]:
//! * [`Source::poll`] hands the frames that are ready now — a few hundred
//!   records of a file, a ring block — to a callback, in the source's
//!   order, each with its timestamp (ns since the epoch), wire length,
//!   link type and bytes (borrowed for the call: no copy, no allocation
//!   per frame); it says whether more may come ([`Poll`]).
//! * A source counts what it read per input ([`InputStats`]) and keeps
//!   each input's first error there; a damaged input ends that input (the
//!   frames before the damage were handed over), not the source.
//! * A source does no steering and knows no clock but packet time; the
//!   engine does no I/O of its own: the file sources read through
//!   `symrss-pcap`, the live ones live in `symrss-sys`.
//!
//! Here: [`Files`] (several captures one after another) and [`Merged`]
//! (several captures by timestamp, ties in input order: the two
//! directions of a network TAP), [`run`], the loop that feeds a source's
//! frames to a stage, and [`drive`], the same with closures for the
//! offline commands.

use symrss_pcap::CaptureReader;

/// One frame, borrowed from its source for the duration of a callback.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i128,
    /// Length on the wire (may exceed `data.len()`).
    pub orig_len: u32,
    /// LINKTYPE of the frame.
    pub linktype: u32,
    /// Which input it came from (index into [`Source::inputs`]).
    pub input: usize,
    /// Captured bytes.
    pub data: &'a [u8],
}

/// What a [`Source::poll`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// This many frames were handed over; more may be ready.
    Ready(usize),
    /// Nothing is ready now (a live source); poll again later.
    Idle,
    /// Every input is done.
    End,
}

/// What a source read from one input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputStats {
    /// The input's name (a path, `-`, an interface).
    pub name: String,
    /// Frames handed over.
    pub frames: u64,
    /// Bytes of the input consumed so far (files: the read offset).
    pub bytes: u64,
    /// Its link type (of its first interface), once known.
    pub linktype: Option<u32>,
    /// The error that ended it, if any.
    pub error: Option<String>,
}

/// Where frames come from (see the module docs).
pub trait Source {
    /// Hands the frames ready now to `on_frame`, in order.
    fn poll(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) -> Poll;

    /// Per input: what was read, and why it ended early if it did.
    fn inputs(&self) -> &[InputStats];
}

/// Frames a file source hands over per [`Source::poll`] (stop requests are
/// seen between polls).
const FILE_POLL_FRAMES: usize = 256;

/// Capture files read one after another.
pub struct Files {
    readers: Vec<Option<CaptureReader>>,
    stats: Vec<InputStats>,
    current: usize,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("inputs", &self.stats)
            .finish()
    }
}

/// The readers of opened inputs (`Err`: why one did not open) and their
/// stats rows.
fn rows(
    inputs: Vec<(String, Result<CaptureReader, String>)>,
) -> (Vec<Option<CaptureReader>>, Vec<InputStats>) {
    inputs
        .into_iter()
        .map(|(name, r)| {
            let (reader, error) = match r {
                Ok(reader) => (Some(reader), None),
                Err(error) => (None, Some(error)),
            };
            let stats = InputStats {
                name,
                error,
                ..InputStats::default()
            };
            (reader, stats)
        })
        .unzip()
}

impl Files {
    /// The inputs in order: each a name and its reader, or why it did not
    /// open (it is skipped, its error kept).
    pub fn new(inputs: Vec<(String, Result<CaptureReader, String>)>) -> Self {
        let (readers, stats) = rows(inputs);
        Self {
            readers,
            stats,
            current: 0,
        }
    }
}

impl Source for Files {
    fn poll(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) -> Poll {
        while self.current < self.readers.len() {
            let i = self.current;
            let (Some(reader), stats) = (&mut self.readers[i], &mut self.stats[i]) else {
                self.current += 1;
                continue;
            };
            let mut n = 0;
            while n < FILE_POLL_FRAMES {
                match reader.next_packet() {
                    Ok(Some(p)) => {
                        on_frame(Frame {
                            ts_ns: p.ts_ns,
                            orig_len: p.orig_len,
                            linktype: p.linktype,
                            input: i,
                            data: p.data,
                        });
                        n += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        stats.error = Some(e.to_string());
                        break;
                    }
                }
            }
            stats.frames += n as u64;
            stats.bytes = reader.offset();
            if n == FILE_POLL_FRAMES {
                return Poll::Ready(n);
            }
            // This input is done (its end or its damage).
            stats.linktype = reader.linktype();
            self.readers[i] = None;
            self.current += 1;
            if n > 0 {
                return Poll::Ready(n);
            }
        }
        Poll::End
    }

    fn inputs(&self) -> &[InputStats] {
        &self.stats
    }
}

/// One input's next frame, copied out of its reader (the reader's buffer
/// moves on when the next is read).
#[derive(Default)]
struct Head {
    frame: Option<(i128, u32, u32)>,
    data: Vec<u8>,
}

/// Capture files merged by timestamp (ties in input order): the two
/// directions of a TAP, captured to two files, become one stream again.
/// Each head frame is copied once out of its reader.
pub struct Merged {
    readers: Vec<Option<CaptureReader>>,
    stats: Vec<InputStats>,
    heads: Vec<Head>,
    started: bool,
}

impl std::fmt::Debug for Merged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merged")
            .field("inputs", &self.stats)
            .finish()
    }
}

impl Merged {
    /// The inputs: each a name and its reader, or why it did not open.
    pub fn new(inputs: Vec<(String, Result<CaptureReader, String>)>) -> Self {
        let (readers, stats) = rows(inputs);
        let heads = readers.iter().map(|_| Head::default()).collect();
        Self {
            readers,
            stats,
            heads,
            started: false,
        }
    }

    /// Reads input `i`'s next frame into its head (none at its end).
    fn advance(&mut self, i: usize) {
        let head = &mut self.heads[i];
        head.frame = None;
        let Some(reader) = &mut self.readers[i] else {
            return;
        };
        let stats = &mut self.stats[i];
        match reader.next_packet() {
            Ok(Some(p)) => {
                head.data.clear();
                head.data.extend_from_slice(p.data);
                head.frame = Some((p.ts_ns, p.orig_len, p.linktype));
                stats.bytes = reader.offset();
                return;
            }
            Ok(None) => {}
            Err(e) => stats.error = Some(e.to_string()),
        }
        stats.bytes = reader.offset();
        stats.linktype = reader.linktype();
        self.readers[i] = None;
    }
}

impl Source for Merged {
    fn poll(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) -> Poll {
        if !self.started {
            self.started = true;
            for i in 0..self.readers.len() {
                self.advance(i);
            }
        }
        let mut n = 0;
        while n < FILE_POLL_FRAMES {
            let next = self
                .heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.frame.map(|f| (f.0, i)))
                .min();
            let Some((_, i)) = next else { break };
            let (ts_ns, orig_len, linktype) = self.heads[i].frame.expect("chosen head");
            on_frame(Frame {
                ts_ns,
                orig_len,
                linktype,
                input: i,
                data: &self.heads[i].data,
            });
            self.stats[i].frames += 1;
            n += 1;
            self.advance(i);
        }
        if n == 0 { Poll::End } else { Poll::Ready(n) }
    }

    fn inputs(&self) -> &[InputStats] {
        &self.stats
    }
}

/// The consumer side of a [`run`]: what is done with the frames of a
/// source, and when to stop.
pub trait Stage<S: Source> {
    /// One frame.
    fn frame(&mut self, frame: Frame<'_>);
    /// After a poll that handed frames over (progress, statistics).
    fn polled(&mut self, _source: &mut S) {}
    /// Nothing was ready (a live source): hand off what is pending, then
    /// wait for the source.
    fn idle(&mut self, _source: &mut S) {}
    /// Whether to stop now (checked before every poll).
    fn stop(&mut self, _source: &S) -> bool {
        false
    }
}

/// How a [`run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The source ended.
    End,
    /// The stage asked to stop.
    Stopped,
}

/// The one driver loop: polls `source` and feeds `stage` until the source
/// ends or the stage stops it. `split`, `analyze` and `capture` all run
/// it; they differ in their source and their stage.
pub fn run<S: Source, T: Stage<S>>(source: &mut S, stage: &mut T) -> Ended {
    loop {
        if stage.stop(source) {
            return Ended::Stopped;
        }
        match source.poll(&mut |f| stage.frame(f)) {
            Poll::Ready(_) => stage.polled(source),
            Poll::Idle => stage.idle(source),
            Poll::End => return Ended::End,
        }
    }
}

/// [`run`] with closures: `on_frame` per frame, `on_poll` after each poll
/// that handed frames over, `stop` checked between polls. Returns whether
/// it was stopped before the end.
pub fn drive<S: Source>(
    source: &mut S,
    stop: impl Fn() -> bool,
    on_frame: impl FnMut(Frame<'_>),
    on_poll: impl FnMut(&S),
) -> bool {
    struct Closures<A, B, C>(A, B, C);
    impl<S: Source, A: Fn() -> bool, B: FnMut(Frame<'_>), C: FnMut(&S)> Stage<S> for Closures<A, B, C> {
        fn frame(&mut self, frame: Frame<'_>) {
            (self.1)(frame);
        }
        fn polled(&mut self, source: &mut S) {
            (self.2)(source);
        }
        fn stop(&mut self, _: &S) -> bool {
            (self.0)()
        }
    }
    run(source, &mut Closures(stop, on_frame, on_poll)) == Ended::Stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use symrss_pcap::{PcapWriter, TsResolution};

    /// A pcap in memory whose packets carry their timestamps as payload.
    fn capture(times: &[i128]) -> CaptureReader {
        let mut w = PcapWriter::new(Vec::new(), 1, 65535, TsResolution::Nano).unwrap();
        for &t in times {
            w.write_packet(t, 16, &t.to_le_bytes()).unwrap();
        }
        CaptureReader::from_reader("mem".into(), Box::new(Cursor::new(w.finish().unwrap())))
    }

    fn collect<S: Source>(mut s: S, stop_after: Option<usize>) -> (Vec<(usize, i128)>, bool, S) {
        let mut seen = Vec::new();
        let count = std::cell::Cell::new(0);
        let stopped = drive(
            &mut s,
            || stop_after.is_some_and(|n| count.get() >= n),
            |f| {
                seen.push((f.input, i128::from_le_bytes(f.data.try_into().unwrap())));
                count.set(count.get() + 1);
            },
            |_| {},
        );
        (seen, stopped, s)
    }

    #[test]
    fn files_come_one_after_another_and_a_missing_one_is_skipped() {
        let a: Vec<i128> = (0..600).collect();
        let b: Vec<i128> = (0..10).map(|t| t * 7).collect();
        let files = Files::new(vec![
            ("a".into(), Ok(capture(&a))),
            ("gone".into(), Err("gone: No such file".into())),
            ("b".into(), Ok(capture(&b))),
        ]);
        let (seen, stopped, files) = collect(files, None);
        assert!(!stopped);
        let want: Vec<(usize, i128)> = a
            .iter()
            .map(|&t| (0, t))
            .chain(b.iter().map(|&t| (2, t)))
            .collect();
        assert_eq!(seen, want);
        let st = files.inputs();
        assert_eq!((st[0].frames, st[1].frames, st[2].frames), (600, 0, 10));
        assert_eq!(st[0].linktype, Some(1));
        assert!(st[1].error.as_deref().unwrap().contains("No such file"));
    }

    #[test]
    fn merged_files_come_in_time_order_ties_in_input_order() {
        let a = [1, 5, 5, 9, 20];
        let b = [0, 5, 6, 30];
        let (seen, _, merged) = collect(
            Merged::new(vec![
                ("a".into(), Ok(capture(&a))),
                ("b".into(), Ok(capture(&b))),
            ]),
            None,
        );
        let times: Vec<i128> = seen.iter().map(|s| s.1).collect();
        assert_eq!(times, [0, 1, 5, 5, 5, 6, 9, 20, 30]);
        assert_eq!(&seen[2..5], &[(0, 5), (0, 5), (1, 5)]);
        assert_eq!(merged.inputs()[1].frames, 4);
    }

    #[test]
    fn a_stop_ends_the_drive_between_polls() {
        let a: Vec<i128> = (0..2000).collect();
        let (seen, stopped, files) =
            collect(Files::new(vec![("a".into(), Ok(capture(&a)))]), Some(300));
        assert!(stopped);
        // Stopped after the poll that crossed 300: whole polls only.
        assert_eq!(seen.len(), 2 * FILE_POLL_FRAMES);
        assert_eq!(files.inputs()[0].frames, seen.len() as u64);
    }
}
