//! plan authentication (`auth.mac`) and the boot epoch.
//!
//! every plan frame carries HMAC-SHA256 under the installation's plan key
//! (held by the host's link owner and the verifier PD, never in the
//! repository) over a domain tag, the boot epoch the sender learnt from
//! the system's status, and the plan's exact wire bytes. the verifier PD
//! checks it before it decodes anything, so the session, and with it the
//! tier, is authenticated; a frame for another boot is `plan.replay`.
//!
//! confirmation tokens (`auth.confirm`) use a separate key, the human's; the
//! token of a boot is made under [`epoch_key`]`(confirm_key, epoch)`, so a
//! token confirmed before a restart is worthless after it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// a key: 32 bytes, from `llmsh keygen` (or the dev keys in tests).
pub type Key = [u8; 32];

/// the domain tag of plan MACs (keeps them apart from every other use of a key).
const PLAN_TAG: &[u8] = b"llm-os plan mac v1";
/// the domain tag of per-epoch confirmation keys.
const CONFIRM_TAG: &[u8] = b"llm-os confirm epoch v1";

/// the epoch `llmsh check` assumes when none is given: no boot has it
/// (the verifier PD never runs with epoch 0), so an offline token never runs
/// on a system.
pub const OFFLINE_EPOCH: u64 = 0;

fn mac(key: &[u8], tag: &[u8], epoch: u64, bytes: &[u8]) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(key).ok()?;
    m.update(tag);
    m.update(&epoch.to_le_bytes());
    m.update(bytes);
    Some(m)
}

/// the MAC of `plan_bytes` (a plan's wire form) for boot `epoch`.
pub fn plan_mac(key: &Key, epoch: u64, plan_bytes: &[u8]) -> [u8; 32] {
    mac(key, PLAN_TAG, epoch, plan_bytes).map_or([0; 32], |m| m.finalize().into_bytes().into())
}

/// whether `given` is the MAC of `plan_bytes` for `epoch` (constant time).
pub fn plan_mac_ok(key: &Key, epoch: u64, plan_bytes: &[u8], given: &[u8; 32]) -> bool {
    mac(key, PLAN_TAG, epoch, plan_bytes).is_some_and(|m| m.verify_slice(given).is_ok())
}

/// the confirmation key of one boot: tokens made under it are valid only
/// while the system runs with that epoch. [`OFFLINE_EPOCH`] gives the key
/// itself (the offline form `llmsh check` and `confirm --epoch 0` use),
/// which no running system accepts.
pub fn epoch_key(confirm_key: &Key, epoch: u64) -> Key {
    if epoch == OFFLINE_EPOCH {
        return *confirm_key;
    }
    mac(confirm_key, CONFIRM_TAG, epoch, &[]).map_or([0; 32], |m| m.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_binds_key_epoch_and_bytes() {
        let (k, other) = ([7u8; 32], [8u8; 32]);
        let m = plan_mac(&k, 5, b"plan");
        assert!(plan_mac_ok(&k, 5, b"plan", &m));
        assert!(!plan_mac_ok(&other, 5, b"plan", &m));
        assert!(!plan_mac_ok(&k, 6, b"plan", &m));
        assert!(!plan_mac_ok(&k, 5, b"plan!", &m));
        assert_ne!(epoch_key(&k, 1), epoch_key(&k, 2));
        assert_ne!(epoch_key(&k, 1), k);
    }
}
