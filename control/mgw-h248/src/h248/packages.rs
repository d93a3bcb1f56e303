//! The package registry: every H.248 package, property, event, signal and statistic name mgwd
//! understands, in one table.
//!
//! Names that could not be confirmed from public material are marked `verified: false`; fixing
//! one is a one-line change here. In particular the identifiers of the TCP package of H.248.89
//! and the TLS/DTLS packages of H.248.90/H.248.93 are not public: the names below are plausible
//! placeholders chosen for mgwd and the MGC must be provisioned with the same names.

/// One named item of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Item name as written after `package/`.
    pub name: &'static str,
    /// What it is.
    pub kind: ItemKind,
    /// True if the name was checked against the published Recommendation.
    pub verified: bool,
    /// For properties: the values accepted (empty = any value).
    pub values: &'static [&'static str],
}

/// Item kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A property (LocalControl / TerminationState / root).
    Property,
    /// An event (Events / ObservedEvents).
    Event,
    /// A signal.
    Signal,
    /// A statistic.
    Statistic,
}

/// A package definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// Text name.
    pub name: &'static str,
    /// Binary package ID (H.248 Annex / IANA registry), if known.
    pub id: Option<u16>,
    /// Version we implement.
    pub version: u16,
    /// Defining Recommendation.
    pub spec: &'static str,
    /// True if the package name and ID were checked against public material.
    pub verified: bool,
    /// Its items.
    pub items: &'static [Item],
}

const fn p(name: &'static str, verified: bool, values: &'static [&'static str]) -> Item {
    Item {
        name,
        kind: ItemKind::Property,
        verified,
        values,
    }
}
const fn e(name: &'static str, verified: bool) -> Item {
    Item {
        name,
        kind: ItemKind::Event,
        verified,
        values: &[],
    }
}
const fn s(name: &'static str, verified: bool) -> Item {
    Item {
        name,
        kind: ItemKind::Signal,
        verified,
        values: &[],
    }
}
const fn st(name: &'static str, verified: bool) -> Item {
    Item {
        name,
        kind: ItemKind::Statistic,
        verified,
        values: &[],
    }
}

const ON_OFF: &[&str] = &["ON", "OFF", "TRUE", "FALSE"];

/// Every package mgwd understands.
pub const PACKAGES: &[Package] = &[
    Package {
        name: "g",
        id: Some(0x0001),
        version: 1,
        spec: "H.248.1 Annex E.1 (generic)",
        verified: true,
        items: &[e("cause", true), e("sc", true)],
    },
    Package {
        name: "root",
        id: Some(0x0002),
        version: 2,
        spec: "H.248.1 Annex E.2 (base root)",
        verified: true,
        items: &[
            p("maxNumberOfContexts", true, &[]),
            p("maxTerminationsPerContext", true, &[]),
            p("normalMGExecutionTime", true, &[]),
            p("normalMGCExecutionTime", true, &[]),
            p("MGProvisionalResponseTimerValue", true, &[]),
            p("MGCProvisionalResponseTimerValue", true, &[]),
        ],
    },
    Package {
        name: "nt",
        id: Some(0x000b),
        version: 1,
        spec: "H.248.1 Annex E.11 (network)",
        verified: true,
        items: &[
            p("jit", true, &[]),
            e("netfail", true),
            e("qualert", true),
            st("dur", true),
            st("os", true),
            st("or", true),
        ],
    },
    Package {
        name: "it",
        id: Some(0x0045),
        version: 1,
        spec: "H.248.14 (inactivity timer)",
        verified: true,
        items: &[e("ito", true)],
    },
    Package {
        name: "ipnapt",
        id: Some(0x0099),
        version: 1,
        spec: "H.248.37 (IP NAPT traversal)",
        verified: true,
        items: &[
            p("latch", true, ON_OFF),
            // Relatching and latch statistics exist in later versions; names unconfirmed.
            p("relatch", false, ON_OFF),
            st("dlp", false),
        ],
    },
    Package {
        name: "ipdc",
        id: Some(0x009d),
        version: 1,
        spec: "H.248.41 (IP domain connection)",
        verified: true,
        items: &[p("realm", true, &[])],
    },
    Package {
        name: "gm",
        id: Some(0x008c),
        version: 1,
        spec: "H.248.43 / ETSI TS 102 333 (gate management)",
        verified: true,
        items: &[
            p("saf", true, ON_OFF),
            p("sam", true, &[]),
            p("spf", true, ON_OFF),
            p("spr", true, &[]),
            p("esas", true, &[]),
            p("esps", true, &[]),
            // RTP-specific behaviour; named in the design notes, not confirmed.
            p("rsb", false, ON_OFF),
        ],
    },
    Package {
        name: "msrps",
        id: Some(0x00ea),
        version: 1,
        spec: "H.248.69 (MSRP statistics)",
        verified: false,
        items: &[
            st("ms", false),
            st("mr", false),
            st("os", false),
            st("or", false),
        ],
    },
    Package {
        name: "tcp",
        id: None,
        version: 1,
        spec: "H.248.89 (TCP basic connection control)",
        verified: false,
        items: &[
            // Establishment: immediate (default) or delayed until the `est` signal.
            p("estab", false, &["immediate", "delayed"]),
            // Handling mode (TR 29.828 §4.4): stateless, state-aware, or state-aware with
            // changed setup direction ("merge").
            p("mode", false, &["stateless", "stateaware", "merge"]),
            s("est", false),
            s("rel", false),
            e("ef", false),
            e("pc", false),
            st("retx", false),
        ],
    },
    Package {
        name: "tls",
        id: None,
        version: 1,
        spec: "H.248.90 (TLS basic session control)",
        verified: false,
        items: &[
            p("auto", false, ON_OFF),
            s("es", false),
            s("rel", false),
            e("ef", false),
            e("sr", false),
            st("os", false),
            st("or", false),
        ],
    },
    Package {
        name: "dtls",
        id: None,
        version: 1,
        spec: "H.248.93 (DTLS over L4)",
        verified: false,
        items: &[s("es", false), e("ef", false), e("sr", false)],
    },
];

/// Why a name was refused, with the H.248.8 error code to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// 440 Unsupported or unknown package.
    UnknownPackage,
    /// 445 Unsupported or unknown property (or event/signal/statistic; H.248.8 451–453 are the
    /// finer codes).
    UnknownItem,
    /// 449 Unsupported parameter or property value.
    BadValue,
}

