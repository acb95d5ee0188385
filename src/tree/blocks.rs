//! Node memory: a per-thread cache of freed node blocks in front of the
//! system allocator.
//!
//! A server allocates and frees one or two nodes per request, and the
//! clock releases cancelled deadline nodes in batches (a timer shard's
//! sweep buries dozens at once, a full collection up to a hundred per
//! shard). glibc's own per-thread cache holds seven blocks of a size, so a
//! batch overflows it and every node of the next batch takes the
//! allocator's slow paths on the way out and back in (callgrind: a quarter
//! of the instructions of `with_timeout` + cancel).
//! This cache keeps freed blocks per thread, by size class, up to a byte
//! budget, and hands them back to the next node of that class on the
//! thread (docs/design.md, "Node memory").
//!
//! Invariants:
//! 1. A block of class `c` was allocated with [`class_layout`]`(c)`, and is
//!    given back to the system with that layout: nodes of any type whose
//!    size rounds up to the class share its blocks.
//! 2. A thread keeps at most [`BUDGET`] bytes of free blocks, and only
//!    after it has taken a block itself: a thread that only frees nodes
//!    (the clock's driver, an epoch collector) gives them straight back.
//! 3. A freed node's block is given back even when the value's drop
//!    panics (a guard gives it back while the panic unwinds).
//! 4. A thread's free blocks go back to the system when the thread exits
//!    (the cache's destructor); a free that comes after the destructor, or
//!    a node too large or too aligned for a class, uses the system directly.
//!
//! So memory still follows the live contexts: on top of them, each thread
//! that creates contexts holds at most `BUDGET` bytes.
//!
//! Under loom every node is a plain `Box` (loom tracks allocations, and the
//! cache is single-threaded code).

use std::ptr::NonNull;

/// Free bytes one thread may keep (invariant 2): about 1,600 deadline
/// nodes, as many as a full collection of a many-core clock buries.
#[cfg(not(loom))]
pub(crate) const BUDGET: usize = 256 * 1024;

/// Size classes are multiples of this, up to `CLASSES` of them.
#[cfg(not(loom))]
const GRAIN: usize = 16;
#[cfg(not(loom))]
const CLASSES: usize = 16;

/// A new node holding what `make` returns, in a block of its class when
/// the thread has one free. The block is taken first, so that the node is
/// built in it: a node built first and then moved in is copied through
/// the stack, and that copy's wide loads of narrow stores just made stall
/// (store forwarding fails), a measured tenth of a request. The engine's
/// constructors do not panic; if one did, its block would be lost, not
/// reused.
#[inline(always)]
pub(crate) fn leak<T>(make: impl FnOnce() -> T) -> NonNull<T> {
    #[cfg(not(loom))]
    if let Some(class) = class_of::<T>() {
        let block = imp::take(class).cast::<T>();
        // SAFETY: a block of the class's layout, which fits `T` (size and
        // alignment, `class_of`), unused and ours.
        unsafe { block.as_ptr().write(make()) };
        return block;
    }
    NonNull::from(Box::leak(Box::new(make())))
}

/// Drops the node `ptr` and frees its block (to this thread's cache when
/// there is room).
///
/// # Safety
/// `ptr` came from [`leak`]`::<T>` and nothing refers to it any more.
pub(crate) unsafe fn free<T>(ptr: NonNull<T>) {
    #[cfg(not(loom))]
    if let Some(class) = class_of::<T>() {
        // Gives the block back even if `T`'s drop (a user value's) panics,
        // as a `Box` frees its memory when its contents' drop unwinds.
        struct GiveBack(usize, NonNull<u8>);
        impl Drop for GiveBack {
            fn drop(&mut self) {
                // SAFETY: allocated by `take(class)` (invariant 1); the
                // value in it is dropped (or its drop unwound) by now.
                unsafe { imp::give(self.0, self.1) };
            }
        }
        let _give_back = GiveBack(class, ptr.cast());
        // SAFETY: a live `T` nobody refers to (caller).
        unsafe { std::ptr::drop_in_place(ptr.as_ptr()) };
        return;
    }
    // SAFETY: `leak` boxed it (no class), and it is ours (caller).
    drop(unsafe { Box::from_raw(ptr.as_ptr()) });
}

/// The class of `T`'s blocks, if it has one.
#[cfg(not(loom))]
const fn class_of<T>() -> Option<usize> {
    let (size, align) = (size_of::<T>(), align_of::<T>());
    if size == 0 || size > GRAIN * CLASSES || align > GRAIN {
        return None;
    }
    Some(size.div_ceil(GRAIN) - 1)
}

/// The layout of class `class`'s blocks (invariant 1).
#[cfg(not(loom))]
fn class_layout(class: usize) -> std::alloc::Layout {
    // A multiple of the alignment, far below `isize::MAX`: always valid.
    std::alloc::Layout::from_size_align((class + 1) * GRAIN, GRAIN).expect("class layout")
}

#[cfg(not(loom))]
mod imp {
    use super::{class_layout, BUDGET, CLASSES};
    use std::alloc::{alloc, dealloc, handle_alloc_error};
    use std::cell::Cell;
    use std::ptr::{self, NonNull};

    /// One thread's free blocks: a stack per class, linked through each
    /// block's first word.
    struct Cache {
        heads: [Cell<*mut u8>; CLASSES],
        /// Bytes held (invariant 2).
        bytes: Cell<usize>,
        /// Whether this thread has taken a block (invariant 2).
        active: Cell<bool>,
    }

