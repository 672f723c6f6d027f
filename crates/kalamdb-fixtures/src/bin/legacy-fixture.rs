//! `legacy-fixture g1|g2|g3 DIR`: writes a legacy data directory (test support for CI's
//! upgrade checks; not a user command).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(generation), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: legacy-fixture g1|g2|g3 DIR");
        std::process::exit(2);
    };
    let Some(generation) = kalamdb_fixtures::Generation::parse(generation) else {
        eprintln!("legacy-fixture: unknown generation {generation}; use g1, g2 or g3");
        std::process::exit(2);
    };
    if let Err(e) = kalamdb_fixtures::write(generation, std::path::Path::new(dir)) {
        eprintln!("legacy-fixture: {e}");
        std::process::exit(1);
    }
}