impl NameError {
    /// The H.248.8 error code.
    pub fn code(self, kind: ItemKind) -> u16 {
        match (self, kind) {
            (NameError::UnknownPackage, _) => 440,
            (NameError::UnknownItem, ItemKind::Property) => 445,
            (NameError::UnknownItem, ItemKind::Event) => 451,
            (NameError::UnknownItem, ItemKind::Signal) => 452,
            (NameError::UnknownItem, ItemKind::Statistic) => 453,
            (NameError::BadValue, _) => 449,
        }
    }
}

/// Look a package up by name (case-insensitive).
pub fn package(name: &str) -> Option<&'static Package> {
    PACKAGES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Check `package/item` of the given kind; `*` matches any item of a known package.
///
/// # Errors
/// [`NameError::UnknownPackage`] or [`NameError::UnknownItem`].
pub fn lookup(pkgd_name: &str, kind: ItemKind) -> Result<Option<&'static Item>, NameError> {
    let (pkg, item) = pkgd_name.split_once('/').ok_or(NameError::UnknownPackage)?;
    let p = package(pkg).ok_or(NameError::UnknownPackage)?;
    if item == "*" {
        return Ok(None);
    }
    p.items
        .iter()
        .find(|i| i.kind == kind && i.name.eq_ignore_ascii_case(item))
        .map(Some)
        .ok_or(NameError::UnknownItem)
}

/// Check a property and its value.
///
/// # Errors
/// [`NameError`] for an unknown package or property, or a value outside the allowed set.
pub fn check_property(pkgd_name: &str, value: &str) -> Result<(), NameError> {
    let Some(item) = lookup(pkgd_name, ItemKind::Property)? else {
        return Ok(());
    };
    if item.values.is_empty() || item.values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
        Ok(())
    } else {
        Err(NameError::BadValue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in PACKAGES.iter().enumerate() {
            for b in &PACKAGES[i + 1..] {
                assert_ne!(a.name, b.name);
                if a.id.is_some() {
                    assert_ne!(a.id, b.id);
                }
            }
            for (j, x) in a.items.iter().enumerate() {
                for y in &a.items[j + 1..] {
                    assert!(
                        x.name != y.name || x.kind != y.kind,
                        "{}/{}",
                        a.name,
                        x.name
                    );
                }
            }
        }
    }

    #[test]
    fn h248_89_90_93_names_are_marked_unverified() {
        for n in ["tcp", "tls", "dtls"] {
            let p = package(n).unwrap();
            assert!(!p.verified);
            assert!(p.items.iter().all(|i| !i.verified));
        }
        assert!(package("ipdc").unwrap().verified);
    }

    #[test]
    fn lookups_give_the_right_codes() {
        assert!(lookup("nt/os", ItemKind::Statistic).unwrap().is_some());
        assert_eq!(
            lookup("foo/bar", ItemKind::Event)
                .unwrap_err()
                .code(ItemKind::Event),
            440
        );
        assert_eq!(
            lookup("nt/zz", ItemKind::Property)
                .unwrap_err()
                .code(ItemKind::Property),
            445
        );
        assert_eq!(check_property("ipnapt/latch", "ON"), Ok(()));
        assert_eq!(
            check_property("ipnapt/latch", "maybe"),
            Err(NameError::BadValue)
        );
        assert_eq!(check_property("ipdc/realm", "anything"), Ok(()));
    }
}
