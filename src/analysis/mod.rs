//! Analysis: the verifier's rules over a compiled policy.
