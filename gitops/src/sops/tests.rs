//! Tests of SOPS decryption, on documents encrypted by the real sops (see testdata/sops/README.md).

use std::collections::BTreeMap;

use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::metadata::go_rfc3339;
use super::tree::MAC_ONLY_ENCRYPTED_INIT;
use super::value::{go_format_float, go_parse_bool};
use super::*;

/// Every plaintext value of the fixtures that must never show in an error or a `Debug`.
const SECRETS: &[&str] = &[
    "c2hvcC1hZG1pbg==",
    "aHVudGVyMi1zM2NyZXQ=",
    "hunter2",
    "tok-9f8e7d6c",
    "hello-plaintext-value",
    "alpha-secret",
    "deep-secret",
    "json-secret-token-123",
    "Y2VydGlmaWNhdGUtYnl0ZXM=",
    "mac-only-secret-key",
    "first-doc-secret",
    "second-doc-secret",
    "suffix-secret",
    "unenc-regex-secret",
    "comment-rule-secret",
    "clear-timestamp-secret",
    // The bodies of the two test identities (test.agekey, other.agekey), past their first characters.
    "T2KRS5DVTFZKS54ZUQJX876WE789Q5CYD5HQ0KV2UN3GZE0UQ0RRML6",
    "F35XYN3YXC92RMKLEY5F7RLV4T206SP4ZRNKTL6PTWDJGF2KQDQGRNQ",
];

/// A Secret's decoded data.
type SecretData = BTreeMap<String, Vec<u8>>;

fn fixture(name: &str) -> String {
    let path = format!("{}/testdata/sops/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("fixture parses")
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|de| Value::deserialize(de).expect("fixture parses"))
        .collect()
}

fn keys_from(files: &[&str]) -> AgeKeys {
    let data: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|f| (f.to_string(), fixture(f).into_bytes()))
        .collect();
    AgeKeys::from_secret_data(&data).expect("test keys parse")
}

fn test_keys() -> AgeKeys {
    keys_from(&["test.agekey"])
}

fn other_keys() -> AgeKeys {
    keys_from(&["other.agekey"])
}

/// `message` with none of the fixtures' plaintext values or key material in it.
fn assert_clean(message: &str) {
    for secret in SECRETS {
        assert!(!message.contains(secret), "{secret:?} leaked into {message:?}");
    }
}

/// The error of decrypting `doc` with the test key, checked to be clean.
fn decrypt_err(doc: &Value) -> SopsError {
    let err = decrypt(doc, &test_keys()).expect_err("decryption must fail");
    assert_clean(&err.to_string());
    assert_clean(&format!("{err:?}"));
    err
}

/// `doc` with the value at the mapping path `path` replaced by `f(value)`.
fn edit(doc: &Value, path: &[&str], f: impl FnOnce(&mut Value)) -> Value {
    let mut doc = doc.clone();
    let mut node = &mut doc;
    for key in path {
        node = node.get_mut(*key).expect("path exists");
    }
    f(node);
    doc
}

#[test]
fn each_fixture_decrypts_to_its_plaintext() {
    let cases = [
        ("secret.enc.yaml", "secret.plain.yaml"),
        ("whole.enc.yaml", "whole.plain.yaml"),
        ("secret.enc.json", "secret.plain.json"),
        ("mac-only.enc.yaml", "mac-only.plain.yaml"),
        ("suffix.enc.yaml", "suffix.plain.yaml"),
        ("unencrypted-regex.enc.yaml", "unencrypted-regex.plain.yaml"),
        ("two-recipients.enc.yaml", "secret.plain.yaml"),
        ("comment-rule.enc.yaml", "comment-rule.plain.yaml"),
        ("edge.enc.yaml", "edge.decrypted.yaml"),
    ];
    let keys = test_keys();
    for (encrypted, plain) in cases {
        let doc = yaml(&fixture(encrypted));
        assert!(is_encrypted(&doc), "{encrypted}");
        let got = decrypt(&doc, &keys).unwrap_or_else(|e| panic!("{encrypted}: {e}"));
        assert_eq!(got, yaml(&fixture(plain)), "{encrypted}");
        assert!(!is_encrypted(&got), "{encrypted}");
    }
}

