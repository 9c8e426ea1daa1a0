//! Compact ATT&CK for ICS v18.1 table: the active techniques and the tactics,
//! written from MITRE's published facts (technique ids, names, tactics in matrix order).
//! ATT&CK® is a registered trademark of The MITRE Corporation; the full bundle and its
//! licence are loaded from a user-given path by `fedics-intel`.

use super::{Tactic, TechniqueInfo};

/// The twelve ICS tactics in matrix order (index = kill-chain order).
pub static TACTICS: &[Tactic] = &[
    Tactic {
        id: "TA0108",
        shortname: "initial-access",
        name: "Initial Access",
        order: 0,
    },
    Tactic {
        id: "TA0104",
        shortname: "execution",
        name: "Execution",
        order: 1,
    },
    Tactic {
        id: "TA0110",
        shortname: "persistence",
        name: "Persistence",
        order: 2,
    },
    Tactic {
        id: "TA0111",
        shortname: "privilege-escalation",
        name: "Privilege Escalation",
        order: 3,
    },
    Tactic {
        id: "TA0103",
        shortname: "evasion",
        name: "Evasion",
        order: 4,
    },
    Tactic {
        id: "TA0102",
        shortname: "discovery",
        name: "Discovery",
        order: 5,
    },
    Tactic {
        id: "TA0109",
        shortname: "lateral-movement",
        name: "Lateral Movement",
        order: 6,
    },
    Tactic {
        id: "TA0100",
        shortname: "collection",
        name: "Collection",
        order: 7,
    },
    Tactic {
        id: "TA0101",
        shortname: "command-and-control",
        name: "Command and Control",
        order: 8,
    },
    Tactic {
        id: "TA0107",
        shortname: "inhibit-response-function",
        name: "Inhibit Response Function",
        order: 9,
    },
    Tactic {
        id: "TA0106",
        shortname: "impair-process-control",
        name: "Impair Process Control",
        order: 10,
    },
    Tactic {
        id: "TA0105",
        shortname: "impact",
        name: "Impact",
        order: 11,
    },
];

