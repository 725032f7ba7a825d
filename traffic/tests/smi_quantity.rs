//! Backend weights as Kubernetes quantities (TrafficSplit v1alpha1) and integers (v1alpha2, v1alpha3).

use serde_json::json;
use sluice_traffic::smi::parse_weight;

#[test]
fn weights_parse_as_numbers_or_quantities() {
    let cases = [
        (json!(10), Some(10.0)),
        (json!(0), Some(0.0)),
        (json!("10"), Some(10.0)),
        (json!(" 90 "), Some(90.0)),
        (json!("0.5"), Some(0.5)),
        (json!("500m"), Some(0.5)),
        (json!("1k"), Some(1000.0)),
        (json!("1Ki"), Some(1024.0)),
        (json!("1e2"), Some(100.0)),
        (json!("25E-1"), Some(2.5)),
        (json!("+3"), Some(3.0)),
        (json!("ten"), None),
        (json!("10x"), None),
        (json!("m"), None),
        (json!(""), None),
        (json!(true), None),
        (json!(null), None),
    ];
    for (value, want) in cases {
        assert_eq!(parse_weight(&value), want, "{value}");
    }
}
