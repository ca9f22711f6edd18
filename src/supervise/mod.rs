//! The pieces every long-lived worker uses: a shutdown signal it can wait on, a retry backoff,
//! and locking that survives a panic elsewhere.

mod backoff;
mod lock;
mod shutdown;

pub use backoff::Backoff;
pub use lock::lock;
pub use shutdown::Shutdown;
