//! handles and the event-loop contract, with no platform code.
//!
//! shaped after rust-sel4's `sel4-microkit` (`Channel`, `Child`,
//! `MessageInfo`, `Handler`) so that porting a PD either way is a small
//! change. one deliberate difference: misuse (a channel this PD was not given)
//! is an error value, not a debug print and a silent return as in libmicrokit.

use crate::platform;

/// `MICROKIT_MAX_CHANNELS`: channel ids are 0..=61.
pub const MAX_CHANNELS: usize = 62;
/// `seL4_MsgMaxLength`: message registers per IPC.
pub const MSG_MAX_WORDS: usize = 120;
/// the message registers as bytes.
pub const MSG_MAX_BYTES: usize = MSG_MAX_WORDS * 8;

/// bit 63 of a badge: the message came through an endpoint (a PPC).
const BADGE_ENDPOINT_BIT: u32 = 63;
/// bit 62 of a badge: a child faulted (the badge's low byte is its id).
const BADGE_FAULT_BIT: u32 = 62;
/// libmicrokit's `PD_MASK`.
const PD_MASK: u64 = 0xff;
/// libmicrokit's `CHANNEL_MASK`.
const CHANNEL_MASK: u64 = 0x3f;

/// a channel end of this PD, numbered as in the .system file
/// (corresponds to `microkit_channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel {
    index: u8,
}

impl Channel {
    /// a channel by its id in the .system file; for `const` handles.
    /// an id ≥ 62 is rejected at compile time when used in a `const`.
    pub const fn new(index: usize) -> Self {
        assert!(index < MAX_CHANNELS, "microkit channel ids are 0..=61");
        Self { index: index as u8 }
    }

    /// a channel from a runtime value; `None` when out of range.
    pub const fn try_new(index: usize) -> Option<Self> {
        if index < MAX_CHANNELS {
            Some(Self { index: index as u8 })
        } else {
            None
        }
    }

    /// the id in the .system file.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// signal the PD at the other end (`microkit_notify`); signals coalesce
    /// until the receiver runs.
    pub fn notify(self) -> Result<(), RuntimeError> {
        platform::notify(self)
    }

    /// acknowledge the IRQ delivered on this channel (`microkit_irq_ack`).
    pub fn irq_ack(self) -> Result<(), RuntimeError> {
        platform::irq_ack(self)
    }

    /// protected procedure call into the PD at the other end
    /// (`microkit_ppcall`): synchronous, the callee has a strictly higher
    /// priority; the message travels in the message registers.
    pub fn pp_call(self, msg_info: MessageInfo) -> Result<MessageInfo, RuntimeError> {
        platform::pp_call(self, msg_info)
    }
}

/// a child PD of this PD, by its `id` in the .system file (`microkit_child`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child {
    index: u8,
}

impl Child {
    /// a child by its id in the .system file.
    pub const fn new(index: usize) -> Self {
        assert!(index < MAX_CHANNELS, "microkit child ids are 0..=61");
        Self { index: index as u8 }
    }

    /// the id in the .system file.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// restart the child at `entry` (`microkit_pd_restart`: write pc, resume).
    pub fn restart(self, entry: usize) -> Result<(), RuntimeError> {
        platform::child_restart(self, entry)
    }

    /// suspend the child (`microkit_pd_stop`).
    pub fn stop(self) -> Result<(), RuntimeError> {
        platform::child_stop(self)
    }

    /// resume a suspended child (`microkit_pd_resume`).
    pub fn resume(self) -> Result<(), RuntimeError> {
        platform::child_resume(self)
    }

    /// set the child's priority (`seL4_TCB_SetPriority` with the child's own
    /// TCB as authority): the kernel refuses anything above the child's
    /// maximum controlled priority, which Microkit sets to its declared
    /// priority, so the .system file is the ceiling.
    pub fn set_priority(self, priority: u8) -> Result<(), RuntimeError> {
        platform::child_set_priority(self, priority)
    }
}

/// a scheduling context cap granted by `<cspace><cap_sc slot=…>` in the .system file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedContext {
    slot: u8,
}

