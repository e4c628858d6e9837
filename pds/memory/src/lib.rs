//! memory PD: owns the page pool shared with the workers.
//!
//! holds: the `pool` region (512 pages of 4 KiB) and the `ledger` page that
//! records each page's owner. talks to: the verifier only (PPC in); it has no
//! channel to any worker. grants hand out the lowest free pages; reclaims take
//! back a worker's highest pages and zero them before they are free again, so
//! no data crosses from one worker to the next. a refused request changes nothing.
//!
//! limitation: Microkit maps regions statically, so the pool is mapped into
//! every worker and the ledger, not the MMU, says which pages are whose.
#![no_std]
#![forbid(unsafe_code)]

use pd_interface::layout::{INITIAL_PAGES, LEDGER_FREE, POOL_PAGES, QUOTA_PAGES};
use pd_interface::memory::{Error, PoolInfo, Reply, Request};
use pd_interface::{msg, WorkerId, N_WORKERS, PAGE_SIZE};
use pd_runtime::{Channel, Handler, MessageInfo, Region, RegionError, Unhandled};

/// PPCs from the verifier.
pub const VERIFIER: Channel = pd_interface::manifest::memory::channel::VERIFIER;

/// what faults the memory PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryError {
    /// an event it does not serve.
    Unhandled(Unhandled),
    /// its regions are not mapped as the .system file says.
    Region(RegionError),
    /// a reply did not fit the message registers.
    Reply,
}

impl From<Unhandled> for MemoryError {
    fn from(e: Unhandled) -> Self {
        Self::Unhandled(e)
    }
}

impl From<RegionError> for MemoryError {
    fn from(e: RegionError) -> Self {
        Self::Region(e)
    }
}

/// the pool and its page table.
pub struct Memory {
    pool: Region,
    ledger: Region,
    owner: [u8; POOL_PAGES],
    invocations: u64,
}

impl Memory {
    /// the Microkit `init`: every worker gets its initial pages (policy.toml
    /// `[initial] pages`), the rest is free and zeroed.
    pub fn init(pool: Region, ledger: Region) -> Result<Self, MemoryError> {
        if pool.len() < POOL_PAGES * PAGE_SIZE || ledger.len() < POOL_PAGES {
            return Err(MemoryError::Region(RegionError::OutOfBounds {
                offset: 0,
                len: POOL_PAGES * PAGE_SIZE,
            }));
        }
        let mut m = Self {
            pool,
            ledger,
            owner: [LEDGER_FREE; POOL_PAGES],
            invocations: 0,
        };
        m.pool.zero(0, POOL_PAGES * PAGE_SIZE)?;
        m.publish()?;
        for w in WorkerId::ALL {
            // 4 × 32 initial pages always fit a 512-page pool; a refusal
            // here would mean the layout constants disagree
            if m.grant(w, INITIAL_PAGES)?.is_err() {
                return Err(MemoryError::Region(RegionError::OutOfBounds {
                    offset: 0,
                    len: POOL_PAGES,
                }));
            }
        }
        Ok(m)
    }

    fn publish(&self) -> Result<(), RegionError> {
        self.ledger.write(0, &self.owner)
    }

    fn tag(w: WorkerId) -> u8 {
        w.index() as u8 + 1
    }

    /// pages held by `w`.
    pub fn held(&self, w: WorkerId) -> u64 {
        self.owner.iter().filter(|&&o| o == Self::tag(w)).count() as u64
    }

    /// the pool as the page table says.
    pub fn info(&self) -> PoolInfo {
        let mut pages = [0u64; N_WORKERS];
        for (slot, w) in pages.iter_mut().zip(WorkerId::ALL) {
            *slot = self.held(w);
        }
        let free = self.owner.iter().filter(|&&o| o == LEDGER_FREE).count() as u64;
        PoolInfo {
            pages,
            pool_pages: POOL_PAGES as u64,
            free_pages: free,
            invocations: self.invocations,
        }
    }

    /// grant `n` more pages to `w`: lowest free pages first, zeroed.
    pub fn grant(&mut self, w: WorkerId, n: u64) -> Result<Result<PoolInfo, Error>, RegionError> {
        let info = self.info();
        if n > info.free_pages {
            return Ok(Err(Error::PoolExhausted));
        }
        if self.held(w).saturating_add(n) > QUOTA_PAGES {
            return Ok(Err(Error::Quota));
        }
        let mut left = n;
        for page in 0..POOL_PAGES {
            if left == 0 {
                break;
            }
            if let Some(o) = self.owner.get_mut(page) {
                if *o == LEDGER_FREE {
                    self.pool.zero(page * PAGE_SIZE, PAGE_SIZE)?;
                    *o = Self::tag(w);
                    left -= 1;
                }
            }
        }
        self.publish()?;
        Ok(Ok(self.info()))
    }

