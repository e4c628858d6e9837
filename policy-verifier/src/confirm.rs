//! confirmation tokens: the human's approval of a destructive plan
//! (`auth.confirm`). HMAC-SHA256 over the canonical postcard bytes of the
//! plan with `confirmation` set to none, so the token binds every field,
//! request id included (a token cannot be moved to another plan or replayed).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::plan::Plan;
use crate::wire;

type HmacSha256 = Hmac<Sha256>;

/// the token for `plan` under `key`, or none when the plan cannot be encoded
/// (it always can when it was built through the bounded types).
pub fn token(plan: &Plan, key: &[u8]) -> Option<[u8; 32]> {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    let bytes = wire::canonical_bytes(plan, &mut buf).ok()?;
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(bytes);
    Some(mac.finalize().into_bytes().into())
}

/// whether `plan.confirmation` is the token of `plan` under `key`
/// (constant-time comparison).
pub fn is_valid(plan: &Plan, key: &[u8]) -> bool {
    let Some(given) = plan.confirmation else {
        return false;
    };
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    let Ok(bytes) = wire::canonical_bytes(plan, &mut buf) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    mac.update(bytes);
    mac.verify_slice(&given).is_ok()
}

/// the plan with its token filled in.
pub fn sign(plan: &Plan, key: &[u8]) -> Option<Plan> {
    let mut out = plan.clone();
    out.confirmation = Some(token(plan, key)?);
    Some(out)
}
