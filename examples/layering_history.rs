//! Replays a lockfile history through the layering strategies and reports what a registry
//! would receive.
//!
//! ```text
//! cargo run --release --example layering_history -- [--budget N] DIR_OR_FILE...
//! ```
//!
//! Each input is a package-list history as written by
//! `benches/data/layering/extract_pixi_lock.py` (optionally gzipped): `@ COMMIT DATE` starts a
//! snapshot, then one `name<TAB>version<TAB>build<TAB>size<TAB>dep,dep,...` line per conda
//! package. A directory stands for every `.tsv` / `.tsv.gz` file in it.
//!
//! For every update (one snapshot to the next) a strategy's cost is the recorded size of every
//! layer whose content (the set of `name-version-build` it holds) was not in the previous
//! image; the lower bound is the size of the packages that were not in it. A second table
//! shows what a client that keys unpacked layers on their chain (containerd) unpacks again:
//! every layer from the lowest one that differs from the previous image's layer at the same
//! position upwards.
//!
//! Packages are put in dependency order (a topological sort on the recorded `depends`, ties
//! and cycles broken alphabetically) before planning, as the builder does. A package without a
//! recorded size takes the size recorded for the same `name-version-build` elsewhere in the
//! history, else the nearest recorded size of the same name, else 0.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use conda_docker::conda::layering::{PlanPackage, auto_groups, bucket_count, layered_groups};

/// The default layer budget: 100 layers less a base layer and the top layer.
const DEFAULT_BUDGET: usize = 98;

#[derive(Clone, Debug)]
struct Package {
    name: String,
    dist: String,
    size: Option<u64>,
    depends: Vec<String>,
}

struct History {
    label: String,
    snapshots: Vec<Vec<Package>>,
    filled_sizes: usize,
    zero_sizes: usize,
}

#[derive(Clone, Copy)]
enum Strategy {
    Single,
    Layered,
    Auto,
}

const STRATEGIES: [(Strategy, &str); 3] = [
    (Strategy::Single, "single"),
    (Strategy::Layered, "layered"),
    (Strategy::Auto, "auto"),
];

fn main() -> anyhow::Result<()> {
    let mut budget = DEFAULT_BUDGET;
    let mut inputs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--budget" => {
                let value = args.next().context("--budget needs a number")?;
                budget = value
                    .parse()
                    .with_context(|| format!("--budget `{value}` is not a number"))?;
            }
            "-h" | "--help" => {
                println!("usage: layering_history [--budget N] DIR_OR_FILE...");
                return Ok(());
            }
            _ => inputs.push(PathBuf::from(arg)),
        }
    }
    if inputs.is_empty() {
        bail!("usage: layering_history [--budget N] DIR_OR_FILE...");
    }
    let mut files = Vec::new();
    for input in &inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                    name.is_some_and(|n| n.ends_with(".tsv") || n.ends_with(".tsv.gz"))
                })
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("no .tsv or .tsv.gz history in {}", input.display());
            }
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    let histories = files
        .iter()
        .map(|f| read_history(f))
        .collect::<anyhow::Result<Vec<_>>>()?;

    println!(
        "budget: {budget} layers for the environment (auto: {} name-hashed buckets)",
        bucket_count(budget)
    );
    println!();
    println!(
        "{:<24} {:>9} {:>8} {:>9}  sizes not recorded",
        "history", "snapshots", "updates", "packages"
    );
    for h in &histories {
        let min = h.snapshots.iter().map(Vec::len).min().unwrap_or(0);
        let max = h.snapshots.iter().map(Vec::len).max().unwrap_or(0);
        println!(
            "{:<24} {:>9} {:>8} {:>9}  {} (filled in; {} with nothing to go on, as 0)",
            h.label,
            h.snapshots.len(),
            h.snapshots.len().saturating_sub(1),
            format!("{min}-{max}"),
            h.filled_sizes,
            h.zero_sizes,
        );
    }

    let results: Vec<Costs> = histories.iter().map(|h| simulate(h, budget)).collect();
    let pooled = results.iter().fold(Costs::default(), |a, c| a.add(c));

    println!();
    println!("bytes a registry receives over all updates (layers whose content changed)");
    print_table(&histories, &results, &pooled, |c| &c.sent);
    println!();
    println!("bytes a chain-keyed client (containerd) unpacks again over all updates");
    print_table(&histories, &results, &pooled, |c| &c.unpacked);
    Ok(())
}

