//! Third-party parsers (the PyTorch unpickler, the Arrow IPC reader, the tokenizers crate) can
//! panic on malformed input where they should return an error. [`contain`] runs such a call so
//! that a panic becomes an error the caller names the file in, and [`quiet_contained_panics`]
//! keeps the panic's own multi-line report off stderr.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`; a panic inside it is returned as `Err` with the panic's message (one line).
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    r.map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the reader failed".into());
        crate::shown(&msg, 200)
    })
}

/// Installs a panic hook that stays silent for panics [`contain`] catches on the same thread and
/// reports every other panic as before. Idempotent.
pub fn quiet_contained_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                prev(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_values_pass_through() {
        quiet_contained_panics();
        assert_eq!(contain(|| 7), Ok(7));
        let e = contain(|| -> u32 { panic!("index 3 out of\nrange") }).unwrap_err();
        assert_eq!(e, "index 3 out of\\nrange");
        // Depth is restored: a later uncontained call is not silenced.
        assert_eq!(DEPTH.with(Cell::get), 0);
    }
}
