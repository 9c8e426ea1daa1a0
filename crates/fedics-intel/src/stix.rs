//! Loader for the MITRE ATT&CK for ICS STIX 2.1 bundle.
//!
//! The bundle is a JSON object `{"type": "bundle", "id": ..., "objects": [...]}`, optionally
//! gzip-compressed (detected by the gzip magic bytes `1f 8b`, not by the file extension).
//! [`AttackBundle`] keeps what the platform needs from it:
//!
//! * the **active** techniques (`attack-pattern` objects that are neither `revoked` nor
//!   `x_mitre_deprecated` and carry an ATT&CK id in an `external_references` entry whose
//!   `source_name` is `mitre-attack`), with their tactics (from `kill_chain_phases`, whose
//!   `phase_name` is a tactic's `x_mitre_shortname`), platforms, targeted assets
//!   (`targets` relationships), mitigations (`mitigates` relationships from
//!   `course-of-action`) and detection strategies (`detects` relationships from
//!   `x-mitre-detection-strategy`, with the analytics listed in its `x_mitre_analytic_refs`);
//! * the tactics in matrix order (the `tactic_refs` of the `x-mitre-matrix` object);
//! * which groups (`intrusion-set`), software (`malware`, `tool`) and campaigns use which
//!   techniques (`uses` relationships), from which [`AttackBundle::co_use`] is derived;
//! * the content version (`x_mitre_version` of the `x-mitre-collection` object).
//!
//! Objects of types the loader does not use are ignored. An object of a used type that cannot
//! be read (wrong field types, missing `id` or `name`, an active technique without an ATT&CK
//! id, ...) is skipped and counted ([`AttackBundle::skipped`]); loading never panics on
//! malformed content. When the same STIX id occurs more than once, the version with the
//! latest `modified` timestamp wins.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::IntelError;

/// `kill_chain_name` prefix of ATT&CK kill chains (`mitre-ics-attack`, `mitre-attack`, ...).
const KILL_CHAIN_PREFIX: &str = "mitre-";
/// `source_name` of the external reference that carries an object's ATT&CK id.
const ATTACK_SOURCE: &str = "mitre-attack";

/// A tactic of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TacticDetail {
    /// ATT&CK id, e.g. `TA0102`.
    pub id: String,
    /// STIX id of the `x-mitre-tactic` object.
    pub stix_id: String,
    /// `x_mitre_shortname`, e.g. `discovery` (the `phase_name` techniques refer to).
    pub shortname: String,
    /// Display name, e.g. `Discovery`.
    pub name: String,
    /// Position in the matrix (0 = first column).
    pub order: u8,
}

/// A mitigation (`course-of-action`) of a technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MitigationRef {
    /// ATT&CK id, e.g. `M0930`, when the object carries one.
    pub id: Option<String>,
    /// STIX id of the `course-of-action` object.
    pub stix_id: String,
    pub name: String,
    /// How it mitigates this technique: the `mitigates` relationship's description.
    pub description: String,
}

/// An analytic of a detection strategy (`x-mitre-analytic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticRef {
    /// ATT&CK id, e.g. `AN1881`, when the object carries one.
    pub id: Option<String>,
    pub stix_id: String,
    pub description: String,
    /// Names of the log sources (data components) it reads, deduplicated, in bundle order.
    pub log_sources: Vec<String>,
}

/// A detection strategy (`x-mitre-detection-strategy`) that detects a technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionRef {
    /// ATT&CK id, e.g. `DET0738`, when the object carries one.
    pub id: Option<String>,
    pub stix_id: String,
    pub name: String,
    /// The strategy's description, or the `detects` relationship's when the strategy has none
    /// (may be empty: ATT&CK v18 keeps the detail in the analytics).
    pub description: String,
    /// The strategy's analytics (`x_mitre_analytic_refs` that resolve to an active analytic).
    pub analytics: Vec<AnalyticRef>,
}

