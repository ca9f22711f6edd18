//! The cluster assigner simulated (issue 23): `cargo run --release --example assigner_sim --
//! [cameras] [nodes]` (10,000 and 100 by default). Nodes get capacities from 80 to 150 (fixed
//! by a seed); the plan is made from nothing, again unchanged, after the busiest node is lost,
//! and after a new node joins. Prints a table: the time of each plan (median of 5) and how many
//! cameras changed hands against the fewest any assigner must move.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use framegate::cluster::assign::{Held, Plan, plan, quotas};

fn timed(
    cams: &BTreeSet<String>,
    nodes: &BTreeMap<String, u32>,
    h: &BTreeMap<String, Held>,
) -> (Plan, f64) {
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..5 {
        let t = Instant::now();
        let p = plan(cams, nodes, h);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        out = Some(p);
    }
    times.sort_by(f64::total_cmp);
    (out.unwrap_or_default(), times[2])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cameras: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let node_count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut nodes = BTreeMap::new();
    for i in 0..node_count {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        nodes.insert(format!("node{i:03}"), 80 + (seed % 71) as u32);
    }
    let cams: BTreeSet<String> = (0..cameras).map(|i| format!("cam{i:06}")).collect();
    let capacity: u64 = nodes.values().map(|&c| u64::from(c)).sum();
    println!(
        "{cameras} cameras on {node_count} nodes (capacity {capacity}, 80 to 150 each), {}",
        std::env::consts::ARCH
    );
    println!();
    println!("| event | plan time (ms, median of 5) | cameras moved | fewest possible |");
    println!("|---|---|---|---|");
    let (first, ms) = timed(&cams, &nodes, &BTreeMap::new());
    println!(
        "| first plan | {ms:.1} | {} placed, {} unplaced | - |",
        first.placed.len(),
        first.unplaced.len()
    );
    let (same, ms) = timed(&cams, &nodes, &first.claims());
    println!("| nothing changed | {ms:.1} | {} | 0 |", same.moved.len());
    // The busiest node dies: its cameras must go somewhere, nothing else has to move.
    let mut load: BTreeMap<&String, usize> = BTreeMap::new();
    for n in first.owner.values() {
        *load.entry(n).or_default() += 1;
    }
    let (busiest, lost) = load
        .iter()
        .max_by_key(|(_, c)| **c)
        .map(|(n, c)| ((*n).clone(), *c))
        .unwrap_or_default();
    let mut fewer = nodes.clone();
    fewer.remove(&busiest);
    let (after, ms) = timed(&cams, &fewer, &first.claims());
    println!(
        "| a node lost ({lost} cameras) | {ms:.1} | {} re-placed, {} others moved | {lost} re-placed, 0 moved |",
        after.placed.len(),
        after.moved.len()
    );
    // A node joins: it must take its quota from the others, nothing more.
    let mut more = fewer.clone();
    more.insert("node-new".into(), 120);
    let fewest = quotas(&more, cams.len())["node-new"];
    let (joined, ms) = timed(&cams, &more, &after.claims());
    println!(
        "| a node joins (capacity 120) | {ms:.1} | {} | {fewest} |",
        joined.moved.len()
    );
}
