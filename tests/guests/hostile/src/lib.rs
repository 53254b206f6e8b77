//! Hostile adapter (to be written).
