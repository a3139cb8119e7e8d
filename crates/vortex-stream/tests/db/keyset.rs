//! Keyset pagination, the same checks on every database.

use std::num::NonZeroUsize;

use vortex_stream::db::{Database, Keyset, Value};
use vortex_stream::{params, ErrorKind, Position};

/// Pages over the active orders of `table` (ids `1..=n`, every third active), whose status
/// parameter is written `placeholder` in the database's dialect.
pub(crate) async fn pages_cover_the_scan_and_resume(
    db: &Database,
    table: &str,
    n: i64,
    placeholder: &str,
) {
    let sql = format!("SELECT id, email FROM {table} WHERE status = {placeholder}");
    let scan = Keyset::new(sql.as_str(), params!["active"], "id")
        .page_size(NonZeroUsize::new(100).unwrap());
    let pages = db.pages(scan.clone()).collect::<Vec<_>>().await.unwrap();
    let active = n / 3;
    assert_eq!(pages.len() as i64, active / 100 + 1);
    assert!(pages[..pages.len() - 1].iter().all(|p| p.rows.len() == 100));
    let ids: Vec<Value> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.get("id").unwrap().clone()))
        .collect();
    let expected: Vec<Value> = (1..=active).map(|i| Value::Int(i * 3)).collect();
    assert_eq!(ids, expected, "every row once, in key order");
    assert_eq!(pages[0].resume, Value::Int(300));
    assert_eq!(
        pages[1].rows[0].index(),
        100,
        "rows are numbered across pages"
    );

    // Resuming after the second page, as after a restart, reads the rest.
    let rest = db
        .scan(scan.clone().after(pages[1].resume.clone()))
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(rest.len() as i64, active - 200);
    assert_eq!(rest[0].get("id"), Some(&Value::Int(603)));

    // Cut into ranges of 250 rows and read piece by piece, as separate processes would:
    // every row once, in order, each piece full but the last.
    let cuts = db
        .cuts(scan.clone(), NonZeroUsize::new(250).unwrap())
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(cuts.len() as i64, active / 250);
    let mut bounds: Vec<Option<Value>> = vec![None];
    bounds.extend(cuts.into_iter().map(Some));
    bounds.push(None);
    let (mut pieces, mut ids) = (Vec::new(), Vec::new());
    for pair in bounds.windows(2) {
        let mut piece = scan.clone();
        if let Some(after) = &pair[0] {
            piece = piece.after(after.clone());
        }
        if let Some(until) = &pair[1] {
            piece = piece.until(until.clone());
        }
        let rows = db.scan(piece).collect::<Vec<_>>().await.unwrap();
        pieces.push(rows.len());
        ids.extend(rows.iter().map(|r| r.get("id").unwrap().clone()));
    }
    assert_eq!(ids, expected, "every row once, in key order");
    assert!(
        pieces[..pieces.len() - 1].iter().all(|n| *n == 250),
        "{pieces:?}"
    );

    // A key that is not in the result, or that is NULL, is an error naming it.
    let bad = Keyset::new(sql.as_str(), params!["active"], "nope");
    let err = db.pages(bad).count().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    // The server may refuse the `ORDER BY` first; either way the error names the key.
    assert!(err.to_string().contains("nope"), "{err}");
    let nulls = format!("SELECT id, NULL AS k FROM {table} WHERE status = {placeholder}");
    let err = db
        .pages(Keyset::new(nulls, params!["active"], "k"))
        .count()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is NULL"), "{err}");
    assert_eq!(
        err.position().and_then(Position::record),
        Some(active as u64 - 1)
    );
}
