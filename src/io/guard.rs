//! Third-party decoders run on a thread of their own: a deep recursion gets a large stack
//! instead of aborting the process, and a panic becomes a decode error without printing
//! `thread '…' panicked at …` on the user's terminal.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use super::{decode_error, Format, LoadError};

/// The decoder thread's stack. Only the pages touched are committed, so this costs nothing
/// for an ordinary file; the element pre-scan (`bounds`) already refuses the deep nesting
/// that could exhaust it.
pub(super) const DECODER_STACK_BYTES: usize = 64 << 20;

thread_local! {
    /// Set on decoder threads: their panics are expected (malformed input) and reported as
    /// errors, so the process-wide hook stays silent for them.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per process, a panic hook that says nothing for decoder threads and
/// defers to the hook it replaced for every other thread.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| message.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn panic_error(path: &Path, format: Format, payload: &(dyn Any + Send)) -> LoadError {
    decode_error(
        path,
        format,
        format!(
            "decoder failed on malformed data: {}",
            panic_message(payload)
        ),
    )
}

/// Runs `decode` on a new thread with a [`DECODER_STACK_BYTES`] stack and silent panics,
/// and waits for it.
pub(super) fn on_decoder_thread<T: Send>(
    path: &Path,
    format: Format,
    decode: impl FnOnce() -> Result<T, LoadError> + Send,
) -> Result<T, LoadError> {
    install_quiet_hook();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("sagitta-decode".to_string())
            .stack_size(DECODER_STACK_BYTES)
            .spawn_scoped(scope, || {
                QUIET_PANICS.with(|quiet| quiet.set(true));
                catch_unwind(AssertUnwindSafe(decode))
            });
        match spawned {
            Err(cause) => Err(decode_error(
                path,
                format,
                format!("cannot start the decoder thread: {cause}"),
            )),
            Ok(handle) => match handle.join() {
                Ok(Ok(result)) => result,
                Ok(Err(payload)) | Err(payload) => Err(panic_error(path, format, &*payload)),
            },
        }
    })
}

/// Runs a third-party decoder so that a panic on malformed input becomes a decode error
/// instead of taking the caller down. (It cannot help a build with `panic = "abort"`.)
/// Called on the decoder thread, where the panic hook is silent.
pub(super) fn without_panics<T>(
    path: &Path,
    format: Format,
    decode: impl FnOnce() -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    catch_unwind(AssertUnwindSafe(decode))
        .unwrap_or_else(|payload| Err(panic_error(path, format, &*payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_on_the_decoder_thread_is_an_error() {
        let path = Path::new("x.dcm");
        let error = on_decoder_thread(path, Format::Dicom, || -> Result<(), LoadError> {
            panic!("boom in a decoder")
        })
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("decoder failed on malformed data: boom in a decoder"),
            "{error}"
        );
        // Quiet only there: this thread's flag is untouched.
        assert!(!QUIET_PANICS.with(Cell::get));
    }

    #[test]
    fn the_decoder_thread_has_a_deep_stack() {
        fn depth(n: u32) -> u32 {
            let padding = std::hint::black_box([n as u8; 1024]);
            if n == 0 {
                u32::from(padding[0])
            } else {
                depth(n - 1) + u32::from(padding[1]) + 1 - u32::from(padding[2])
            }
        }
        // About 20 MiB of frames: more than a default 2 MiB thread or 8 MiB main stack.
        let result = on_decoder_thread(Path::new("x"), Format::Png, || Ok(depth(20_000))).unwrap();
        assert_eq!(result, 20_000);
    }
}
