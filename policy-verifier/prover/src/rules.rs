//! the checks under proof, as a parameter: the prover proves whatever
//! [`Rules`] it is given against the fixed specification (the invariants
//! `policy_verifier::rules::holds` and the step function). the default,
//! [`Verifier`], is the verifier PD's own code; tests hand in deliberately
//! broken copies and expect the proofs to fail.

use policy_verifier::domain::Domain;
use policy_verifier::rules::{self, Model, OpTerm};
use policy_verifier::{Invariant, Limits, Policy};

/// the checks the verifier evaluates before each action.
pub trait Rules<D: Domain> {
    /// one named check, as `policy_verifier::rules::check`: true when it
    /// passes or does not apply.
    fn check(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool;

    /// every model check at once, as `policy_verifier::rules::accepts`.
    fn accepts(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        let mut acc = d.bool(true);
        for inv in Invariant::STATE.iter().chain(Invariant::PRECONDITIONS.iter()) {
            acc = d.and(&acc, &self.check(d, lim, m, a, *inv));
        }
        acc
    }

    /// the action preconditions, as `policy_verifier::rules::preconditions`.
    fn preconditions(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        let mut acc = d.bool(true);
        for inv in Invariant::PRECONDITIONS {
            acc = d.and(&acc, &self.check(d, lim, m, a, inv));
        }
        acc
    }
}

/// the verifier PD's rules: `policy_verifier::rules::{check, accepts,
/// preconditions}` themselves, so the proofs are about the code that runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verifier;

impl<D: Domain> Rules<D> for Verifier {
    fn check(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
        rules::check(d, lim, m, a, inv)
    }
    fn accepts(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        rules::accepts(d, lim, m, a)
    }
    fn preconditions(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        rules::preconditions(d, lim, m, a)
    }
}

/// the verifier's rules under a whole policy: [`Verifier`]'s checks, and
/// the policy file's enforced invariants on the state each action produces
/// (`policy_verifier::custom::accepts_policy`, what `verify` runs).
#[derive(Debug, Clone, Copy)]
pub struct PolicyRules<'a> {
    /// the policy whose `[invariants]` are enforced.
    pub policy: &'a Policy,
}

impl<D: Domain> Rules<D> for PolicyRules<'_> {
    fn check(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>, inv: Invariant) -> D::Bool {
        rules::check(d, lim, m, a, inv)
    }
    fn accepts(&self, d: &D, _lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        policy_verifier::custom::accepts_policy(d, self.policy, m, a)
    }
    fn preconditions(&self, d: &D, lim: &Limits, m: &Model<D>, a: &OpTerm<D>) -> D::Bool {
        rules::preconditions(d, lim, m, a)
    }
}
