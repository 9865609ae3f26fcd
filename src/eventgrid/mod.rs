//! Azure Event Grid interop (issue 13, decision 0019): the namespace as Event Grid's
//! resources ([`resources`], templates spelt as Event Grid reads them by
//! [`template`]); the export ([`export`] decides what carries over, [`render`] writes
//! ARM JSON, Bicep or an `az` script); the import ([`import`] reads ARM templates, with
//! the small expression subset of [`arm_expr`], and REST/`az` JSON; [`to_policy`]
//! turns the result into a policy).
//!
//! This module reads the source and compiler layers; nothing there reads it.

pub mod arm_expr;
pub mod export;
pub mod import;
pub mod render;
pub mod resources;
pub mod template;
pub mod to_policy;

/// The API version every export targets and every import understands.
pub const API_VERSION: &str = "2025-02-15";
