//! The OpenAPI document is a contract: any change to it shows up in review as a diff of
//! `openapi.json`. Refresh with `UPDATE_EXPECT=1 cargo test -p platform --test openapi`.

#[test]
fn openapi_document_snapshot() {
    let doc = platform::openapi::document();
    let json = serde_json::to_string_pretty(&doc).expect("serialize");
    expect_test::expect_file!["../openapi.json"].assert_eq(&format!("{json}\n"));
}
