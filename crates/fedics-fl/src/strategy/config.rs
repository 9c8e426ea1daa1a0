//! [`StrategyConfig`]: which strategy, with which hyper-parameters, from a config file
//! (serde, tagged by `name`) or a command line (`FromStr`: `name[:key=value[,key=value…]]`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{FedAdam, FedAvg, FedProx, Krum, Median, RoundSettings, Strategy, TrimmedMean};

const NAMES: &str = "fedavg, fedprox, fedadam, median, trimmed-mean, krum, multi-krum";

/// The choice of strategy and its hyper-parameters.
///
/// Serde form (tagged by `name`; unknown fields are rejected):
///
/// ```
/// use fedics_fl::strategy::StrategyConfig;
///
/// let c: StrategyConfig = serde_json::from_str(r#"{"name": "multi-krum", "f": 1, "m": 3}"#).unwrap();
/// assert_eq!(c, StrategyConfig::MultiKrum { f: 1, m: Some(3) });
/// let c: StrategyConfig = serde_json::from_str(r#"{"name": "fedadam", "eta": 0.1}"#).unwrap();
/// assert_eq!(c, StrategyConfig::FedAdam { eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
/// ```
///
/// Command-line form: `fedavg`, `fedprox:mu=0.01`, `fedadam:eta=0.1,tau=1e-3`, `median`,
/// `trimmed-mean:beta=0.2`, `krum:f=1`, `multi-krum:f=1,m=3`. [`fmt::Display`] writes the same
/// form back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StrategyConfig {
    /// [`FedAvg`].
    #[serde(rename = "fedavg")]
    FedAvg,
    /// [`FedProx`] with proximal coefficient `mu` ≥ 0 (required; Li et al. tune it in
    /// {0.001, 0.01, 0.1, 1}).
    #[serde(rename = "fedprox")]
    FedProx {
        /// Proximal coefficient μ.
        mu: f64,
    },
    /// [`FedAdam`]; every field defaults to the paper's value (η: see [`FedAdam::DEFAULT_ETA`]).
    #[serde(rename = "fedadam")]
    FedAdam {
        /// Server learning rate η > 0.
        #[serde(default = "default_eta")]
        eta: f64,
        /// First-moment decay β₁ ∈ [0, 1).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay β₂ ∈ [0, 1).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Adaptivity τ > 0.
        #[serde(default = "default_tau")]
        tau: f64,
    },
    /// [`Median`].
    Median,
    /// [`TrimmedMean`] with trimmed fraction `beta` ∈ [0, 0.5) per side (required).
    TrimmedMean {
        /// Fraction trimmed at each end.
        beta: f64,
    },
    /// [`Krum`] tolerating `f` Byzantine clients (required).
    Krum {
        /// Assumed number of Byzantine clients.
        f: usize,
    },
    /// Multi-Krum tolerating `f` Byzantine clients, averaging the `m` best (default `n − f`).
    MultiKrum {
        /// Assumed number of Byzantine clients.
        f: usize,
        /// Number of clients averaged; `None`: `n − f`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        m: Option<usize>,
    },
}

fn default_eta() -> f64 {
    FedAdam::DEFAULT_ETA
}
fn default_beta1() -> f64 {
    FedAdam::DEFAULT_BETA1
}
fn default_beta2() -> f64 {
    FedAdam::DEFAULT_BETA2
}
fn default_tau() -> f64 {
    FedAdam::DEFAULT_TAU
}

