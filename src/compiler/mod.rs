//! Compiler: resolves a policy document (names, references, types), builds the
//! indexed decision structure, and reads and writes the binary artifact. It knows
//! nothing of the verifier: compiling and verifying a file together is
//! [`crate::pipeline`]'s job.
pub mod artifact;
pub mod compiled;
pub mod front_end;
pub mod index;
pub mod membership;
pub mod model;
pub mod resolve;

pub use compiled::CompiledPolicy;
pub use front_end::{front_end, FrontEnd, FrontEndError};
