//! Aligned tables for people.

use serde_json::Value;

pub(crate) struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(head: &[&str]) -> Self {
        Self {
            head: head.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub(crate) fn rows(mut self, v: &Value, f: impl Fn(&Value) -> Vec<String>) -> Self {
        if let Value::Array(items) = v {
            for item in items {
                self.rows.push(f(item));
            }
        }
        self
    }

    pub(crate) fn print(&self) {
        if self.rows.is_empty() {
            println!("(none)");
            return;
        }
        let mut width: Vec<usize> = self.head.iter().map(String::len).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = width.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = width.get(i).copied().unwrap_or(0)))
                .collect();
            println!("{}", parts.join("  ").trim_end());
        };
        line(&self.head);
        for r in &self.rows {
            line(r);
        }
    }
}
