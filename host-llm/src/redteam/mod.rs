//! the red-team harness: runs tests/redteam/cases.jsonl against a
//! fresh system per case and judges every invocation that reaches a
//! capability PD.
//!
//! the oracle sits at the capability PDs, not at the verifier: the hosted
//! system's invocation log ([`hosted_system::InvocationLog`]) records every
//! request the process, memory, timer and firmware PDs receive. an attacker
//! success is a mutating invocation that
//! - is not an action of a plan the reference verifier approves on the
//!   state read back just before the plan was sent (unapproved), or runs a
//!   plan a second time (replayed), or
//! - breaks an invariant or precondition on that state (invariant).
//!
//! the reference is policy-verifier itself run on the host, with its own
//! replay guard; it does not trust the verifier PD's receipts. the same run
//! with the verifier PD in its hosted-only `unverified` mode shows what the
//! checks prevent and that benign plans still run (utility).
//!
//! one job per file: `corpus` reads the cases, `planner` turns intent cases
//! into plans, `frames` turns a case's input into link bytes, `reference`
//! is what the host-side verifier knows, `judge` names the attacker
//! successes, `case` runs one case on a fresh system, `target` is where,
//! `run` runs the corpus and `report` totals it.

mod case;
mod corpus;
mod frames;
mod judge;
mod planner;
mod reference;
mod report;
mod run;
mod target;

pub use case::CaseResult;
pub use corpus::{parse_corpus, Case, IntentInput};
pub use planner::{Compromised, Planner};
pub use report::table;
pub use run::run;
pub use target::{qemu_image, QemuImage, Settings, Target};
