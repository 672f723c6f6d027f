//! Catalog checks: unreadable system records, tables against their column families and
//! namespaces, schema versions, storage locations and the two counts.

use std::collections::{BTreeMap, BTreeSet};

use kalamdb_sql::{InvalidRecord, JobRecord, LiveQueryRecord, SchemaJson, TableRecord};
use kalamdb_store::{TableCf, TableKind};

use super::{Code, Scan};
use kalamdb_core::Result;
use kalamdb_core::catalog::TableDef;
use kalamdb_core::jobs::job_type;

/// A table as the catalog records it, with what the later checks need.
pub(crate) struct KnownTable {
    pub record: TableRecord,
    pub kind: TableKind,
    /// The current schema joined with the row, when both are readable.
    pub def: Option<TableDef>,
    /// Every readable schema version.
    pub versions: Vec<SchemaJson>,
    /// Whether its storage location exists (or it names a path template).
    pub location_ok: bool,
}

impl KnownTable {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.record.namespace, self.record.table_name)
    }
    pub fn cf(&self) -> String {
        TableCf::new(self.kind, &self.record.namespace, &self.record.table_name).name()
    }
}

/// What the catalog holds, for the data and cold checks.
pub(crate) struct CatalogView {
    pub tables: Vec<KnownTable>,
    /// `ns.table` of tables an unfinished deletion job is removing: their leftovers are the
    /// job's to remove, not findings.
    pub being_dropped: BTreeSet<String>,
    /// The readable job and live-query rows, for the state checks.
    pub jobs: Vec<JobRecord>,
    pub live_queries: Vec<LiveQueryRecord>,
}

pub(crate) use kalamdb_core::catalog::location_of;

pub(crate) fn check(scan: &mut Scan<'_>) -> Result<CatalogView> {
    let sql = scan.engine.sql().clone();
    let (namespaces, bad) = sql.namespaces().scan_lenient()?;
    invalid(scan, bad);
    let (locations, bad) = sql.storage_locations().scan_lenient()?;
    invalid(scan, bad);
    let (records, bad) = sql.tables().scan_lenient()?;
    invalid(scan, bad);
    let (schemas, bad) = sql.table_schemas().scan_lenient()?;
    invalid(scan, bad);
    let (jobs, bad) = sql.jobs().scan_lenient()?;
    invalid(scan, bad);
    invalid(scan, sql.users().scan_lenient()?.1);
    let (live_queries, bad) = sql.live_queries().scan_lenient()?;
    invalid(scan, bad);

    let being_dropped: BTreeSet<String> = jobs
        .iter()
        .filter(|j| j.job_type == job_type::TABLE_DELETION && !j.status.is_terminal())
        .map(|j| j.table_name.clone())
        .collect();
    let mut by_table: BTreeMap<&str, Vec<&kalamdb_sql::TableSchemaRecord>> = BTreeMap::new();
    for s in &schemas {
        by_table.entry(s.table_id.as_str()).or_default().push(s);
    }
    let ns_names: BTreeSet<&str> = namespaces.iter().map(|n| n.namespace_id.as_str()).collect();
    let cfs: BTreeSet<String> = scan
        .engine
        .storage()
        .column_families()?
        .into_iter()
        .collect();

    let mut tables = Vec::new();
    for record in records {
        let Some(kind) = record.table_type.kind() else {
            continue;
        };
        let versions = by_table
            .get(record.table_id.as_str())
            .cloned()
            .unwrap_or_default();
        let t = check_table(scan, record, kind, &versions, &ns_names, &cfs, &locations);
        tables.push(t);
    }

    // Data column families of no table.
    let known: BTreeSet<String> = tables.iter().map(KnownTable::cf).collect();
    for cf in &cfs {
        let Some(parsed) = TableCf::parse(cf) else {
            continue;
        };
        let qualified = format!("{}.{}", parsed.namespace, parsed.table);
        if known.contains(cf) || being_dropped.contains(&qualified) {
            continue;
        }
        if scan.engine.storage().is_cf_empty(cf)? {
            scan.report(
                Code::EmptyDataWithoutTable,
                cf.as_str(),
                format!("column family {cf} is empty and no table in system.tables owns it"),
            );
        } else {
            scan.report(
                Code::DataWithoutTable,
                cf.as_str(),
                format!("column family {cf} holds rows but no table in system.tables owns it"),
            );
        }
    }

    // The counts.
    let records: Vec<&TableRecord> = tables.iter().map(|t| &t.record).collect();
    for ns in &namespaces {
        let real = count_where(&records, |t| &t.namespace, &ns.namespace_id);
        let what = ("namespace", "table_count", "are in it");
        check_count(
            scan,
            Code::TableCountMismatch,
            &ns.namespace_id,
            what,
            ns.table_count,
            real,
        );
    }
    for loc in &locations {
        let real = count_where(&records, location_of, &loc.location_name);
        let what = ("storage location", "usage_count", "use it");
        check_count(
            scan,
            Code::UsageCountMismatch,
            &loc.location_name,
            what,
            loc.usage_count,
            real,
        );
    }
    scan.summary.tables = tables.len() as u64;
    Ok(CatalogView {
        tables,
        being_dropped,
        jobs,
        live_queries,
    })
}