/// Errors of [`StrategyConfig`] parsing and validation. Each names the strategy and the
/// offending key or value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The strategy name is not known.
    #[error("unknown strategy {name:?} (expected one of: {NAMES})")]
    UnknownStrategy {
        /// The name given.
        name: String,
    },
    /// A parameter the strategy does not take.
    #[error("{strategy}: unknown parameter {key:?} (accepted: {accepted})")]
    UnknownKey {
        /// Strategy name.
        strategy: &'static str,
        /// The key given.
        key: String,
        /// The keys this strategy takes.
        accepted: &'static str,
    },
    /// A required parameter is missing.
    #[error("{strategy}: missing required parameter {key}")]
    MissingKey {
        /// Strategy name.
        strategy: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// The same parameter is given twice.
    #[error("{strategy}: parameter {key:?} given more than once")]
    DuplicateKey {
        /// Strategy name.
        strategy: &'static str,
        /// The repeated key.
        key: String,
    },
    /// An item of the parameter list is not `key=value`.
    #[error("{strategy}: expected key=value, got {item:?}")]
    Malformed {
        /// Strategy name.
        strategy: &'static str,
        /// The item.
        item: String,
    },
    /// A value that does not parse or is out of range.
    #[error("{strategy}: invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        /// Strategy name (`round` for [`RoundSettings`]).
        strategy: &'static str,
        /// The key.
        key: &'static str,
        /// The value as given or as parsed.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
}

impl StrategyConfig {
    /// The strategy's name (the serde tag and the command-line prefix).
    pub fn name(&self) -> &'static str {
        match self {
            Self::FedAvg => "fedavg",
            Self::FedProx { .. } => "fedprox",
            Self::FedAdam { .. } => "fedadam",
            Self::Median => "median",
            Self::TrimmedMean { .. } => "trimmed-mean",
            Self::Krum { .. } => "krum",
            Self::MultiKrum { .. } => "multi-krum",
        }
    }

    /// Checks the hyper-parameters' ranges.
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] naming the key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let strategy = self.name();
        let check = |key: &'static str, value: f64, ok: bool, reason: &'static str| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(ConfigError::InvalidValue {
                    strategy,
                    key,
                    value: value.to_string(),
                    reason,
                })
            }
        };
        match *self {
            Self::FedAvg | Self::Median | Self::Krum { .. } => Ok(()),
            Self::FedProx { mu } => check("mu", mu, mu >= 0.0, "must be a finite number >= 0"),
            Self::FedAdam {
                eta,
                beta1,
                beta2,
                tau,
            } => {
                check("eta", eta, eta > 0.0, "must be a finite number > 0")?;
                check(
                    "beta1",
                    beta1,
                    (0.0..1.0).contains(&beta1),
                    "must be in [0, 1)",
                )?;
                check(
                    "beta2",
                    beta2,
                    (0.0..1.0).contains(&beta2),
                    "must be in [0, 1)",
                )?;
                check("tau", tau, tau > 0.0, "must be a finite number > 0")
            }
            Self::TrimmedMean { beta } => check(
                "beta",
                beta,
                (0.0..0.5).contains(&beta),
                "must be in [0, 0.5)",
            ),
            Self::MultiKrum { m, .. } => match m {
                Some(0) => Err(ConfigError::InvalidValue {
                    strategy,
                    key: "m",
                    value: "0".into(),
                    reason: "must be at least 1",
                }),
                _ => Ok(()),
            },
        }
    }

    /// Builds the strategy with default [`RoundSettings`].
    ///
    /// # Errors
    /// See [`StrategyConfig::build_with`].
    pub fn build(&self) -> Result<Box<dyn Strategy>, ConfigError> {
        self.build_with(RoundSettings::default())
    }

    /// Builds the strategy with the given round settings (local epochs, learning rate, client
    /// sampling).
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] for an out-of-range hyper-parameter or round setting.
    pub fn build_with(&self, settings: RoundSettings) -> Result<Box<dyn Strategy>, ConfigError> {
        self.validate()?;
        settings.validate()?;
        Ok(match *self {
            Self::FedAvg => Box::new(FedAvg::new(settings)),
            Self::FedProx { mu } => Box::new(FedProx::new(mu as f32, settings)),
            Self::FedAdam {
                eta,
                beta1,
                beta2,
                tau,
            } => Box::new(FedAdam::new(eta, beta1, beta2, tau, settings)),
            Self::Median => Box::new(Median::new(settings)),
            Self::TrimmedMean { beta } => Box::new(TrimmedMean::new(beta, settings)),
            Self::Krum { f } => Box::new(Krum::single(f, settings)),
            Self::MultiKrum { f, m } => Box::new(Krum::multi(f, m, settings)),
        })
    }
}

