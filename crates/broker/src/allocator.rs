//! A global allocator that survives absurd allocation requests from
//! decoders.
//!
//! `kafka-protocol` 0.18 reserves `Vec::with_capacity(n)` for an array before
//! decoding its elements, with `n` read from the request. A 20-byte request
//! claiming four billion elements asks for hundreds of gigabytes; the system
//! allocator fails and Rust aborts the whole process, which no `catch_unwind`
//! can stop. This allocator serves every allocation of [`HUGE_BYTES`] or more
//! with an anonymous `MAP_NORESERVE` mapping instead: address space, no
//! memory. The decoder then runs out of input after touching a page or two,
//! drops the vector, and the mapping is returned. Smaller allocations go to
//! the system allocator unchanged.
//!
//! Huge reservations only live while one decode runs on one thread, so their
//! number is bounded by the runtime's threads, far below the 128 TiB of
//! address space a 64-bit process has.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations at least this large are reserved rather than allocated.
pub const HUGE_BYTES: usize = 1 << 30;

/// Largest alignment an anonymous mapping guarantees (its page size).
const MAPPING_ALIGN: usize = 4096;

/// The system allocator, with huge requests served by lazy mappings. Declare
/// it as the `#[global_allocator]` of every binary that runs a broker.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReservingAllocator;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE_BYTES && layout.align() <= MAPPING_ALIGN
}

fn reserve(size: usize) -> *mut u8 {
    use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
    // SAFETY: a new private anonymous mapping at an address of the kernel's
    // choosing aliases nothing; the result is checked before use.
    let mapped = unsafe {
        mmap_anonymous(
            ptr::null_mut(),
            size,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    };
    match mapped {
        Ok(p) => p.cast::<u8>(),
        Err(_) => ptr::null_mut(),
    }
}

fn release(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr` and `size` describe a mapping made by `reserve` for a
    // huge layout of the same size, which the caller no longer uses.
    let _ = unsafe { rustix::mm::munmap(ptr.cast(), size) };
}

// SAFETY: every pointer returned is either the system allocator's for a
// non-huge layout or a fresh mapping of at least `layout.size()` bytes,
// aligned to the page size, for a huge one; `dealloc` and `realloc` tell the
// two apart by the same `is_huge(layout)` test the allocation used.
unsafe impl GlobalAlloc for ReservingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            reserve(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Anonymous mappings are zero-filled.
            reserve(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            release(ptr, layout.size());
        } else {
            // SAFETY: `ptr` came from `System` for this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a
        // valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: moving between the two kinds of memory: allocate, copy the
        // bytes both sizes share, free the old block with its own layout.
        unsafe {
            let new_ptr = self.alloc(new_layout);
            if !new_ptr.is_null() {
                ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new_ptr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_cost_no_memory_and_are_usable() {
        let a = ReservingAllocator;
        // 1 TiB: far more than the machine has.
        let layout = Layout::from_size_align(1 << 40, 8).unwrap();
        // SAFETY: a valid non-zero layout; freed below with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            p.write(7);
            p.add(1 << 39).write(9);
            assert_eq!(p.read(), 7);
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn growing_into_and_out_of_huge_keeps_the_bytes() {
        let a = ReservingAllocator;
        let small = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: each realloc passes the layout of the live block.
        unsafe {
            let p = a.alloc(small);
            p.write_bytes(5, 64);
            let big = a.realloc(p, small, HUGE_BYTES);
            assert_eq!(big.add(63).read(), 5);
            let back = a.realloc(big, Layout::from_size_align(HUGE_BYTES, 8).unwrap(), 32);
            assert_eq!(back.add(31).read(), 5);
            a.dealloc(back, Layout::from_size_align(32, 8).unwrap());
        }
    }
}