#[test]
fn a_clear_timestamp_is_hashed_as_sops_wrote_it() {
    // sops reads the clear `rotated: 2024-01-01` as a timestamp and writes it back as RFC 3339, the text its MAC
    // hashed; the same value edited back by hand to a bare date is typed differently by sops' reader, and fails.
    let doc = yaml(&fixture("clear-timestamp.enc.yaml"));
    let got = decrypt(&doc, &test_keys()).expect("decrypts");
    assert_eq!(
        got["metadata"]["annotations"]["rotated"],
        Value::String("2024-01-01T00:00:00Z".into())
    );
    assert_eq!(
        got["stringData"]["token"],
        Value::String("clear-timestamp-secret".into())
    );
    let bare = edit(&doc, &["metadata", "annotations", "rotated"], |v| {
        *v = Value::String("2024-01-01".into())
    });
    assert_eq!(decrypt_err(&bare), SopsError::MacMismatch);
}

#[test]
fn multi_document_file_decrypts_with_one_mac() {
    let docs = documents(&fixture("multi.enc.yaml"));
    assert_eq!(docs.len(), 2);
    let got = decrypt_documents(&docs, &test_keys()).expect("decrypts");
    assert_eq!(got, documents(&fixture("multi.plain.yaml")));
    // One document alone does not carry the file's MAC.
    assert_eq!(decrypt_err(&docs[0]), SopsError::MacMismatch);
}

#[test]
fn values_come_back_with_their_types() {
    let got = decrypt(&yaml(&fixture("whole.enc.yaml")), &test_keys()).expect("decrypts");
    let json = serde_json::to_value(&got).expect("json");
    let cases: &[(&str, serde_json::Value)] = &[
        ("/replicas", serde_json::json!(3)),
        ("/ratio", serde_json::json!(0.75)),
        ("/big", serde_json::json!(1.5e20)),
        ("/negative", serde_json::json!(-42)),
        ("/enabled", serde_json::json!(true)),
        ("/disabled", serde_json::json!(false)),
        ("/empty", serde_json::json!("")),
        ("/nothing", serde_json::Value::Null),
        ("/port_unencrypted", serde_json::json!(8080)),
        ("/nested/list/1", serde_json::json!(17)),
        ("/nested/list/2", serde_json::json!(2.5)),
        ("/nested/list/3", serde_json::json!(false)),
        ("/nested/list/4/inner/more", serde_json::json!([1, 2, "three"])),
    ];
    for (pointer, want) in cases {
        assert_eq!(json.pointer(pointer), Some(want), "{pointer}");
    }
    let secret = decrypt(&yaml(&fixture("secret.enc.json")), &test_keys()).expect("decrypts");
    let want: serde_json::Value = serde_json::from_str(&fixture("secret.plain.json")).expect("json");
    assert_eq!(serde_json::to_value(&secret).expect("json"), want);
}

#[test]
fn is_encrypted_needs_mac_lastmodified_and_a_key_group() {
    let secret = yaml(&fixture("secret.enc.yaml"));
    let without = |field: &'static str| {
        edit(&secret, &["sops"], |sops| {
            sops.as_mapping_mut().expect("mapping").shift_remove(field);
        })
    };
    let cases = [
        ("encrypted", secret.clone(), true),
        ("plain", yaml(&fixture("secret.plain.yaml")), false),
        ("no mac", without("mac"), false),
        ("no lastmodified", without("lastmodified"), false),
        ("no key group", without("age"), false),
        ("sops is a string", yaml("sops: yes\nmac: x\n"), false),
        ("not a mapping", yaml("[1, 2]"), false),
    ];
    for (name, doc, want) in cases {
        assert_eq!(is_encrypted(&doc), want, "{name}");
        let json = serde_json::to_value(&doc).expect("json");
        assert_eq!(is_encrypted_json(&json), want, "{name} (json)");
    }
}

#[test]
fn a_key_that_is_not_a_recipient_fails() {
    let doc = yaml(&fixture("secret.enc.yaml"));
    let err = decrypt(&doc, &other_keys()).expect_err("wrong key");
    let SopsError::NoMatchingKey {
        identities,
        recipients,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*identities, 1);
    assert_eq!(
        recipients,
        "age1wjs2tp3yfv9950tymna6katdsw732q3ssxm6c9p0c798t93lk3kqjs42n4"
    );
    assert_clean(&err.to_string());
    // Either recipient opens a document encrypted for both.
    let both = yaml(&fixture("two-recipients.enc.yaml"));
    assert!(decrypt(&both, &other_keys()).is_ok());
    assert!(decrypt(&both, &keys_from(&["other.agekey", "test.agekey"])).is_ok());
}

