//! Running Rust work with Ruby's global VM lock (GVL) released.
//!
//! Used for the calls that wait on the disk — commits in `fsync` mode, open/replay,
//! checkpoint, close — so other Ruby threads run meanwhile. The work runs on the calling
//! thread; it must not touch any Ruby object (the `Send` bound keeps Ruby values out,
//! since magnus values are not `Send`).

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the trampoline reads and writes: the work and its outcome.
struct Slot<F, R> {
    work: Option<F>,
    outcome: Option<std::thread::Result<R>>,
}

/// Called by Ruby without the GVL.
///
/// # Safety
/// `data` must point at a live `Slot<F, R>` that nothing else accesses during the call;
/// [`without_gvl`] passes a pointer to its own stack slot and only reads it afterwards.
unsafe extern "C" fn trampoline<F, R>(data: *mut c_void) -> *mut c_void
where
    F: FnOnce() -> R,
{
    // SAFETY: see the function's contract; the pointer is valid and unaliased.
    let slot = unsafe { &mut *(data as *mut Slot<F, R>) };
    if let Some(work) = slot.work.take() {
        // A panic must not unwind into Ruby's C frames: catch it and hand it back.
        slot.outcome = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    std::ptr::null_mut()
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// Runs `work` with the GVL released and returns its result, or the message of a panic
/// inside it.
///
/// Uses `rb_thread_call_without_gvl2`, which never raises (no longjmp through these Rust
/// frames): pending interrupts such as `Thread#raise` or Ctrl-C are handled by Ruby after
/// the extension method returns. If Ruby declines to release the GVL because an interrupt
/// is already pending, the work runs here with the GVL held, so it always runs exactly
/// once.
pub fn without_gvl<F, R>(work: F) -> Result<R, String>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let mut slot: Slot<F, R> = Slot {
        work: Some(work),
        outcome: None,
    };
    // SAFETY: `trampoline::<F, R>` matches the slot's type; the slot lives on this stack
    // frame for the whole call and is not touched here until the call returns. No
    // unblocking function is passed (the work is bounded by one disk operation), so Ruby
    // never calls into us from another thread.
    unsafe {
        rb_sys::rb_thread_call_without_gvl2(
            Some(trampoline::<F, R>),
            &mut slot as *mut Slot<F, R> as *mut c_void,
            None,
            std::ptr::null_mut(),
        );
    }
    let outcome = match slot.outcome {
        Some(o) => o,
        // Not run (an interrupt was pending): run it with the GVL held.
        None => match slot.work.take() {
            Some(work) => catch_unwind(AssertUnwindSafe(work)),
            None => return Err("work vanished".to_owned()),
        },
    };
    outcome.map_err(panic_message)
}
