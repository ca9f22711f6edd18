//! The pieces every long-lived worker uses: a shutdown signal it can wait on, and a retry
//! backoff.

mod backoff;
mod shutdown;

pub use backoff::Backoff;
pub use shutdown::Shutdown;
