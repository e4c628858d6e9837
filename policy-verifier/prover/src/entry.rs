//! the domain obligations that enter through the PD's entry points rather
//! than the value domain: the worker set, the interpreter, `verify::verify`
//! and the language's assumptions. here, apart from `differential` and
//! `wellformed`, so neither of those imports the other.

use policy_verifier::domain::Concrete;
use policy_verifier::Policy;

use crate::differential::{self, Mismatch};
use crate::spec::DomainOp;
use crate::wellformed;

/// the `domain/workers` and `domain/verify` obligations (other ops: as
/// [`differential::domain_agrees`] over `Concrete`). the proofs speak of `verify::run`'s
/// parts (`header`, `advance`, `finish`) over symbolic inputs; the PD enters
/// through `verify::verify`, which decodes workers, looks up the session,
/// checks the token, lowers each action and runs the loop. these compare
/// that entry with those parts composed over Z3 on literal inputs the
/// prover builds itself (a worker by its position in
/// `Worker::ALL`, the token's validity as `confirm::is_valid`), always with
/// the PD's own rules.
pub fn entry_agrees(policy: &Policy, key: &[u8], op: DomainOp) -> Result<(), Mismatch> {
    match op {
        DomainOp::Workers => differential::workers_agree(),
        DomainOp::Expr => differential::expr_agrees(policy),
        DomainOp::Verify => differential::verify_agrees(policy, key),
        DomainOp::WellFormed => wellformed::well_formed_agrees(policy),
        DomainOp::ExprBound => wellformed::bound_agrees(policy),
        _ => differential::domain_agrees(&Concrete, op),
    }
}