/// Totals over one history: lower bound, then one per strategy in [`STRATEGIES`] order.
#[derive(Default, Clone)]
struct Costs {
    sent: [u64; 4],
    unpacked: [u64; 4],
}

impl Costs {
    fn add(&self, other: &Costs) -> Costs {
        let mut sum = self.clone();
        for i in 0..4 {
            sum.sent[i] += other.sent[i];
            sum.unpacked[i] += other.unpacked[i];
        }
        sum
    }
}

fn print_table(
    histories: &[History],
    results: &[Costs],
    pooled: &Costs,
    pick: impl Fn(&Costs) -> &[u64; 4],
) {
    print!("{:<24} {:>19}", "history", "lower bound");
    for (_, name) in STRATEGIES {
        print!(" {name:>19}");
    }
    println!();
    let row = |label: &str, costs: &[u64; 4], bound: u64| {
        print!("{label:<24}");
        for &bytes in costs {
            let ratio = if bound == 0 {
                f64::NAN
            } else {
                bytes as f64 / bound as f64
            };
            print!(" {:>11} {:>6.3}x", human(bytes), ratio);
        }
        println!();
    };
    // Both tables compare against the per-package lower bound of bytes sent.
    if histories.len() > 1 {
        for (h, c) in histories.iter().zip(results) {
            row(&h.label, pick(c), c.sent[0]);
        }
    }
    row("pooled", pick(pooled), pooled.sent[0]);
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// One layer: the sorted `name-version-build` of what it holds, and its recorded size.
type Layer = (Vec<String>, u64);

fn layers(packages: &[Package], groups: &[Vec<usize>]) -> Vec<Layer> {
    groups
        .iter()
        .map(|g| {
            let mut key: Vec<String> = g.iter().map(|&i| packages[i].dist.clone()).collect();
            key.sort();
            let size = g.iter().map(|&i| packages[i].size.unwrap_or(0)).sum();
            (key, size)
        })
        .collect()
}

fn groups(strategy: Strategy, packages: &[Package], budget: usize) -> Vec<Vec<usize>> {
    match strategy {
        Strategy::Single => vec![(0..packages.len()).collect()],
        Strategy::Layered => layered_groups(packages.len(), budget),
        Strategy::Auto => {
            let plan: Vec<PlanPackage> = packages
                .iter()
                .map(|p| PlanPackage {
                    name: p.name.clone(),
                    size: p.size.unwrap_or(0),
                })
                .collect();
            auto_groups(&plan, budget)
        }
    }
}

fn simulate(history: &History, budget: usize) -> Costs {
    let mut costs = Costs::default();
    // The lower bound: one layer per package, whatever the budget.
    let per_package = |p: &[Package]| (0..p.len()).map(|i| vec![i]).collect::<Vec<_>>();
    let plans: Vec<Vec<Vec<Layer>>> = history
        .snapshots
        .iter()
        .map(|s| {
            let mut v = vec![layers(s, &per_package(s))];
            for (strategy, _) in STRATEGIES {
                v.push(layers(s, &groups(strategy, s, budget)));
            }
            v
        })
        .collect();
    for pair in plans.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        for k in 0..4 {
            let known: HashSet<&Vec<String>> = before[k].iter().map(|(key, _)| key).collect();
            costs.sent[k] += after[k]
                .iter()
                .filter(|(key, _)| !known.contains(key))
                .map(|(_, size)| size)
                .sum::<u64>();
            let same = before[k]
                .iter()
                .zip(&after[k])
                .take_while(|(a, b)| a.0 == b.0)
                .count();
            costs.unpacked[k] += after[k][same..].iter().map(|(_, s)| s).sum::<u64>();
        }
    }
    // The lower bound does not depend on order: a client unpacks just what changed.
    costs.unpacked[0] = costs.sent[0];
    costs
}

