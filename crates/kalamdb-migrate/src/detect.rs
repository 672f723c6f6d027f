//! Which generation a directory holds: G1, G2, the original engine's G3, or a marked format.

use serde::Serialize;

use super::image::{COUNTERS_CF, G1_COLUMN_FAMILIES, Image};

/// A directory's on-disk generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// CatalogStore column families `system_table:*` and `conf/` JSON files.
    G1,
    /// CatalogStore keys in the `system_*` column families.
    G2,
    /// The kalamdb-sql layout written by the original engine, without a format marker.
    G3,
    /// Format 1: marked, without the cold-tier manifest of format 2.
    #[serde(rename = "format1")]
    Format1,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::G1 => "g1",
            Generation::G2 => "g2",
            Generation::G3 => "g3",
            Generation::Format1 => "format1",
        }
    }

    pub fn parse(s: &str) -> Option<Generation> {
        match s {
            "g1" => Some(Generation::G1),
            "g2" => Some(Generation::G2),
            "g3" => Some(Generation::G3),
            // Descriptors name a marked format by its number.
            "format1" | "1" => Some(Generation::Format1),
            _ => None,
        }
    }
}

/// Why a directory's generation cannot be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrecognised {
    /// Evidence of more than one generation, with what was seen.
    Mixed(Vec<String>),
    /// Nothing a KalamDB catalog would hold.
    Unknown(String),
}

/// Tells the generation from the catalog's column families and key prefixes.
pub fn detect(image: &Image) -> Result<Generation, Unrecognised> {
    let mut g1 = Vec::new();
    let mut g2 = Vec::new();
    let mut g3 = Vec::new();
    for (cf, _) in G1_COLUMN_FAMILIES {
        if image.all_cfs.contains(cf) {
            g1.push(format!("column family {cf}"));
        }
    }
    if image.conf.is_some() {
        g1.push("the conf/ folder".to_string());
    }
    let mut keyed = |cf: &str, g3_prefix: &str, g2_prefix: Option<&str>| {
        for key in image.records(cf).keys() {
            if key.starts_with(g3_prefix) {
                g3.push(format!("{cf} key {key}"));
            } else if g2_prefix.is_none_or(|p| key.starts_with(p)) {
                g2.push(format!("{cf} key {key}"));
            }
            // One key of each kind tells enough.
            if !g2.is_empty() && !g3.is_empty() {
                break;
            }
        }
    };
    keyed("system_users", "user:", None);
    keyed("system_storage_locations", "loc:", Some("location:"));
    keyed("system_live_queries", "lq:", None);

    let kinds: Vec<(&str, &Vec<String>)> = [("G1", &g1), ("G2", &g2), ("G3", &g3)]
        .into_iter()
        .filter(|(_, e)| !e.is_empty())
        .collect();
    if kinds.len() > 1 {
        return Err(Unrecognised::Mixed(
            kinds
                .iter()
                .map(|(g, e)| format!("{g} ({})", e[0]))
                .collect(),
        ));
    }
    if !g1.is_empty() {
        return Ok(Generation::G1);
    }
    if !g2.is_empty() {
        return Ok(Generation::G2);
    }
    if !g3.is_empty() {
        return Ok(Generation::G3);
    }
    // No user, location or live-query record tells G2 from G3: G2 added a counters column
    // family that G3 directories written fresh may lack. Both take the same steps from here.
    let system = kalamdb_sql::SYSTEM_COLUMN_FAMILIES
        .iter()
        .any(|cf| image.all_cfs.contains(*cf));
    if system && image.all_cfs.contains(COUNTERS_CF) {
        Ok(Generation::G2)
    } else if system {
        Ok(Generation::G3)
    } else {
        Err(Unrecognised::Unknown(if image.data.is_empty() {
            "it has no KalamDB catalog column families (system_table:* or system_*)".to_string()
        } else {
            format!(
                "it has {} data column families but no catalog column families (system_table:* or system_*)",
                image.data.len()
            )
        }))
    }
}
