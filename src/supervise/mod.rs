//! The pieces every long-lived worker uses: a shutdown signal it can wait on, a retry backoff,
//! a gate for repeated log lines, locking that survives a panic elsewhere, and catching a
//! panic as an error.

mod backoff;
mod lock;
mod log_gate;
mod panic;
mod shutdown;

pub use backoff::Backoff;
pub use lock::lock;
pub use log_gate::LogGate;
pub use panic::caught;
pub use shutdown::Shutdown;