#[test]
fn tampered_values_fail() {
    let doc = yaml(&fixture("secret.enc.yaml"));
    let flip = |v: &mut Value| {
        let text = v.as_str().expect("string").to_string();
        let at = "ENC[AES256_GCM,data:".len() + 2;
        let replaced = if &text[at..=at] == "A" { "B" } else { "A" };
        *v = Value::String(format!("{}{replaced}{}", &text[..at], &text[at + 1..]));
    };
    let password = doc["data"]["password"].clone();
    let cases = [
        (
            "flipped ciphertext",
            edit(&doc, &["data", "password"], flip),
            "data.password",
        ),
        (
            "value moved to another key",
            edit(&doc, &["data", "username"], |v| *v = password.clone()),
            "data.username",
        ),
        (
            "plaintext where a value was encrypted",
            edit(&doc, &["data", "password"], |v| {
                *v = Value::String("hunter2".into())
            }),
            "data.password",
        ),
        (
            "a number where a value was encrypted",
            edit(&doc, &["data", "password"], |v| *v = Value::from(7)),
            "data.password",
        ),
        (
            "bad base64",
            edit(&doc, &["data", "password"], |v| {
                *v = Value::String("ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]".into())
            }),
            "data.password",
        ),
    ];
    for (name, tampered, path) in cases {
        match decrypt_err(&tampered) {
            SopsError::Value { path: got, .. } => assert_eq!(got, path, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn tampered_mac_or_document_fails() {
    let doc = yaml(&fixture("secret.enc.yaml"));
    let other_mac = yaml(&fixture("secret.enc.json"))["sops"]["mac"].clone();
    let mac_of = |v: Value| edit(&doc, &["sops", "mac"], |m| *m = v);
    let reordered = edit(&doc, &["stringData"], |m| {
        let map = m.as_mapping_mut().expect("mapping");
        let (k, v) = map.shift_remove_entry("DATABASE_URL").expect("key");
        map.insert(k, v);
    });
    let mac_cases = [
        ("mac of another file", mac_of(other_mac)),
        ("empty mac", mac_of(Value::String(String::new()))),
        ("mac not sops' form", mac_of(Value::String("0123ABCD".into()))),
        (
            "lastmodified changed",
            edit(&doc, &["sops", "lastmodified"], |v| {
                *v = Value::String("2020-01-01T00:00:00Z".into())
            }),
        ),
    ];
    for (name, tampered) in mac_cases {
        assert!(matches!(decrypt_err(&tampered), SopsError::Mac(_)), "{name}");
    }
    let mismatch_cases = [
        (
            "a clear value changed",
            edit(&doc, &["metadata", "name"], |v| *v = Value::String("x".into())),
        ),
        ("keys reordered", reordered),
        (
            "an encrypted value removed",
            edit(&doc, &["data"], |m| {
                m.as_mapping_mut().expect("mapping").shift_remove("username");
            }),
        ),
        (
            "a clear value added",
            edit(&doc, &["metadata"], |m| {
                m.as_mapping_mut()
                    .expect("mapping")
                    .insert("uid".into(), "1".into());
            }),
        ),
    ];
    for (name, tampered) in mismatch_cases {
        assert_eq!(decrypt_err(&tampered), SopsError::MacMismatch, "{name}");
    }
}

#[test]
fn mac_only_encrypted_covers_only_the_encrypted_values() {
    let doc = yaml(&fixture("mac-only.enc.yaml"));
    let note = edit(&doc, &["metadata", "annotations", "note"], |v| {
        *v = Value::String("changed".into())
    });
    let got = decrypt(&note, &test_keys()).expect("a clear value is outside the MAC");
    assert_eq!(
        got["metadata"]["annotations"]["note"],
        Value::String("changed".into())
    );
    let removed = edit(&doc, &["stringData"], |m| {
        m.as_mapping_mut().expect("mapping").shift_remove("pin");
    });
    assert_eq!(decrypt_err(&removed), SopsError::MacMismatch);
    // The same MAC read as a full MAC does not match: sops seeds the mac-only hash.
    let full = edit(&doc, &["sops"], |m| {
        m.as_mapping_mut()
            .expect("mapping")
            .shift_remove("mac_only_encrypted");
    });
    assert_eq!(decrypt_err(&full), SopsError::MacMismatch);
}

#[test]
fn key_types_other_than_age_are_refused_with_what_is_needed() {
    let doc = yaml(&fixture("secret.enc.yaml"));
    let age = doc["sops"]["age"].clone();
    let replace_age = |field: &str, keys: Value| {
        edit(&doc, &["sops"], |sops| {
            let map = sops.as_mapping_mut().expect("mapping");
            map.shift_remove("age");
            map.insert(field.into(), keys);
        })
    };
    let pgp = yaml("- fp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4\n  enc: x\n");
    let kms = yaml("- arn: arn:aws:kms:us-east-1:1:key/x\n  enc: x\n");
    let group = Value::Mapping(serde_yaml::Mapping::from_iter([("age".into(), age)]));
    let groups = |n: usize| Value::Sequence(vec![group.clone(); n]);
    let cases = [
        (
            "pgp",
            replace_age("pgp", pgp.clone()),
            vec!["pgp", "age", ".agekey"],
        ),
        ("kms", replace_age("kms", kms), vec!["kms", "age"]),
        ("hc_vault", replace_age("hc_vault", pgp), vec!["hc_vault", "age"]),
        (
            "shamir",
            replace_age("key_groups", groups(2)),
            vec!["2 key groups", "Shamir"],
        ),
    ];
    for (name, tampered, words) in cases {
        let err = decrypt_err(&tampered);
        assert!(matches!(err, SopsError::Unsupported(_)), "{name}: {err:?}");
        for word in words {
            assert!(err.to_string().contains(word), "{name}: {err}");
        }
    }
    // A single key group holding the age recipient is the same file.
    let grouped = replace_age("key_groups", groups(1));
    assert_eq!(
        decrypt(&grouped, &test_keys()).expect("decrypts"),
        yaml(&fixture("secret.plain.yaml"))
    );
}

#[test]
fn malformed_metadata_is_an_error() {
    let doc = yaml(&fixture("secret.enc.yaml"));
    let set = |field: &str, v: Value| {
        edit(&doc, &["sops"], |m| {
            m.as_mapping_mut().expect("mapping").insert(field.into(), v);
        })
    };
    let cases = [
        ("two rules", set("encrypted_suffix", "_enc".into())),
        ("bad regex", set("encrypted_regex", "([".into())),
        ("age not a list", set("age", "age1".into())),
        ("no keys", set("age", Value::Sequence(vec![]))),
        (
            "stanza not age",
            set("age", yaml("- recipient: age1x\n  enc: not an age file\n")),
        ),
    ];
    for (name, tampered) in cases {
        let err = decrypt_err(&tampered);
        assert!(
            matches!(
                err,
                SopsError::Metadata(_) | SopsError::Unsupported(_) | SopsError::DataKey(_)
            ),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn age_keys_from_a_secret() {
    let key = fixture("test.agekey");
    let other = fixture("other.agekey");
    let data = |entries: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let crlf = key.replace('\n', "\r\n");
    let both = format!("{key}\n\n{other}");
    let ok_cases: &[(&str, SecretData, usize)] = &[
        ("one key", data(&[("age.agekey", &key)]), 1),
        ("CRLF lines", data(&[("age.agekey", &crlf)]), 1),
        ("two in one entry", data(&[("keys.agekey", &both)]), 2),
        (
            "two entries, others ignored",
            data(&[("a.agekey", &key), ("b.agekey", &other), ("token", "x")]),
            2,
        ),
    ];
    for (name, secret, count) in ok_cases {
        let keys = AgeKeys::from_secret_data(secret).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(keys.len(), *count, "{name}");
        assert_clean(&format!("{keys:?}"));
    }
    let pq = "AGE-SECRET-KEY-PQ-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let garbled = key.replace("AGE-SECRET-KEY-1ST5", "AGE-SECRET-KEY-1ST6");
    let err_cases: &[(&str, SecretData, &str)] = &[
        (
            "no .agekey",
            data(&[("identity", &key)]),
            "no key ending in .agekey",
        ),
        (
            "only comments",
            data(&[("age.agekey", "# nothing\n\n")]),
            "hold no age identity",
        ),
        (
            "not an identity",
            data(&[("age.agekey", "hunter2\n")]),
            "age.agekey, line 1 is not an age identity",
        ),
        (
            "bad checksum",
            data(&[("age.agekey", &garbled)]),
            "line 5 is not a valid age identity",
        ),
        ("post-quantum", data(&[("pq.agekey", pq)]), "post-quantum"),
    ];
    for (name, secret, want) in err_cases {
        let err = AgeKeys::from_secret_data(secret).expect_err(name);
        assert!(err.contains(want), "{name}: {err}");
        assert_clean(&err);
    }
    let binary = BTreeMap::from([("age.agekey".to_string(), vec![0xff, 0xfe])]);
    assert!(
        AgeKeys::from_secret_data(&binary)
            .expect_err("binary")
            .contains("not UTF-8")
    );
}

#[test]
fn age_keys_from_a_kubernetes_secret() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let key = fixture("test.agekey");
    let secret = Secret {
        data: Some(BTreeMap::from([
            (
                "identity.agekey".to_string(),
                ByteString(key.clone().into_bytes()),
            ),
            ("other.agekey".to_string(), ByteString(b"not a key".to_vec())),
        ])),
        // stringData wins over data, as the API server merges them.
        string_data: Some(BTreeMap::from([(
            "other.agekey".to_string(),
            fixture("other.agekey"),
        )])),
        ..Secret::default()
    };
    let keys = AgeKeys::from_secret(&secret).expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(decrypt(&yaml(&fixture("secret.enc.yaml")), &keys).is_ok());
    let empty = AgeKeys::from_secret(&Secret::default()).expect_err("no keys");
    assert!(empty.contains("no key ending in .agekey"), "{empty}");
}

#[test]
fn age_keys_debug_shows_no_key() {
    let keys = keys_from(&["test.agekey", "other.agekey"]);
    let debug = format!("{keys:?}");
    assert_eq!(
        debug,
        r#"AgeKeys { identities: 2, sources: ["other.agekey", "test.agekey"] }"#
    );
    assert_eq!(
        test_keys().recipients(),
        vec!["age1wjs2tp3yfv9950tymna6katdsw732q3ssxm6c9p0c798t93lk3kqjs42n4".to_string()]
    );
}

#[test]
fn stream_decrypts_encrypted_documents_and_keeps_the_others() {
    let plain_doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: \"1\"\n";
    let stream = format!("{plain_doc}---\n{}---\n{plain_doc}", fixture("secret.enc.yaml"));
    let (text, count) = decrypt_stream(&stream, Some(&test_keys())).expect("decrypts");
    assert_eq!(count, 1);
    let docs = documents(&text);
    assert_eq!(
        docs,
        vec![
            yaml(plain_doc),
            yaml(&fixture("secret.plain.yaml")),
            yaml(plain_doc)
        ]
    );

    let (text, count) = decrypt_stream(&fixture("multi.enc.yaml"), Some(&test_keys())).expect("decrypts");
    assert_eq!(
        (documents(&text), count),
        (documents(&fixture("multi.plain.yaml")), 2)
    );

    // Without SOPS documents the text is returned as it is, keys or not, even when it does not parse.
    for text in [plain_doc, "a: [unclosed\n", ""] {
        assert_eq!(
            decrypt_stream(text, None).expect("no sops"),
            (text.to_string(), 0)
        );
    }
}

#[test]
fn stream_keeps_the_text_of_plain_documents() {
    // YAML 1.1 readers resolve these plain scalars; written anew by serde_yaml they would become quoted strings.
    let plain_doc =
        "# kept\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: modes\ndata:\n  mode: 0755\n  on: yes\n";
    let streams = [
        format!("{plain_doc}---\n{}", fixture("secret.enc.yaml")),
        format!(
            "---\n{}--- # a comment\n{plain_doc}...\n",
            fixture("secret.enc.yaml")
        ),
        format!("{}---\n{plain_doc}", fixture("multi.enc.yaml")),
    ];
    for stream in streams {
        let (text, count) = decrypt_stream(&stream, Some(&test_keys())).expect("decrypts");
        assert!(count >= 1, "{text}");
        assert!(text.contains(plain_doc), "{text}");
        let docs = documents(&text);
        assert!(docs.contains(&yaml(plain_doc)), "{text}");
        assert!(!docs.iter().any(is_encrypted), "{text}");
    }
}

#[test]
fn split_at_markers_cuts_before_document_lines() {
    let cases: &[(&str, &[&str])] = &[
        ("a: 1\n", &["a: 1\n"]),
        ("a: 1\n---\nb: 2\n", &["a: 1\n", "---\nb: 2\n"]),
        (
            "---\na: 1\n--- # c\nb: |\n  ---x\n",
            &["---\na: 1\n", "--- # c\nb: |\n  ---x\n"],
        ),
        ("a: '---'\n----\n", &["a: '---'\n----\n"]),
        ("", &[]),
    ];
    for (text, want) in cases {
        assert_eq!(super::split_at_markers(text), *want, "{text:?}");
    }
}

#[test]
fn stream_errors_name_the_document() {
    let stream = format!("a: 1\n---\n{}", fixture("secret.enc.yaml"));
    let err = decrypt_stream(&stream, None).expect_err("no keys");
    assert_eq!(
        err.to_string(),
        "document 2 (Secret db-credentials) is SOPS-encrypted, but the application names no decryption Secret \
         (a Secret with an age identity under a key ending in .agekey)"
    );
    let err = decrypt_stream(&stream, Some(&other_keys())).expect_err("wrong key");
    assert!(
        err.to_string()
            .starts_with("document 2 (Secret db-credentials): none of the 1 age identities"),
        "{err}"
    );
    let whole = decrypt_stream(&fixture("whole.enc.yaml"), None).expect_err("no keys");
    assert!(
        whole.to_string().starts_with("document 1 is SOPS-encrypted"),
        "{whole}"
    );
    let broken = format!("{}---\na: [unclosed\n", fixture("secret.enc.yaml"));
    assert!(matches!(
        decrypt_stream(&broken, Some(&test_keys())),
        Err(SopsError::Yaml(_))
    ));
    for err in [err, whole] {
        assert_clean(&err.to_string());
    }
}

#[test]
fn damaged_documents_never_panic_or_leak() {
    // Every 5th character of the encrypted Secret replaced in turn: whatever still parses either fails with a clean
    // error or decrypts to the plaintext secrets (the change was to something sops does not authenticate: a clear
    // key, the recipient, the version).
    let text = fixture("secret.enc.yaml");
    let plain = yaml(&fixture("secret.plain.yaml"));
    let keys = test_keys();
    for at in (0..text.len()).step_by(5).filter(|at| text.is_char_boundary(*at)) {
        for replacement in ["A", "", ":"] {
            let damaged = format!("{}{replacement}{}", &text[..at], &text[at + 1..]);
            let Ok(doc) = serde_yaml::from_str::<Value>(&damaged) else {
                continue;
            };
            match decrypt(&doc, &keys) {
                Ok(got) => {
                    assert_eq!(got.get("data"), plain.get("data"), "at {at}");
                    assert_eq!(got.get("stringData"), plain.get("stringData"), "at {at}");
                }
                Err(e) => assert_clean(&e.to_string()),
            }
        }
    }
}

#[test]
fn go_formats_match_sops() {
    let times = [
        ("2026-12-03T14:05:35Z", "2026-12-03T14:05:35Z"),
        ("2026-12-03T14:05:35.123456Z", "2026-12-03T14:05:35Z"),
        ("2026-12-03T14:05:35+00:00", "2026-12-03T14:05:35Z"),
        ("2026-12-03T16:05:35.5+02:00", "2026-12-03T16:05:35+02:00"),
        ("garbage", "garbage"),
    ];
    for (input, want) in times {
        assert_eq!(go_rfc3339(input), want, "{input}");
    }
    let floats = [
        (0.75, "0.75"),
        (1.0, "1"),
        (1.5e20, "150000000000000000000"),
        (1e-7, "0.0000001"),
        (-0.0, "-0"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ];
    for (input, want) in floats {
        assert_eq!(go_format_float(input), want, "{input}");
    }
    let bools = [
        ("True", Some(true)),
        ("1", Some(true)),
        ("F", Some(false)),
        ("yes", None),
    ];
    for (input, want) in bools {
        assert_eq!(go_parse_bool(input), want, "{input}");
    }
    assert_eq!(
        MAC_ONLY_ENCRYPTED_INIT.as_slice(),
        Sha256::digest(b"sops").as_slice()
    );
}
