//! the worker set: the only PDs a plan may name. system/ sets how many
//! (build.rs generates `N_WORKERS`, the names and `Worker::ALL` from it);
//! the plan and the model both read it from here.

use serde::{Deserialize, Serialize};

include!(concat!(env!("OUT_DIR"), "/workers.rs"));

/// a worker PD: the only PDs a plan may name. system PDs are not addressable.
///
/// always an index below [`N_WORKERS`], the worker count system/ sets:
/// every constructor checks it. in json a worker is its name
/// (`worker0`, ...); on the wire, its index in one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Worker(u8);

// a worker index fits the one byte the wire gives it
const _: () = assert!(N_WORKERS >= 1 && N_WORKERS <= 128);

impl Worker {
    /// the index used by the model and by the process PD's child ids.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// the worker with this index, if any.
    pub const fn from_index(i: usize) -> Option<Worker> {
        if i < N_WORKERS {
            Some(Worker(i as u8))
        } else {
            None
        }
    }

    /// `worker0`, `worker1`, ...
    pub fn name(self) -> &'static str {
        NAMES.get(usize::from(self.0)).copied().unwrap_or("?")
    }

    /// parses a worker's name exactly as [`Worker::name`] writes it.
    pub fn from_name(s: &str) -> Option<Worker> {
        Worker::ALL.into_iter().find(|w| w.name() == s)
    }
}

impl Serialize for Worker {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.name())
        } else {
            s.serialize_u8(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Worker {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected};
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Worker;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "a worker, worker0..worker{}", N_WORKERS.saturating_sub(1))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Worker, E> {
                // worded as for an enum: the json front end names the error by it
                Worker::from_name(v).ok_or_else(|| E::unknown_variant(v, &NAMES))
            }
            fn visit_u8<E: Error>(self, v: u8) -> Result<Worker, E> {
                Worker::from_index(usize::from(v)).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(u64::from(v)), &self))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Worker, E> {
                usize::try_from(v)
                    .ok()
                    .and_then(Worker::from_index)
                    .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(Visit)
        } else {
            d.deserialize_u8(Visit)
        }
    }
}

#[cfg(feature = "std")]
impl schemars::JsonSchema for Worker {
    fn schema_name() -> std::string::String {
        "Worker".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            enum_values: Some(NAMES.iter().map(|n| serde_json::Value::from(*n)).collect()),
            ..Default::default()
        }
        .into()
    }
}