impl SchedContext {
    /// the cap in `<cspace>` slot `slot` (1..=63).
    pub const fn from_cspace_slot(slot: usize) -> Self {
        assert!(slot > 0 && slot < 64, "cspace slots are 1..=63");
        Self { slot: slot as u8 }
    }

    /// the slot in the .system file.
    pub const fn slot(self) -> usize {
        self.slot as usize
    }

    /// cpu time consumed since the last call (`seL4_SchedContext_Consumed`),
    /// in microseconds.
    pub fn consumed_us(self) -> Result<u64, RuntimeError> {
        platform::sc_consumed_us(self)
    }
}

/// the message tag of an IPC (`microkit_msginfo`, `seL4_MessageInfo_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageInfo {
    label: u64,
    extra_caps: u8,
    count: u8,
}

impl MessageInfo {
    const LABEL_BITS: u32 = 52;
    const COUNT_MASK: u64 = 0x7f;

    /// `microkit_msginfo_new(label, count)`; the label is cut to its 52 bits
    /// and the count to `seL4_MsgMaxLength`.
    pub const fn new(label: u64, count: usize) -> Self {
        let count = if count > MSG_MAX_WORDS {
            MSG_MAX_WORDS
        } else {
            count
        };
        Self {
            label: label & ((1u64 << Self::LABEL_BITS) - 1),
            extra_caps: 0,
            count: count as u8,
        }
    }

    /// an invocation tag that also transfers `extra_caps` (0..=3) caps from
    /// the IPC buffer (`seL4_MessageInfo_new(label, 0, extra_caps, count)`).
    pub const fn with_extra_caps(label: u64, extra_caps: u8, count: usize) -> Self {
        let mut m = Self::new(label, count);
        m.extra_caps = extra_caps & 3;
        m
    }

    /// `microkit_msginfo_get_label`.
    pub const fn label(self) -> u64 {
        self.label
    }

    /// `microkit_msginfo_get_count`: message registers in use.
    pub const fn count(self) -> usize {
        self.count as usize
    }

    /// the kernel's word encoding: label << 12 | caps_unwrapped << 9 |
    /// extra_caps << 7 | length.
    pub const fn to_word(self) -> u64 {
        (self.label << 12)
            | ((self.extra_caps as u64) << 7)
            | (self.count as u64 & Self::COUNT_MASK)
    }

    /// decode the kernel's word encoding (the caps-unwrapped field is
    /// ignored: Microkit PDs receive no caps).
    pub const fn from_word(word: u64) -> Self {
        Self::with_extra_caps(
            word >> 12,
            ((word >> 7) & 3) as u8,
            (word & Self::COUNT_MASK) as usize,
        )
    }
}

/// what the kernel told the event loop, decoded from the badge
/// (libmicrokit's `handler_loop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// signals on the channels whose bits are set (bit i = channel i),
    /// coalesced since the last receive.
    Notified(u64),
    /// a PPC arrived on this channel.
    Protected(Channel),
    /// this child faulted.
    Fault(Child),
}

/// decode a badge the way libmicrokit does: bit 63 = PPC (channel in the low
/// 6 bits), bit 62 = child fault (child id in the low 8 bits), else a set of
/// notification bits.
pub const fn decode_badge(badge: u64) -> Event {
    if badge >> BADGE_ENDPOINT_BIT != 0 {
        Event::Protected(Channel {
            index: (badge & CHANNEL_MASK) as u8,
        })
    } else if (badge >> BADGE_FAULT_BIT) & 1 != 0 {
        Event::Fault(Child {
            index: (badge & PD_MASK) as u8,
        })
    } else {
        Event::Notified(badge)
    }
}

/// the badge the kernel would deliver for a PPC on `channel` (for backends and tests).
pub const fn ppc_badge(channel: Channel) -> u64 {
    (1u64 << BADGE_ENDPOINT_BIT) | channel.index as u64
}

/// the badge the kernel would deliver for a fault of `child`.
pub const fn fault_badge(child: Child) -> u64 {
    (1u64 << BADGE_FAULT_BIT) | child.index as u64
}