/// How many of `tables` `key` maps to `value`: a namespace's tables, a location's users.
pub(crate) fn count_where(
    tables: &[&TableRecord],
    key: impl Fn(&TableRecord) -> &str,
    value: &str,
) -> u64 {
    tables.iter().filter(|t| key(t) == value).count() as u64
}

/// Reports a recorded count that differs from the real one. `what` is (the object's kind,
/// the field, how its tables relate to it).
fn check_count(
    scan: &mut Scan<'_>,
    code: Code,
    object: &str,
    what: (&str, &str, &str),
    recorded: u64,
    real: u64,
) {
    if recorded != real {
        let (kind, field, relation) = what;
        scan.report(
            code,
            object,
            format!("{kind} {object} records {field} {recorded}, but {real} table(s) {relation}"),
        );
    }
}

fn invalid(scan: &mut Scan<'_>, records: Vec<InvalidRecord>) {
    for r in records {
        scan.report(
            Code::RecordInvalid,
            format!("{}:{}", r.cf, r.key),
            format!("{} record {} cannot be read: {}", r.cf, r.key, r.reason),
        );
    }
}

fn check_table(
    scan: &mut Scan<'_>,
    record: TableRecord,
    kind: TableKind,
    versions: &[&kalamdb_sql::TableSchemaRecord],
    namespaces: &BTreeSet<&str>,
    cfs: &BTreeSet<String>,
    locations: &[kalamdb_sql::StorageLocationRecord],
) -> KnownTable {
    let mut t = KnownTable {
        record,
        kind,
        def: None,
        versions: Vec::new(),
        location_ok: true,
    };
    let name = t.qualified();
    if !namespaces.contains(t.record.namespace.as_str()) {
        scan.report(
            Code::NamespaceMissing,
            name.as_str(),
            format!(
                "table {name} is in namespace {}, which does not exist",
                t.record.namespace
            ),
        );
    }
    if !cfs.contains(&t.cf()) {
        scan.report(
            Code::TableWithoutData,
            name.as_str(),
            format!("table {name} has no data column family {}", t.cf()),
        );
    }
    let location = location_of(&t.record);
    let unresolved = locations
        .iter()
        .find(|l| l.location_name == location)
        .and_then(|l| scan.engine.catalog().unresolved_location(l));
    if let Some(why) = unresolved {
        t.location_ok = false;
        scan.report(
            Code::LocationUnreachable,
            name.as_str(),
            format!("table {name}: {why}"),
        );
    }
    if !location.contains('/') && !locations.iter().any(|l| l.location_name == location) {
        t.location_ok = false;
        scan.report(
            Code::LocationMissing,
            name.as_str(),
            format!("table {name} uses storage location '{location}', which does not exist"),
        );
    }

    // Versions 1..=N without gaps, the current one included.
    let present: BTreeSet<u32> = versions.iter().map(|s| s.version).collect();
    let top = present
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(t.record.schema_version);
    let missing: Vec<String> = (1..=top)
        .filter(|v| !present.contains(v))
        .map(|v| v.to_string())
        .collect();
    if !missing.is_empty() {
        scan.report(
            Code::SchemaMissing,
            name.as_str(),
            format!(
                "table {name} (current schema version {}) lacks schema version(s) {}",
                t.record.schema_version,
                missing.join(", ")
            ),
        );
    }
    for s in versions {
        match s.schema() {
            Ok(json) => {
                let has = |c: &str| json.fields.iter().any(|f| f.name == c);
                let (updated, deleted) = (has(kalamdb_store::UPDATED), has(kalamdb_store::DELETED));
                let wrong = match kind {
                    TableKind::Stream => updated || deleted,
                    _ => !(updated && deleted),
                };
                if wrong {
                    let expect = if kind == TableKind::Stream {
                        "must not carry _updated or _deleted"
                    } else {
                        "must carry _updated and _deleted"
                    };
                    scan.report(
                        Code::SchemaSystemColumns,
                        format!("{name} v{}", s.version),
                        format!(
                            "schema version {} of {kind} table {name} {expect}",
                            s.version
                        ),
                    );
                }
                if s.version == t.record.schema_version {
                    match TableDef::from_records(t.record.clone(), s) {
                        Ok(def) => t.def = Some(def),
                        Err(e) => scan.report(
                            Code::SchemaUnparseable,
                            format!("{name} v{}", s.version),
                            e.to_string(),
                        ),
                    }
                }
                t.versions.push(json);
            }
            Err(e) => scan.report(
                Code::SchemaUnparseable,
                format!("{name} v{}", s.version),
                format!(
                    "schema version {} of {name} is not a valid schema: {e}",
                    s.version
                ),
            ),
        }
    }
    t
}
