//! The pipeline: runs the stages in order on a file, above all of them. Reading
//! ([`read`]), the front end and resolution (the compiler's), the decision
//! structure built once, the verifier over that same structure ([`compile`]), and
//! loading a policy or an artifact for decisions ([`load`]).
//!
//! It sits above [`crate::analysis`] and below `cli`, so that the compiler never
//! calls the verifier (decision 0026). The broker is handed a loaded policy by
//! `cli serve`; it does not import this module.

pub mod compile;
pub mod load;
pub mod read;

pub use compile::{compile_file, compile_file_with, compile_text, compile_text_with, Compilation};
pub use load::{
    from_compilation, from_compilation_for_diagnosis, load, load_with, LoadError, Loaded,
    Strictness,
};
pub use read::{read_limited, read_text, ReadError};
