//! Derived state from Rust: a derivation, a scatter, a relation and the schema graph.
//!
//! ```text
//! cargo run --example derived_state
//! ```
use igniter_ledger::{
    Derivation, Fact, LedgerStore, MapKey, Read, Relation, Scatter, Value, Write,
};

fn comment(article: &str, body: &str, status: &str) -> Value {
    Value::map([
        (MapKey::sym("article_id"), Value::from(article)),
        (MapKey::sym("body"), Value::from(body)),
        (MapKey::sym("status"), Value::sym(status)),
    ])
}

fn main() -> igniter_ledger::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let wal = dir.path().join("blog.wal");
    let ledger = LedgerStore::open(&wal)?;

    // Derivation: recomputed from the latest matching facts after each write.
    ledger.register_derivation(
        Derivation::new("comments", "stats", "published", |facts: &[Fact]| {
            Some(Value::map([(
                MapKey::sym("count"),
                Value::Int(facts.len() as i64),
            )]))
        })
        .filter(MapKey::sym("status"), Value::sym("published")),
    )?;
    // Scatter: each comment folded into its article's record.
    ledger.register_scatter(Scatter::new(
        "comments",
        MapKey::sym("article_id"),
        "per_article",
        |_article: &Value, existing: Option<&Value>, _f: &Fact| {
            Some(Value::Int(
                existing.and_then(Value::as_i64).unwrap_or(0) + 1,
            ))
        },
    ))?;
    // Relation: a grow-only index article_id -> comment keys, in __rel_article_comments.
    ledger.register_relation(Relation::new(
        "article_comments",
        "comments",
        MapKey::sym("article_id"),
        "articles",
    ))?;

    ledger.write(Write::new(
        "comments",
        "c1",
        comment("a1", "First!", "published"),
    ))?;
    let draft = ledger.write(Write::new(
        "comments",
        "c2",
        comment("a1", "Draft", "draft"),
    ))?;
    ledger.write(Write::new(
        "comments",
        "c2",
        comment("a1", "Second", "published"),
    ))?;

    println!(
        "published: {:?}",
        ledger.read(Read::new("stats", "published"))?
    );
    println!(
        "per_article a1: {:?}",
        ledger.read(Read::new("per_article", "a1"))?
    );
    let bodies = |vs: Vec<Value>| -> Vec<String> {
        vs.iter()
            .filter_map(|v| v.get_sym("body").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let a1 = Value::from("a1");
    println!(
        "resolve: {:?}",
        bodies(ledger.resolve("article_comments", &a1, None)?)
    );
    println!(
        "resolve as_of the draft: {:?}",
        bodies(ledger.resolve("article_comments", &a1, Some(draft.transaction_time()))?)
    );
    let prov = ledger
        .latest("stats", "published")
        .and_then(|f| f.derivation());
    println!(
        "provenance: kind {:?}, inputs {:?}",
        prov.as_ref().and_then(|p| p.get_sym("kind")),
        prov.as_ref().and_then(|p| p.get_sym("inputs"))
    );
    let graph = ledger.schema_graph();
    println!(
        "derivations on comments: {}",
        graph.derivations_for_store("comments").len()
    );
    println!(
        "scatters on comments: {}",
        graph.scatters_for_store("comments").len()
    );
    println!("relations: {:?}", graph.registered_relations());
    println!(
        "lineage derived_by: {}",
        ledger.lineage("comments", "c1").derived_by.len()
    );
    println!("failures: {}", ledger.derivation_failures());
    Ok(())
}
