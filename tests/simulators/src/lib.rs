//! Provider simulators (to be written).
