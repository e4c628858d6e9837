//! proptest strategies shared by the property and exact-verdict tests:
//! boundary-rich numbers (limits ± a few, u64::MAX) and every action kind.
#![allow(dead_code, clippy::unwrap_used)]

use policy_verifier::{Action, InventoryQuery, Worker};
use proptest::prelude::*;

pub fn num() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..300,
        2 => 90u64..110,
        2 => 900u64..1_100,
        2 => 1_000u64..12_000,
        1 => 999_990u64..1_000_010,
        1 => 9_999_990u64..10_000_010,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => any::<u64>(),
    ]
}

pub fn worker() -> impl Strategy<Value = Worker> {
    (0usize..4).prop_map(|i| Worker::from_index(i).unwrap())
}

pub fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        worker().prop_map(|pd| Action::ProcessStart { pd }),
        worker().prop_map(|pd| Action::ProcessStop { pd }),
        worker().prop_map(|pd| Action::ProcessRestart { pd }),
        (worker(), num()).prop_map(|(pd, priority)| Action::ProcessSetPriority { pd, priority }),
        (worker(), num(), num()).prop_map(|(pd, budget_us, period_us)| Action::ProcessSetBudget {
            pd,
            budget_us,
            period_us
        }),
        (worker(), num()).prop_map(|(pd, pages)| Action::MemoryGrant { pd, pages }),
        (worker(), num()).prop_map(|(pd, pages)| Action::MemoryReclaim { pd, pages }),
        (worker(), num()).prop_map(|(pd, period_us)| Action::TimerSetPeriodic { pd, period_us }),
        worker().prop_map(|pd| Action::TimerCancel { pd }),
        prop_oneof![
            Just(InventoryQuery::Cpus),
            Just(InventoryQuery::Memory),
            Just(InventoryQuery::Devices),
            Just(InventoryQuery::All)
        ]
        .prop_map(|query| Action::FirmwareInventory { query }),
        Just(Action::SystemQuery {}),
    ]
}