/// An active technique with everything the platform shows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechniqueDetail {
    /// ATT&CK id, e.g. `T0846`.
    pub id: String,
    /// STIX id of the `attack-pattern` object.
    pub stix_id: String,
    pub name: String,
    pub description: String,
    /// Tactic ids (`TA01xx`) in matrix order.
    pub tactics: Vec<String>,
    /// `x_mitre_platforms` as given (ATT&CK for ICS v18 mostly says `"None"`; see `assets`).
    pub platforms: Vec<String>,
    /// Names of the assets the technique targets (`targets` relationships), sorted.
    pub assets: Vec<String>,
    /// ATT&CK page of the technique.
    pub url: Option<String>,
    /// Detection strategies that detect it, sorted by id.
    pub detection: Vec<DetectionRef>,
    /// Mitigations, sorted by id.
    pub mitigations: Vec<MitigationRef>,
}

/// A group, software or campaign that uses a technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// STIX id of the user object.
    pub stix_id: String,
    /// STIX type: `intrusion-set`, `malware`, `tool` or `campaign`.
    pub stix_type: String,
    pub name: String,
    /// ATT&CK id (`G0034`, `S0605`, `C0028`), when the object carries one.
    pub attack_id: Option<String>,
    /// `true` when a `uses` relationship of this object names the technique itself; `false`
    /// when a group is credited with it through a campaign `attributed-to` the group.
    pub direct: bool,
}

/// The loaded ATT&CK bundle. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct AttackBundle {
    version: Option<String>,
    techniques: Vec<TechniqueDetail>,
    index: HashMap<String, usize>,
    tactics: Vec<TacticDetail>,
    users: Vec<UserRef>,
    /// Per technique: (user index, direct) pairs, sorted by user index.
    technique_users: Vec<Vec<(usize, bool)>>,
    /// Dense `n x n` co-use counts (`n` = number of techniques); the diagonal is the number of
    /// users of the technique.
    co_use: Vec<u32>,
    skipped: usize,
}

