//! Progress on stderr, at the level `-q`/`-v` chose: one bar per stage on a terminal, plain
//! lines in order otherwise, nothing with `--quiet`.
//!
//! - default: each stage's start and end, and the summary;
//! - `-v`: with each stage's time, the package cache's hits and misses and the bytes
//!   downloaded, and every retry;
//! - `-vv`: a line per layer written, its size labelled with its compression.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cli::output::errln;
use crate::image::{Compression, Digest, Layer, WrittenLayer};
use crate::reporter::{Reporter, Retry, Stage};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Formats a byte count as `1.2 MB`.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `1.2 MB uncompressed`, `500.0 kB gzip`: a size that says what it measures.
pub fn labelled_size(bytes: u64, compression: Compression) -> String {
    let how = match compression {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    format!("{} {how}", human_bytes(bytes))
}

/// The total size of `layers`, labelled: `8.2 MB gzip`, `21.0 MB uncompressed`, or
/// `compressed` when they differ (base layers kept as they were).
pub fn layers_size(layers: &[WrittenLayer]) -> String {
    let bytes = layers.iter().map(|l| l.size).sum();
    let mut kinds = layers.iter().map(|l| l.compression);
    match kinds.next() {
        Some(first) if kinds.all(|c| c == first) => labelled_size(bytes, first),
        Some(_) => format!("{} compressed", human_bytes(bytes)),
        None => human_bytes(bytes),
    }
}

/// A time as people read it: `40 ms`, `2.3 s`.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// How much to say, from `-q` and the count of `-v`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only the result (and errors).
    Quiet,
    /// Stage lines and the summary.
    Normal,
    /// Timings, cache hits and misses, downloads, retries.
    Verbose,
    /// Per-layer lines too.
    Detail,
}

impl Level {
    /// The level `-q` and `-v` (counted) ask for.
    pub fn new(quiet: bool, verbose: u8) -> Self {
        match (quiet, verbose) {
            (true, _) => Self::Quiet,
            (_, 0) => Self::Normal,
            (_, 1) => Self::Verbose,
            _ => Self::Detail,
        }
    }
}

/// What a push put in one repository so far.
#[derive(Debug, Default)]
struct Pushed {
    blobs: usize,
    tags: Vec<String>,
}

/// The stage under way.
struct Current {
    stage: Stage,
    since: Instant,
}

/// What the install stage did, for `-v`.
#[derive(Default)]
struct Install {
    packages: usize,
    read: usize,
    downloaded: u64,
}

/// The layers of the write under way.
#[derive(Default)]
struct Layers {
    /// Per-layer lines finished out of order, waiting for the ones before (piped `-vv`).
    waiting: BTreeMap<usize, String>,
    next: usize,
    written: usize,
    bytes: u64,
    /// Each compression the layers were written in, once.
    compressions: Vec<Compression>,
}

/// Everything the display keeps between events, behind one lock.
#[derive(Default)]
struct State {
    bar: Option<ProgressBar>,
    current: Option<Current>,
    /// A finished stage's line, held until something else is said: the library may finish a
    /// stage twice (the install stage, then the layers it has to make), the second time saying
    /// more, and one line says it.
    held: Option<(Stage, String)>,
    install: Install,
    layers: Layers,
    /// Bytes pulled per blob, for the one pull bar: (done, total).
    pulling: HashMap<Digest, (u64, u64)>,
    /// Hosts a retry was shown for (the default level shows the first of each).
    retried: BTreeSet<String>,
}