/// what a handler call produced for the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// reply with this tag (PPC reply, or a fault reply that resumes the child).
    Reply(MessageInfo),
    /// nothing to reply.
    NoReply,
}

/// an event a handler did not expect: the default methods of [`Handler`]
/// return it, and the runtime turns any handler error into a fault of the PD
/// (like libmicrokit's weak `protected`/`fault`, which crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhandled {
    /// a notification on a channel the handler does not serve.
    Notified(Channel),
    /// a PPC on a channel the handler does not serve.
    Protected(Channel),
    /// a child fault in a PD that has no children.
    Fault(Child),
}

/// the PD's code: Microkit's `notified` / `protected` / `fault` entry points
/// (sel4-microkit's `Handler`). `init` is the value's constructor.
pub trait Handler {
    /// the PD's error; returning it faults the PD (its parent, or the monitor,
    /// is told), as an unrecoverable error should.
    type Error: core::fmt::Debug + From<Unhandled>;

    /// a signal arrived on `channel` (`notified`).
    fn notified(&mut self, channel: Channel) -> Result<(), Self::Error> {
        Err(Unhandled::Notified(channel).into())
    }

    /// a PPC arrived on `channel` (`protected`); the reply tag is returned and
    /// its message registers set.
    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let _ = msg_info;
        Err(Unhandled::Protected(channel).into())
    }

    /// a child faulted (`fault`); `Some(reply)` replies to the fault, which
    /// resumes the child, `None` leaves it suspended.
    fn fault(
        &mut self,
        child: Child,
        msg_info: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        let _ = msg_info;
        Err(Unhandled::Fault(child).into())
    }
}

/// run the handler for one received message, as libmicrokit's `handler_loop`
/// does: notifications are delivered lowest channel first.
pub fn dispatch<H: Handler>(
    handler: &mut H,
    badge: u64,
    tag: MessageInfo,
) -> Result<Outcome, H::Error> {
    match decode_badge(badge) {
        Event::Protected(ch) => handler.protected(ch, tag).map(Outcome::Reply),
        Event::Fault(child) => Ok(handler
            .fault(child, tag)?
            .map_or(Outcome::NoReply, Outcome::Reply)),
        Event::Notified(mut bits) => {
            let mut idx = 0usize;
            while bits != 0 {
                if bits & 1 != 0 {
                    if let Some(ch) = Channel::try_new(idx) {
                        handler.notified(ch)?;
                    }
                }
                bits >>= 1;
                idx += 1;
            }
            Ok(Outcome::NoReply)
        }
    }
}

/// a misuse or failure of a runtime call; small and `Copy` (no_std).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeError {
    /// the .system file gives this PD no such channel end, or not with this
    /// right (notify / pp / irq).
    NotPermitted {
        /// the channel id used.
        channel: u8,
    },
    /// the .system file gives this PD no child with this id.
    NoSuchChild {
        /// the child id used.
        child: u8,
    },
    /// the .system file grants no scheduling context in this cspace slot.
    NoSuchCap {
        /// the slot used.
        slot: u8,
    },
    /// more than `seL4_MsgMaxLength` message registers.
    MessageTooLong,
    /// the callee of a PPC faulted before replying (hosted system only: on
    /// seL4 the caller would stay blocked).
    PeerFaulted,
    /// the kernel refused the invocation (an `seL4_Error` code).
    Kernel(u8),
    /// the system is shutting down (hosted system only).
    Shutdown,
}

