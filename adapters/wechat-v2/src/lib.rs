//! WeChat Pay API v2 adapter (to be written).