impl RoundSettings {
    /// Checks the ranges: `local_epochs ≥ 1`, `learning_rate` finite and > 0,
    /// `fraction_fit ∈ (0, 1]`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidValue`] with strategy `round`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, value: String, reason| {
            Err(ConfigError::InvalidValue {
                strategy: "round",
                key,
                value,
                reason,
            })
        };
        if self.local_epochs == 0 {
            return bad("local_epochs", "0".into(), "must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                self.learning_rate.to_string(),
                "must be a finite number > 0",
            );
        }
        if !(self.fraction_fit > 0.0 && self.fraction_fit <= 1.0) {
            return bad(
                "fraction_fit",
                self.fraction_fit.to_string(),
                "must be in (0, 1]",
            );
        }
        Ok(())
    }
}

/// Parsed `key=value` list of one strategy, consumed key by key.
struct Params {
    strategy: &'static str,
    accepted: &'static str,
    items: Vec<(String, String)>,
}

impl Params {
    fn parse(
        strategy: &'static str,
        accepted: &'static str,
        list: &str,
    ) -> Result<Self, ConfigError> {
        let mut items: Vec<(String, String)> = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(ConfigError::Malformed {
                    strategy,
                    item: item.to_owned(),
                });
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(ConfigError::Malformed {
                    strategy,
                    item: item.to_owned(),
                });
            }
            if !accepted.split(", ").any(|k| k == key) {
                return Err(ConfigError::UnknownKey {
                    strategy,
                    key: key.to_owned(),
                    accepted: if accepted.is_empty() {
                        "none"
                    } else {
                        accepted
                    },
                });
            }
            if items.iter().any(|(k, _)| k == key) {
                return Err(ConfigError::DuplicateKey {
                    strategy,
                    key: key.to_owned(),
                });
            }
            items.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self {
            strategy,
            accepted,
            items,
        })
    }

    fn raw(&self, key: &'static str) -> Option<&str> {
        debug_assert!(self.accepted.split(", ").any(|k| k == key));
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn get<T: FromStr>(
        &self,
        key: &'static str,
        reason: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(key)
            .map(|v| {
                v.parse::<T>().map_err(|_| ConfigError::InvalidValue {
                    strategy: self.strategy,
                    key,
                    value: v.to_owned(),
                    reason,
                })
            })
            .transpose()
    }

    fn required<T: FromStr>(
        &self,
        key: &'static str,
        reason: &'static str,
    ) -> Result<T, ConfigError> {
        self.get(key, reason)?.ok_or(ConfigError::MissingKey {
            strategy: self.strategy,
            key,
        })
    }
}

const NUMBER: &str = "not a number";
const COUNT: &str = "not a non-negative integer";

impl FromStr for StrategyConfig {
    type Err = ConfigError;

