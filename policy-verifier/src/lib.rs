//! the llm-os plan contract: plan types, the system model and the
//! deterministic verifier that the verifier PD runs (no_std, no heap, no
//! panic on any input).
//!
//! the modules, each over the ones before it (no module imports one that
//! imports it back; `host-llm/tests/layout.rs` checks it):
//!
//! - [`worker`], [`domain`], [`expr`], [`invariant`]: the worker set, the
//!   value domain the rules are written over, the invariant language (AST
//!   and parser) and the stable rule names and their id sets.
//! - [`model`]: state, the same state over a `Domain` (`Model`), policy
//!   (`DEFAULT_POLICY` comes from `system/policy.toml`).
//! - [`plan`]: plan v1 (one table of ops).
//! - [`custom`]: the interpreter of the policy file's invariants, over a
//!   `Model`.
//! - [`definitions`]: what each named rule means, apart from its check.
//! - [`rules`]: the checks and step function, written once over a
//!   [`domain::Domain`] so the prover reads the same code the PD runs.
//! - [`wire`], [`confirm`], [`auth`]: postcard framing, HMAC confirmation
//!   tokens, plan MACs and per-boot keys.
//! - [`verify`]: whole plans, all or nothing.
//! - `json`, `policy_file` (feature `std`): the host's json front end and
//!   error form, and the policy file parser.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]

pub mod auth;
pub mod confirm;
pub mod definitions;
pub mod custom;
pub mod domain;
pub mod expr;
pub mod invariant;
pub mod model;
pub mod plan;
pub mod rules;
pub mod verify;
pub mod wire;
pub mod worker;

#[cfg(feature = "std")]
pub mod json;
#[cfg(feature = "std")]
pub mod policy_file;

pub use invariant::{Invariant, InvariantSet, RuleClass};
pub use model::{Limits, Policy, Session, State, Tier, WorkerState, DEFAULT_POLICY};
pub use plan::{Action, ActionKind, ActionOf, InventoryQuery, Plan, Worker, MAX_ACTIONS, N_WORKERS};
pub use verify::{verify, Verdict};
