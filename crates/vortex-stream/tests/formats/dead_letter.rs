use vortex_stream::io::Input;
use vortex_stream::sinks::DeadLetters;
use vortex_stream::sources::JsonlSource;
use vortex_stream::ErrorPolicy;

#[derive(serde::Deserialize)]
struct Log {
    #[allow(dead_code)] // read only to check that the line decodes
    level: String,
}

/// The JSON Lines `text` read as logs with bad records dead-lettered: the good ones counted,
/// and the dead letters as JSON, after checking that the policy counted as many.
async fn dead_letters_of(text: Vec<u8>) -> (u64, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let policy = ErrorPolicy::dead_letter(DeadLetters::create(&dead).await.unwrap());
    let good = JsonlSource::new(Input::bytes(text).name("logs.jsonl"))
        .deserialize::<Log>()
        .on_error(policy.clone())
        .count()
        .await
        .unwrap();
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(policy.report().dead_lettered(), letters.len() as u64);
    (good, letters)
}

#[tokio::test]
async fn bad_records_land_in_the_dead_letter_file_with_position_and_raw_text() {
    let text: &[u8] = b"{\"level\":\"a\"}\n{\"level\":\n{\"level\":\"b\"}\n\xff\n";
    let (good, letters) = dead_letters_of(text.to_vec()).await;
    assert_eq!(good, 2);
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["kind"], "decode");
    assert_eq!(letters[0]["source"], "logs.jsonl");
    assert_eq!(letters[0]["record"], 1);
    assert_eq!(letters[0]["line"], 2);
    assert_eq!(letters[0]["raw"], "{\"level\":");
    assert!(letters[0]["error"]
        .as_str()
        .unwrap()
        .contains("EOF while parsing"));
    assert_eq!(letters[1]["line"], 4);
    assert_eq!(
        letters[1]["raw_hex"], "ff",
        "bytes that are not text are kept in hex"
    );
    assert!(letters[1].get("raw").is_none(), "{}", letters[1]);
    assert!(letters[0].get("raw_hex").is_none(), "{}", letters[0]);
}

#[tokio::test]
async fn a_dead_letter_says_when_its_raw_text_is_only_the_start_of_the_record() {
    let long = format!("{{\"level\":\"{}", "x".repeat(10_000));
    let text = format!("{long}\n{{\"level\":\n{{\"level\":\"ok\"}}\n");
    let (good, letters) = dead_letters_of(text.into_bytes()).await;
    assert_eq!(good, 1);
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["raw"].as_str().unwrap(), &long[..4096]);
    assert_eq!(letters[0]["raw_len"], long.len());
    assert_eq!(letters[1]["raw"], "{\"level\":");
    assert!(letters[1].get("raw_len").is_none(), "{}", letters[1]);
}