    /// Parses `name[:key=value[,key=value…]]` and validates the ranges.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, list) = s.trim().split_once(':').unwrap_or((s.trim(), ""));
        let name = name.trim();
        let config = match name {
            "fedavg" => {
                Params::parse("fedavg", "", list)?;
                Self::FedAvg
            }
            "fedprox" => {
                let p = Params::parse("fedprox", "mu", list)?;
                Self::FedProx {
                    mu: p.required("mu", NUMBER)?,
                }
            }
            "fedadam" => {
                let p = Params::parse("fedadam", "eta, beta1, beta2, tau", list)?;
                Self::FedAdam {
                    eta: p.get("eta", NUMBER)?.unwrap_or(FedAdam::DEFAULT_ETA),
                    beta1: p.get("beta1", NUMBER)?.unwrap_or(FedAdam::DEFAULT_BETA1),
                    beta2: p.get("beta2", NUMBER)?.unwrap_or(FedAdam::DEFAULT_BETA2),
                    tau: p.get("tau", NUMBER)?.unwrap_or(FedAdam::DEFAULT_TAU),
                }
            }
            "median" => {
                Params::parse("median", "", list)?;
                Self::Median
            }
            "trimmed-mean" => {
                let p = Params::parse("trimmed-mean", "beta", list)?;
                Self::TrimmedMean {
                    beta: p.required("beta", NUMBER)?,
                }
            }
            "krum" => {
                let p = Params::parse("krum", "f", list)?;
                Self::Krum {
                    f: p.required("f", COUNT)?,
                }
            }
            "multi-krum" => {
                let p = Params::parse("multi-krum", "f, m", list)?;
                Self::MultiKrum {
                    f: p.required("f", COUNT)?,
                    m: p.get("m", COUNT)?,
                }
            }
            other => {
                return Err(ConfigError::UnknownStrategy {
                    name: other.to_owned(),
                });
            }
        };
        config.validate()?;
        Ok(config)
    }
}