impl core::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotPermitted { channel } => {
                write!(f, "channel `{channel}` not granted to this pd")
            }
            Self::NoSuchChild { child } => write!(f, "no child `{child}`"),
            Self::NoSuchCap { slot } => write!(f, "no scheduling context in cspace slot `{slot}`"),
            Self::MessageTooLong => write!(f, "message longer than 120 registers"),
            Self::PeerFaulted => write!(f, "the called pd faulted"),
            Self::Kernel(e) => write!(f, "kernel error {e}"),
            Self::Shutdown => write!(f, "system shutting down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppc_badge_decodes_to_its_channel() {
        assert_eq!(
            decode_badge((1 << 63) | 5),
            Event::Protected(Channel::new(5))
        );
        // bits above the channel mask are not part of the channel id
        assert_eq!(
            decode_badge((1 << 63) | 0x40 | 3),
            Event::Protected(Channel::new(3))
        );
        assert_eq!(
            decode_badge(ppc_badge(Channel::new(61))),
            Event::Protected(Channel::new(61))
        );
    }

    #[test]
    fn fault_badge_decodes_to_its_child() {
        assert_eq!(decode_badge((1 << 62) | 2), Event::Fault(Child::new(2)));
        assert_eq!(
            decode_badge(fault_badge(Child::new(7))),
            Event::Fault(Child::new(7))
        );
    }

    #[test]
    fn endpoint_bit_wins_over_fault_bit() {
        // libmicrokit tests the fault bit first only after masking; a PPC badge
        // never has bit 62 set, but decoding must not misread one that does.
        assert_eq!(
            decode_badge((1 << 63) | (1 << 62) | 1),
            Event::Protected(Channel::new(1))
        );
    }

    #[test]
    fn notification_badge_is_a_channel_set() {
        assert_eq!(decode_badge(0b1010), Event::Notified(0b1010));
        assert_eq!(decode_badge(0), Event::Notified(0));
    }

    #[test]
    fn msginfo_word_round_trip() {
        let m = MessageInfo::new(0xabc, 7);
        assert_eq!(m.to_word(), (0xabc << 12) | 7);
        assert_eq!(MessageInfo::from_word(m.to_word()), m);
        let c = MessageInfo::with_extra_caps(6, 1, 1);
        assert_eq!(c.to_word(), (6 << 12) | (1 << 7) | 1);
        assert_eq!(MessageInfo::from_word(c.to_word()), c);
        // the label keeps 52 bits, the count saturates at 120
        assert_eq!(MessageInfo::new(u64::MAX, 500).count(), MSG_MAX_WORDS);
        assert_eq!(MessageInfo::new(u64::MAX, 1).label(), (1 << 52) - 1);
    }

    struct Recorder {
        seen: [u8; 8],
        n: usize,
        fail_on: Option<usize>,
    }

    impl Handler for Recorder {
        type Error = Unhandled;
        fn notified(&mut self, ch: Channel) -> Result<(), Unhandled> {
            if Some(ch.index()) == self.fail_on {
                return Err(Unhandled::Notified(ch));
            }
            if let Some(s) = self.seen.get_mut(self.n) {
                *s = ch.index() as u8;
            }
            self.n += 1;
            Ok(())
        }
    }

    #[test]
    fn coalesced_notifications_are_delivered_lowest_first() {
        let mut r = Recorder {
            seen: [0; 8],
            n: 0,
            fail_on: None,
        };
        let out = dispatch(
            &mut r,
            (1 << 9) | (1 << 0) | (1 << 4),
            MessageInfo::default(),
        );
        assert_eq!(out, Ok(Outcome::NoReply));
        assert_eq!(&r.seen[..r.n], &[0, 4, 9]);
    }

    #[test]
    fn handler_error_stops_delivery() {
        let mut r = Recorder {
            seen: [0; 8],
            n: 0,
            fail_on: Some(4),
        };
        let out = dispatch(
            &mut r,
            (1 << 9) | (1 << 0) | (1 << 4),
            MessageInfo::default(),
        );
        assert_eq!(out, Err(Unhandled::Notified(Channel::new(4))));
        assert_eq!(&r.seen[..r.n], &[0]);
    }

    #[test]
    fn default_methods_report_unhandled_events() {
        let mut r = Recorder {
            seen: [0; 8],
            n: 0,
            fail_on: None,
        };
        assert_eq!(
            dispatch(&mut r, ppc_badge(Channel::new(2)), MessageInfo::default()),
            Err(Unhandled::Protected(Channel::new(2)))
        );
        assert_eq!(
            dispatch(&mut r, fault_badge(Child::new(1)), MessageInfo::default()),
            Err(Unhandled::Fault(Child::new(1)))
        );
    }
}
