//! the llm-os plan contract: plan types, the system model and the
//! deterministic verifier that the verifier PD runs (no_std, no heap, no
//! panic on any input).
//!
//! - [`plan`]: plan v1 (one table of ops).
//! - [`model`]: state, policy (`DEFAULT_POLICY` comes from `system/policy.toml`).
//! - [`rules`]: the checks and step function, written once over a
//!   [`domain::Domain`] so the prover reads the same code the PD runs.
//! - [`definitions`]: what each named rule means, apart from its check.
//! - [`expr`], [`custom`]: state invariants written as data in the policy
//!   file, one interpreter over the same `Domain`.
//! - [`verify`]: whole plans, all or nothing.
//! - [`wire`], [`confirm`], [`auth`]: postcard framing, HMAC confirmation
//!   tokens, plan MACs and per-boot keys.
//! - `json` (feature `std`): the host's json front end and error form.
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
