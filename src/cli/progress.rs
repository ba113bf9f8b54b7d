//! Progress on stderr: bars on a terminal, plain lines otherwise, nothing with `--quiet`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use crate::cli::output::errln;
use crate::image::{Digest, Layer, WrittenLayer};
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

/// What a push put in one repository so far.
#[derive(Debug, Default)]
struct Pushed {
    blobs: usize,
    tags: Vec<String>,
}

/// The command line's [`Reporter`].
pub struct Progress {
    quiet: bool,
    terminal: bool,
    bar: Mutex<Option<ProgressBar>>,
    /// The blob the byte bar shows, if it does.
    downloading: Mutex<Option<Digest>>,
    /// By `REGISTRY/REPO`.
    pushed: Mutex<BTreeMap<String, Pushed>>,
}

impl Progress {
    /// A reporter for stderr.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            downloading: Mutex::new(None),
            pushed: Mutex::new(BTreeMap::new()),
        }
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

    /// Prints a line (above any bar).
    pub fn note(&self, line: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(bar) => bar.println(line),
            None => errln!("{line}"),
        }
    }

    /// Removes any bar from the screen.
    pub fn clear(&self) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }

    fn set_bar(&self, bar: Option<ProgressBar>) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.take() {
                old.finish_and_clear();
            }
            *slot = bar;
        }
    }

    fn spinner(&self, message: String) {
        if self.quiet || !self.terminal {
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        self.set_bar(Some(bar));
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::ReadBase => "reading base image",
        Stage::Solve => "solving",
        Stage::Install => "fetching",
        Stage::Pypi => "resolving PyPI packages",
        Stage::Write => "writing",
    }
}

impl Reporter for Progress {
    fn stage_started(&self, stage: Stage, message: &str) {
        let line = format!("{} {message}", stage_name(stage));
        if self.terminal && stage == Stage::Install {
            // install_started shows a bar.
        } else if self.terminal {
            self.spinner(line);
        } else {
            self.note(&line);
        }
    }

    fn stage_finished(&self, stage: Stage, message: &str) {
        self.set_bar(None);
        if let Ok(mut d) = self.downloading.lock() {
            *d = None;
        }
        self.note(&format!("{}: {message}", stage_name(stage)));
    }

    fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        if let Some(bar) = self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            bar.suspend(|| errln!("warning: {message}"));
        } else {
            errln!("warning: {message}");
        }
    }

    fn install_started(&self, packages: usize) {
        if self.quiet || !self.terminal {
            return;
        }
        let bar =
            ProgressBar::with_draw_target(Some(packages as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("fetching {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.set_bar(Some(bar));
    }

    fn bytes_downloaded(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            bar.set_message(format!("{} downloaded", human_bytes(bytes)));
        }
    }

    fn package_installed(&self, name: &str) {
        if let Some(bar) = self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            bar.inc(1);
            if !name.is_empty() {
                bar.set_message(name.to_string());
            }
        }
    }

    fn layer_started(&self, index: usize, total: usize, layer: &Layer) {
        if self.quiet || !self.terminal {
            return;
        }
        let mut slot = match self.bar.lock() {
            Ok(s) => s,
            Err(_) => return,
        };
        if index == 0 || slot.is_none() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("writing layers {bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
        if let Some(bar) = slot.as_ref() {
            bar.set_message(layer.description().to_string());
        }
    }

    fn layer_finished(&self, index: usize, layer: &Layer, written: &WrittenLayer) {
        if self.quiet {
            return;
        }
        if self.terminal {
            if let Some(bar) = self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
                bar.set_position(index as u64 + 1);
            }
        } else {
            self.note(&format!(
                "layer {}: {} {} {}",
                index + 1,
                layer.description(),
                human_bytes(written.size),
                written.diff_id
            ));
        }
    }

    fn blob_downloaded(&self, digest: &Digest, done: u64, total: u64) {
        if self.quiet || !self.terminal {
            return;
        }
        let (Ok(mut current), Ok(mut slot)) = (self.downloading.lock(), self.bar.lock()) else {
            return;
        };
        if current.as_ref() != Some(digest) || slot.is_none() {
            if let Some(old) = slot.take() {
                old.finish_and_clear();
            }
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "pulling {msg} {bar:20} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(digest.hex().chars().take(12).collect::<String>());
            *slot = Some(bar);
            *current = Some(digest.clone());
        }
        if let Some(bar) = slot.as_ref() {
            bar.set_position(done);
        }
    }

    fn retrying(&self, retry: &Retry<'_>) {
        self.note(&retry.to_string());
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
