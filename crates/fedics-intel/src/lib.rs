//! # fedics-intel
