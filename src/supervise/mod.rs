//! The pieces every long-lived worker uses: a shutdown signal it can wait on, a retry backoff,
//! locking that survives a panic elsewhere, and catching a panic as an error.

mod backoff;
mod lock;
mod panic;
mod shutdown;

pub use backoff::Backoff;
pub use lock::lock;
pub use panic::caught;
pub use shutdown::Shutdown;