/// The command line's [`Reporter`].
pub struct Progress {
    level: Level,
    terminal: bool,
    started: Instant,
    state: Mutex<State>,
    /// By `REGISTRY/REPO`.
    pushed: Mutex<BTreeMap<String, Pushed>>,
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::ReadBase => "reading base image",
        Stage::Solve => "solving",
        Stage::Install => "fetching",
        Stage::Pypi => "resolving PyPI packages",
        Stage::Compose => "composing",
        Stage::Write => "writing",
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress {
    /// A reporter for stderr at `level`.
    pub fn new(level: Level) -> Self {
        Self {
            level,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            state: Mutex::new(State::default()),
            pushed: Mutex::new(BTreeMap::new()),
        }
    }

    /// The time since the command began: `2.3 s`.
    pub fn elapsed(&self) -> String {
        duration(self.started.elapsed())
    }

    /// The seconds since the command began.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Whether `-v` (or more) was given.
    fn verbose(&self) -> bool {
        self.level >= Level::Verbose
    }

    /// What is in registries after an interrupted run: `nothing was written`, or the blobs
    /// and tags each repository got.
    pub fn written(&self) -> String {
        let pushed = match self.pushed.lock() {
            Ok(p) => p,
            Err(_) => return "nothing was written".into(),
        };
        if pushed.is_empty() {
            return "nothing was written".into();
        }
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        pushed
            .iter()
            .map(|(repository, p)| match p.tags.as_slice() {
                [] => format!(
                    "{} blob{} were uploaded to {repository}, no tag was written",
                    p.blobs,
                    plural(p.blobs)
                ),
                tags => format!(
                    "{} blob{} and the tag{} {} were written to {repository}",
                    p.blobs,
                    plural(p.blobs),
                    plural(tags.len()),
                    tags.join(", ")
                ),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn state(&self) -> Option<MutexGuard<'_, State>> {
        self.state.lock().ok()
    }

    /// Prints a line (after what was held, with any bar gone).
    pub fn note(&self, line: &str) {
        if self.level == Level::Quiet {
            return;
        }
        if let Some(mut state) = self.state() {
            self.settle(&mut state);
        }
        errln!("{line}");
    }

    /// Ends what is on screen: the bar, the held line, the write's summary at `-v`.
    pub fn clear(&self) {
        if let Some(mut state) = self.state() {
            self.settle(&mut state);
        }
    }

    /// Prints `line` during a stage: after the held line, above the bar.
    fn say(&self, line: &str) {
        let Some(mut state) = self.state() else {
            errln!("{line}");
            return;
        };
        if let Some((_, held)) = state.held.take() {
            if let Some(bar) = state.bar.take() {
                bar.finish_and_clear();
            }
            errln!("{held}");
        }
        match &state.bar {
            Some(bar) => bar.suspend(|| errln!("{line}")),
            None => errln!("{line}"),
        }
    }

    /// Ends the stage: clears the bar (drawn once at its total when it got there), prints the
    /// held line, and a write's layer summary.
    fn settle(&self, state: &mut State) {
        if let Some(bar) = state.bar.take() {
            if bar.length().is_some_and(|len| bar.position() >= len) {
                bar.finish();
            }
            bar.finish_and_clear();
        }
        state.pulling.clear();
        self.flush_layers(state);
        if let Some((_, line)) = state.held.take() {
            errln!("{line}");
        }
        let layers = std::mem::take(&mut state.layers);
        if let Some(current) = state.current.take()
            && current.stage == Stage::Write
            && layers.written > 0
            && self.verbose()
        {
            let size = match layers.compressions.as_slice() {
                [one] => labelled_size(layers.bytes, *one),
                _ => format!("{} compressed", human_bytes(layers.bytes)),
            };
            errln!(
                "writing: {} layers, {size} ({})",
                layers.written,
                duration(current.since.elapsed())
            );
        }
    }

    /// Piped `-vv`: prints the per-layer lines still waiting, in order.
    fn flush_layers(&self, state: &mut State) {
        for (_, line) in std::mem::take(&mut state.layers.waiting) {
            errln!("{line}");
        }
    }

    /// A spinner for a stage that has no count (terminal only).
    fn spinner(&self, state: &mut State, message: String) {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(bar_style("{spinner} {wide_msg} {elapsed}"));
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        state.bar = Some(bar);
    }

    /// A bar of `total` steps (terminal only), replacing the stage's spinner.
    fn counting_bar(&self, state: &mut State, total: u64, template: &str) -> ProgressBar {
        if let Some(old) = state.bar.take() {
            old.finish_and_clear();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(bar_style(template));
        state.bar = Some(bar.clone());
        bar
    }

    /// The line that ends `stage`, with its time and, for the install, the cache's share at
    /// `-v`.
    fn finished_line(&self, state: &State, stage: Stage, message: &str) -> String {
        let mut line = format!("{}: {message}", stage_name(stage));
        if !self.verbose() {
            return line;
        }
        let took = state
            .current
            .as_ref()
            .filter(|c| c.stage == stage)
            .map(|c| duration(c.since.elapsed()));
        let mut detail: Vec<String> = took.into_iter().collect();
        if stage == Stage::Install {
            let i = &state.install;
            detail.push(format!(
                "{} of {} packages from the contents cache, {} downloaded",
                i.packages.saturating_sub(i.read),
                i.packages,
                human_bytes(i.downloaded)
            ));
        }
        if !detail.is_empty() {
            line.push_str(&format!(" ({})", detail.join("; ")));
        }
        line
    }
}

impl Reporter for Progress {
    fn stage_started(&self, stage: Stage, message: &str) {
        if self.level == Level::Quiet {
            return;
        }
        let Some(mut state) = self.state() else {
            return;
        };
        self.settle(&mut state);
        state.current = Some(Current {
            stage,
            since: Instant::now(),
        });
        let line = format!("{} {message}", stage_name(stage));
        if !self.terminal {
            errln!("{line}");
        } else if stage != Stage::Install {
            // The install's bar comes with install_started.
            self.spinner(&mut state, line);
        }
    }

    fn stage_finished(&self, stage: Stage, message: &str) {
        if self.level == Level::Quiet {
            return;
        }
        let Some(mut state) = self.state() else {
            return;
        };
        let line = self.finished_line(&state, stage, message);
        match state.held.take() {
            // The same stage finished again, saying more: that line replaces the first.
            Some((held, _)) if held == stage => {}
            Some((_, earlier)) => errln!("{earlier}"),
            None => {}
        }
        state.held = Some((stage, line));
        // A counting bar ends at its total, drawn once more, and stays until the next line.
        if let Some(bar) = &state.bar {
            if let Some(total) = bar.length() {
                bar.set_position(total);
            }
            bar.finish();
        }
    }

    fn warning(&self, message: &str) {
        if self.level > Level::Quiet {
            self.say(&format!("warning: {message}"));
        }
    }

    fn install_started(&self, packages: usize) {
        let Some(mut state) = self.state() else {
            return;
        };
        state.install = Install {
            packages,
            ..Install::default()
        };
        if self.level > Level::Quiet && self.terminal {
            self.counting_bar(
                &mut state,
                packages as u64,
                "fetching {bar:30} {pos}/{len} {wide_msg}",
            );
        }
    }

    fn bytes_downloaded(&self, bytes: u64) {
        let Some(mut state) = self.state() else {
            return;
        };
        state.install.downloaded = bytes;
        if let Some(bar) = &state.bar {
            bar.set_message(format!("{} downloaded", human_bytes(bytes)));
        }
    }

    fn package_installed(&self, name: &str) {
        let Some(mut state) = self.state() else {
            return;
        };
        state.install.read += 1;
        if let Some(bar) = &state.bar {
            bar.inc(1);
            if !name.is_empty() {
                bar.set_message(name.to_string());
            }
        }
    }

    fn compose_started(&self, layers: usize) {
        let Some(mut state) = self.state() else {
            return;
        };
        if self.level > Level::Quiet && self.terminal {
            self.counting_bar(
                &mut state,
                layers as u64,
                "composing {bar:30} {pos}/{len} {wide_msg}",
            );
        }
    }

    fn layer_made(&self, description: &str, _bytes: u64) {
        let Some(state) = self.state() else {
            return;
        };
        if let Some(bar) = &state.bar {
            bar.inc(1);
            bar.set_message(description.to_string());
        }
    }

    fn layer_started(&self, index: usize, total: usize, layer: &Layer) {
        if self.level == Level::Quiet || !self.terminal {
            return;
        }
        let Some(mut state) = self.state() else {
            return;
        };
        // A new bar for the write's first layer, unless this write's bar is still counting (a
        // push starts layers in parallel); a new one for each image of a multi-platform write.
        let counting = state
            .bar
            .as_ref()
            .is_some_and(|b| b.length().is_some_and(|len| b.position() < len));
        if !counting && (index == 0 || state.bar.is_none()) {
            self.counting_bar(
                &mut state,
                total as u64,
                "writing layers {bar:30} {pos}/{len} {wide_msg}",
            );
        }
        if let Some(bar) = &state.bar {
            bar.set_message(layer.description().to_string());
        }
    }

    fn layer_finished(&self, index: usize, layer: &Layer, written: &WrittenLayer) {
        if self.level == Level::Quiet {
            return;
        }
        let Some(mut state) = self.state() else {
            return;
        };
        let layers = &mut state.layers;
        layers.written += 1;
        layers.bytes += written.size;
        if !layers.compressions.contains(&written.compression) {
            layers.compressions.push(written.compression);
        }
        if self.level >= Level::Detail {
            let line = format!(
                "  layer {}: {} {} {}",
                index + 1,
                layer.description(),
                labelled_size(written.size, written.compression),
                written.diff_id
            );
            if self.terminal {
                if let Some(bar) = &state.bar {
                    bar.println(&line);
                }
            } else {
                // Pushes finish layers in parallel: print them in order.
                layers.waiting.insert(index, line);
                while let Some(line) = layers.waiting.remove(&layers.next) {
                    errln!("{line}");
                    layers.next += 1;
                }
            }
        }
        if let Some(bar) = &state.bar {
            bar.inc(1);
        }
    }

    fn blob_downloaded(&self, digest: &Digest, done: u64, total: u64) {
        if self.level == Level::Quiet || !self.terminal {
            return;
        }
        let Some(mut state) = self.state() else {
            return;
        };
        state.pulling.insert(digest.clone(), (done, total));
        let (done, total) = state
            .pulling
            .values()
            .fold((0, 0), |(d, t), (dd, tt)| (d + dd, t + tt));
        let writing = state
            .current
            .as_ref()
            .is_some_and(|c| c.stage == Stage::Write);
        if writing {
            // Base layers pulled while they are written: said on the write's bar.
            if let Some(bar) = &state.bar {
                bar.set_message(format!(
                    "pulling {}/{}",
                    human_bytes(done),
                    human_bytes(total)
                ));
            }
            return;
        }
        // One bar for every blob the stage pulls.
        if state.bar.as_ref().is_none_or(|b| b.length().is_none()) {
            self.counting_bar(
                &mut state,
                total,
                "pulling {bar:20} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}",
            );
        }
        if let Some(bar) = &state.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn retrying(&self, retry: &Retry<'_>) {
        if self.level == Level::Quiet {
            return;
        }
        let first = self
            .state()
            .is_some_and(|mut s| s.retried.insert(retry.host.to_string()));
        if self.verbose() {
            self.say(&retry.to_string());
        } else if first {
            self.say(&format!(
                "{retry} (further retries of `{}`: -v)",
                retry.host
            ));
        }
    }

    fn blob_pushed(&self, repository: &str, _digest: &Digest) {
        if let Ok(mut pushed) = self.pushed.lock() {
            pushed.entry(repository.to_string()).or_default().blobs += 1;
        }
    }

    fn manifest_pushed(&self, repository: &str, target: &str) {
        if let Ok(mut pushed) = self.pushed.lock()
            && target.parse::<Digest>().is_err()
        {
            pushed
                .entry(repository.to_string())
                .or_default()
                .tags
                .push(target.to_string());
        }
    }
}
