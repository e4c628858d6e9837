//! what the reference verifier (policy-verifier on the host) knows across
//! one case: the keys and epoch of the boot and the plans run legitimately.

/// the reference's knowledge of one case.
#[derive(Clone)]
pub(super) struct Reference {
    /// this boot's confirmation key (`auth::epoch_key` of the human's).
    pub(super) key: [u8; 32],
    /// the human's confirmation key itself (tokens for other boots).
    pub(super) confirm_key: [u8; 32],
    /// the plan key the host seals with.
    pub(super) plan_key: [u8; 32],
    /// the system's boot epoch.
    pub(super) epoch: u64,
    /// highest request id legitimately run.
    pub(super) last_id: u64,
    /// the wire bytes of the last legitimately run plan (a resend is a retry).
    pub(super) last_plan: Option<Vec<u8>>,
    /// the token of the last signed setup plan.
    pub(super) setup_token: Option<[u8; 32]>,
}

impl Reference {
    /// a fresh boot in `epoch`: nothing has run yet.
    pub(super) fn new(confirm_key: [u8; 32], plan_key: [u8; 32], epoch: u64) -> Reference {
        Reference {
            key: policy_verifier::auth::epoch_key(&confirm_key, epoch),
            confirm_key,
            plan_key,
            epoch,
            last_id: 0,
            last_plan: None,
            setup_token: None,
        }
    }

    /// a plan ran legitimately: its id is spent and its bytes are what a
    /// resend would repeat.
    pub(super) fn ran(&mut self, request_id: u64, bytes: &[u8]) {
        self.last_id = request_id;
        self.last_plan = Some(bytes.to_vec());
    }

    /// `bytes` are those of the last plan run: sent again, they are a retry.
    pub(super) fn is_retry(&self, bytes: &[u8]) -> bool {
        self.last_plan.as_deref() == Some(bytes)
    }
}
