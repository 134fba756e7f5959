//! Structured logs: one JSON object per line on standard error, with a UTC
//! timestamp, a level, a message and fields.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

fn emit(level: &str, msg: &str, fields: &[(&str, Value)]) {
    let mut o = Map::new();
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    o.insert(
        "ts".into(),
        Value::from(format!("{}.{:03}", t.as_secs(), t.subsec_millis())),
    );
    o.insert("level".into(), Value::from(level));
    o.insert("msg".into(), Value::from(msg));
    for (k, v) in fields {
        o.insert((*k).into(), v.clone());
    }
    let mut line = Value::Object(o).to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(msg: &str, fields: &[(&str, Value)]) {
    emit("info", msg, fields);
}

pub fn warn(msg: &str, fields: &[(&str, Value)]) {
    emit("warn", msg, fields);
}

pub fn error(msg: &str, fields: &[(&str, Value)]) {
    emit("error", msg, fields);
}
