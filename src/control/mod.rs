//! The control plane: the stream manager that owns the running streams, the REST API over it,
//! the metrics, and what keeps API changes across restarts.

/// The REST API.
pub mod api;
mod manager;
/// Prometheus metrics.
pub mod metrics;
mod overlay;
pub mod sessions;
pub mod status;

pub use manager::{Manager, ManagerError, ReloadReport};
pub use overlay::Overlay;