    thread_local! {
        static CACHE: Cache = const {
            Cache {
                heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
                bytes: Cell::new(0),
                active: Cell::new(false),
            }
        };
    }

    impl Cache {
        fn pop(&self, class: usize) -> Option<NonNull<u8>> {
            let block = NonNull::new(self.heads[class].get())?;
            // SAFETY: a free block of ours; its first word links the next.
            self.heads[class].set(unsafe { block.cast::<*mut u8>().read() });
            self.bytes
                .set(self.bytes.get() - class_layout(class).size());
            Some(block)
        }

        fn push(&self, class: usize, block: NonNull<u8>) -> bool {
            let bytes = self.bytes.get() + class_layout(class).size();
            if !self.active.get() || bytes > BUDGET {
                return false;
            }
            // SAFETY: an unused block of at least 16 bytes, aligned to 16.
            unsafe { block.cast::<*mut u8>().write(self.heads[class].get()) };
            self.heads[class].set(block.as_ptr());
            self.bytes.set(bytes);
            true
        }
    }

    impl Drop for Cache {
        fn drop(&mut self) {
            for class in 0..CLASSES {
                while let Some(block) = self.pop(class) {
                    // SAFETY: allocated with this layout (invariant 1).
                    unsafe { dealloc(block.as_ptr(), class_layout(class)) };
                }
            }
        }
    }

    /// A block of `class`: a cached one, or a new one.
    pub(super) fn take(class: usize) -> NonNull<u8> {
        let cached = CACHE.try_with(|c| {
            c.active.set(true);
            c.pop(class)
        });
        if let Ok(Some(block)) = cached {
            return block;
        }
        let layout = class_layout(class);
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout))
    }

    /// Frees a block of `class`: to the cache if it has room, else to the
    /// system.
    ///
    /// # Safety
    /// `block` came from `take(class)` and is unused.
    pub(super) unsafe fn give(class: usize, block: NonNull<u8>) {
        if CACHE.try_with(|c| c.push(class, block)) != Ok(true) {
            // SAFETY: allocated with this layout (caller, invariant 1).
            unsafe { dealloc(block.as_ptr(), class_layout(class)) };
        }
    }

    /// Free bytes this thread holds (for tests).
    #[cfg(test)]
    pub(super) fn held() -> usize {
        CACHE.with(|c| c.bytes.get())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_is_the_next_one_of_its_class() {
        let a = leak(|| [1u64; 12]);
        // SAFETY: from `leak`, unreferenced.
        unsafe { free(a) };
        let b = leak(|| [2u64; 11]); // 88 bytes: the same 96-byte class
        assert_eq!(a.cast::<u8>(), b.cast::<u8>());
        // SAFETY: as above.
        assert_eq!(unsafe { b.as_ref() }, &[2; 11]);
        // SAFETY: as above.
        unsafe { free(b) };
    }

    #[test]
    fn values_are_dropped_when_freed() {
        let rc = std::rc::Rc::new(());
        let node = leak(|| rc.clone());
        assert_eq!(std::rc::Rc::strong_count(&rc), 2);
        // SAFETY: from `leak`, unreferenced.
        unsafe { free(node) };
        assert_eq!(std::rc::Rc::strong_count(&rc), 1);
    }

    #[test]
    fn a_block_is_freed_when_its_value_s_drop_panics() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let node = leak(|| (Bomb, [0u64; 5]));
        // SAFETY: from `leak`, unreferenced.
        let unwound = std::panic::catch_unwind(|| unsafe { free(node) });
        assert!(unwound.is_err());
        assert_eq!(imp::held(), 48, "the block went back to the cache");
        let again = leak(|| [0u64; 6]);
        assert_eq!(again.cast::<u8>(), node.cast::<u8>());
        // SAFETY: from `leak`, unreferenced.
        unsafe { free(again) };
    }

    #[test]
    fn a_thread_keeps_at_most_the_budget() {
        let nodes: Vec<_> = (0..2 * BUDGET / 160)
            .map(|i| leak(|| [i as u64; 20]))
            .collect();
        for n in nodes {
            // SAFETY: from `leak`, unreferenced.
            unsafe { free(n) };
        }
        assert!(imp::held() <= BUDGET);
        assert!(
            imp::held() > BUDGET - 160,
            "the cache fills up to its budget"
        );
    }

    #[test]
    fn a_thread_that_never_took_a_block_keeps_none() {
        struct Node(NonNull<[u64; 20]>);
        // SAFETY: plain data, handed over whole.
        unsafe impl Send for Node {}
        let node = Node(leak(|| [0u64; 20]));
        let held = std::thread::spawn(move || {
            let node = node;
            // SAFETY: from `leak`, unreferenced; blocks may cross threads.
            unsafe { free(node.0) };
            imp::held()
        });
        assert_eq!(held.join().unwrap(), 0);
    }

    #[test]
    fn unclassed_types_are_boxed() {
        assert_eq!(class_of::<[u8; 257]>(), None);
        assert_eq!(class_of::<()>(), None);
        assert_eq!(class_of::<u8>(), Some(0));
        assert_eq!(class_of::<[u8; 256]>(), Some(15));
        let big = leak(|| [7u8; 300]);
        // SAFETY: from `leak`, unreferenced.
        unsafe { free(big) };
    }
}
