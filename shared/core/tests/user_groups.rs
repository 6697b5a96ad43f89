//! User groups and the enrollment-type setting: CRUD, priorities, membership checks, the
//! effective type per user, the masked Managed Apple ID in lists, and concurrent writers.

mod mdmdevice;

use http::{Method, StatusCode};
use mdm_core::groups::mask_managed_apple_id;
use mdmdevice::{admin_call, env};
use serde_json::{Value, json};

fn post(e: &mdmdevice::E, path: &str, body: Value) -> (StatusCode, Value) {
    admin_call(e, Method::POST, path, &body.to_string())
}

fn fields(v: &Value) -> Vec<String> {
    v["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn groups_decide_the_enrollment_type_by_priority() {
    let e = env();
    let (s, g) = post(
        &e,
        "/api/v1/groups",
        json!({ "id": "byod", "name": "BYOD staff", "enrollment_type": "user", "priority": 10 }),
    );
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(
        (g["enrollment_type"].as_str(), g["priority"].as_u64()),
        (Some("user"), Some(10))
    );
    assert_eq!(
        post(
            &e,
            "/api/v1/groups",
            json!({ "id": "corp", "enrollment_type": "device", "priority": 5 })
        )
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&e, "/api/v1/groups", json!({ "id": "sales" })).0,
        StatusCode::CREATED
    );

    // Refusals name the field; nothing is stored.
    let (s, v) = post(
        &e,
        "/api/v1/groups",
        json!({ "id": "Bad Id!", "priority": 20000 }),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&v), ["id", "priority"]);
    let (s, v) = post(
        &e,
        "/api/v1/groups",
        json!({ "id": "tie", "enrollment_type": "user", "priority": 10 }),
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("byod"), "{v}");
    assert_eq!(
        post(&e, "/api/v1/groups", json!({ "id": "byod" })).0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post(&e, "/api/v1/groups", json!({ "id": "x", "colour": "red" })).0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (_, list) = admin_call(&e, Method::GET, "/api/v1/groups", "");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["corp", "byod", "sales"],
        "lowest priority number first"
    );

    // Membership: unknown groups are refused; the type follows the best group.
    let (s, v) = post(
        &e,
        "/api/v1/users",
        json!({ "username": "ann", "groups": ["byod", "nope"] }),
    );
    assert_eq!(
        (s, fields(&v)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["groups[1]".to_owned()]
        ),
        "{v}"
    );
    let (s, v) = post(
        &e,
        "/api/v1/users",
        json!({ "username": "ann", "groups": ["sales", "byod"], "managed_apple_id": "ann.lee@appleid.example.com" }),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["enrollment_type"].as_str(),
            v["enrollment_type_group"].as_str()
        ),
        (Some("user"), Some("byod")),
        "{v}"
    );
    let (_, v) = post(
        &e,
        "/api/v1/users",
        json!({ "username": "bob", "groups": ["byod", "corp"] }),
    );
    assert_eq!(
        v["enrollment_type"], "device",
        "corp (5) outranks byod (10): {v}"
    );
    let (_, v) = post(
        &e,
        "/api/v1/users",
        json!({ "username": "cat", "groups": ["sales"] }),
    );
    assert_eq!(
        (v["enrollment_type"].as_str(), &v["enrollment_type_group"]),
        (Some("device"), &Value::Null),
        "the default: {v}"
    );

    // Changing a group's priority changes its members' type.
    let (s, g) = admin_call(
        &e,
        Method::PATCH,
        "/api/v1/groups/byod",
        r#"{"priority": 1}"#,
    );
    assert_eq!(s, StatusCode::OK, "{g}");
    let (_, v) = admin_call(&e, Method::GET, "/api/v1/users/bob", "");
    assert_eq!(v["enrollment_type"], "user", "{v}");
    // Removing the setting (null) leaves the group, without a say.
    let (_, g) = admin_call(
        &e,
        Method::PATCH,
        "/api/v1/groups/byod",
        r#"{"enrollment_type": null}"#,
    );
    assert_eq!(g["enrollment_type"], Value::Null, "{g}");
    let (_, v) = admin_call(&e, Method::GET, "/api/v1/users/ann", "");
    assert_eq!(v["enrollment_type"], "device", "{v}");
    // Membership changes through PATCH, checked the same way.
    let (s, v) = admin_call(
        &e,
        Method::PATCH,
        "/api/v1/users/cat",
        r#"{"groups": ["gone"]}"#,
    );
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, v) = admin_call(
        &e,
        Method::PATCH,
        "/api/v1/users/cat",
        r#"{"groups": ["corp"]}"#,
    );
    assert_eq!(v["enrollment_type_group"], "corp", "{v}");
    // A deleted group no longer counts.
    assert_eq!(
        admin_call(&e, Method::DELETE, "/api/v1/groups/corp", "").0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin_call(&e, Method::DELETE, "/api/v1/groups/corp", "").0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin_call(&e, Method::GET, "/api/v1/groups/corp", "").0,
        StatusCode::NOT_FOUND
    );
    let (_, v) = admin_call(&e, Method::GET, "/api/v1/users/cat", "");
    assert_eq!(
        (v["enrollment_type"].as_str(), &v["enrollment_type_group"]),
        (Some("device"), &Value::Null),
        "{v}"
    );
}

#[test]
fn the_managed_apple_id_is_masked_in_lists_only() {
    let e = env();
    let (_, v) = post(
        &e,
        "/api/v1/users",
        json!({ "username": "ann", "managed_apple_id": "ann.lee@appleid.example.com" }),
    );
    assert_eq!(v["managed_apple_id"], "ann.lee@appleid.example.com");
    let (_, v) = admin_call(&e, Method::GET, "/api/v1/users/ann", "");
    assert_eq!(v["managed_apple_id"], "ann.lee@appleid.example.com");
    let (_, list) = admin_call(&e, Method::GET, "/api/v1/users", "");
    assert_eq!(
        list["items"][0]["managed_apple_id"], "a***@appleid.example.com",
        "{list}"
    );
    assert!(!list.to_string().contains("ann.lee"), "{list}");
    assert_eq!(mask_managed_apple_id("no-at-sign"), "***");
}

/// A Managed Apple ID as long as an email address may be (254) is kept and found again,
/// and a second user cannot take it.
#[test]
fn the_longest_managed_apple_ids_are_kept_and_unique() {
    let e = env();
    let maid = format!("{}@{}.example.com", "a".repeat(64), "d".repeat(177));
    assert_eq!(maid.len(), 254);
    let (s, v) = post(
        &e,
        "/api/v1/users",
        json!({ "username": "ann", "managed_apple_id": maid }),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let found = futures::executor::block_on(mdm_core::users::by_managed_apple_id(
        &e.store,
        &maid.to_uppercase(),
    ))
    .unwrap()
    .expect("found by its Managed Apple ID");
    assert_eq!(found.username, "ann");
    let (s, v) = post(
        &e,
        "/api/v1/users",
        json!({ "username": "bob", "managed_apple_id": maid }),
    );
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}

#[test]
fn concurrent_group_writers_lose_nothing() {
    let e = env();
    std::thread::scope(|s| {
        for w in 0..4 {
            let e = &e;
            s.spawn(move || {
                for i in 0..10 {
                    let (st, v) = post(e, "/api/v1/groups", json!({ "id": format!("g{w}-{i}") }));
                    assert_eq!(st, StatusCode::CREATED, "{v}");
                }
            });
        }
    });
    let (_, list) = admin_call(&e, Method::GET, "/api/v1/groups", "");
    assert_eq!(list["items"].as_array().unwrap().len(), 40);
}