/// The 83 active (not deprecated, not revoked) techniques of ATT&CK for ICS v18.1.
pub static TECHNIQUES: &[TechniqueInfo] = &[
    TechniqueInfo {
        id: "T0800",
        name: "Activate Firmware Update Mode",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0801",
        name: "Monitor Process State",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0802",
        name: "Automated Collection",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0803",
        name: "Block Command Message",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0804",
        name: "Block Reporting Message",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0805",
        name: "Block Serial COM",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0806",
        name: "Brute Force I/O",
        tactics: &["TA0106"],
    },
    TechniqueInfo {
        id: "T0807",
        name: "Command-Line Interface",
        tactics: &["TA0104"],
    },
    TechniqueInfo {
        id: "T0809",
        name: "Data Destruction",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0811",
        name: "Data from Information Repositories",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0812",
        name: "Default Credentials",
        tactics: &["TA0109"],
    },
    TechniqueInfo {
        id: "T0813",
        name: "Denial of Control",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0814",
        name: "Denial of Service",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0815",
        name: "Denial of View",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0816",
        name: "Device Restart/Shutdown",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0817",
        name: "Drive-by Compromise",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0819",
        name: "Exploit Public-Facing Application",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0820",
        name: "Exploitation for Evasion",
        tactics: &["TA0103"],
    },
    TechniqueInfo {
        id: "T0821",
        name: "Modify Controller Tasking",
        tactics: &["TA0104"],
    },
    TechniqueInfo {
        id: "T0822",
        name: "External Remote Services",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0823",
        name: "Graphical User Interface",
        tactics: &["TA0104"],
    },
    TechniqueInfo {
        id: "T0826",
        name: "Loss of Availability",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0827",
        name: "Loss of Control",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0828",
        name: "Loss of Productivity and Revenue",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0829",
        name: "Loss of View",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0830",
        name: "Adversary-in-the-Middle",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0831",
        name: "Manipulation of Control",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0832",
        name: "Manipulation of View",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0834",
        name: "Native API",
        tactics: &["TA0104"],
    },
    TechniqueInfo {
        id: "T0835",
        name: "Manipulate I/O Image",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0836",
        name: "Modify Parameter",
        tactics: &["TA0106"],
    },
    TechniqueInfo {
        id: "T0837",
        name: "Loss of Protection",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0838",
        name: "Modify Alarm Settings",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0839",
        name: "Module Firmware",
        tactics: &["TA0110", "TA0106"],
    },
    TechniqueInfo {
        id: "T0840",
        name: "Network Connection Enumeration",
        tactics: &["TA0102"],
    },
    TechniqueInfo {
        id: "T0842",
        name: "Network Sniffing",
        tactics: &["TA0102"],
    },
    TechniqueInfo {
        id: "T0843",
        name: "Program Download",
        tactics: &["TA0109"],
    },
    TechniqueInfo {
        id: "T0845",
        name: "Program Upload",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0846",
        name: "Remote System Discovery",
        tactics: &["TA0102"],
    },
    TechniqueInfo {
        id: "T0847",
        name: "Replication Through Removable Media",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0848",
        name: "Rogue Master",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0849",
        name: "Masquerading",
        tactics: &["TA0103"],
    },
    TechniqueInfo {
        id: "T0851",
        name: "Rootkit",
        tactics: &["TA0103", "TA0107"],
    },
    TechniqueInfo {
        id: "T0852",
        name: "Screen Capture",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0853",
        name: "Scripting",
        tactics: &["TA0104"],
    },
    TechniqueInfo {
        id: "T0855",
        name: "Unauthorized Command Message",
        tactics: &["TA0106"],
    },
    TechniqueInfo {
        id: "T0856",
        name: "Spoof Reporting Message",
        tactics: &["TA0103", "TA0106"],
    },
    TechniqueInfo {
        id: "T0857",
        name: "System Firmware",
        tactics: &["TA0110", "TA0107"],
    },
    TechniqueInfo {
        id: "T0858",
        name: "Change Operating Mode",
        tactics: &["TA0104", "TA0103"],
    },
    TechniqueInfo {
        id: "T0859",
        name: "Valid Accounts",
        tactics: &["TA0110", "TA0109"],
    },
    TechniqueInfo {
        id: "T0860",
        name: "Wireless Compromise",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0861",
        name: "Point & Tag Identification",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0862",
        name: "Supply Chain Compromise",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0863",
        name: "User Execution",
        tactics: &["TA0104"],
    },
    TechniqueInfo {
        id: "T0864",
        name: "Transient Cyber Asset",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0865",
        name: "Spearphishing Attachment",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0866",
        name: "Exploitation of Remote Services",
        tactics: &["TA0108", "TA0109"],
    },
    TechniqueInfo {
        id: "T0867",
        name: "Lateral Tool Transfer",
        tactics: &["TA0109"],
    },
    TechniqueInfo {
        id: "T0868",
        name: "Detect Operating Mode",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0869",
        name: "Standard Application Layer Protocol",
        tactics: &["TA0101"],
    },
    TechniqueInfo {
        id: "T0871",
        name: "Execution through API",
        tactics: &["TA0104"],
    },
    TechniqueInfo {
        id: "T0872",
        name: "Indicator Removal on Host",
        tactics: &["TA0103"],
    },
    TechniqueInfo {
        id: "T0873",
        name: "Project File Infection",
        tactics: &["TA0110"],
    },
    TechniqueInfo {
        id: "T0874",
        name: "Hooking",
        tactics: &["TA0104", "TA0111"],
    },
    TechniqueInfo {
        id: "T0877",
        name: "I/O Image",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0878",
        name: "Alarm Suppression",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0879",
        name: "Damage to Property",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0880",
        name: "Loss of Safety",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0881",
        name: "Service Stop",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0882",
        name: "Theft of Operational Information",
        tactics: &["TA0105"],
    },
    TechniqueInfo {
        id: "T0883",
        name: "Internet Accessible Device",
        tactics: &["TA0108"],
    },
    TechniqueInfo {
        id: "T0884",
        name: "Connection Proxy",
        tactics: &["TA0101"],
    },
    TechniqueInfo {
        id: "T0885",
        name: "Commonly Used Port",
        tactics: &["TA0101"],
    },
    TechniqueInfo {
        id: "T0886",
        name: "Remote Services",
        tactics: &["TA0108", "TA0109"],
    },
    TechniqueInfo {
        id: "T0887",
        name: "Wireless Sniffing",
        tactics: &["TA0102", "TA0100"],
    },
    TechniqueInfo {
        id: "T0888",
        name: "Remote System Information Discovery",
        tactics: &["TA0102"],
    },
    TechniqueInfo {
        id: "T0889",
        name: "Modify Program",
        tactics: &["TA0110"],
    },
    TechniqueInfo {
        id: "T0890",
        name: "Exploitation for Privilege Escalation",
        tactics: &["TA0111"],
    },
    TechniqueInfo {
        id: "T0891",
        name: "Hardcoded Credentials",
        tactics: &["TA0110", "TA0109"],
    },
    TechniqueInfo {
        id: "T0892",
        name: "Change Credential",
        tactics: &["TA0107"],
    },
    TechniqueInfo {
        id: "T0893",
        name: "Data from Local System",
        tactics: &["TA0100"],
    },
    TechniqueInfo {
        id: "T0894",
        name: "System Binary Proxy Execution",
        tactics: &["TA0103"],
    },
    TechniqueInfo {
        id: "T0895",
        name: "Autorun Image",
        tactics: &["TA0104"],
    },
];