    /// take `n` pages back from `w`: its highest pages, zeroed, then free.
    pub fn reclaim(&mut self, w: WorkerId, n: u64) -> Result<Result<PoolInfo, Error>, RegionError> {
        if n > self.held(w) {
            return Ok(Err(Error::NotHeld));
        }
        let mut left = n;
        for page in (0..POOL_PAGES).rev() {
            if left == 0 {
                break;
            }
            if let Some(o) = self.owner.get_mut(page) {
                if *o == Self::tag(w) {
                    // the ledger says free only after the page is clean
                    self.pool.zero(page * PAGE_SIZE, PAGE_SIZE)?;
                    *o = LEDGER_FREE;
                    left -= 1;
                }
            }
        }
        self.publish()?;
        Ok(Ok(self.info()))
    }

    /// serve one request.
    pub fn handle(&mut self, req: Request) -> Result<Reply, RegionError> {
        let done = match req {
            Request::Grant(w, n) => self.grant(w, n)?,
            Request::Reclaim(w, n) => self.reclaim(w, n)?,
            Request::Query => return Ok(Reply::Pool(self.info())),
        };
        Ok(match done {
            Ok(_) => {
                self.invocations = self.invocations.saturating_add(1);
                Reply::Pool(self.info())
            }
            Err(e) => Reply::Error(e),
        })
    }
}

impl Handler for Memory {
    type Error = MemoryError;

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, MemoryError> {
        if channel != VERIFIER {
            return Err(Unhandled::Protected(channel).into());
        }
        let reply = match msg::get::<Request>(msg_info) {
            Ok(req) => self.handle(req)?,
            Err(_) => Reply::Error(Error::BadRequest),
        };
        msg::put(&reply).map_err(|_| MemoryError::Reply)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use pd_runtime::hosted::SharedMemory;

    fn w(i: usize) -> WorkerId {
        WorkerId::new(i).unwrap()
    }

    fn setup() -> (Memory, SharedMemory, SharedMemory) {
        let pool = SharedMemory::new(POOL_PAGES * PAGE_SIZE);
        let ledger = SharedMemory::new(PAGE_SIZE);
        (
            Memory::init(pool.map(true), ledger.map(true)).unwrap(),
            pool,
            ledger,
        )
    }

    #[test]
    fn boots_with_the_initial_pages() {
        let (m, _, ledger) = setup();
        let info = m.info();
        assert_eq!(info.pages, [32; N_WORKERS]);
        assert_eq!(info.free_pages, 512 - 32 * N_WORKERS as u64);
        let mut b = [0u8; 1];
        ledger.map(false).read(33, &mut b).unwrap();
        assert_eq!(b[0], 2, "page 33 is worker1's");
    }

    #[test]
    fn reclaim_zeroes_pages_before_they_are_reused() {
        let (mut m, pool, _) = setup();
        let p = pool.map(true);
        // worker1 holds pages 32..64; it scribbles on its last page
        p.write_u64(63 * PAGE_SIZE + 64, 0xdead).unwrap();
        assert_eq!(m.reclaim(w(1), 1).unwrap(), Ok(m.info()));
        assert_eq!(m.held(w(1)), 31);
        assert_eq!(p.read_u64(63 * PAGE_SIZE + 64).unwrap(), 0);
    }

    #[test]
    fn refused_requests_change_nothing() {
        let (mut m, _, _) = setup();
        let before = m.info();
        assert_eq!(m.reclaim(w(0), 33).unwrap(), Err(Error::NotHeld));
        assert_eq!(m.grant(w(0), 225).unwrap(), Err(Error::Quota));
        assert_eq!(m.grant(w(2), 385).unwrap(), Err(Error::PoolExhausted));
        assert_eq!(m.info(), before);
    }

    #[test]
    fn grant_then_reclaim_round_trips() {
        let (mut m, _, _) = setup();
        let before = m.info();
        m.grant(w(3), 100).unwrap().unwrap();
        assert_eq!(m.held(w(3)), 132);
        m.reclaim(w(3), 100).unwrap().unwrap();
        assert_eq!(m.info(), before);
    }
}
