//! memory regions (`<memory_region>` mapped by `<map>`): bounds-checked,
//! word-granular access that is the same on seL4 (volatile accesses to the
//! mapping) and on the hosted system (a shared buffer of atomic words).

use core::fmt;

/// an access outside the region, or a write to a read-only mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// `offset..offset+len` is not inside the region, or is not word aligned
    /// where a word access needs it.
    OutOfBounds {
        /// the offset used.
        offset: usize,
        /// the length used.
        len: usize,
    },
    /// the .system file maps this region read-only into this PD.
    ReadOnly,
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfBounds { offset, len } => {
                write!(f, "access `{offset}+{len}` outside the region")
            }
            Self::ReadOnly => write!(f, "region is mapped read-only"),
        }
    }
}

#[cfg(target_os = "none")]
type Backing = crate::sel4::RegionBacking;
#[cfg(all(feature = "hosted", not(target_os = "none")))]
type Backing = crate::hosted::RegionBacking;

/// a mapped memory region as this PD sees it.
#[derive(Clone)]
pub struct Region {
    backing: Backing,
    len: usize,
    writable: bool,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish()
    }
}

impl Region {
    pub(crate) fn from_backing(backing: Backing, len: usize, writable: bool) -> Self {
        Self {
            backing,
            len,
            writable,
        }
    }

    /// size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// true for a zero-sized region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// whether this PD may write it.
    pub fn writable(&self) -> bool {
        self.writable
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), RegionError> {
        let end = offset
            .checked_add(len)
            .ok_or(RegionError::OutOfBounds { offset, len })?;
        if end > self.len || !offset.is_multiple_of(align) {
            return Err(RegionError::OutOfBounds { offset, len });
        }
        Ok(())
    }

    /// the word at byte `offset` (8-aligned).
    pub fn read_u64(&self, offset: usize) -> Result<u64, RegionError> {
        self.check(offset, 8, 8)?;
        Ok(self.backing.load(offset / 8))
    }

    /// write the word at byte `offset` (8-aligned).
    pub fn write_u64(&self, offset: usize, value: u64) -> Result<(), RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        self.check(offset, 8, 8)?;
        self.backing.store(offset / 8, value);
        Ok(())
    }

    /// zero `len` bytes from `offset` (both 8-aligned).
    pub fn zero(&self, offset: usize, len: usize) -> Result<(), RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        self.check(offset, len, 8)?;
        if !len.is_multiple_of(8) {
            return Err(RegionError::OutOfBounds { offset, len });
        }
        for w in (offset / 8)..((offset + len) / 8) {
            self.backing.store(w, 0);
        }
        Ok(())
    }

    /// copy bytes out of the region.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), RegionError> {
        self.check(offset, out.len(), 1)?;
        for (i, b) in out.iter_mut().enumerate() {
            let at = offset + i;
            let w = self.backing.load(at / 8);
            *b = w.to_le_bytes().get(at % 8).copied().unwrap_or(0);
        }
        Ok(())
    }

    /// copy bytes into the region.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        self.check(offset, data.len(), 1)?;
        let mut at = offset;
        let mut rest = data;
        while let Some((&first, _)) = rest.split_first() {
            let word = at / 8;
            let lane = at % 8;
            if lane == 0 && rest.len() >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(rest.get(..8).unwrap_or(&[0; 8]));
                self.backing.store(word, u64::from_le_bytes(w));
                at += 8;
                rest = rest.get(8..).unwrap_or(&[]);
            } else {
                let mut w = self.backing.load(word).to_le_bytes();
                if let Some(slot) = w.get_mut(lane) {
                    *slot = first;
                }
                self.backing.store(word, u64::from_le_bytes(w));
                at += 1;
                rest = rest.get(1..).unwrap_or(&[]);
            }
        }
        Ok(())
    }
}

