//! The outbound queue's bookkeeping, free of I/O.

/// Whether retained messages are owed to the connection's session, and what
/// their sending waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainedDue {
    /// None owed.
    #[default]
    None,
    /// Room in the inflight window (a PUBACK / PUBCOMP).
    Window,
    /// The next turn of the connection's loop.
    Turn,
}
