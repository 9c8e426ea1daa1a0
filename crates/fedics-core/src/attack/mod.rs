//! ATT&CK for ICS techniques and tactics as plain data.

mod table;

pub use table::{TACTICS, TECHNIQUES};

/// An ICS tactic; `order` is its position in the ATT&CK for ICS matrix (0 = Initial Access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tactic {
    pub id: &'static str,
    pub shortname: &'static str,
    pub name: &'static str,
    pub order: u8,
}

/// An active ICS technique with the tactics it serves, in matrix order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TechniqueInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub tactics: &'static [&'static str],
}

impl TechniqueInfo {
    /// Matrix orders of this technique's tactics (ascending).
    pub fn tactic_orders(&self) -> impl Iterator<Item = u8> + '_ {
        self.tactics
            .iter()
            .filter_map(|t| tactic(t).map(|t| t.order))
    }

    /// The earliest kill-chain position of this technique.
    pub fn min_order(&self) -> u8 {
        self.tactic_orders().min().unwrap_or(0)
    }
}

/// Looks up an active technique by id (e.g. `"T0846"`).
pub fn technique(id: &str) -> Option<&'static TechniqueInfo> {
    TECHNIQUES.iter().find(|t| t.id == id)
}

/// Looks up a tactic by id (e.g. `"TA0102"`) or shortname (e.g. `"discovery"`).
pub fn tactic(id_or_short: &str) -> Option<&'static Tactic> {
    TACTICS
        .iter()
        .find(|t| t.id == id_or_short || t.shortname == id_or_short)
}

/// Name of a technique id, or the id itself when it is not in the table.
pub fn technique_name(id: &str) -> &str {
    technique(id).map(|t| t.name).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_published_counts() {
        assert_eq!(TACTICS.len(), 12);
        assert_eq!(TECHNIQUES.len(), 83);
        assert_eq!(
            technique("T0846").map(|t| t.name),
            Some("Remote System Discovery")
        );
        assert_eq!(tactic("TA0105").map(|t| t.order), Some(11));
        let spoof = technique("T0856").expect("T0856 present");
        assert_eq!(spoof.tactic_orders().collect::<Vec<_>>(), vec![4, 10]);
        assert!(technique("T0999").is_none());
    }

    #[test]
    fn every_technique_tactic_resolves() {
        for t in TECHNIQUES {
            assert!(!t.tactics.is_empty());
            for ta in t.tactics {
                assert!(tactic(ta).is_some(), "{} has unknown tactic {ta}", t.id);
            }
        }
    }
}
