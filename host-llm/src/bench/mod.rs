//! the planner's utility benchmark (`llmsh bench-intents`): every intent of
//! tests/intents runs on a freshly booted hosted system, is planned,
//! executed and judged on the state read back from the PDs.
//!
//! one job per file: `corpus` reads the intents and their starting
//! states, `expect` judges a receipt against an intent's expectation,
//! `case` runs one intent behind a [`Defense`], `run` runs a set of them
//! into rows, `rows` summarizes rows and joins shards' reports, `report`
//! renders reports as one html page.

mod case;
mod corpus;
mod expect;
mod report;
mod rows;
mod run;

pub use case::{Defense, Options};
pub use corpus::{load, Case};
pub use report::render;
pub use rows::{merge, summarize};
pub use run::{run, Progress};