fn read_history(path: &Path) -> anyhow::Result<History> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_string(&mut s)
            .with_context(|| format!("decompressing {}", path.display()))?;
        s
    } else {
        String::from_utf8(raw).with_context(|| format!("{} is not UTF-8", path.display()))?
    };
    let mut snapshots: Vec<Vec<Package>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), n + 1);
        if line.starts_with('@') {
            snapshots.push(Vec::new());
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, version, build, size, depends] = fields[..] else {
            bail!("{}: expected 5 tab-separated fields", at());
        };
        let size = match size {
            "-" => None,
            s => Some(
                s.parse()
                    .with_context(|| format!("{}: size `{s}` is not a number", at()))?,
            ),
        };
        let Some(snapshot) = snapshots.last_mut() else {
            bail!("{}: a package before the first `@` line", at());
        };
        snapshot.push(Package {
            name: name.to_string(),
            dist: format!("{name}-{version}-{build}"),
            size,
            depends: depends
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    if snapshots.is_empty() {
        bail!("{}: no snapshots", path.display());
    }
    let (filled_sizes, zero_sizes) = fill_sizes(&mut snapshots);
    for s in &mut snapshots {
        *s = dependency_order(std::mem::take(s));
    }
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let label = label
        .trim_end_matches(".gz")
        .trim_end_matches(".tsv")
        .to_string();
    Ok(History {
        label,
        snapshots,
        filled_sizes,
        zero_sizes,
    })
}

/// Fills unrecorded sizes (see the module docs); returns how many were filled and how many
/// of those had nothing to go on and became 0.
fn fill_sizes(snapshots: &mut [Vec<Package>]) -> (usize, usize) {
    let mut exact: HashMap<String, u64> = HashMap::new();
    for p in snapshots.iter().flatten() {
        if let Some(size) = p.size {
            exact.entry(p.dist.clone()).or_insert(size);
        }
    }
    // The nearest recorded size by name: the last one before, else the first one after.
    let mut last_by_name: HashMap<String, u64> = HashMap::new();
    let mut first_by_name: HashMap<String, u64> = HashMap::new();
    for p in snapshots.iter().flatten() {
        if let Some(size) = p.size {
            first_by_name.entry(p.name.clone()).or_insert(size);
        }
    }
    let (mut filled, mut zero) = (0, 0);
    for snapshot in snapshots.iter_mut() {
        for p in snapshot.iter_mut() {
            if p.size.is_none() {
                filled += 1;
                let guess = exact
                    .get(&p.dist)
                    .or_else(|| last_by_name.get(&p.name))
                    .or_else(|| first_by_name.get(&p.name))
                    .copied();
                if guess.is_none() {
                    zero += 1;
                }
                p.size = Some(guess.unwrap_or(0));
            }
        }
        for p in snapshot.iter() {
            if let Some(size) = p.size {
                last_by_name.insert(p.name.clone(), size);
            }
        }
    }
    (filled, zero)
}

/// Dependencies before their dependents; among the packages ready at once, and to break
/// cycles, the alphabetically first.
fn dependency_order(mut packages: Vec<Package>) -> Vec<Package> {
    packages.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.dist.cmp(&b.dist)));
    let index: HashMap<&str, usize> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let count = packages.len();
    let mut waiting = vec![0usize; count];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, p) in packages.iter().enumerate() {
        let mut deps: Vec<usize> = p
            .depends
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .filter(|&d| d != i)
            .collect();
        deps.sort_unstable();
        deps.dedup();
        waiting[i] = deps.len();
        for d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count)
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut done = vec![false; count];
    let mut order = Vec::with_capacity(count);
    while order.len() < count {
        let next = match ready.pop() {
            Some(Reverse(i)) => i,
            // A cycle: take the alphabetically first package still waiting.
            None => match (0..count).find(|&i| !done[i]) {
                Some(i) => i,
                None => break,
            },
        };
        if done[next] {
            continue;
        }
        done[next] = true;
        order.push(next);
        for &j in &dependents[next] {
            if !done[j] {
                waiting[j] = waiting[j].saturating_sub(1);
                if waiting[j] == 0 {
                    ready.push(Reverse(j));
                }
            }
        }
    }
    let mut slots: Vec<Option<Package>> = packages.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}
