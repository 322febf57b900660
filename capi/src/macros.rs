//! `ffi_fn!`: the one wrapper of every exported function that returns a status.
//!
//! The body runs inside `catch_unwind`, so a Rust panic never unwinds into C: it becomes
//! `GRETA_PANIC` with a message. An `Err` becomes its status and message (read with
//! `greta_last_error`); `Ok` clears the message and returns `GRETA_OK`.

macro_rules! ffi_fn {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        ///
        /// # Safety
        /// Every pointer argument is NULL (refused with `GRETA_INVALID_ARGUMENT` where a value is
        /// required) or valid for the whole call as include/greta.h states for this function: strings
        /// NUL-terminated, arrays holding the given number of elements, out-pointers writable, handles
        /// returned by their `_new` and not yet freed. A panic inside is caught, never unwound into C.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $t),*) -> $crate::error::GretaStatus {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || -> Result<(), $crate::error::Error> { $body },
            ));
            match r {
                Ok(Ok(())) => {
                    $crate::error::set_last("");
                    $crate::error::GretaStatus::Ok
                }
                Ok(Err(e)) => {
                    $crate::error::set_last(&e.msg);
                    e.status
                }
                Err(p) => {
                    $crate::error::set_last(&$crate::error::panic_msg(&*p));
                    $crate::error::GretaStatus::Panic
                }
            }
        }
    };
}
