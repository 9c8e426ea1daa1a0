//! Numeric flow features for the unsupervised models (defined in `fedics-tabular`, which
//! every model shares): heavy-tailed counters are log-scaled; categorical facts become 0/1
//! indicators; ports are not used as numbers.

pub use fedics_tabular::flows::{
    FLOW_FEATURE_NAMES as FEATURE_NAMES, N_FLOW_FEATURES as N_FEATURES, flow_features,
};
