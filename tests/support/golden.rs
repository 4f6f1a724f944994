//! The thriftpy2 golden fixture, `tests/golden/demo.json` (see `tools/golden.py`).

/// One fixture case.
pub struct Case {
    pub type_name: String,
    pub json: serde_json::Value,
    pub name: String,
    pub message: Option<(String, u8, i32)>,
    pub binary: Vec<u8>,
    pub compact: Vec<u8>,
}

pub fn cases() -> Vec<Case> {
    let text = include_str!("../golden/demo.json");
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(doc["thriftpy2"], "0.7.1");
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_owned(),
            type_name: c["type"].as_str().unwrap().to_owned(),
            json: c["json"].clone(),
            message: c.get("message").map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["type"].as_u64().unwrap() as u8,
                    m["seqid"].as_i64().unwrap() as i32,
                )
            }),
            binary: hex(c["binary"].as_str().unwrap()),
            compact: hex(c["compact"].as_str().unwrap()),
        })
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
