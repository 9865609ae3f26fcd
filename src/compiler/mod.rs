//! Compiler: resolves a policy document (names, references, types), builds the
//! indexed decision structure, and reads and writes the binary artifact.
pub mod artifact;
pub mod compiled;
pub mod index;
pub mod load;
pub mod membership;
pub mod model;
pub mod resolve;

pub use compiled::CompiledPolicy;
pub use load::{compile_file, compile_text, load, Compilation, LoadError, Loaded};
