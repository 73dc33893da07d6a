//! The client history in Jepsen's list-append form, so that outside
//! checkers (Elle) can verify it: every room is a list, a send is an
//! append of a unique integer, a history read is a read of the list.

use std::fmt::Write as _;

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop {
    /// Append `value` to list `key`.
    Append {
        /// The room.
        key: String,
        /// The message's integer value.
        value: u64,
    },
    /// Read list `key` (`None` in an invocation or an unknown outcome).
    Read {
        /// The room.
        key: String,
        /// The values read, in list order.
        value: Option<Vec<u64>>,
    },
}

/// Jepsen event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The operation started.
    Invoke,
    /// It took effect.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Its outcome is unknown.
    Info,
}

/// One history event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    /// The client.
    pub process: usize,
    /// Invoke or completion.
    pub kind: EventType,
    /// Simulated nanoseconds since the run began.
    pub time_nanos: u64,
    /// The transaction.
    pub mops: Vec<Mop>,
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl HistoryEvent {
    /// One JSON line: `{"index":..,"type":..,"f":"txn","process":..,"time":..,"value":[..]}`.
    pub fn to_json(&self, index: usize) -> String {
        let kind = match self.kind {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        };
        let mut out = format!(
            "{{\"index\":{index},\"type\":\"{kind}\",\"f\":\"txn\",\"process\":{},\"time\":{},\"value\":[",
            self.process, self.time_nanos
        );
        for (i, mop) in self.mops.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match mop {
                Mop::Append { key, value } => {
                    out.push_str("[\"append\",");
                    json_string(&mut out, key);
                    let _ = write!(out, ",{value}]");
                }
                Mop::Read { key, value } => {
                    out.push_str("[\"r\",");
                    json_string(&mut out, key);
                    match value {
                        None => out.push_str(",null]"),
                        Some(vs) => {
                            out.push_str(",[");
                            let parts: Vec<String> = vs.iter().map(u64::to_string).collect();
                            out.push_str(&parts.join(","));
                            out.push_str("]]");
                        }
                    }
                }
            }
        }
        out.push_str("]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_jepsen_list_append_json() {
        let e = HistoryEvent {
            process: 2,
            kind: EventType::Ok,
            time_nanos: 5,
            mops: vec![
                Mop::Append { key: "#a\"b".into(), value: 7 },
                Mop::Read { key: "#a".into(), value: Some(vec![1, 7]) },
            ],
        };
        assert_eq!(
            e.to_json(3),
            r##"{"index":3,"type":"ok","f":"txn","process":2,"time":5,"value":[["append","#a\"b",7],["r","#a",[1,7]]]}"##
        );
        let r = HistoryEvent {
            process: 0,
            kind: EventType::Invoke,
            time_nanos: 0,
            mops: vec![Mop::Read { key: "k".into(), value: None }],
        };
        assert!(r.to_json(0).ends_with(r#"[["r","k",null]]}"#));
    }
}