impl AttackBundle {
    /// Loads a bundle file: plain JSON or gzip-compressed JSON (detected by magic bytes).
    pub fn load(path: &Path) -> Result<Self, IntelError> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                IntelError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                IntelError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let bundle = Self::from_slice(&bytes)?;
        tracing::info!(
            path = %path.display(),
            version = bundle.version().unwrap_or("unknown"),
            techniques = bundle.techniques.len(),
            tactics = bundle.tactics.len(),
            skipped = bundle.skipped,
            "loaded ATT&CK bundle"
        );
        Ok(bundle)
    }

    /// Reads a bundle from a reader: plain JSON or gzip-compressed JSON.
    pub fn from_reader(mut r: impl Read) -> Result<Self, IntelError> {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).map_err(IntelError::Io)?;
        Self::from_slice(&bytes)
    }

    /// Parses a bundle from bytes: plain JSON or gzip-compressed JSON.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IntelError> {
        let (json, format) = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::with_capacity(bytes.len().saturating_mul(8));
            MultiGzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(IntelError::Gzip)?;
            (std::borrow::Cow::Owned(out), "gzip-decompressed JSON")
        } else {
            (
                std::borrow::Cow::Borrowed(bytes),
                "JSON (input is not gzip-compressed)",
            )
        };
        let value: Value = serde_json::from_slice(&json).map_err(|e| json_error(&e, format))?;
        Self::from_value(&value)
    }

    /// Builds the bundle from an already parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, IntelError> {
        let Some(top) = value.as_object() else {
            return Err(IntelError::NotABundle(format!(
                "the top-level JSON value is {}, expected an object",
                json_kind(value)
            )));
        };
        match top.get("type") {
            Some(Value::String(t)) if t == "bundle" => {}
            Some(Value::String(t)) => {
                return Err(IntelError::NotABundle(format!(
                    "`type` is \"{t}\", expected \"bundle\""
                )));
            }
            Some(other) => {
                return Err(IntelError::NotABundle(format!(
                    "`type` is {}, expected the string \"bundle\"",
                    json_kind(other)
                )));
            }
            None => return Err(IntelError::NotABundle("missing `type`".into())),
        }
        let objects = match top.get("objects") {
            Some(Value::Array(objects)) => objects,
            Some(other) => {
                return Err(IntelError::NotABundle(format!(
                    "`objects` is {}, expected an array",
                    json_kind(other)
                )));
            }
            None => return Err(IntelError::NotABundle("missing `objects`".into())),
        };
        Ok(Builder::default().build(objects))
    }

    /// `x_mitre_version` of the collection object, e.g. `"18.1"`.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Objects of used types that could not be read and were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Active techniques, sorted by ATT&CK id.
    pub fn techniques(&self) -> impl Iterator<Item = &TechniqueDetail> {
        self.techniques.iter()
    }

    /// Number of active techniques.
    pub fn technique_count(&self) -> usize {
        self.techniques.len()
    }

    /// An active technique by ATT&CK id (`T0846`).
    pub fn technique(&self, id: &str) -> Option<&TechniqueDetail> {
        self.index.get(id).map(|&i| &self.techniques[i])
    }

    /// Tactics in matrix order.
    pub fn tactics(&self) -> &[TacticDetail] {
        &self.tactics
    }

    /// A tactic by ATT&CK id (`TA0102`) or shortname (`discovery`).
    pub fn tactic(&self, id_or_shortname: &str) -> Option<&TacticDetail> {
        self.tactics
            .iter()
            .find(|t| t.id == id_or_shortname || t.shortname == id_or_shortname)
    }

    /// How many distinct users (groups, software, campaigns) use both techniques.
    ///
    /// A user's techniques are those its own `uses` relationships name; a group is in
    /// addition credited with the techniques of every campaign `attributed-to` it (the
    /// campaign is an operation of that group, so the group did use them). Software a group
    /// or campaign uses does *not* pass its techniques on: software is counted as a user of
    /// its own, and its techniques are capabilities that the operator need not have used.
    /// Each user counts at most once per pair. `co_use(a, a)` is the number of users of `a`;
    /// unknown ids give 0. The count is symmetric.
    pub fn co_use(&self, a: &str, b: &str) -> u32 {
        match (self.index.get(a), self.index.get(b)) {
            (Some(&i), Some(&j)) => self.co_use[i * self.techniques.len() + j],
            _ => 0,
        }
    }

    /// Techniques used together with `id` by at least one user, with the count, most shared
    /// first (ties by id). `id` itself is not listed.
    pub fn co_use_neighbours(&self, id: &str) -> Vec<(String, u32)> {
        let Some(&i) = self.index.get(id) else {
            return Vec::new();
        };
        let n = self.techniques.len();
        let mut out: Vec<(String, u32)> = (0..n)
            .filter(|&j| j != i && self.co_use[i * n + j] > 0)
            .map(|j| (self.techniques[j].id.clone(), self.co_use[i * n + j]))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// Groups, software and campaigns that use a technique (see [`co_use`](Self::co_use) for
    /// how campaign attribution is credited), sorted by type, then name.
    pub fn users_of(&self, id: &str) -> Vec<UserRef> {
        let Some(&i) = self.index.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<UserRef> = self.technique_users[i]
            .iter()
            .map(|&(u, direct)| UserRef {
                direct,
                ..self.users[u].clone()
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.stix_type, &a.name, &a.stix_id).cmp(&(&b.stix_type, &b.name, &b.stix_id))
        });
        out
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn json_error(e: &serde_json::Error, format: &'static str) -> IntelError {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    IntelError::Json {
        format,
        line,
        column,
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// Raw objects

#[derive(Debug, Deserialize)]
struct ExternalRef {
    #[serde(default)]
    source_name: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KillChainPhase {
    kill_chain_name: String,
    phase_name: String,
}

#[derive(Debug, Deserialize)]
struct LogSourceRef {
    #[serde(default)]
    name: Option<String>,
}

/// The fields the loader reads, for every used object type (unused fields are ignored).
#[derive(Debug, Deserialize)]
struct RawObject {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    revoked: Option<bool>,
    #[serde(default)]
    x_mitre_deprecated: Option<bool>,
    #[serde(default)]
    external_references: Option<Vec<ExternalRef>>,
    #[serde(default)]
    kill_chain_phases: Option<Vec<KillChainPhase>>,
    #[serde(default)]
    x_mitre_platforms: Option<Vec<String>>,
    #[serde(default)]
    x_mitre_shortname: Option<String>,
    #[serde(default)]
    x_mitre_version: Option<String>,
    #[serde(default)]
    tactic_refs: Option<Vec<String>>,
    #[serde(default)]
    x_mitre_analytic_refs: Option<Vec<String>>,
    #[serde(default)]
    x_mitre_log_source_references: Option<Vec<LogSourceRef>>,
    #[serde(default)]
    relationship_type: Option<String>,
    #[serde(default)]
    source_ref: Option<String>,
    #[serde(default)]
    target_ref: Option<String>,
}

impl RawObject {
    fn active(&self) -> bool {
        !self.revoked.unwrap_or(false) && !self.x_mitre_deprecated.unwrap_or(false)
    }

    fn attack_ref(&self) -> Option<&ExternalRef> {
        self.external_references
            .as_deref()?
            .iter()
            .find(|r| r.source_name.as_deref() == Some(ATTACK_SOURCE) && r.external_id.is_some())
    }

    fn attack_id(&self) -> Option<String> {
        self.attack_ref().and_then(|r| r.external_id.clone())
    }

    fn text(&self) -> String {
        self.description.clone().unwrap_or_default()
    }
}

/// Object types the loader reads; everything else is ignored without being parsed.
const USED_TYPES: &[&str] = &[
    "attack-pattern",
    "x-mitre-tactic",
    "x-mitre-matrix",
    "x-mitre-collection",
    "relationship",
    "course-of-action",
    "x-mitre-detection-strategy",
    "x-mitre-analytic",
    "x-mitre-asset",
    "intrusion-set",
    "malware",
    "tool",
    "campaign",
];

const USER_TYPES: &[&str] = &["intrusion-set", "malware", "tool", "campaign"];

#[derive(Default)]
struct Builder {
    skipped: usize,
}

impl Builder {
    fn build(mut self, objects: &[Value]) -> AttackBundle {
        let raw = self.parse_all(objects);
        let by_id: HashMap<&str, &RawObject> = raw.iter().map(|o| (o.id.as_str(), o)).collect();

        let version = raw
            .iter()
            .filter(|o| o.kind == "x-mitre-collection")
            .find_map(|o| o.x_mitre_version.clone());

        let tactics = self.tactics(&raw, &by_id);
        let tactic_by_short: HashMap<&str, &TacticDetail> =
            tactics.iter().map(|t| (t.shortname.as_str(), t)).collect();

        // Techniques.
        let mut techniques = Vec::new();
        for o in raw
            .iter()
            .filter(|o| o.kind == "attack-pattern" && o.active())
        {
            let (Some(name), Some(attack)) = (o.name.clone(), o.attack_ref()) else {
                self.skipped += 1;
                continue;
            };
            let Some(id) = attack.external_id.clone() else {
                self.skipped += 1;
                continue;
            };
            let mut tacs: Vec<&TacticDetail> = o
                .kill_chain_phases
                .iter()
                .flatten()
                .filter(|p| p.kill_chain_name.starts_with(KILL_CHAIN_PREFIX))
                .filter_map(|p| tactic_by_short.get(p.phase_name.as_str()).copied())
                .collect();
            tacs.sort_by_key(|t| t.order);
            tacs.dedup_by_key(|t| t.order);
            techniques.push(TechniqueDetail {
                id,
                stix_id: o.id.clone(),
                name,
                description: o.text(),
                tactics: tacs.iter().map(|t| t.id.clone()).collect(),
                platforms: o.x_mitre_platforms.clone().unwrap_or_default(),
                assets: Vec::new(),
                url: attack.url.clone(),
                detection: Vec::new(),
                mitigations: Vec::new(),
            });
        }
        techniques.sort_by(|a, b| a.id.cmp(&b.id));
        techniques.dedup_by(|a, b| a.id == b.id);
        let index: HashMap<String, usize> = techniques
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let by_stix: HashMap<String, usize> = techniques
            .iter()
            .enumerate()
            .map(|(i, t)| (t.stix_id.clone(), i))
            .collect();

        // Users (groups, software, campaigns).
        let mut users = Vec::new();
        let mut user_index: HashMap<&str, usize> = HashMap::new();
        for o in raw
            .iter()
            .filter(|o| USER_TYPES.contains(&o.kind.as_str()) && o.active())
        {
            let Some(name) = o.name.clone() else {
                self.skipped += 1;
                continue;
            };
            user_index.insert(o.id.as_str(), users.len());
            users.push(UserRef {
                stix_id: o.id.clone(),
                stix_type: o.kind.clone(),
                name,
                attack_id: o.attack_id(),
                direct: true,
            });
        }

        // Relationships.
        let active_of = |id: &str, kind: &str| -> Option<&RawObject> {
            by_id
                .get(id)
                .copied()
                .filter(|o| o.kind == kind && o.active())
        };
        let mut direct: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); users.len()];
        let mut attributed: Vec<(usize, usize)> = Vec::new(); // (campaign, group)
        for r in raw
            .iter()
            .filter(|o| o.kind == "relationship" && o.active())
        {
            let (Some(rel), Some(src), Some(dst)) = (
                r.relationship_type.as_deref(),
                r.source_ref.as_deref(),
                r.target_ref.as_deref(),
            ) else {
                self.skipped += 1;
                continue;
            };
            match rel {
                "uses" => {
                    if let (Some(&u), Some(&t)) = (user_index.get(src), by_stix.get(dst)) {
                        direct[u].insert(t);
                    }
                }
                "attributed-to" => {
                    if let (Some(&c), Some(&g)) = (user_index.get(src), user_index.get(dst))
                        && users[c].stix_type == "campaign"
                        && users[g].stix_type == "intrusion-set"
                    {
                        attributed.push((c, g));
                    }
                }
                "mitigates" => {
                    if let (Some(m), Some(&t)) =
                        (active_of(src, "course-of-action"), by_stix.get(dst))
                        && let Some(name) = m.name.clone()
                    {
                        techniques[t].mitigations.push(MitigationRef {
                            id: m.attack_id(),
                            stix_id: m.id.clone(),
                            name,
                            description: r.text(),
                        });
                    }
                }
                "detects" => {
                    if let (Some(d), Some(&t)) = (
                        active_of(src, "x-mitre-detection-strategy"),
                        by_stix.get(dst),
                    ) && let Some(name) = d.name.clone()
                    {
                        let description = match d.description.as_deref() {
                            Some(s) if !s.trim().is_empty() => s.to_string(),
                            _ => r.text(),
                        };
                        let analytics = d
                            .x_mitre_analytic_refs
                            .iter()
                            .flatten()
                            .filter_map(|a| active_of(a, "x-mitre-analytic"))
                            .map(analytic)
                            .collect();
                        techniques[t].detection.push(DetectionRef {
                            id: d.attack_id(),
                            stix_id: d.id.clone(),
                            name,
                            description,
                            analytics,
                        });
                    }
                }
                "targets" => {
                    if let (Some(&t), Some(a)) = (by_stix.get(src), active_of(dst, "x-mitre-asset"))
                        && let Some(name) = a.name.clone()
                    {
                        techniques[t].assets.push(name);
                    }
                }
                _ => {}
            }
        }
        for t in &mut techniques {
            t.mitigations
                .sort_by(|a, b| (&a.id, &a.name).cmp(&(&b.id, &b.name)));
            t.mitigations.dedup_by(|a, b| a.stix_id == b.stix_id);
            t.detection
                .sort_by(|a, b| (&a.id, &a.name).cmp(&(&b.id, &b.name)));
            t.detection.dedup_by(|a, b| a.stix_id == b.stix_id);
            t.assets.sort();
            t.assets.dedup();
        }

        // Effective technique sets: direct uses, plus attributed campaigns' for groups.
        let n = techniques.len();
        let mut technique_users: Vec<Vec<(usize, bool)>> = vec![Vec::new(); n];
        let mut effective = direct.clone();
        for &(c, g) in &attributed {
            let inherited: Vec<usize> = direct[c].iter().copied().collect();
            effective[g].extend(inherited);
        }
        let mut co_use = vec![0u32; n * n];
        for (u, set) in effective.iter().enumerate() {
            let ts: Vec<usize> = set.iter().copied().collect();
            for (k, &a) in ts.iter().enumerate() {
                technique_users[a].push((u, direct[u].contains(&a)));
                for &b in &ts[k..] {
                    co_use[a * n + b] += 1;
                    if a != b {
                        co_use[b * n + a] += 1;
                    }
                }
            }
        }

        AttackBundle {
            version,
            techniques,
            index,
            tactics,
            users,
            technique_users,
            co_use,
            skipped: self.skipped,
        }
    }

    /// Reads the objects of used types; keeps the latest `modified` version of each id.
    fn parse_all(&mut self, objects: &[Value]) -> Vec<RawObject> {
        let mut out: Vec<RawObject> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for v in objects {
            let Some(kind) = v.get("type").and_then(Value::as_str) else {
                self.skipped += 1;
                continue;
            };
            if !USED_TYPES.contains(&kind) {
                continue;
            }
            let o = match RawObject::deserialize(v) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(kind, error = %e, "skipping malformed STIX object");
                    self.skipped += 1;
                    continue;
                }
            };
            match seen.get(&o.id) {
                Some(&i) => {
                    if o.modified > out[i].modified {
                        out[i] = o;
                    }
                }
                None => {
                    seen.insert(o.id.clone(), out.len());
                    out.push(o);
                }
            }
        }
        out
    }

    /// Active tactics in the order of the first active matrix's `tactic_refs`; tactics no
    /// matrix lists follow, by id.
    fn tactics(
        &mut self,
        raw: &[RawObject],
        by_id: &HashMap<&str, &RawObject>,
    ) -> Vec<TacticDetail> {
        let mut all: Vec<TacticDetail> = Vec::new();
        for o in raw
            .iter()
            .filter(|o| o.kind == "x-mitre-tactic" && o.active())
        {
            let (Some(id), Some(name), Some(shortname)) =
                (o.attack_id(), o.name.clone(), o.x_mitre_shortname.clone())
            else {
                self.skipped += 1;
                continue;
            };
            all.push(TacticDetail {
                id,
                stix_id: o.id.clone(),
                shortname,
                name,
                order: 0,
            });
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let matrix_order: Vec<&str> = raw
            .iter()
            .filter(|o| o.kind == "x-mitre-matrix" && o.active())
            .find_map(|o| o.tactic_refs.as_ref())
            .map(|refs| {
                refs.iter()
                    .filter(|r| by_id.contains_key(r.as_str()))
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default();
        let rank = |t: &TacticDetail| {
            matrix_order
                .iter()
                .position(|r| *r == t.stix_id)
                .unwrap_or(usize::MAX)
        };
        all.sort_by_key(|t| rank(t)); // stable: unlisted tactics keep id order
        for (i, t) in all.iter_mut().enumerate() {
            t.order = u8::try_from(i).unwrap_or(u8::MAX);
        }
        all
    }
}

fn analytic(a: &RawObject) -> AnalyticRef {
    let mut log_sources: Vec<String> = Vec::new();
    for s in a.x_mitre_log_source_references.iter().flatten() {
        if let Some(name) = &s.name
            && !log_sources.contains(name)
        {
            log_sources.push(name.clone());
        }
    }
    AnalyticRef {
        id: a.attack_id(),
        stix_id: a.id.clone(),
        description: a.text(),
        log_sources,
    }
}