impl fmt::Display for StrategyConfig {
    /// Writes the command-line form; honours width and alignment (`{:<20}`).
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        let text = match *self {
            Self::FedAvg | Self::Median => name.to_owned(),
            Self::FedProx { mu } => format!("{name}:mu={mu}"),
            Self::FedAdam {
                eta,
                beta1,
                beta2,
                tau,
            } => format!("{name}:eta={eta},beta1={beta1},beta2={beta2},tau={tau}"),
            Self::TrimmedMean { beta } => format!("{name}:beta={beta}"),
            Self::Krum { f } | Self::MultiKrum { f, m: None } => format!("{name}:f={f}"),
            Self::MultiKrum { f, m: Some(m) } => format!("{name}:f={f},m={m}"),
        };
        out.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cli_forms() {
        let cases = [
            ("fedavg", StrategyConfig::FedAvg),
            ("fedprox:mu=0.01", StrategyConfig::FedProx { mu: 0.01 }),
            (
                "fedadam",
                StrategyConfig::FedAdam {
                    eta: 1e-2,
                    beta1: 0.9,
                    beta2: 0.99,
                    tau: 1e-3,
                },
            ),
            (
                "fedadam:eta=0.1, tau=1e-9",
                StrategyConfig::FedAdam {
                    eta: 0.1,
                    beta1: 0.9,
                    beta2: 0.99,
                    tau: 1e-9,
                },
            ),
            ("median", StrategyConfig::Median),
            (
                "trimmed-mean:beta=0.2",
                StrategyConfig::TrimmedMean { beta: 0.2 },
            ),
            ("krum:f=1", StrategyConfig::Krum { f: 1 }),
            (
                "multi-krum:f=1",
                StrategyConfig::MultiKrum { f: 1, m: None },
            ),
            (
                "multi-krum:f=2,m=5",
                StrategyConfig::MultiKrum { f: 2, m: Some(5) },
            ),
            (" median: ", StrategyConfig::Median),
        ];
        for (text, expected) in cases {
            let parsed: StrategyConfig = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed, expected, "{text}");
            // Display writes a form that parses back to the same value.
            assert_eq!(
                parsed.to_string().parse::<StrategyConfig>().unwrap(),
                parsed
            );
            assert_eq!(parsed.build().unwrap().name(), parsed.name());
        }
    }

    #[test]
    fn parse_errors_name_the_key_and_value() {
        let err = |s: &str| s.parse::<StrategyConfig>().unwrap_err();
        let e = err("fedsgd");
        assert!(matches!(&e, ConfigError::UnknownStrategy { name } if name == "fedsgd"));
        assert!(e.to_string().contains("fedsgd") && e.to_string().contains("trimmed-mean"));
        let e = err("fedprox:lambda=0.1");
        assert!(
            matches!(&e, ConfigError::UnknownKey { key, .. } if key == "lambda"),
            "{e}"
        );
        assert!(e.to_string().contains("lambda") && e.to_string().contains("mu"));
        let e = err("fedprox");
        assert_eq!(
            e,
            ConfigError::MissingKey {
                strategy: "fedprox",
                key: "mu"
            }
        );
        let e = err("krum:f=one");
        assert!(
            e.to_string().contains("\"one\"") && e.to_string().contains(" f:"),
            "{e}"
        );
        let e = err("krum:f=-1");
        assert!(matches!(&e, ConfigError::InvalidValue { key: "f", value, .. } if value == "-1"));
        let e = err("trimmed-mean:beta=0.5");
        assert!(
            e.to_string().contains("beta") && e.to_string().contains("0.5"),
            "{e}"
        );
        assert!(matches!(
            err("trimmed-mean:beta=nan"),
            ConfigError::InvalidValue { key: "beta", .. }
        ));
        assert!(matches!(
            err("fedprox:mu=-0.1"),
            ConfigError::InvalidValue { key: "mu", .. }
        ));
        assert!(matches!(
            err("fedadam:beta2=1"),
            ConfigError::InvalidValue { key: "beta2", .. }
        ));
        assert!(matches!(
            err("fedadam:tau=0"),
            ConfigError::InvalidValue { key: "tau", .. }
        ));
        assert!(matches!(
            err("fedadam:eta=inf"),
            ConfigError::InvalidValue { key: "eta", .. }
        ));
        assert!(matches!(
            err("multi-krum:f=1,m=0"),
            ConfigError::InvalidValue { key: "m", .. }
        ));
        assert!(matches!(
            err("krum:f=1,f=2"),
            ConfigError::DuplicateKey { .. }
        ));
        assert!(matches!(err("krum:f"), ConfigError::Malformed { .. }));
        assert!(matches!(
            err("median:beta=0.1"),
            ConfigError::UnknownKey { .. }
        ));
    }

    #[test]
    fn deserializes_tagged_by_name() {
        let c: StrategyConfig =
            serde_json::from_str(r#"{"name":"trimmed-mean","beta":0.1}"#).unwrap();
        assert_eq!(c, StrategyConfig::TrimmedMean { beta: 0.1 });
        let c: StrategyConfig = serde_json::from_str(r#"{"name":"fedavg"}"#).unwrap();
        assert_eq!(c, StrategyConfig::FedAvg);
        let c: StrategyConfig = serde_json::from_str(r#"{"name":"krum","f":2}"#).unwrap();
        assert_eq!(c, StrategyConfig::Krum { f: 2 });
        assert!(serde_json::from_str::<StrategyConfig>(r#"{"name":"krum","f":2,"g":1}"#).is_err());
        assert!(serde_json::from_str::<StrategyConfig>(r#"{"name":"krum"}"#).is_err());
        assert!(serde_json::from_str::<StrategyConfig>(r#"{"name":"sgd"}"#).is_err());
        // Serialisation round trip.
        let c = StrategyConfig::MultiKrum { f: 1, m: Some(2) };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<StrategyConfig>(&json).unwrap(), c);
    }

    #[test]
    fn build_validates_deserialized_values() {
        // serde does not check ranges; build does.
        let c: StrategyConfig =
            serde_json::from_str(r#"{"name":"trimmed-mean","beta":0.7}"#).unwrap();
        assert!(matches!(
            c.build(),
            Err(ConfigError::InvalidValue { key: "beta", .. })
        ));
        let bad = RoundSettings {
            fraction_fit: 0.0,
            ..RoundSettings::default()
        };
        assert!(matches!(
            StrategyConfig::FedAvg.build_with(bad),
            Err(ConfigError::InvalidValue {
                strategy: "round",
                key: "fraction_fit",
                ..
            })
        ));
    }
}
