//! # fedics-store