/// a word-sized variable the Microkit tool rewrites at image build time
/// (`setvar_vaddr`, `setvar_size`, `setvar_id`, `<setvar>`): declare it with
/// [`setvar!`](crate::setvar) so it has a symbol of exactly word size.
#[repr(transparent)]
pub struct SetVar(core::cell::UnsafeCell<usize>);

// safety: the tool writes the value into the image before the PD runs; at
// run time it is only ever read, so sharing it is sound.
unsafe impl Sync for SetVar {}

impl SetVar {
    /// an unpatched variable (0); the tool fills it in.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(core::cell::UnsafeCell::new(0))
    }

    /// the patched value. a volatile read, so the compiler cannot fold the
    /// build-time 0 into the code.
    pub fn get(&self) -> usize {
        // safety: the cell is a valid, aligned usize for the program's
        // lifetime and nothing writes it at run time.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
}

/// a region as the manifest maps it into this PD: the setvar it is found at,
/// its size and whether the `<map>` lets this PD write it. made only by the
/// code system-manifest generates from the .system file, so a PD cannot name
/// a length or permission of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionSpec {
    setvar: &'static str,
    size: usize,
    writable: bool,
}

impl RegionSpec {
    /// for the generated manifest code only.
    #[doc(hidden)]
    pub const fn from_manifest(setvar: &'static str, size: usize, writable: bool) -> Self {
        Self {
            setvar,
            size,
            writable,
        }
    }

    /// the `setvar_vaddr` symbol.
    pub const fn setvar(self) -> &'static str {
        self.setvar
    }

    /// the region's size in bytes.
    pub const fn size(self) -> usize {
        self.size
    }

    /// whether the `<map perms>` include `w`.
    pub const fn writable(self) -> bool {
        self.writable
    }
}

/// a `setvar_vaddr` symbol together with the region the manifest maps there:
/// what [`Region::from_setvar`] takes, so the length and permission of a
/// region always come from the manifest. declared by the generated
/// `<image>_setvars!` macro of pd-interface (the symbol itself stays a word,
/// as the tool requires).
pub struct MappedVar {
    var: &'static SetVar,
    spec: RegionSpec,
}

impl MappedVar {
    /// for the generated `<image>_setvars!` macros only.
    #[doc(hidden)]
    pub const fn new(var: &'static SetVar, spec: RegionSpec) -> Self {
        Self { var, spec }
    }

    /// the address the tool patched in.
    pub fn vaddr(&self) -> usize {
        self.var.get()
    }

    /// the region mapped there.
    pub fn spec(&self) -> RegionSpec {
        self.spec
    }
}

/// declare a word-sized symbol the Microkit tool patches (a `setvar`).
#[macro_export]
macro_rules! setvar {
    ($name:ident) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        #[used]
        static $name: $crate::SetVar = $crate::SetVar::new();
    };
}

/// bytes the image build patches into a PD's ELF after compiling it (the
/// verifier's keys): the build finds the initial value's marker and writes
/// over it, so no secret ever passes through cargo or its cache.
#[repr(transparent)]
pub struct Patched<const N: usize>(core::cell::UnsafeCell<[u8; N]>);

// safety: the image build writes the bytes before the PD runs; at run time
// they are only ever read.
unsafe impl<const N: usize> Sync for Patched<N> {}

impl<const N: usize> Patched<N> {
    /// the value the ELF carries until the build patches it.
    pub const fn new(init: [u8; N]) -> Self {
        Self(core::cell::UnsafeCell::new(init))
    }

    /// the patched bytes. a volatile read, so the compiler cannot fold the
    /// build-time value into the code.
    pub fn get(&self) -> [u8; N] {
        // safety: the cell is a valid, aligned array for the program's
        // lifetime and nothing writes it at run time.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
}

/// declare bytes the image build patches ([`Patched`]).
#[macro_export]
macro_rules! patched {
    ($name:ident, $len:expr, $init:expr) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        #[used]
        static $name: $crate::Patched<{ $len }> = $crate::Patched::new($init);
    };
}
