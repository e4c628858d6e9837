//! worker PD: a sample workload whose progress and memory use the system can
//! read back.
//!
//! holds: read-write access to the pool (only the pages the ledger gives it,
//! by convention: Microkit maps regions statically, so page ownership between
//! workers is kept by the memory PD's ledger, not by the MMU), read access to
//! the ledger, its own status page. talks to: nobody; it is notified by the
//! timer. on each tick it writes the tick count into one of its pages (round
//! robin) and publishes progress in its status page, which the process PD reads.
#![no_std]
#![forbid(unsafe_code)]

use pd_interface::layout::{self, status, LEDGER_FREE};
use pd_interface::PAGE_SIZE;
use pd_runtime::{Channel, Handler, Region, RegionError, Unhandled};

/// timer ticks arrive here.
pub const TIMER: Channel = pd_interface::manifest::worker::channel::TIMER;

/// what stops a worker; any of these faults it, and its parent decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerError {
    /// an event it does not serve.
    Unhandled(Unhandled),
    /// a region access outside its mapping.
    Region(RegionError),
    /// its name is not one of the manifest's workers (`worker<i>`).
    BadName,
}

impl From<Unhandled> for WorkerError {
    fn from(e: Unhandled) -> Self {
        Self::Unhandled(e)
    }
}

impl From<RegionError> for WorkerError {
    fn from(e: RegionError) -> Self {
        Self::Region(e)
    }
}

/// the worker's state.
pub struct Worker {
    owner: u8,
    pool: Region,
    ledger: Region,
    status: Region,
    progress: u64,
}

/// the worker index from a PD name `workerN` (all four share one image).
pub fn index_from_name(name: &str) -> Option<u8> {
    let n = name.strip_prefix("worker")?.parse::<u8>().ok()?;
    (usize::from(n) < pd_interface::N_WORKERS).then_some(n)
}

impl Worker {
    /// the Microkit `init`: a fresh status page (a restart starts from zero).
    pub fn init(
        name: &str,
        pool: Region,
        ledger: Region,
        status: Region,
    ) -> Result<Self, WorkerError> {
        let idx = index_from_name(name).ok_or(WorkerError::BadName)?;
        let w = Self {
            owner: idx + 1,
            pool,
            ledger,
            status,
            progress: 0,
        };
        w.status.write_u64(status::PROGRESS, 0)?;
        w.status.write_u64(status::PAGES_SEEN, w.owned_pages()?)?;
        w.status.write_u64(status::LAST_PAGE, u64::MAX)?;
        w.status.write_u64(status::MAGIC, status::STATUS_MAGIC)?;
        Ok(w)
    }

    fn owned_pages(&self) -> Result<u64, RegionError> {
        let mut n = 0u64;
        for page in 0..layout::POOL_PAGES {
            let mut b = [LEDGER_FREE];
            self.ledger.read(page, &mut b)?;
            if b[0] == self.owner {
                n += 1;
            }
        }
        Ok(n)
    }

    fn nth_owned_page(&self, nth: u64) -> Result<Option<usize>, RegionError> {
        let mut seen = 0u64;
        for page in 0..layout::POOL_PAGES {
            let mut b = [LEDGER_FREE];
            self.ledger.read(page, &mut b)?;
            if b[0] == self.owner {
                if seen == nth {
                    return Ok(Some(page));
                }
                seen += 1;
            }
        }
        Ok(None)
    }

    /// one unit of work: touch the next owned page, publish progress.
    pub fn tick(&mut self) -> Result<(), WorkerError> {
        self.progress = self.progress.wrapping_add(1);
        let owned = self.owned_pages()?;
        if owned > 0 {
            if let Some(page) = self.nth_owned_page(self.progress % owned)? {
                let at = page * PAGE_SIZE;
                self.pool.write_u64(at, self.progress)?;
                self.pool.write_u64(at + 8, u64::from(self.owner))?;
                self.status.write_u64(status::LAST_PAGE, page as u64)?;
            }
        }
        self.status.write_u64(status::PAGES_SEEN, owned)?;
        self.status.write_u64(status::PROGRESS, self.progress)?;
        Ok(())
    }
}

impl Handler for Worker {
    type Error = WorkerError;

    fn notified(&mut self, channel: Channel) -> Result<(), WorkerError> {
        match channel {
            TIMER => self.tick(),
            other => Err(Unhandled::Notified(other).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use pd_runtime::hosted::SharedMemory;

    fn regions() -> (SharedMemory, SharedMemory, SharedMemory) {
        (
            SharedMemory::new(layout::POOL_PAGES * PAGE_SIZE),
            SharedMemory::new(4096),
            SharedMemory::new(4096),
        )
    }

    #[test]
    fn names_map_to_indices() {
        assert_eq!(index_from_name("worker0"), Some(0));
        assert_eq!(index_from_name("worker3"), Some(3));
        assert_eq!(index_from_name("worker4"), None);
        assert_eq!(index_from_name("link"), None);
    }

    #[test]
    fn ticks_touch_only_owned_pages_and_publish_progress() {
        let (pool, ledger, status) = regions();
        let l = ledger.map(true);
        l.write(7, &[3]).unwrap(); // page 7 belongs to worker2
        l.write(9, &[3]).unwrap(); // page 9 too
        l.write(8, &[1]).unwrap(); // page 8 to worker0
        let mut w = Worker::init(
            "worker2",
            pool.map(true),
            ledger.map(false),
            status.map(true),
        )
        .unwrap();
        for _ in 0..3 {
            w.notified(TIMER).unwrap();
        }
        let s = status.map(false);
        assert_eq!(s.read_u64(status::MAGIC).unwrap(), status::STATUS_MAGIC);
        assert_eq!(s.read_u64(status::PROGRESS).unwrap(), 3);
        assert_eq!(s.read_u64(status::PAGES_SEEN).unwrap(), 2);
        let p = pool.map(false);
        assert_eq!(
            p.read_u64(8 * PAGE_SIZE).unwrap(),
            0,
            "page of another worker untouched"
        );
        assert!(p.read_u64(7 * PAGE_SIZE).unwrap() > 0 && p.read_u64(9 * PAGE_SIZE).unwrap() > 0);
    }

    #[test]
    fn a_worker_without_a_status_mapping_faults() {
        let (pool, ledger, status) = regions();
        let err = Worker::init(
            "worker1",
            pool.map(true),
            ledger.map(false),
            status.map(false),
        )
        .err();
        assert_eq!(err, Some(WorkerError::Region(RegionError::ReadOnly)));
    }
}
