//! # fedics-detect: detectors and the classifier
pub mod iforest;
