//! Azure Event Grid interop (issue 13, decision 0019): the namespace as Event Grid's
//! resources ([`resources`]), exported as an ARM template, a Bicep file or an `az`
//! script ([`export`]), and imported from ARM templates and REST/`az` JSON
//! ([`import`], with the small ARM expression subset of [`arm_expr`]).
//!
//! This module reads the source and compiler layers; nothing there reads it.

pub mod arm_expr;
pub mod export;
pub mod import;
pub mod resources;
pub mod template;

/// The API version every export targets and every import understands.
pub const API_VERSION: &str = "2025-02-15";
