//! the long differential run: `cargo bench -p policy-prover [-- CASES [SEED]]`
//! (default 200000 cases). prints cases per second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a bench binary")]

use policy_prover::differential;
use policy_verifier::DEFAULT_POLICY;

fn main() {
    // cargo bench passes `--bench`; numbers are ours.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    // `cargo test --all-targets` runs this without `--bench`: a smoke run.
    let default = if args.iter().any(|a| a == "--bench") { 200_000 } else { 1_000 };
    let cases = nums.first().copied().unwrap_or(default);
    let seed = nums.get(1).copied().unwrap_or(0x5eed_d1ff);
    let t = std::time::Instant::now();
    match differential::run(&DEFAULT_POLICY.limits, seed, cases) {
        Ok(()) => {
            let s = t.elapsed().as_secs_f64();
            println!(
                "differential: {cases} cases (seed {seed:#x}) agree in {s:.1} s, {:.0} cases/s",
                cases as f64 / s
            );
        }
        Err(f) => {
            println!("differential: case {} (seed {seed:#x}) disagrees: {:?}\n{:?}", f.index, f.mismatch, f.case);
            std::process::exit(1);
        }
    }
}
