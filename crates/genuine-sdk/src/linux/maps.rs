//! `/proc/self/maps` and `/proc/self/status`, parsed (pure functions over
//! the text, so they are tested on fixed inputs).

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Offset into the file.
    pub offset: u64,
    /// Inode of the file (0 for anonymous memory).
    pub inode: u64,
    /// The path or pseudo-name (`[vdso]`, `/memfd:name (deleted)`, …);
    /// empty for anonymous memory.
    pub path: String,
}

/// Parses `/proc/PID/maps` text; lines that do not parse are skipped.
#[must_use]
pub fn parse(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    // start-end perms offset dev inode [path]; the path may contain spaces.
    let mut rest = line;
    let mut field = || {
        let r = rest.trim_start_matches(' ');
        let end = r.find(' ').unwrap_or(r.len());
        let (f, tail) = r.split_at(end);
        rest = tail;
        (!f.is_empty()).then_some(f)
    };
    let range = field()?;
    let perms = field()?.as_bytes();
    let offset = u64::from_str_radix(field()?, 16).ok()?;
    let _dev = field()?;
    let inode = field()?.parse().ok()?;
    let path = rest.trim_start_matches(' ').to_owned();
    let (s, e) = range.split_once('-')?;
    let start = u64::from_str_radix(s, 16).ok()?;
    let end = u64::from_str_radix(e, 16).ok()?;
    if perms.len() < 4 || end < start {
        return None;
    }
    Some(Mapping {
        start,
        end,
        read: perms[0] == b'r',
        write: perms[1] == b'w',
        exec: perms[2] == b'x',
        offset,
        inode,
        path,
    })
}

/// A numeric field of `/proc/PID/status`, e.g. `TracerPid` (the first number
/// on the line; for `Uid` that is the real uid, see [`status_fields`]).
#[must_use]
pub fn status_field(text: &str, name: &str) -> Option<u64> {
    status_fields(text, name)?.first().copied()
}

/// All numbers of a `/proc/PID/status` line, e.g. `Uid`: real, effective,
/// saved, filesystem.
#[must_use]
pub fn status_fields(text: &str, name: &str) -> Option<Vec<u64>> {
    let line = text
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(k, _)| k == name))?;
    let (_, values) = line.split_once(':')?;
    let nums: Option<Vec<u64>> = values.split_whitespace().map(|v| v.parse().ok()).collect();
    nums.filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_shapes() {
        let text = "\
55d0c0a00000-55d0c0a40000 r--p 00000000 fd:01 1311                       /usr/bin/my app
55d0c0a40000-55d0c0b00000 r-xp 00040000 fd:01 1311                       /usr/bin/my app
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
7f1000000000-7f1000200000 r-xp 001c6000 00:01 1041                       /memfd:frida-agent-64.so (deleted)
7ffd1c1f0000-7ffd1c1f2000 r-xp 00000000 00:00 0                          [vdso]
garbage line
";
        let m = parse(text);
        assert_eq!(m.len(), 5);
        assert_eq!(m[1].path, "/usr/bin/my app");
        assert!(m[1].exec && m[1].read && !m[1].write);
        assert_eq!(m[1].offset, 0x40000);
        assert_eq!(m[1].inode, 1311);
        assert_eq!(m[2].path, "");
        assert_eq!(m[2].inode, 0);
        assert_eq!(m[3].path, "/memfd:frida-agent-64.so (deleted)");
        assert_eq!(m[4].path, "[vdso]");
        assert_eq!(m[4].end - m[4].start, 0x2000);
    }

    #[test]
    fn status_numbers() {
        let text = "Name:\tcat\nTracerPid:\t4242\nUid:\t1000\t0\t0\t0\nState:\tR (running)\n";
        assert_eq!(status_field(text, "TracerPid"), Some(4242));
        assert_eq!(status_fields(text, "Uid"), Some(vec![1000, 0, 0, 0]));
        assert_eq!(status_field(text, "State"), None);
        assert_eq!(status_field(text, "Tracer"), None);
    }
}
