//! The pure roll-up.
