//! The OpenAPI document is a contract: any change to it shows up in review as a diff of
//! `openapi.json`. Refresh with `UPDATE_EXPECT=1 cargo test -p platform --test openapi`.

#[test]
fn openapi_document_snapshot() {
    let doc = platform::openapi::document();
    let json = serde_json::to_string_pretty(&doc).expect("serialize");
    expect_test::expect_file!["../openapi.json"].assert_eq(&format!("{json}\n"));
}

/// Every bearer-authenticated operation documents 401 and 429 (failed-authentication limit),
/// every operation with a path parameter 404, every one with a body 400; list limits are
/// schema constraints.
#[test]
fn common_errors_and_limits_are_documented() {
    let doc = serde_json::to_value(platform::openapi::document()).expect("serialize");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let has = |status: &str| op["responses"].get(status).is_some();
            let what = format!("{method} {path}");
            if path == "/api/v1/openapi.json" {
                continue;
            }
            if op.get("security").is_none() {
                assert!(has("401") && has("429"), "{what}");
            }
            if path.contains('{') {
                assert!(has("404"), "{what}");
            }
            if op.get("requestBody").is_some() {
                assert!(has("400") && has("413"), "{what}");
            }
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["name"] == "limit" {
                    assert_eq!(param["schema"]["minimum"], 1, "{what}");
                    let max = if path == "/api/v1/audit" { 500 } else { 1000 };
                    assert_eq!(param["schema"]["maximum"], max, "{what}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked}");
    assert!(doc["paths"]["/api/v1/nodes/join"]["post"]["responses"]["429"].is_object());
    let minutes =
        &doc["components"]["schemas"]["CreateInstallToken"]["properties"]["valid_for_minutes"];
    assert_eq!(
        (minutes["minimum"].clone(), minutes["maximum"].clone()),
        (serde_json::json!(30), serde_json::json!(1440))
    );
}
